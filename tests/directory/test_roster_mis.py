"""Plain MIS exports (one row per pupil): SIMS and Arbor headers, contacts, leavers."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import select

from esafety.directory.model import GroupKind, ParentLink, PersonKind, Source
from esafety.directory.roster.service import import_roster
from esafety.directory.years import YearGroup
from esafety.installation import Installation
from esafety.security.roles import Role
from tests.directory.roster_data import (
    ARBOR_HEADER,
    SIMS_HEADER,
    arbor_rows,
    mis_text,
    sims_rows,
    upn,
)
from tests.directory.roster_support import (
    audit_about,
    groups,
    last_seq,
    new_school,
    people,
    registration,
)

TODAY = date(2025, 1, 15)


def _write(
    tmp_path: Path, header: list[str], rows: list[list[str]], name: str = "pupils.csv"
) -> Path:
    path = tmp_path / name
    path.write_text(mis_text(header, rows), encoding="utf-8")
    return path


def _import(inst: Installation, path: Path, **options):
    return import_roster(inst, path, "westpark", today=TODAY, **options)


def _links(inst: Installation, school_id: int) -> dict[tuple[str, str], ParentLink]:
    by_id = {p.id: p for p in people(inst, school_id).values()}
    with inst.db.session(school_id=school_id) as session:
        return {
            (by_id[k.parent_id].display_name, by_id[k.child_id].legal_first_name): k
            for k in session.scalars(select(ParentLink))
        }


def test_a_sims_export(inst: Installation, tmp_path: Path) -> None:
    school_id = new_school(inst)
    result = _import(inst, _write(tmp_path, SIMS_HEADER, sims_rows()))
    assert result.format == "mis" and (result.added, result.left) == (6, 0)

    found = people(inst, school_id)
    ada = found["1001"]
    assert ada.kind is PersonKind.PUPIL and {r.role for r in ada.roles} == {Role.PUPIL}
    assert (ada.legal_first_name, ada.legal_last_name, ada.preferred_first_name) == (
        "Augusta",
        "Lovelace",
        "Ada",
    )
    assert ada.display_name == "Ada Lovelace"
    assert ada.upn == upn(11)
    assert ada.date_of_birth == date(2016, 12, 10)  # 10/12/2016 is the 10th of December
    assert ada.year_group is YearGroup.YEAR3
    assert registration(ada) == "3B"
    assert groups(inst, school_id)["3B"].kind is GroupKind.CLASS
    grace = found["1003"]
    assert grace.date_of_birth == date(2015, 12, 9)  # ISO dates are read too
    assert grace.year_group is YearGroup.RECEPTION
    assert groups(inst, school_id)["3B"].year_group is YearGroup.YEAR3

    links = _links(inst, school_id)
    assert set(links) == {
        ("Anne Lovelace", "Augusta"),
        ("George Byron", "Augusta"),
        ("Anne Lovelace", "Alan"),
        ("Walter Hopper", "Grace"),
    }
    anne = links[("Anne Lovelace", "Augusta")]
    assert (anne.relationship_to_child, anne.parental_responsibility, anne.priority) == (
        "mother",
        True,
        1,
    )
    george = links[("George Byron", "Augusta")]
    assert (george.relationship_to_child, george.parental_responsibility, george.priority) == (
        "grandfather",
        False,
        2,
    )
    aunt = links[("Anne Lovelace", "Alan")]  # one person, two children (same e-mail)
    assert (aunt.relationship_to_child, aunt.parental_responsibility) == ("aunt", False)
    # A father with no Parental Responsibility value is taken to have it.
    assert links[("Walter Hopper", "Grace")].parental_responsibility is True
    parents = [p for p in found.values() if p.kind is PersonKind.PARENT]
    assert len(parents) == 3
    assert all({r.role for r in p.roles} == {Role.PARENT} for p in parents)
    anne_person = next(p for p in parents if p.legal_first_name == "Anne")
    assert (anne_person.email, anne_person.phone) == ("anne@example.org", "07700 900001")


def test_an_arbor_export(inst: Installation, tmp_path: Path) -> None:
    school_id = new_school(inst)
    _import(inst, _write(tmp_path, ARBOR_HEADER, arbor_rows()))
    found = people(inst, school_id)
    mary = found["A1"]
    # Beside Legal First Name, Arbor's First Name is the name the pupil goes by.
    assert (mary.legal_first_name, mary.legal_last_name) == ("Mary", "Somerville")
    assert (mary.preferred_first_name, mary.display_name) == ("Molly", "Molly Somerville")
    assert mary.year_group is YearGroup.YEAR3 and registration(mary) == "3S"
    assert found["A2"].date_of_birth == date(2017, 7, 25)
    links = _links(inst, school_id)
    assert set(links) == {("Will Somerville", "Mary"), ("Muriel Franklin", "Rosalind")}
    assert links[("Will Somerville", "Mary")].relationship_to_child == "father"


def test_headers_match_without_regard_to_case_or_spaces(inst: Installation, tmp_path: Path) -> None:
    school_id = new_school(inst)
    header = [
        "admission_number",
        "upn",
        "SURNAME",
        "forename",
        "date of birth",
        "yeargroup",
        "REGISTRATION  GROUP",
        "contact1name",
        "CONTACT 1 EMAIL",
    ]
    rows = [
        [
            "9",
            upn(9),
            "Newton",
            "Isaac",
            "04/01/2017",
            "2",
            "2N",
            "Hannah Newton",
            "hannah@example.org",
        ]
    ]
    _import(inst, _write(tmp_path, header, rows))
    isaac = people(inst, school_id)["9"]
    assert (isaac.legal_first_name, isaac.year_group, registration(isaac)) == (
        "Isaac",
        YearGroup.YEAR2,
        "2N",
    )
    assert set(_links(inst, school_id)) == {("Hannah Newton", "Isaac")}


def test_a_pupil_without_an_admission_number_is_known_by_upn(
    inst: Installation, tmp_path: Path
) -> None:
    school_id = new_school(inst)
    header = ["UPN", "Surname", "Forename", "DOB", "Year", "Reg"]
    _import(
        inst, _write(tmp_path, header, [[upn(5), "Knuth", "Donald", "10/01/2016", "N2", "Nursery"]])
    )
    donald = people(inst, school_id)[upn(5)]
    assert donald.year_group is YearGroup.NURSERY
    # The same pupil exported later with an admission number is the same person.
    header = ["Adno", *header]
    _import(
        inst,
        _write(
            tmp_path, header, [["77", upn(5), "Knuth", "Donald", "10/01/2016", "R", "Reception"]]
        ),
    )
    again = people(inst, school_id)
    assert again["77"].id == donald.id and again["77"].year_group is YearGroup.RECEPTION


def test_mis_reimport_changes_nothing_then_marks_leavers(
    inst: Installation, tmp_path: Path
) -> None:
    school_id = new_school(inst)
    path = _write(tmp_path, SIMS_HEADER, sims_rows())
    _import(inst, path)
    seq = last_seq(inst)
    result = _import(inst, path)
    assert (result.added, result.updated, result.left, result.unchanged) == (0, 0, 0, 6)
    assert [e.object_type for e in audit_about(inst, after_seq=seq)] == ["roster_import"]

    rows = sims_rows()[:2]  # Grace has left; so has her father, who has no other child here
    result = _import(inst, _write(tmp_path, SIMS_HEADER, rows, "later.csv"))
    assert result.left == 2
    found = people(inst, school_id)
    assert found["1003"].left_on == TODAY
    walter = next(p for p in found.values() if p.legal_first_name == "Walter")
    assert walter.left_on == TODAY
    assert found["1001"].left_on is None


def test_mis_bulk_leaves_staff_alone(inst: Installation, tmp_path: Path) -> None:
    from tests.directory.roster_data import small_school

    school_id = new_school(inst)
    _import(inst, small_school().write(tmp_path / "oneroster"))
    _import(inst, _write(tmp_path, SIMS_HEADER, sims_rows()))
    found = people(inst, school_id)
    assert found["t1"].left_on is None  # an MIS pupil export says nothing about staff
    assert found["p1"].left_on == TODAY  # ...but it is the whole list of pupils


def test_mis_delta_changes_only_its_rows(inst: Installation, tmp_path: Path) -> None:
    school_id = new_school(inst)
    _import(inst, _write(tmp_path, SIMS_HEADER, sims_rows()))
    row = sims_rows()[1]
    row[8] = "4T"
    result = _import(inst, _write(tmp_path, SIMS_HEADER, [row], "one.csv"), delta=True)
    assert (result.updated, result.left, result.classes_added) == (1, 0, 1)
    found = people(inst, school_id)
    assert registration(found["1002"]) == "4T"
    assert found["1001"].left_on is None and found["1003"].left_on is None
    assert found["1002"].source is Source.ROSTER
