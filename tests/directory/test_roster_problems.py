"""Every kind of roster problem is reported as file:line with the column and the fix,
every problem in one run, and a roster with any problem writes nothing at all."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from esafety.directory.roster.problems import RosterProblems
from esafety.directory.roster.service import import_roster
from esafety.installation import Installation
from tests.directory.roster_data import (
    SIMS_HEADER,
    USER_COLUMNS,
    OneRoster,
    csv_text,
    mis_text,
    sims_rows,
    small_school,
)
from tests.directory.roster_support import counts, new_school

TODAY = date(2025, 1, 15)


def _refused(inst: Installation, path: Path, school: str = "westpark", **options) -> list[str]:
    """Import, expecting a refusal that wrote nothing; the problems as printed."""
    before = counts(inst)
    with pytest.raises(RosterProblems) as caught:
        import_roster(inst, path, school, today=TODAY, **options)
    assert counts(inst) == before, "a refused roster must write nothing"
    return [str(p) for p in caught.value.problems]


def _has(problems: list[str], start: str, *words: str) -> None:
    matching = [p for p in problems if p.startswith(start) and all(w in p for w in words)]
    assert matching, f"no problem starting {start!r} with {words} in:\n" + "\n".join(problems)


@pytest.fixture
def school(inst: Installation) -> int:
    """The school to import into (its creation is the audit trail's first entry)."""
    return new_school(inst)


def _with(tmp_path: Path, change: Callable[[OneRoster], object]) -> tuple[OneRoster, Path]:
    roster = small_school()
    change(roster)
    return roster, roster.write(tmp_path / "roster")


def test_bad_date(inst: Installation, school: int, tmp_path: Path) -> None:
    roster, path = _with(
        tmp_path, lambda r: r.tables["demographics"][1].update(birthDate="2016-13-45")
    )
    line = roster.line_of("demographics", "p2")
    _has(_refused(inst, path), f"demographics.csv:{line}: birthDate:", "'2016-13-45'", "YYYY-MM-DD")


def test_a_date_of_birth_in_the_future(inst: Installation, school: int, tmp_path: Path) -> None:
    roster, path = _with(
        tmp_path, lambda r: r.row("demographics", "p1").update(birthDate="2061-05-04")
    )
    _has(
        _refused(inst, path),
        f"demographics.csv:{roster.line_of('demographics', 'p1')}: birthDate:",
        "future",
    )


def test_unknown_class(inst: Installation, school: int, tmp_path: Path) -> None:
    roster, path = _with(tmp_path, lambda r: r.enrol("nope", "p1", sourced_id="bad"))
    line = roster.line_of("enrollments", "bad")
    _has(
        _refused(inst, path),
        f"enrollments.csv:{line}: classSourcedId:",
        "unknown class 'nope'",
        "classes.csv",
    )


def test_unknown_user(inst: Installation, school: int, tmp_path: Path) -> None:
    roster, path = _with(tmp_path, lambda r: r.enrol("m3", "ghost", sourced_id="bad"))
    _has(
        _refused(inst, path),
        f"enrollments.csv:{roster.line_of('enrollments', 'bad')}: userSourcedId:",
        "unknown user 'ghost'",
    )


def test_duplicate_id(inst: Installation, school: int, tmp_path: Path) -> None:
    roster, path = _with(tmp_path, lambda r: r.user("p1", "student", "Another", "Ada", grades="03"))
    problems = _refused(inst, path)
    line = len(roster.tables["users"]) + 1
    _has(
        problems,
        f"users.csv:{line}: sourcedId:",
        "duplicate id 'p1'",
        f"also on line {roster.line_of('users', 'p1')}",
    )


def test_missing_column(inst: Installation, school: int, tmp_path: Path) -> None:
    roster = small_school()
    path = roster.write(tmp_path / "roster")
    columns = [c for c in USER_COLUMNS if c != "familyName"]
    (path / "users.csv").write_text(
        csv_text(
            columns,
            [{k: v for k, v in r.items() if k != "familyName"} for r in roster.tables["users"]],
        )
    )
    _has(
        _refused(inst, path),
        "users.csv:1: familyName:",
        "missing column",
        "add a column headed 'familyName'",
    )


def test_unknown_role(inst: Installation, school: int, tmp_path: Path) -> None:
    roster, path = _with(tmp_path, lambda r: r.row("users", "a1").update(role="proctor"))
    _has(
        _refused(inst, path),
        f"users.csv:{roster.line_of('users', 'a1')}: role:",
        "unknown role 'proctor'",
        "student, teacher, aide",
    )


def test_unknown_enrolment_role(inst: Installation, school: int, tmp_path: Path) -> None:
    roster, path = _with(tmp_path, lambda r: r.enrol("m3", "p3", "parent", sourced_id="bad"))
    _has(
        _refused(inst, path),
        f"enrollments.csv:{roster.line_of('enrollments', 'bad')}: role:",
        "unknown role 'parent'",
    )


def test_byte_order_mark(inst: Installation, school: int, tmp_path: Path) -> None:
    path = small_school().write(tmp_path / "roster")
    users = path / "users.csv"
    users.write_bytes(codecs.BOM_UTF8 + users.read_bytes())
    _has(_refused(inst, path), "users.csv:1:", "byte-order mark", "without a BOM", "--allow-bom")
    # Accepted when asked for; the BOM is not part of the first column's name.
    assert import_roster(inst, path, "westpark", today=TODAY, allow_bom=True).added == 10


def test_wrong_encoding(inst: Installation, school: int, tmp_path: Path) -> None:
    roster = small_school()
    roster.row("users", "p2")["givenName"] = "Zoë"
    path = roster.write(tmp_path / "roster")
    users = path / "users.csv"
    users.write_bytes(users.read_text(encoding="utf-8").encode("cp1252"))
    _has(
        _refused(inst, path),
        f"users.csv:{roster.line_of('users', 'p2')}: givenName:",
        "not UTF-8",
        "CSV UTF-8",
    )


def test_utf16_is_the_wrong_encoding(inst: Installation, school: int, tmp_path: Path) -> None:
    path = small_school().write(tmp_path / "roster")
    users = path / "users.csv"
    users.write_bytes(users.read_text(encoding="utf-8").encode("utf-16"))
    _has(_refused(inst, path), "users.csv:1:", "UTF-16", "UTF-8")


def test_a_pupil_in_two_registration_groups(
    inst: Installation, school: int, tmp_path: Path
) -> None:
    roster, path = _with(tmp_path, lambda r: r.enrol("c4c", "p1", sourced_id="second"))
    line = roster.line_of("enrollments", "second")
    _has(
        _refused(inst, path),
        f"enrollments.csv:{line}: classSourcedId:",
        "two registration groups",
        "'c3b'",
        "'c4c'",
    )


def test_unknown_grade(inst: Installation, school: int, tmp_path: Path) -> None:
    roster, path = _with(tmp_path, lambda r: r.row("users", "p2").update(grades="Y3"))
    _has(
        _refused(inst, path),
        f"users.csv:{roster.line_of('users', 'p2')}: grades:",
        "unknown grade 'Y3'",
        "grade_map",
    )


def test_missing_required_value(inst: Installation, school: int, tmp_path: Path) -> None:
    roster, path = _with(tmp_path, lambda r: r.row("users", "t2").update(givenName=""))
    _has(
        _refused(inst, path),
        f"users.csv:{roster.line_of('users', 't2')}: givenName:",
        "missing required value",
    )


def test_unknown_school(inst: Installation, school: int, tmp_path: Path) -> None:
    path = small_school().write(tmp_path / "roster")
    _has(
        _refused(inst, path, school="nowhere"), "--school:", "unknown school 'nowhere'", "westpark"
    )


def test_a_username_another_school_uses(inst: Installation, school: int, tmp_path: Path) -> None:
    new_school(inst, "eastfield", "Eastfield")
    other = OneRoster()
    other.user("x", "teacher", "Tara", "Teach", username="t.teach")
    import_roster(inst, other.write(tmp_path / "other"), "eastfield", today=TODAY)
    roster = small_school()
    _has(
        _refused(inst, roster.write(tmp_path / "roster")),
        f"users.csv:{roster.line_of('users', 't1')}: username:",
        "'t.teach'",
        "another school",
    )


def test_a_bulk_import_refuses_a_delta_manifest(
    inst: Installation, school: int, tmp_path: Path
) -> None:
    roster = small_school()
    roster.modes["users"] = "delta"
    _has(
        _refused(inst, roster.write(tmp_path / "roster")),
        "manifest.csv:",
        "value:",
        "file.users is 'delta'",
        "--delta",
    )


def test_a_delta_needs_status(inst: Installation, school: int, tmp_path: Path) -> None:
    import_roster(inst, small_school().write(tmp_path / "bulk"), "westpark", today=TODAY)
    delta = OneRoster(delta=True)
    delta.user("p1", "student", "Ada", "Lovelace", status="retired")
    delta.user("p2", "student", "Alan", "Turing", status="")
    problems = _refused(inst, delta.write(tmp_path / "delta"), delta=True)
    _has(problems, "users.csv:2: status:", "unknown status 'retired'", "active or tobedeleted")
    _has(problems, "users.csv:3: status:", "missing required value")


def test_a_delta_may_not_name_an_unknown_class(
    inst: Installation, school: int, tmp_path: Path
) -> None:
    import_roster(inst, small_school().write(tmp_path / "bulk"), "westpark", today=TODAY)
    delta = OneRoster(delta=True)
    delta.enrol("c3b", "p3", sourced_id="fine").enrol("gone", "p3", sourced_id="bad")
    _has(
        _refused(inst, delta.write(tmp_path / "delta"), delta=True),
        "enrollments.csv:3: classSourcedId:",
        "unknown class 'gone'",
    )


def test_every_problem_is_reported_in_one_run(
    inst: Installation, school: int, tmp_path: Path
) -> None:
    def break_it(r: OneRoster) -> None:
        r.row("users", "p2").update(grades="Y3")
        r.row("users", "a1").update(role="proctor")
        r.row("demographics", "p3").update(birthDate="09/12/2015")
        r.enrol("nope", "p1", sourced_id="bad")

    _, path = _with(tmp_path, break_it)
    problems = _refused(inst, path)
    assert len(problems) == 4, problems
    assert [p.split(":")[0] for p in problems] == [
        "users.csv",
        "users.csv",
        "enrollments.csv",
        "demographics.csv",
    ]


# -- the MIS export --------------------------------------------------------------------


def _mis(tmp_path: Path, rows: list[list[str]], header: list[str] = SIMS_HEADER) -> Path:
    path = tmp_path / "pupils.csv"
    path.write_text(mis_text(header, rows), encoding="utf-8")
    return path


def test_mis_bad_date(inst: Installation, school: int, tmp_path: Path) -> None:
    rows = sims_rows()
    rows[1][6] = "31/02/2016"
    _has(_refused(inst, _mis(tmp_path, rows)), "pupils.csv:3: DOB:", "not a real date")
    rows[1][6] = "02-03-2016"
    _has(_refused(inst, _mis(tmp_path, rows)), "pupils.csv:3: DOB:", "DD/MM/YYYY or YYYY-MM-DD")


def test_mis_unknown_year(inst: Installation, school: int, tmp_path: Path) -> None:
    rows = sims_rows()
    rows[2][7] = "Year 15"
    _has(
        _refused(inst, _mis(tmp_path, rows)),
        "pupils.csv:4: NC Year Actual:",
        "unknown year group 'Year 15'",
    )


def test_mis_missing_column(inst: Installation, school: int, tmp_path: Path) -> None:
    header = [h for h in SIMS_HEADER if h != "DOB"]
    rows = [[v for i, v in enumerate(r) if SIMS_HEADER[i] != "DOB"] for r in sims_rows()]
    _has(
        _refused(inst, _mis(tmp_path, rows, header)),
        "pupils.csv:1: DOB:",
        "missing column",
        "Date of Birth",
    )


def test_mis_pupil_in_two_registration_groups(
    inst: Installation, school: int, tmp_path: Path
) -> None:
    rows = sims_rows()
    again = list(rows[0])
    again[8] = "4C"
    _has(
        _refused(inst, _mis(tmp_path, [*rows, again])),
        "pupils.csv:5: Reg Group:",
        "two registration groups",
        "'3B' on line 2",
        "'4C'",
    )


def test_mis_duplicate_id(inst: Installation, school: int, tmp_path: Path) -> None:
    rows = sims_rows()
    _has(
        _refused(inst, _mis(tmp_path, [*rows, list(rows[0])])),
        "pupils.csv:5: Adno:",
        "duplicate id '1001'",
        "line 2",
    )


def test_mis_missing_required_value_and_bad_upn(
    inst: Installation, school: int, tmp_path: Path
) -> None:
    rows = sims_rows()
    rows[0][3] = ""
    rows[1][1] = "A12345"
    problems = _refused(inst, _mis(tmp_path, rows))
    _has(problems, "pupils.csv:2: Legal Forename:", "missing required value")
    _has(problems, "pupils.csv:3: UPN:", "13")


def test_mis_bad_parental_responsibility(inst: Installation, school: int, tmp_path: Path) -> None:
    rows = sims_rows()
    rows[0][13] = "Maybe"
    _has(
        _refused(inst, _mis(tmp_path, rows)),
        "pupils.csv:2: Contact 1 Parental Responsibility:",
        "'Maybe'",
        "Yes or No",
    )


def test_mis_wrong_encoding_and_bom(inst: Installation, school: int, tmp_path: Path) -> None:
    rows = sims_rows()
    rows[2][3] = "Zoë"
    path = tmp_path / "pupils.csv"
    path.write_bytes(codecs.BOM_UTF8 + mis_text(SIMS_HEADER, rows).encode("cp1252"))
    problems = _refused(inst, path)
    _has(problems, "pupils.csv:1:", "byte-order mark")
    _has(problems, "pupils.csv:4: Legal Forename:", "not UTF-8")
