"""Directory use cases: schools, people, parents, roles, leavers, groups; on both databases."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from esafety.audit import AuditEntry
from esafety.directory import groups, service
from esafety.directory.events import PersonLeft
from esafety.directory.model import Group, GroupKind, Person, PersonKind, School
from esafety.directory.years import KeyStage, YearGroup
from esafety.errors import InvalidInput, NotFound, PermissionDenied
from esafety.events import subscribe
from esafety.installation import Installation
from esafety.security.model import Account
from esafety.security.roles import Role
from tests.directory.school_setup import SETUP, acting, add_pupil, birthday, new_school, staff_actor


def _count(inst: Installation, model: type) -> int:
    with inst.db.session(SETUP) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


# -- schools --------------------------------------------------------------------------


def test_create_school_with_slug_and_timezone(inst: Installation) -> None:
    with inst.db.session(SETUP) as session:
        school = service.create_school(
            session, "west-park2", "West Park Primary", timezone="Europe/Paris", urn="123456"
        )
    with inst.db.session(SETUP) as session:
        found = service.school_by_slug(session, "west-park2")
        assert (found.id, found.name, found.timezone, found.urn) == (
            school.id,
            "West Park Primary",
            "Europe/Paris",
            "123456",
        )


@pytest.mark.parametrize("slug", ["a", "West", "west park", "-west", "west-", "x" * 41, "wést"])
def test_bad_slugs_are_refused_with_the_rule(inst: Installation, slug: str) -> None:
    with (
        pytest.raises(InvalidInput, match=r"slug .* lowercase letters, digits"),
        inst.db.session(SETUP) as session,
    ):
        service.create_school(session, slug, "A school")
    assert _count(inst, School) == 0


def test_school_timezone_name_and_duplicate_are_checked(inst: Installation) -> None:
    with (
        pytest.raises(InvalidInput, match=r"timezone 'Europe/Londres'"),
        inst.db.session(SETUP) as session,
    ):
        service.create_school(session, "westpark", "West Park", timezone="Europe/Londres")
    with pytest.raises(InvalidInput, match="name is empty"), inst.db.session(SETUP) as session:
        service.create_school(session, "westpark", "  ")
    new_school(inst, "westpark")
    with pytest.raises(InvalidInput, match="already exists"):
        new_school(inst, "westpark")
    with inst.db.session(SETUP) as session, pytest.raises(NotFound, match="schools: westpark"):
        service.school_by_slug(session, "eastpark")


def test_only_an_administrator_person_may_create_schools(inst: Installation) -> None:
    school_id = new_school(inst)
    head = staff_actor(inst, school_id, Role.HEADTEACHER)
    with pytest.raises(PermissionDenied, match="administrator"), inst.db.session(head) as session:
        service.create_school(session, "other", "Other")


# -- people ---------------------------------------------------------------------------


def test_add_pupil_derives_key_stage_class_and_role(inst: Installation) -> None:
    school_id = new_school(inst)
    with acting(inst, school_id) as session:
        pupil = add_pupil(session, upn="b801200005001", year="Y3")
        person_id = pupil.id
    with acting(inst, school_id) as session:
        pupil = service.get_person(session, person_id)
        assert pupil.kind is PersonKind.PUPIL
        assert pupil.username == "ada.lovelace"
        assert pupil.upn == "B801200005001"
        assert pupil.year_group is YearGroup.YEAR3
        assert pupil.key_stage is KeyStage.KS2
        assert pupil.role_ids == {Role.PUPIL}
        assert pupil.registration_group is not None
        assert pupil.registration_group.name == "3R"
        assert pupil.registration_group.kind is GroupKind.CLASS
        found = groups.groups_of(session, pupil)
        assert found.labels() == ["3R", "Year 3", "KS2"]
        # Year and key stage are derived: move the pupil up a year and both follow.
        pupil.year_group = YearGroup.YEAR2
        assert groups.groups_of(session, pupil).key_stage is KeyStage.KS1


def test_usernames_are_unique_across_the_installation(inst: Installation) -> None:
    west, east = new_school(inst, "westpark"), new_school(inst, "eastpark")
    with acting(inst, west) as session:
        assert add_pupil(session).username == "ada.lovelace"
    with acting(inst, east) as session:
        # The other school's Ada is invisible here, yet her username is still taken.
        assert service.find_people(session) == []
        assert add_pupil(session).username == "ada.lovelace2"
        with pytest.raises(InvalidInput, match=r"username 'ada\.lovelace' is already taken"):
            service.add_person(session, PersonKind.VISITOR, "Ada", "L", username="Ada.Lovelace")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"date_of_birth": None}, "date_of_birth is missing"),
        ({"date_of_birth": date(2999, 1, 1)}, "in the future"),
        ({"date_of_birth": date(1950, 1, 1)}, "a pupil is 1 to 21"),
        ({"year_group": None}, "year_group is missing"),
        ({"year_group": "Year 14"}, "year_group 'Year 14' is not a year"),
        ({"upn": "A801200005001"}, "wrong check letter 'A' .*expected 'B'"),
        ({"upn": "B80120000500"}, "has 12 characters"),
        ({"upn": "I801200005001"}, "must start with a check letter"),
        ({"upn": "B8012000O5001"}, "characters 2 to 12 must be digits"),
        ({"roles": ["teacher"]}, "a pupil cannot have the roles teacher"),
        ({"roles": ["headmaster"]}, "unknown role 'headmaster'"),
        ({"email": "not an address"}, "email 'not an address' is not an e-mail address"),
        ({"first_name": "  "}, "first_name is empty"),
        ({"username": "-bad"}, "username '-bad' is not allowed"),
        ({"kind": "alien"}, "unknown kind of person 'alien'"),
    ],
)
def test_bad_pupil_details_are_refused_and_nothing_is_written(
    inst: Installation, changes: dict[str, object], message: str
) -> None:
    school_id = new_school(inst)
    details: dict[str, object] = {
        "kind": PersonKind.PUPIL,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "date_of_birth": birthday(8),
        "year_group": "Year 3",
        "registration_class": "3R",
    }
    details.update(changes)
    with pytest.raises(InvalidInput, match=message), acting(inst, school_id) as session:
        service.add_person(session, **details)  # type: ignore[arg-type]
    assert _count(inst, Person) == 0
    assert _count(inst, Group) == 0


def test_pupil_only_fields_and_staff_roles_are_checked(inst: Installation) -> None:
    school_id = new_school(inst)
    with acting(inst, school_id) as session:
        with pytest.raises(InvalidInput, match="upn is for pupils only"):
            service.add_person(
                session, PersonKind.STAFF, "T", "Teacher", roles=["teacher"], upn="B801200005001"
            )
        with pytest.raises(InvalidInput, match="staff need at least one role"):
            service.add_person(session, PersonKind.STAFF, "T", "Teacher")
        with pytest.raises(InvalidInput, match="cannot hold staff roles"):
            service.add_person(session, PersonKind.PARENT, "P", "Parent", roles=["dsl"])
        with pytest.raises(InvalidInput, match="'pupil' is for pupils only"):
            service.add_person(session, PersonKind.VOLUNTEER, "V", "Vol", roles=["pupil"])
        governor = service.add_person(
            session, PersonKind.GOVERNOR, "G", "Gov", roles=["chair_of_governors"]
        )
        assert governor.role_ids == {Role.GOVERNOR, Role.CHAIR_OF_GOVERNORS}
        staff = service.add_person(
            session,
            PersonKind.STAFF,
            "T",
            "Teacher",
            roles=["teacher"],
            date_of_birth=date(1980, 5, 1),
        )
        assert staff.date_of_birth == date(1980, 5, 1)  # kept for allegation retention


def test_duplicate_upn_in_the_school_is_refused(inst: Installation) -> None:
    school_id = new_school(inst)
    with acting(inst, school_id) as session:
        add_pupil(session, upn="B801200005001")
        with pytest.raises(InvalidInput, match="UPN B801200005001 is already used"):
            add_pupil(session, "Bob", "Smith", upn="B801200005001")


def test_a_teacher_cannot_add_people(inst: Installation) -> None:
    school_id = new_school(inst)
    teacher = staff_actor(inst, school_id, Role.TEACHER)
    with (
        pytest.raises(PermissionDenied, match="add people to the directory"),
        acting(inst, school_id, teacher) as session,
    ):
        add_pupil(session)
    office = staff_actor(inst, school_id, Role.OFFICE, username="office")
    with acting(inst, school_id, office) as session:
        add_pupil(session)
    audit = _last_audit(inst, "person")
    assert audit.actor == "office" and audit.actor_id == office.person_id


def _last_audit(inst: Installation, object_type: str) -> AuditEntry:
    with inst.db.session(SETUP) as session:
        return session.scalars(
            select(AuditEntry)
            .where(AuditEntry.object_type == object_type)
            .order_by(AuditEntry.seq.desc())
        ).first()  # type: ignore[return-value]


def test_find_people_by_text_kind_year_and_class(inst: Installation) -> None:
    school_id = new_school(inst)
    with acting(inst, school_id) as session:
        ada = add_pupil(session, "Ada", "Lovelace", year="Year 3", class_name="3R")
        bob = add_pupil(session, "Bob", "O'Brien", year="Year 4", class_name="4W")
        service.add_person(session, PersonKind.STAFF, "Ada", "Teacher", roles=["teacher"])
        ids = lambda people: [p.id for p in people]  # noqa: E731
        assert len(service.find_people(session, text="ada")) == 2
        assert ids(service.find_people(session, text="ada lovelace")) == [ada.id]
        assert ids(service.find_people(session, text="O'BRIEN")) == [bob.id]
        assert ids(service.find_people(session, text="ada", kind="pupil")) == [ada.id]
        assert ids(service.find_people(session, year_group="Year 4")) == [bob.id]
        assert ids(service.find_people(session, group_id=ada.registration_group_id)) == [ada.id]
        assert service.find_people(session, text="%") == []
        with pytest.raises(InvalidInput, match="unknown kind 'pupils'"):
            service.find_people(session, kind="pupils")


def test_another_schools_person_is_not_found(inst: Installation) -> None:
    west, east = new_school(inst, "westpark"), new_school(inst, "eastpark")
    with acting(inst, west) as session:
        west_pupil = add_pupil(session).id
    with acting(inst, east) as session:
        parent = service.add_person(session, PersonKind.PARENT, "Pat", "Parent")
        with pytest.raises(NotFound, match=f"no person with id {west_pupil}"):
            service.get_person(session, west_pupil)
        with pytest.raises(NotFound):
            service.link_parent(session, parent.id, west_pupil)
        with pytest.raises(NotFound):
            service.mark_leaver(session, west_pupil, date.today())


# -- parents --------------------------------------------------------------------------


def test_link_parents_with_parental_responsibility(inst: Installation) -> None:
    school_id = new_school(inst)
    with acting(inst, school_id) as session:
        child = add_pupil(session)
        mum = service.add_person(session, PersonKind.PARENT, "Mary", "Lovelace")
        gran = service.add_person(session, PersonKind.PARENT, "Grace", "Byron")
        service.link_parent(session, mum.id, child.id, relationship="mother")
        service.link_parent(
            session,
            gran.id,
            child.id,
            relationship="grandmother",
            parental_responsibility=False,
            priority=2,
        )
        parents = service.parents_of(session, child.id)
        assert [(p.legal_first_name, link.parental_responsibility) for link, p in parents] == [
            ("Mary", True),
            ("Grace", False),
        ]
        assert [c.id for _, c in service.children_of(session, mum.id)] == [child.id]
        with pytest.raises(InvalidInput, match="not a parent or carer"):
            service.link_parent(session, child.id, child.id)
        with pytest.raises(InvalidInput, match="is a parent, not a pupil"):
            service.link_parent(session, mum.id, gran.id)
        service.unlink_parent(session, gran.id, child.id)
        assert len(service.parents_of(session, child.id)) == 1


# -- roles and leavers ----------------------------------------------------------------


def test_grant_and_remove_roles_are_audited(inst: Installation) -> None:
    school_id = new_school(inst)
    with acting(inst, school_id) as session:
        staff = service.add_person(session, PersonKind.STAFF, "Dee", "Lead", roles=["teacher"])
        service.grant_role(session, staff.id, "dsl")
        assert staff.role_ids == {Role.TEACHER, Role.DSL}
        service.remove_role(session, staff.id, Role.TEACHER)
        assert staff.role_ids == {Role.DSL}
        with pytest.raises(InvalidInput, match="does not have the role 'teacher'"):
            service.remove_role(session, staff.id, "teacher")
        with pytest.raises(InvalidInput, match="unknown role 'dls'"):
            service.grant_role(session, staff.id, "dls")
    with inst.db.session(SETUP) as session:
        actions = [
            (e.action, e.object_id)
            for e in session.scalars(
                select(AuditEntry).where(AuditEntry.object_type == "person_role")
            )
        ]
    assert ("create", f"{staff.id}:dsl") in actions
    assert ("delete", f"{staff.id}:teacher") in actions


def test_mark_leaver_disables_account_and_closes_access(inst: Installation) -> None:
    from esafety.directory import registers

    school_id = new_school(inst)
    left: list[PersonLeft] = []
    unsubscribe = subscribe(PersonLeft, left.append)
    try:
        with acting(inst, school_id) as session:
            pupil = add_pupil(session)
            session.add(Account(person_id=pupil.id, school_id=school_id, password_hash="x"))
            registers.grant_access(session, pupil.id, "Wi-Fi", granted_on=date(2024, 9, 1))
        with acting(inst, school_id) as session:
            service.mark_leaver(session, pupil.id, date(2025, 7, 18))
            assert left == []  # published only once the change is committed
        assert left == [PersonLeft(school_id, pupil.id, date(2025, 7, 18))]
        with acting(inst, school_id) as session:
            assert session.get(Account, pupil.id).disabled is True  # type: ignore[union-attr]
            assert service.find_people(session) == []
            assert [p.id for p in service.find_people(session, include_leavers=True)] == [pupil.id]
            (entry,) = registers.access_register(session)
            assert entry.grant.revoked_on == date(2025, 7, 18)
            with pytest.raises(InvalidInput, match="has left the school"):
                service.grant_role(session, pupil.id, "pupil")
            with pytest.raises(InvalidInput, match="before the person was born"):
                service.mark_leaver(session, pupil.id, date(2000, 1, 1))
    finally:
        unsubscribe()


def test_an_event_is_not_published_when_the_change_rolls_back(inst: Installation) -> None:
    school_id = new_school(inst)
    with acting(inst, school_id) as session:
        pupil_id = add_pupil(session).id
    left: list[PersonLeft] = []
    unsubscribe = subscribe(PersonLeft, left.append)
    try:

        def leave_then_fail() -> None:
            with acting(inst, school_id) as session:
                service.mark_leaver(session, pupil_id, date(2025, 7, 18))
                raise RuntimeError("the request failed after the change")

        with pytest.raises(RuntimeError):
            leave_then_fail()
        assert left == []
        with acting(inst, school_id) as session:
            assert service.get_person(session, pupil_id).left_on is None
    finally:
        unsubscribe()


# -- groups ---------------------------------------------------------------------------


def test_custom_groups_and_class_teachers(inst: Installation) -> None:
    school_id = new_school(inst)
    with acting(inst, school_id) as session:
        ada = add_pupil(session)
        teacher = service.add_person(session, PersonKind.STAFF, "Tim", "Teach", roles=["teacher"])
        leaders = groups.create_group(session, "Digital leaders")
        groups.add_to_group(session, leaders.id, ada.id)
        groups.add_to_group(session, leaders.id, ada.id)  # twice is once
        assert [p.id for p in groups.members_of(session, leaders.id)] == [ada.id]
        assert groups.groups_of(session, ada).labels() == ["3R", "Year 3", "KS2", "Digital leaders"]
        assert ada.registration_group_id is not None
        groups.assign_teacher(session, ada.registration_group_id, teacher.id)
        assert [g.name for g in groups.groups_of(session, teacher).classes] == ["3R"]
        with pytest.raises(InvalidInput, match="already exists"):
            groups.create_group(session, "Digital leaders")
        with pytest.raises(InvalidInput, match="is a class group; its members come from"):
            groups.add_to_group(session, ada.registration_group_id, teacher.id)
        with pytest.raises(InvalidInput, match="come from pupils' years"):
            groups.create_group(session, "Year 3", kind=GroupKind.YEAR)
        groups.remove_from_group(session, leaders.id, ada.id)
        assert groups.members_of(session, leaders.id) == []
        with pytest.raises(NotFound):
            groups.remove_from_group(session, leaders.id, ada.id)
        assert [g.name for g in groups.list_groups(session, GroupKind.CLASS)] == ["3R"]
