"""Terms and closures as records, and the calendar built from them; UPN check letters."""

from __future__ import annotations

from datetime import date

import pytest

from esafety.directory import terms
from esafety.directory.upn import check_letter, make_upn, normalise_upn
from esafety.errors import InvalidInput, PermissionDenied
from esafety.installation import Installation
from esafety.security.roles import Role
from tests.directory.school_setup import acting, new_school, staff_actor


def test_terms_and_closures_make_the_school_calendar(inst: Installation) -> None:
    school = new_school(inst)
    with acting(inst, school) as session:
        terms.add_term(session, "Spring 2026", date(2026, 1, 5), date(2026, 3, 27))
        terms.add_term(session, "Autumn 2025", date(2025, 9, 3), date(2025, 12, 19))
        terms.add_closure(session, date(2025, 10, 27), date(2025, 10, 31), "Half term")
    with acting(inst, school) as session:
        assert [t.name for t in terms.terms(session)] == ["Autumn 2025", "Spring 2026"]
        calendar = terms.school_calendar(session)
        assert calendar.timezone == "Europe/London"
        assert not calendar.is_school_day(date(2025, 10, 28))  # half term
        assert not calendar.is_school_day(date(2025, 12, 24))  # holidays
        assert calendar.add_school_days(date(2025, 12, 19), 1) == date(2026, 1, 5)
        # Autumn 2025: 78 weekdays from 3 Sept to 19 Dec, less 5 days of half term.
        assert calendar.school_days_between(date(2025, 9, 3), date(2025, 12, 19)) == 73


@pytest.mark.parametrize(
    ("starts", "ends", "message"),
    [
        (date(2025, 12, 1), date(2026, 1, 10), "overlaps 'Autumn'"),
        (date(2025, 8, 1), date(2025, 9, 3), "overlaps 'Autumn'"),
        (date(2026, 3, 1), date(2026, 2, 1), "ends on 2026-02-01, before it starts"),
    ],
)
def test_bad_terms_are_refused(inst: Installation, starts: date, ends: date, message: str) -> None:
    school = new_school(inst)
    with acting(inst, school) as session:
        terms.add_term(session, "Autumn", date(2025, 9, 3), date(2025, 12, 19))
    with pytest.raises(InvalidInput, match=message), acting(inst, school) as session:
        terms.add_term(session, "New", starts, ends)
    with acting(inst, school) as session:
        assert [t.name for t in terms.terms(session)] == ["Autumn"]


def test_closures_must_lie_inside_a_term(inst: Installation) -> None:
    school = new_school(inst)
    with acting(inst, school) as session:
        terms.add_term(session, "Autumn", date(2025, 9, 3), date(2025, 12, 19))
        with pytest.raises(InvalidInput, match="not inside one term"):
            terms.add_closure(session, date(2025, 12, 19), date(2025, 12, 22), "Snow")
        with pytest.raises(InvalidInput, match="reason is empty"):
            terms.add_closure(session, date(2025, 11, 3), date(2025, 11, 3), "")
        assert terms.closures(session) == []


def test_only_the_office_head_or_admin_change_the_calendar(inst: Installation) -> None:
    school = new_school(inst)
    teacher = staff_actor(inst, school, Role.TEACHER)
    with acting(inst, school, teacher) as session, pytest.raises(PermissionDenied):
        terms.add_term(session, "Autumn", date(2025, 9, 3), date(2025, 12, 19))


# -- UPN (pure) ------------------------------------------------------------------------------


def test_upn_check_letter_follows_the_dfe_algorithm() -> None:
    # B801200005001 is the worked example of python-stdnum's gb.upn; weights 2..13, mod 23.
    assert check_letter("801200005001") == "B"
    assert normalise_upn(" b801 2000 05001 ") == "B801200005001"
    assert make_upn(801, 2000, 2005, 1) == "B801200005001"
    # A temporary UPN ends in a letter, valued by its place in the check alphabet.
    temporary = check_letter("80120000500A") + "80120000500A"
    assert normalise_upn(temporary) == temporary
    # Every single-digit change is caught.
    body = "801200005001"
    for i in range(12):
        changed = body[:i] + str((int(body[i]) + 1) % 10) + body[i + 1 :]
        assert check_letter(changed) != "B"
