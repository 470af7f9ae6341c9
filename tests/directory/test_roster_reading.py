"""The pure parts of roster import: CSV reading with line numbers, values, names, the docs."""

from __future__ import annotations

import codecs
from datetime import date
from pathlib import Path

import pytest

from esafety.config import RosterSettings
from esafety.directory.roster.cells import BadValue, parse_date, parse_yes_no
from esafety.directory.roster.grades import GradeMap
from esafety.directory.roster.mis import CONTACT_FIELDS, PUPIL_COLUMNS
from esafety.directory.roster.mis_contacts import split_name
from esafety.directory.roster.oneroster import ENROLMENT_ROLES, USER_ROLES
from esafety.directory.roster.problems import Problem, Problems
from esafety.directory.roster.reading import normalise_header, parse_csv
from esafety.directory.years import YearGroup

DOCS = Path(__file__).resolve().parents[2] / "docs" / "roster.md"


def test_rows_keep_the_line_they_start_on() -> None:
    data = b'id,note\n1,plain\n\n2,"two\nlines"\n3,after\n'
    problems = Problems()
    table = parse_csv(data, "x.csv", problems, allow_bom=False)
    assert not problems
    assert [(row.line, row.values) for row in table] == [
        (2, ["1", "plain"]),
        (4, ["2", "two\nlines"]),
        (6, ["3", "after"]),
    ]


def test_semicolons_and_tabs_are_read_as_separators() -> None:
    for separator in (";", "\t"):
        table = parse_csv(
            f"a{separator}b\n1{separator}2\n".encode(), "x.csv", Problems(), allow_bom=False
        )
        assert table.header == ["a", "b"] and table.rows[0].values == ["1", "2"]


def test_a_row_with_too_many_values_is_a_problem() -> None:
    problems = Problems()
    parse_csv(b"a,b\n1,2,3\n4,5,\n", "x.csv", problems, allow_bom=False)
    assert [str(p) for p in problems] == [
        "x.csv:2: the row has 3 values but the header has 2 columns — quote values that contain "
        "the separator, or remove the extra values"
    ]


def test_an_accepted_bom_is_not_part_of_the_first_header() -> None:
    problems = Problems()
    table = parse_csv(codecs.BOM_UTF8 + b"UPN,Name\n", "x.csv", problems, allow_bom=True)
    assert not problems and table.header == ["UPN", "Name"]
    parse_csv(codecs.BOM_UTF8 + b"UPN,Name\n", "x.csv", problems, allow_bom=False)
    assert "byte-order mark" in str(next(iter(problems)))


def test_an_empty_file_is_a_problem() -> None:
    problems = Problems()
    parse_csv(b"\n\n", "x.csv", problems, allow_bom=False)
    assert str(next(iter(problems))).startswith("x.csv:1: the file is empty")


@pytest.mark.parametrize(
    ("header", "normalised"),
    [
        ("Legal Surname", "legalsurname"),
        ("legal_surname", "legalsurname"),
        ("NC Year Actual", "ncyearactual"),
        ("Contact 1 E-mail", "contact1email"),
    ],
)
def test_headers_are_matched_without_case_or_spaces(header: str, normalised: str) -> None:
    assert normalise_header(header) == normalised


def test_dates_uk_and_iso() -> None:
    assert parse_date("03/04/2016", uk=True) == date(2016, 4, 3)
    assert parse_date("3/4/2016", uk=True) == date(2016, 4, 3)
    assert parse_date("2016-04-03", uk=True) == date(2016, 4, 3)
    with pytest.raises(BadValue) as caught:
        parse_date("03/04/2016", uk=False)
    assert caught.value.fix == "write it as YYYY-MM-DD"
    with pytest.raises(BadValue, match="not a real date"):
        parse_date("30/02/2016", uk=True)
    with pytest.raises(BadValue, match="future"):
        parse_date("2030-01-01", uk=True, today=date(2025, 1, 1), past=True)


def test_yes_and_no() -> None:
    assert [parse_yes_no(v) for v in ("Yes", "y", "TRUE", "1", "No", "n", "false", "0")] == [
        True
    ] * 4 + [False] * 4
    with pytest.raises(BadValue):
        parse_yes_no("maybe")


def test_the_default_grade_map() -> None:
    grades = GradeMap(RosterSettings().grade_map)
    assert grades.year_of("IT") is grades.year_of("PR") is grades.year_of("pk") is YearGroup.NURSERY
    assert grades.year_of("KG") is YearGroup.RECEPTION
    assert grades.year_of("01") is grades.year_of("1") is YearGroup.YEAR1
    assert grades.year_of("13") is YearGroup.YEAR13
    assert grades.year_of("14") is None and grades.year_of("Y3") is None


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("Mrs Jane Smith", ("Jane", "Smith")),
        ("Smith, Jane", ("Jane", "Smith")),
        ("Jane Anne Smith", ("Jane Anne", "Smith")),
        ("Jane", ("Jane", "")),
    ],
)
def test_a_contacts_full_name_is_split(name: str, split: tuple[str, str]) -> None:
    assert split_name({"name": name}) == split


def test_a_problem_reads_file_line_column_what_and_fix() -> None:
    assert str(Problem("users.csv", 4, "role", "unknown role 'x'", "use student")) == (
        "users.csv:4: role: unknown role 'x' — use student"
    )
    assert str(Problem("--school", None, None, "unknown school 'x'", "use westpark")) == (
        "--school: unknown school 'x' — use westpark"
    )


def test_the_docs_name_every_column_alias_and_mapping() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for names in PUPIL_COLUMNS.values():
        for name in names:
            assert f"`{name}`" in text, f"docs/roster.md does not list the MIS column {name!r}"
    for names in CONTACT_FIELDS.values():
        for name in names:
            if name:
                assert f"`{name}`" in text, (
                    f"docs/roster.md does not list the contact field {name!r}"
                )
    for role in (*USER_ROLES, *ENROLMENT_ROLES):
        assert f"`{role}`" in text
    for code, year in RosterSettings().grade_map.items():
        assert f"`{code}`" in text and year in text
