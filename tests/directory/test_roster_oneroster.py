"""OneRoster 1.1 CSV imports: bulk, delta, leavers, re-imports, roles, classes and parents."""

from __future__ import annotations

import zipfile
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from esafety.audit import SYSTEM
from esafety.config import RosterSettings
from esafety.directory.model import (
    GroupKind,
    GroupMembership,
    ParentLink,
    PersonKind,
    PersonRole,
    RosterImport,
    Source,
)
from esafety.directory.roster.service import import_roster
from esafety.directory.years import KeyStage, YearGroup
from esafety.installation import Installation
from esafety.security.model import Account
from esafety.security.roles import Role
from tests.directory.roster_data import OneRoster, small_school, upn
from tests.directory.roster_support import (
    audit_about,
    groups,
    last_seq,
    new_school,
    people,
    registration,
)

TODAY = date(2025, 1, 15)


def _import(inst: Installation, path: Path, **options):
    return import_roster(inst, path, "westpark", today=TODAY, **options)


def _memberships(inst: Installation, school_id: int) -> set[tuple[str, str, str]]:
    with inst.db.session(school_id=school_id) as session:
        group_ids = {g.id: g.sourced_id or "" for g in groups(inst, school_id).values()}
        person_ids = {p.id: p.sourced_id or "" for p in people(inst, school_id).values()}
        return {
            (group_ids[m.group_id], person_ids[m.person_id], m.role)
            for m in session.scalars(select(GroupMembership))
        }


def _links(inst: Installation, school_id: int) -> dict[tuple[str, str], ParentLink]:
    person_ids = {p.id: p.sourced_id or "" for p in people(inst, school_id).values()}
    with inst.db.session(school_id=school_id) as session:
        return {
            (person_ids[k.parent_id], person_ids[k.child_id]): k
            for k in session.scalars(select(ParentLink))
        }


def test_bulk_import_creates_people_classes_roles_and_parents(
    inst: Installation, tmp_path: Path
) -> None:
    school_id = new_school(inst)
    result = _import(inst, small_school().write(tmp_path / "roster"))
    assert (result.added, result.updated, result.left, result.unchanged) == (10, 0, 0, 0)

    found = people(inst, school_id)
    roles = {sid: {r.role for r in p.roles} for sid, p in found.items()}
    assert roles["p1"] == {Role.PUPIL}
    assert roles["t1"] == {Role.TEACHER}
    assert roles["a1"] == {Role.TEACHING_ASSISTANT}
    assert roles["o1"] == {Role.OFFICE}  # administrator is the school office, never admin
    assert roles["g1"] == roles["g2"] == roles["g3"] == {Role.PARENT}
    assert all(Role.ADMIN not in r for r in roles.values())
    assert all(r.source is Source.ROSTER for p in found.values() for r in p.roles)

    ada = found["p1"]
    assert ada.kind is PersonKind.PUPIL
    assert (ada.legal_first_name, ada.legal_last_name) == ("Ada", "Lovelace")
    assert ada.upn == upn(1)
    assert ada.date_of_birth == date(2016, 5, 4)
    assert ada.year_group is YearGroup.YEAR3 and ada.key_stage is KeyStage.KS2
    assert registration(ada) == "3B"
    assert ada.source is Source.ROSTER and ada.left_on is None
    assert registration(found["p3"]) == "4C"
    assert found["t1"].username == "t.teach"  # OneRoster's username is used
    assert found["t1"].email == "t.teach@westpark.sch.uk"
    assert found["t2"].username == "tom.tutor"  # otherwise esafety makes one
    assert found["t1"].kind is PersonKind.STAFF and found["g1"].kind is PersonKind.PARENT

    classes = groups(inst, school_id)
    assert classes["c3b"].kind is GroupKind.CLASS and classes["c3b"].year_group is YearGroup.YEAR3
    assert classes["m3"].kind is GroupKind.TEACHING and classes["m3"].name == "Maths set 1"
    assert _memberships(inst, school_id) == {
        ("c3b", "t1", "teacher"),
        ("c4c", "t2", "teacher"),
        ("m3", "p1", "pupil"),
        ("m3", "p2", "pupil"),
        ("m3", "t1", "teacher"),
        ("m3", "a1", "teaching_assistant"),
    }

    links = _links(inst, school_id)
    assert set(links) == {("g1", "p1"), ("g2", "p1"), ("g3", "p2")}
    assert links[("g1", "p1")].relationship_to_child == "parent"
    assert links[("g1", "p1")].parental_responsibility is True
    assert links[("g1", "p1")].priority == 1
    assert links[("g2", "p1")].relationship_to_child == "relative"  # kept as the relationship
    assert links[("g2", "p1")].parental_responsibility is False
    assert links[("g2", "p1")].priority == 2
    assert links[("g3", "p2")].relationship_to_child == "guardian"

    with inst.db.session(school_id=school_id) as session:
        record = session.scalars(select(RosterImport)).one()
        assert (record.format, record.mode, record.added, record.updated, record.left) == (
            "oneroster",
            "bulk",
            10,
            0,
            0,
        )
        assert session.scalars(select(Account)).all() == []  # people, never passwords


