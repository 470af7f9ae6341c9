"""When a step falls due: hours, or working days (KCSIE: LADO "within one working day").

Pure: the caller gives the moment the school learned of the incident (an aware datetime)
and any days besides weekends and bank holidays that are not working days.

Working days are Monday to Friday less the bank holidays of the school's part of the UK
(England by default), from the ``holidays`` package. They are not school days: the LADO
and the police work through the school holidays, so "one working day" skips a bank
holiday but not half term (KCSIE part 4). Days are counted on the UK's own calendar
(Europe/London), whatever zone the moment is given in: a concern noticed at 00:30 on a
Friday in summer is Friday's, although it is still Thursday in UTC.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from holidays import country_holidays

from esafety.errors import InvalidInput
from esafety.safeguarding.kinds import Due, DueUnit

__all__ = [
    "UK_ZONE",
    "Region",
    "add_working_days",
    "bank_holidays",
    "due_at",
    "is_working_day",
]

#: Every part of the UK keeps one clock.
UK_ZONE = ZoneInfo("Europe/London")


class Region(StrEnum):
    """A part of the UK, for its bank holidays (Scotland and Northern Ireland have their own)."""

    ENGLAND = "england"
    WALES = "wales"
    SCOTLAND = "scotland"
    NORTHERN_IRELAND = "northern_ireland"


_SUBDIVISION = {
    Region.ENGLAND: "ENG",
    Region.WALES: "WLS",
    Region.SCOTLAND: "SCT",
    Region.NORTHERN_IRELAND: "NIR",
}


@lru_cache(maxsize=256)
def _year(region: Region, year: int) -> frozenset[date]:
    calendar = country_holidays("GB", subdiv=_SUBDIVISION[region], years=year)
    return frozenset(calendar.keys())


def bank_holidays(year: int, region: Region | str = Region.ENGLAND) -> frozenset[date]:
    """The bank holidays of ``region`` in ``year`` (substitute days included)."""
    return _year(Region(region), year)


def is_working_day(
    day: date, holidays: Collection[date] = (), region: Region | str = Region.ENGLAND
) -> bool:
    """Monday to Friday, not a bank holiday of ``region``, not one of ``holidays``."""
    return day.weekday() < 5 and day not in holidays and day not in bank_holidays(day.year, region)


def add_working_days(
    start: datetime,
    days: int,
    holidays: Collection[date] = (),
    region: Region | str = Region.ENGLAND,
) -> datetime:
    """``start`` moved on ``days`` working days, keeping the time of day.

    Friday 15:00 plus one working day is Monday 15:00 (Tuesday when Monday is a bank
    holiday). A start outside working days counts from the beginning of the next working
    day: Saturday plus one is the end of Monday.
    """
    day = start.date()
    if not is_working_day(day, holidays, region):
        while not is_working_day(day, holidays, region):
            day += timedelta(days=1)
        start = datetime.combine(day, time(0), tzinfo=start.tzinfo)
    moved = 0
    while moved < days:
        day += timedelta(days=1)
        if is_working_day(day, holidays, region):
            moved += 1
    return start.replace(year=day.year, month=day.month, day=day.day)


def due_at(
    due: Due,
    aware_at: datetime,
    holidays: Collection[date] = (),
    region: Region | str = Region.ENGLAND,
) -> datetime:
    """When a step with ``due`` must be done, counting from ``aware_at``.

    ``holidays`` are days off besides weekends and ``region``'s bank holidays (which are
    always skipped); working days are counted in UK time.
    """
    if aware_at.tzinfo is None:
        raise InvalidInput(
            f"the time the school learned of the incident ({aware_at.isoformat()}) has no "
            "zone: give it in the school's zone"
        )
    if due.unit is DueUnit.HOURS:
        return aware_at + timedelta(hours=due.amount)
    return add_working_days(aware_at.astimezone(UK_ZONE), due.amount, holidays, region)
