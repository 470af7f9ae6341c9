"""Due times skip bank holidays (KCSIE part 4: the LADO "within one working day"): working
days, not school days, counted on the UK's calendar whatever zone a moment is stored in."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from esafety.safeguarding import concerns, reading
from esafety.safeguarding.deadlines import (
    Region,
    add_working_days,
    bank_holidays,
    due_at,
    is_working_day,
)
from esafety.safeguarding.kinds import Due, DueUnit
from esafety.safeguarding.procedures import StepRecord, state
from esafety.security.roles import Role
from tests.safeguarding.concern_people import concern_school

LONDON = ZoneInfo("Europe/London")
ONE_WORKING_DAY = Due(1, DueUnit.WORKING_DAYS)
HARM_TEST_MET = StepRecord(
    "harm_test",
    "head.oak",
    datetime(2026, 4, 2, 15, 0, tzinfo=LONDON),
    choice="met",
    rationale="Test 3: messages to a pupil late at night.",
)


def test_easter_2026_in_england() -> None:
    easter = bank_holidays(2026)
    assert date(2026, 4, 3) in easter  # Good Friday
    assert date(2026, 4, 6) in easter  # Easter Monday
    assert not is_working_day(date(2026, 4, 6))
    assert is_working_day(date(2026, 4, 7))


def test_the_lado_is_due_the_tuesday_after_easter_monday() -> None:
    thursday = datetime(2026, 4, 2, 14, 0, tzinfo=LONDON)  # the day before Good Friday
    assert due_at(ONE_WORKING_DAY, thursday) == datetime(2026, 4, 7, 14, 0, tzinfo=LONDON)
    now = state("staff_allegation", [HARM_TEST_MET], aware_at=thursday)
    assert now.step("lado_referral").due_at == datetime(2026, 4, 7, 14, 0, tzinfo=LONDON)


def test_working_days_are_not_school_days() -> None:
    # Half term (no bank holiday) is a working day: the LADO works through it.
    monday_of_half_term = datetime(2026, 2, 16, 10, 0, tzinfo=LONDON)
    assert add_working_days(monday_of_half_term, 1) == datetime(2026, 2, 17, 10, 0, tzinfo=LONDON)
    # A school's own extra day off, given by the caller, is skipped as well.
    assert add_working_days(monday_of_half_term, 1, {date(2026, 2, 17)}) == datetime(
        2026, 2, 18, 10, 0, tzinfo=LONDON
    )


def test_a_moment_stored_in_utc_counts_on_the_uk_calendar() -> None:
    # 00:30 on Thursday 2 April in London is still Wednesday in UTC.
    stored = datetime(2026, 4, 1, 23, 30, tzinfo=UTC)
    assert due_at(ONE_WORKING_DAY, stored) == datetime(2026, 4, 7, 0, 30, tzinfo=LONDON)


@pytest.mark.parametrize(
    ("region", "monday", "expected"),
    [
        # The first Monday of August is Scotland's summer bank holiday, not England's.
        (Region.ENGLAND, date(2026, 8, 3), date(2026, 8, 4)),
        (Region.SCOTLAND, date(2026, 8, 3), date(2026, 8, 5)),
        # 17 March (a Tuesday in 2026) is St Patrick's Day in Northern Ireland.
        (Region.NORTHERN_IRELAND, date(2026, 3, 16), date(2026, 3, 18)),
        (Region.WALES, date(2026, 3, 16), date(2026, 3, 17)),
    ],
)
def test_each_part_of_the_uk_has_its_own_bank_holidays(
    region: Region, monday: date, expected: date
) -> None:
    start = datetime.combine(monday, datetime.min.time(), tzinfo=LONDON).replace(hour=9)
    assert add_working_days(start, 1, region=region).date() == expected


def test_a_recorded_concerns_lado_step_skips_easter(inst) -> None:
    cs = concern_school(inst)
    with cs.session(cs.teacher2) as session:
        concern_id = concerns.record_concern(
            session,
            kind="staff_allegation",
            narrative="A pupil showed me late-night messages from Mr Tester.",
            happened_at=datetime(2026, 4, 1, 21, 0),
            noticed_at=datetime(2026, 4, 2, 8, 40),  # the school's time: Thursday morning
            about=[cs[Role.TEACHER].username],
        ).id
    with cs.session(Role.HEADTEACHER) as session:
        concerns.record_step(
            session,
            concern_id,
            "harm_test",
            done_at=datetime(2026, 4, 2, 9, 0),
            choice="met",
            rationale="Test 3: messages to a pupil late at night.",
        )
        concern = reading.find_concern(session, concern_id)
        lado = concerns.procedure_state(concern).step("lado_referral")
    assert lado.due_at == datetime(2026, 4, 7, 8, 40, tzinfo=LONDON)