def test_a_zip_export_imports_like_a_folder(inst: Installation, tmp_path: Path) -> None:
    new_school(inst)
    folder = small_school().write(tmp_path / "roster")
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for file in folder.iterdir():
            out.write(file, f"oneroster/{file.name}")
    assert _import(inst, archive).added == 10


def test_a_second_import_of_the_same_roster_changes_nothing(
    inst: Installation, tmp_path: Path
) -> None:
    school_id = new_school(inst)
    path = small_school().write(tmp_path / "roster")
    _import(inst, path)
    before = {
        sid: (p.id, p.username, p.registration_group_id, p.left_on)
        for sid, p in people(inst, school_id).items()
    }
    memberships, links = _memberships(inst, school_id), set(_links(inst, school_id))
    seq = last_seq(inst)

    result = _import(inst, path)

    assert (result.added, result.updated, result.left, result.unchanged) == (0, 0, 0, 10)
    changed = audit_about(inst, after_seq=seq)
    assert [e.object_type for e in changed] == ["roster_import"]  # no row about anyone
    after = {
        sid: (p.id, p.username, p.registration_group_id, p.left_on)
        for sid, p in people(inst, school_id).items()
    }
    assert after == before
    assert _memberships(inst, school_id) == memberships
    assert set(_links(inst, school_id)) == links


def test_a_reimport_updates_adds_and_marks_leavers(inst: Installation, tmp_path: Path) -> None:
    school_id = new_school(inst)
    _import(inst, small_school().write(tmp_path / "first"))
    pupils = {p.sourced_id: p.id for p in people(inst, school_id).values()}
    with inst.db.session(SYSTEM, school_id=school_id) as session:
        session.add(Account(school_id=school_id, person_id=pupils["p3"]))

    roster = small_school()
    roster.tables["users"] = [u for u in roster.tables["users"] if u["sourcedId"] != "p3"]
    roster.tables["enrollments"] = [
        e for e in roster.tables["enrollments"] if e["userSourcedId"] != "p3"
    ]
    roster.tables["demographics"] = [
        d for d in roster.tables["demographics"] if d["sourcedId"] != "p3"
    ]
    roster.row("users", "p1")["familyName"] = "King"  # married name on a pupil? a correction
    roster.enrol("c4c", "p2", sourced_id="move")
    roster.tables["enrollments"] = [
        e
        for e in roster.tables["enrollments"]
        if not (e["userSourcedId"] == "p2" and e["classSourcedId"] == "c3b")
    ]
    roster.pupil("p4", "Katherine", "Johnson", grade="04", homeroom="c4c", upn_number=4)
    seq = last_seq(inst)

    result = _import(inst, roster.write(tmp_path / "second"))

    assert (result.added, result.updated, result.left) == (1, 2, 1)
    found = people(inst, school_id)
    assert found["p1"].legal_last_name == "King"
    assert registration(found["p2"]) == "4C"
    assert registration(found["p4"]) == "4C"
    assert found["p3"].left_on == TODAY  # a leaver: kept, with the date they left
    with inst.db.session(school_id=school_id) as session:
        account = session.get(Account, found["p3"].id)
        assert account is not None and account.disabled is True
    person_entries = audit_about(inst, "person", after_seq=seq)
    assert {(e.action, e.object_id) for e in person_entries} == {
        ("update", str(found["p1"].id)),
        ("update", str(found["p2"].id)),
        ("update", str(found["p3"].id)),
        ("create", str(found["p4"].id)),
    }

    # The leaver comes back: re-admitted, not a new person.
    back = _import(inst, small_school().write(tmp_path / "third"))
    again = people(inst, school_id)
    assert again["p3"].left_on is None and again["p3"].id == found["p3"].id
    assert back.left == 1  # p4 is not in the original roster


