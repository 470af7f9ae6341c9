"""When a step falls due: hours, or working days (KCSIE: LADO "within one working day").

Pure: the caller gives the moment the school learned of the incident (an aware datetime in
the school's zone) and the days that are not working days besides weekends.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, time, timedelta

from esafety.errors import InvalidInput
from esafety.safeguarding.kinds import Due, DueUnit

__all__ = ["add_working_days", "due_at", "is_working_day"]


def is_working_day(day: date, holidays: Collection[date] = ()) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_working_days(start: datetime, days: int, holidays: Collection[date] = ()) -> datetime:
    """``start`` moved on ``days`` working days, keeping the time of day.

    Friday 15:00 plus one working day is Monday 15:00. A start outside working days counts
    from the beginning of the next working day: Saturday plus one is the end of Monday.
    """
    day = start.date()
    if not is_working_day(day, holidays):
        while not is_working_day(day, holidays):
            day += timedelta(days=1)
        start = datetime.combine(day, time(0), tzinfo=start.tzinfo)
    moved = 0
    while moved < days:
        day += timedelta(days=1)
        if is_working_day(day, holidays):
            moved += 1
    return start.replace(year=day.year, month=day.month, day=day.day)


def due_at(due: Due, aware_at: datetime, holidays: Collection[date] = ()) -> datetime:
    """When a step with ``due`` must be done, counting from ``aware_at``."""
    if aware_at.tzinfo is None:
        raise InvalidInput(
            f"the time the school learned of the incident ({aware_at.isoformat()}) has no "
            "zone: give it in the school's zone"
        )
    if due.unit is DueUnit.HOURS:
        return aware_at + timedelta(hours=due.amount)
    return add_working_days(aware_at, due.amount, holidays)
