"""School days and school time: the pure calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from esafety.directory.calendar import (
    DateSpan,
    SchoolCalendar,
    academic_year_start,
    school_date,
    school_zone,
    to_utc,
)
from esafety.errors import InvalidInput

CALENDAR = SchoolCalendar.build(
    terms=[
        DateSpan(date(2026, 1, 5), date(2026, 3, 27), "Spring"),
        DateSpan(date(2025, 9, 3), date(2025, 12, 19), "Autumn"),
    ],
    closures=[
        DateSpan(date(2025, 10, 27), date(2025, 10, 31), "Half term"),
        DateSpan(date(2025, 11, 14), date(2025, 11, 14), "INSET day"),
    ],
)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2025, 9, 3), True),  # first day of term (a Wednesday)
        (date(2025, 9, 2), False),  # the day before
        (date(2025, 9, 6), False),  # Saturday in term
        (date(2025, 9, 7), False),  # Sunday in term
        (date(2025, 10, 29), False),  # half term
        (date(2025, 11, 14), False),  # INSET
        (date(2025, 11, 13), True),
        (date(2025, 12, 19), True),  # last day of term
        (date(2025, 12, 22), False),  # holidays
        (date(2026, 1, 5), True),
    ],
)
def test_is_school_day(day: date, expected: bool) -> None:
    assert CALENDAR.is_school_day(day) is expected


def test_terms_are_kept_in_date_order() -> None:
    assert [t.name for t in CALENDAR.terms] == ["Autumn", "Spring"]
    assert CALENDAR.term_of(date(2026, 2, 2)) == CALENDAR.terms[1]
    assert CALENDAR.closure_on(date(2025, 10, 28)) == CALENDAR.closures[0]


def test_school_days_between_counts_both_ends() -> None:
    assert CALENDAR.school_days_between(date(2025, 9, 3), date(2025, 9, 3)) == 1
    assert CALENDAR.school_days_between(date(2025, 9, 1), date(2025, 9, 7)) == 3
    # A fortnight across half term: 5 days before it, 0 during it.
    assert CALENDAR.school_days_between(date(2025, 10, 20), date(2025, 11, 2)) == 5
    assert CALENDAR.school_days_between(date(2025, 12, 20), date(2026, 1, 4)) == 0
    assert CALENDAR.school_days_between(date(2025, 9, 10), date(2025, 9, 3)) == 0
    assert len(CALENDAR.school_days(date(2025, 9, 1), date(2025, 9, 7))) == 3


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2025, 9, 5), 1, date(2025, 9, 8)),  # Friday + 1 → Monday
        (date(2025, 9, 5), 2, date(2025, 9, 9)),
        (date(2025, 10, 24), 1, date(2025, 11, 3)),  # over half term
        (date(2025, 11, 13), 1, date(2025, 11, 17)),  # over INSET and a weekend
        (date(2025, 12, 18), 2, date(2026, 1, 5)),  # into the next term
        (date(2025, 9, 8), -1, date(2025, 9, 5)),
        (date(2026, 1, 5), -1, date(2025, 12, 19)),
        (date(2025, 9, 6), 0, date(2025, 9, 8)),  # 0 from a Saturday: the next school day
        (date(2025, 9, 8), 0, date(2025, 9, 8)),
    ],
)
def test_add_school_days(start: date, n: int, expected: date) -> None:
    assert CALENDAR.add_school_days(start, n) == expected


def test_add_school_days_beyond_the_calendar_says_to_add_terms() -> None:
    with pytest.raises(InvalidInput, match="add the school's terms"):
        CALENDAR.add_school_days(date(2026, 3, 20), 10)
    with pytest.raises(InvalidInput, match="add the school's terms"):
        SchoolCalendar().add_school_days(date(2026, 3, 20), 1)


def test_a_time_without_a_zone_is_the_schools() -> None:
    # 9 am in London is 8 am UTC in summer time, 9 am UTC in winter.
    assert to_utc(datetime(2025, 6, 2, 9, 0), "Europe/London") == datetime(
        2025, 6, 2, 8, 0, tzinfo=UTC
    )
    assert to_utc(datetime(2025, 12, 2, 9, 0), "Europe/London") == datetime(
        2025, 12, 2, 9, 0, tzinfo=UTC
    )
    aware = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
    assert to_utc(aware, "Europe/London") == aware
    assert CALENDAR.to_utc(datetime(2025, 6, 2, 9, 0)).hour == 8
    # 23:30 UTC on 1 June is already 2 June at a London school.
    assert school_date(datetime(2025, 6, 1, 23, 30, tzinfo=UTC), "Europe/London") == date(
        2025, 6, 2
    )
    assert CALENDAR.local_date(datetime(2025, 12, 1, 23, 30, tzinfo=UTC)) == date(2025, 12, 1)
    assert CALENDAR.start_of_day(date(2025, 6, 2)) == datetime(2025, 6, 1, 23, 0, tzinfo=UTC)


def test_unknown_time_zone_and_backwards_spans_are_refused() -> None:
    with pytest.raises(InvalidInput, match="timezone 'Europe/Lundun' is not a known time zone"):
        school_zone("Europe/Lundun")
    with pytest.raises(InvalidInput, match="timezone"):
        SchoolCalendar.build([], timezone="Mars/Olympus")
    with pytest.raises(InvalidInput, match="Autumn: ends on 2025-09-01, before it starts"):
        DateSpan(date(2025, 9, 3), date(2025, 9, 1), "Autumn")


def test_academic_year_starts_in_september() -> None:
    assert academic_year_start(date(2025, 8, 31)) == 2024
    assert academic_year_start(date(2025, 9, 1)) == 2025
    assert academic_year_start(date(2026, 1, 1)) == 2025