def test_roles_given_by_hand_survive_a_reimport(inst: Installation, tmp_path: Path) -> None:
    school_id = new_school(inst)
    path = small_school().write(tmp_path / "roster")
    _import(inst, path)
    teacher = people(inst, school_id)["t1"]
    with inst.db.session(SYSTEM, school_id=school_id) as session:
        session.add(
            PersonRole(
                school_id=school_id, person_id=teacher.id, role=Role.DSL, source=Source.MANUAL
            )
        )

    roster = small_school()
    roster.row("users", "t1")["role"] = "administrator"  # the roster's role changes
    _import(inst, roster.write(tmp_path / "again"))
    roles = {(r.role, r.source) for r in people(inst, school_id)["t1"].roles}
    assert roles == {(Role.DSL, Source.MANUAL), (Role.OFFICE, Source.ROSTER)}

    seq = last_seq(inst)
    _import(inst, roster.write(tmp_path / "again"))
    assert audit_about(inst, "person_role", after_seq=seq) == []
    roles = {(r.role, r.source) for r in people(inst, school_id)["t1"].roles}
    assert (Role.DSL, Source.MANUAL) in roles


def test_delta_changes_only_what_it_names(inst: Installation, tmp_path: Path) -> None:
    school_id = new_school(inst)
    _import(inst, small_school().write(tmp_path / "bulk"))
    before = people(inst, school_id)

    delta = OneRoster(delta=True)
    delta.user("p2", "student", "Alan", "Turing-Smith", grades="03", agentSourcedIds="g3")
    delta.add(
        "users",
        sourcedId="p3",
        status="tobedeleted",
        role="student",
        givenName="Grace",
        familyName="Hopper",
    )
    delta.user("p9", "student", "Dorothy", "Hodgkin", grades="04")
    delta.enrol("c4c", "p9", sourced_id="e-new")
    delta.enrol("m3", "p1", sourced_id="e-gone", status="tobedeleted")
    delta.add("demographics", sourcedId="p1", birthDate="2016-05-05")
    delta.modes.update(orgs="absent", academicSessions="absent", classes="absent")
    result = _import(inst, delta.write(tmp_path / "delta"), delta=True)

    assert (result.added, result.updated, result.left) == (1, 2, 1)
    after = people(inst, school_id)
    assert after["p2"].legal_last_name == "Turing-Smith"
    assert (
        after["p2"].registration_group_id == before["p2"].registration_group_id
    )  # not named: kept
    assert after["p3"].left_on == TODAY
    assert registration(after["p9"]) == "4C"
    assert after["p1"].date_of_birth == date(2016, 5, 5)
    assert (
        after["t1"].left_on is None and after["g1"].left_on is None
    )  # absent ≠ leaving in a delta
    memberships = _memberships(inst, school_id)
    assert ("m3", "p1", "pupil") not in memberships
    assert ("m3", "p2", "pupil") in memberships
    assert set(_links(inst, school_id)) == {("g1", "p1"), ("g2", "p1"), ("g3", "p2")}


def test_grades_map_to_english_year_groups(inst: Installation, tmp_path: Path) -> None:
    school_id = new_school(inst)
    roster = OneRoster()
    codes = {
        "IT": "nursery",
        "PR": "nursery",
        "PK": "nursery",
        "KG": "reception",
        "01": "year1",
        "6": "year6",
        "13": "year13",
    }
    for n, code in enumerate(codes):
        roster.pupil(f"p{n}", "Pupil", f"Number{n}", grade=code, upn_number=n)
    _import(inst, roster.write(tmp_path / "roster"))
    found = people(inst, school_id)
    assert {code: str(found[f"p{n}"].year_group) for n, code in enumerate(codes)} == codes


