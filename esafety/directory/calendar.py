"""School days and school time, a pure module (no database, no clock it is not given).

A school day is a weekday inside a term and outside every closure. A time written
without a zone is the school's local time (Europe/London unless the school says
otherwise); everything stored is UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from esafety.errors import InvalidInput

__all__ = [
    "DateSpan",
    "SchoolCalendar",
    "academic_year_start",
    "school_date",
    "school_zone",
    "to_utc",
]

SATURDAY = 5


@dataclass(frozen=True, order=True)
class DateSpan:
    """Days from ``starts_on`` to ``ends_on``, both included."""

    starts_on: date
    ends_on: date
    name: str = ""

    def __post_init__(self) -> None:
        if self.ends_on < self.starts_on:
            raise InvalidInput(
                f"{self.name or 'date range'}: ends on {self.ends_on.isoformat()}, before it "
                f"starts on {self.starts_on.isoformat()}; give an end date on or after the start"
            )

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.starts_on <= day <= self.ends_on

    def overlaps(self, other: DateSpan) -> bool:
        return self.starts_on <= other.ends_on and other.starts_on <= self.ends_on

    def days(self) -> Iterator[date]:
        day = self.starts_on
        while day <= self.ends_on:
            yield day
            day += timedelta(days=1)


@dataclass(frozen=True)
class SchoolCalendar:
    """One school's terms and closures, and its time zone."""

    terms: tuple[DateSpan, ...] = ()
    closures: tuple[DateSpan, ...] = ()
    timezone: str = "Europe/London"

    @classmethod
    def build(
        cls,
        terms: Iterable[DateSpan],
        closures: Iterable[DateSpan] = (),
        timezone: str = "Europe/London",
    ) -> SchoolCalendar:
        school_zone(timezone)  # refuse an unknown zone here, not at first use
        return cls(tuple(sorted(terms)), tuple(sorted(closures)), timezone)

    @property
    def zone(self) -> ZoneInfo:
        return school_zone(self.timezone)

    def term_of(self, day: date) -> DateSpan | None:
        return next((t for t in self.terms if day in t), None)

    def closure_on(self, day: date) -> DateSpan | None:
        return next((c for c in self.closures if day in c), None)

    def is_school_day(self, day: date) -> bool:
        return (
            day.weekday() < SATURDAY
            and self.term_of(day) is not None
            and self.closure_on(day) is None
        )

    def school_days_between(self, start: date, end: date) -> int:
        """School days from ``start`` to ``end``, both included (0 if end is before start)."""
        count = 0
        day = start
        while day <= end:
            count += self.is_school_day(day)
            day += timedelta(days=1)
        return count

    def add_school_days(self, start: date, n: int) -> date:
        """The ``n``-th school day after ``start`` (before it if ``n`` is negative).

        ``start`` itself never counts, so "reply within 2 school days" of a Friday
        concern is the following Tuesday. ``n == 0`` gives ``start`` if it is a school
        day, else the next school day.
        """
        step = 1 if n >= 0 else -1
        remaining = abs(n)
        day = start
        if remaining == 0:
            remaining, day = 1, start - timedelta(days=1)
        limit = self._search_limit(start)
        while remaining:
            day += timedelta(days=step)
            if abs((day - start).days) > limit:
                raise InvalidInput(
                    f"cannot count {n} school days from {start.isoformat()}: the calendar has "
                    "no terms that far; add the school's terms first"
                )
            if self.is_school_day(day):
                remaining -= 1
        return day

    def _search_limit(self, start: date) -> int:
        if not self.terms:
            return 0
        first, last = self.terms[0].starts_on, self.terms[-1].ends_on
        return max(abs((last - start).days), abs((start - first).days)) + 1

    def school_days(self, start: date, end: date) -> list[date]:
        days = []
        day = start
        while day <= end:
            if self.is_school_day(day):
                days.append(day)
            day += timedelta(days=1)
        return days

    # -- time zone -----------------------------------------------------------------

    def to_utc(self, moment: datetime) -> datetime:
        return to_utc(moment, self.timezone)

    def local_date(self, moment: datetime) -> date:
        return school_date(moment, self.timezone)

    def start_of_day(self, day: date) -> datetime:
        """Midnight at the school on ``day``, in UTC."""
        return to_utc(datetime.combine(day, time()), self.timezone)


def school_zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``, or a clear InvalidInput."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"timezone {name!r} is not a known time zone: use an IANA name such as Europe/London"
        ) from None


def to_utc(moment: datetime, timezone: str | tzinfo) -> datetime:
    """``moment`` in UTC; a time without a zone is the school's local time."""
    zone = school_zone(timezone) if isinstance(timezone, str) else timezone
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def school_date(moment: datetime, timezone: str) -> date:
    """The date at the school at this moment (a naive time is already the school's)."""
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(school_zone(timezone)).date()


def academic_year_start(day: date) -> int:
    """The calendar year in which ``day``'s academic year began (it begins 1 September)."""
    return day.year if day.month >= 9 else day.year - 1