def test_a_school_can_map_its_own_grade_codes(inst: Installation, tmp_path: Path) -> None:
    school_id = new_school(inst)
    inst.settings = inst.settings.model_copy(
        update={
            "roster": RosterSettings(grade_map={"R": "reception", "Y1": "year1", "Y2": "year2"})
        }
    )
    roster = OneRoster().homeroom("r1", "Robins", "R")
    roster.pupil("p1", "Ada", "Lovelace", grade="R", homeroom="r1", upn_number=1)
    roster.pupil("p2", "Alan", "Turing", grade="y2", upn_number=2)
    _import(inst, roster.write(tmp_path / "roster"))
    found = people(inst, school_id)
    assert found["p1"].year_group is YearGroup.RECEPTION
    assert found["p2"].year_group is YearGroup.YEAR2
    assert groups(inst, school_id)["r1"].key_stage is KeyStage.EYFS


def test_a_pupil_without_grades_takes_the_year_of_their_registration_group(
    inst: Installation, tmp_path: Path
) -> None:
    school_id = new_school(inst)
    roster = OneRoster().homeroom("h5", "5K", "05")
    roster.pupil("p1", "Ada", "Lovelace", grade="", homeroom="h5", upn_number=1)
    _import(inst, roster.write(tmp_path / "roster"))
    assert people(inst, school_id)["p1"].year_group is YearGroup.YEAR5


def test_classes_with_the_same_title_are_told_apart(inst: Installation, tmp_path: Path) -> None:
    school_id = new_school(inst)
    roster = (
        OneRoster()
        .scheduled("m7", "Maths", "07", code="7MA1")
        .scheduled("m8", "Maths", "08", code="8MA1")
    )
    _import(inst, roster.write(tmp_path / "roster"))
    names = {sid: g.name for sid, g in groups(inst, school_id).items()}
    assert names == {"m7": "Maths (7MA1)", "m8": "Maths (8MA1)"}


def test_bulk_import_archives_classes_that_are_gone(inst: Installation, tmp_path: Path) -> None:
    school_id = new_school(inst)
    _import(inst, small_school().write(tmp_path / "first"))
    roster = small_school()
    roster.tables["classes"] = [c for c in roster.tables["classes"] if c["sourcedId"] != "m3"]
    roster.tables["enrollments"] = [
        e for e in roster.tables["enrollments"] if e["classSourcedId"] != "m3"
    ]
    result = _import(inst, roster.write(tmp_path / "second"))
    assert result.classes_archived == 1 and result.memberships_ended == 4
    assert groups(inst, school_id)["m3"].archived_on == TODAY
    assert not any(m[0] == "m3" for m in _memberships(inst, school_id))


def test_usernames_are_unique_across_the_installation(inst: Installation, tmp_path: Path) -> None:
    new_school(inst, "eastfield", "Eastfield Primary")
    other = OneRoster()
    other.user("x1", "teacher", "Tom", "Tutor")
    import_roster(inst, other.write(tmp_path / "other"), "eastfield", today=TODAY)
    school_id = new_school(inst)
    _import(inst, small_school().write(tmp_path / "roster"))
    assert people(inst, school_id)["t2"].username == "tom.tutor2"


@pytest.mark.parametrize("role", ["parent", "guardian", "relative"])
def test_parents_are_linked_from_either_side(inst: Installation, tmp_path: Path, role: str) -> None:
    school_id = new_school(inst)
    roster = OneRoster()
    roster.pupil("p1", "Ada", "Lovelace", upn_number=1)
    roster.pupil("p2", "Byron", "Lovelace", upn_number=2)
    roster.user("g1", role, "Anne", "Lovelace", agentSourcedIds="p1,p2")
    _import(inst, roster.write(tmp_path / "roster"))
    links = _links(inst, school_id)
    assert set(links) == {("g1", "p1"), ("g1", "p2")}
    assert {k.relationship_to_child for k in links.values()} == {role}
    assert {k.parental_responsibility for k in links.values()} == {role != "relative"}


def test_a_class_made_by_hand_becomes_the_rosters_class(inst: Installation, tmp_path: Path) -> None:
    from esafety.directory.model import Group

    school_id = new_school(inst)
    with inst.db.session(SYSTEM, school_id=school_id) as session:
        made = Group(school_id=school_id, kind=GroupKind.CLASS, name="3B")
        session.add(made)
        session.flush()
        made_id = made.id
    _import(inst, small_school().write(tmp_path / "roster"))
    found = groups(inst, school_id)
    assert found["c3b"].id == made_id
    assert found["c3b"].source is Source.MANUAL  # still the school's own: never archived
    assert people(inst, school_id)["p1"].registration_group_id == made_id


def test_two_schools_with_the_same_roster_ids_share_nothing(
    inst: Installation, tmp_path: Path
) -> None:
    roster = small_school()
    roster.row("users", "t1")["username"] = ""
    path = roster.write(tmp_path / "roster")
    west = new_school(inst)
    east = new_school(inst, "eastfield", "Eastfield Primary")
    _import(inst, path)
    import_roster(inst, path, "eastfield", today=TODAY)
    west_people, east_people = people(inst, west), people(inst, east)
    assert set(west_people) == set(east_people)
    assert not {p.id for p in west_people.values()} & {p.id for p in east_people.values()}
    assert all(p.school_id == east for p in east_people.values())
    assert east_people["t1"].username == "tara.teach2"
    # A re-import into one school leaves the other alone.
    fewer = small_school()
    fewer.tables["users"] = [u for u in fewer.tables["users"] if u["sourcedId"] != "t2"]
    fewer.tables["enrollments"] = [
        e for e in fewer.tables["enrollments"] if e["userSourcedId"] != "t2"
    ]
    fewer.row("users", "t1")["username"] = ""
    assert import_roster(inst, fewer.write(tmp_path / "fewer"), "eastfield", today=TODAY).left == 1
    assert people(inst, west)["t2"].left_on is None


def test_the_number_of_queries_does_not_grow_with_the_roster(
    inst: Installation, tmp_path: Path
) -> None:
    """What the school holds is loaded once, not person by person. (On SQLite the ORM inserts
    rows with database-made ids one statement each, as SQLite cannot return them in order
    for a batch; so only reads are counted there, and every statement on PostgreSQL.)"""
    from sqlalchemy import event

    from tests.directory.roster_data import big_oneroster

    statements: list[str] = []

    def count(_conn, _cursor, statement: str, *_args) -> None:
        if inst.db.dialect != "sqlite" or statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    new_school(inst)
    new_school(inst, "bigger", "Bigger Primary")
    event.listen(inst.db.engine, "before_cursor_execute", count)
    try:
        import_roster(inst, big_oneroster(60).write(tmp_path / "small"), "westpark", today=TODAY)
        small = len(statements)
        statements.clear()
        import_roster(inst, big_oneroster(600).write(tmp_path / "large"), "bigger", today=TODAY)
        large = len(statements)
    finally:
        event.remove(inst.db.engine, "before_cursor_execute", count)
    assert large <= small + 5, f"{small} statements for 60 pupils, {large} for 600"


def test_someone_added_by_hand_is_found_by_username(inst: Installation, tmp_path: Path) -> None:
    from esafety.directory.model import Person

    school_id = new_school(inst)
    with inst.db.session(SYSTEM, school_id=school_id) as session:
        dsl = Person(
            school_id=school_id,
            kind=PersonKind.STAFF,
            username="t.teach",
            legal_first_name="Tara",
            legal_last_name="Teach",
        )
        session.add(dsl)
        session.flush()
        session.add(
            PersonRole(school_id=school_id, person_id=dsl.id, role=Role.DSL, source=Source.MANUAL)
        )
        dsl_id = dsl.id
    result = _import(inst, small_school().write(tmp_path / "roster"))
    assert (result.added, result.updated) == (9, 1)
    tara = people(inst, school_id)["t1"]
    assert tara.id == dsl_id and tara.source is Source.ROSTER
    assert {r.role for r in tara.roles} == {Role.DSL, Role.TEACHER}
