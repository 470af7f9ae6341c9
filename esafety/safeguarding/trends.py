"""Trends in concerns: how many, of which kinds, in which months, year groups and places,
open or closed, and which pupils come back again and again (issue 5 §7).

The picture the DSL and the governors use to update teaching: 004 "Managing filtering"
("a log of any incidents ... will be used to identify patterns and behaviours of the
pupils"); 002 §1.2.2 (the DSL monitors incidents "to identify gaps/trends and update the
education response" and reports to the management team and the governing body); 002
§1.2.1 (management "receiving and regularly reviewing online safety incident logs").

Who sees what (:class:`TrendsView`):

- the DSL and deputies (who read every concern about pupils) see every figure, and the
  pupils linked to two or more concerns by name, each with a link to their chronology;
- the headteacher sees every figure, but repeat pupils only as a number;
- governors, the chair of governors and the online safety lead see the figures with small
  numbers (1 or 2) withheld as "fewer than 3", so that no child can be picked out, and
  repeat pupils only as a number.

Allegations about staff are counted only for those who read them by role (the
headteacher, KCSIE part 4); everyone else's figures leave them out and the page says so.
A concern about the reader themself (linked as the one who harmed others) is never
counted for them. Everything else is counted whatever its kind: these are numbers, not
records, and governors need them (002 §1.2.1).

The counting is :mod:`esafety.safeguarding.trend_counts` (SQL; no sealed column is
read), the withholding of small numbers :mod:`esafety.safeguarding.small_numbers`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety import audit
from esafety.db import utcnow
from esafety.directory.calendar import academic_year_start, school_zone
from esafety.directory.model import Person, School
from esafety.directory.service import require
from esafety.directory.years import YearGroup
from esafety.errors import InvalidInput
from esafety.safeguarding.catalogue import kinds
from esafety.safeguarding.model import ConcernStatus, Location
from esafety.safeguarding.reading import current_actor
from esafety.safeguarding.small_numbers import SMALL, Figure, Withheld, protect
from esafety.safeguarding.trend_counts import Counts, count
from esafety.security.roles import Permission, Role

__all__ = [
    "LOCATION_LABELS",
    "MAX_MONTHS",
    "Breakdown",
    "Period",
    "RepeatPupil",
    "Trends",
    "TrendsView",
    "trends",
    "view_for",
]

#: The longest period one page draws (three academic years of months).
MAX_MONTHS = 36

LOCATION_LABELS: dict[str | None, str] = {
    Location.IN_SCHOOL.value: "In school",
    Location.AT_HOME.value: "At home",
    Location.ONLINE.value: "Online",
    Location.ELSEWHERE.value: "Elsewhere",
    None: "Not recorded",
}
STATUS_LABELS = {ConcernStatus.OPEN.value: "Open", ConcernStatus.CLOSED.value: "Closed"}


class TrendsView(StrEnum):
    #: The DSL and deputies: every figure, and repeat pupils by name.
    FULL = "full"
    #: The headteacher: every figure; repeat pupils as a number.
    SUMMARY = "summary"
    #: Governors and the online safety lead: small numbers withheld, no names.
    PROTECTED = "protected"


def view_for(roles: Collection[str], *, system: bool = False) -> TrendsView:
    """The most open view any of ``roles`` gives (a system actor sees everything)."""
    if system or Role.DSL in roles or Role.DEPUTY_DSL in roles:
        return TrendsView.FULL
    if Role.HEADTEACHER in roles:
        return TrendsView.SUMMARY
    return TrendsView.PROTECTED


# -- the period ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """From ``start`` to ``end``, both days included, at the school."""

    start: date
    end: date

    @classmethod
    def academic_year(cls, day: date) -> Period:
        """The academic year ``day`` falls in (1 September to 31 August)."""
        year = academic_year_start(day)
        return cls(date(year, 9, 1), date(year + 1, 8, 31))

    @classmethod
    def parse(cls, start: str | None, end: str | None, *, today: date) -> Period:
        """The period a person chose (ISO dates; a blank one: this academic year's)."""
        default = cls.academic_year(today)
        first = _day(start, "from") if start and start.strip() else default.start
        last = _day(end, "to") if end and end.strip() else default.end
        if last < first:
            raise InvalidInput(
                f"the period ends ({last.isoformat()}) before it starts "
                f"({first.isoformat()}): choose a 'to' date on or after the 'from' date"
            )
        chosen = cls(first, last)
        if len(chosen.months) > MAX_MONTHS:
            raise InvalidInput(
                f"{first.isoformat()} to {last.isoformat()} spans {len(chosen.months)} months: "
                f"choose at most {MAX_MONTHS} months (three academic years)"
            )
        return chosen

    @property
    def months(self) -> list[tuple[int, int]]:
        """Every (year, month) the period touches, in order."""
        found = []
        year, month = self.start.year, self.start.month
        while (year, month) <= (self.end.year, self.end.month):
            found.append((year, month))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return found

    @property
    def is_academic_year(self) -> bool:
        return self == Period.academic_year(self.start)

    @property
    def label(self) -> str:
        if self.is_academic_year:
            return f"the {self.start.year}–{str(self.end.year)[-2:]} academic year"
        return f"{self.start:%d %b %Y} to {self.end:%d %b %Y}"

    def utc_bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """Midnight at the school on the first day, and on the day after the last."""
        after = self.end + timedelta(days=1)
        return (
            datetime.combine(self.start, time(), zone).astimezone(UTC),
            datetime.combine(after, time(), zone).astimezone(UTC),
        )


def _day(text: str, which: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"'{which}' date {text.strip()!r} is not a date: write it as YYYY-MM-DD, "
            "for example 2025-09-01"
        ) from None


@dataclass(frozen=True, slots=True)
class Breakdown:
    key: str
    title: str
    figures: tuple[Figure, ...]
    note: str | None = None

    @property
    def withheld(self) -> bool:
        return any(f.withheld for f in self.figures)


@dataclass(frozen=True, slots=True)
class RepeatPupil:
    person_id: int
    name: str
    #: Their year group now.
    year_group: str
    concerns: int


@dataclass(frozen=True, slots=True)
class Trends:
    period: Period
    view: TrendsView
    total: Figure
    by_kind: Breakdown
    by_month: Breakdown
    by_year_group: Breakdown
    by_location: Breakdown
    by_status: Breakdown
    #: How many pupils are linked to two or more of the concerns counted.
    repeat_pupils: Figure
    #: By name, for the DSL and deputies only (empty for everyone else).
    repeat_names: tuple[RepeatPupil, ...]
    #: Whether allegations about staff are among the figures (the headteacher's).
    allegations_counted: bool

    @property
    def breakdowns(self) -> tuple[Breakdown, ...]:
        return (self.by_kind, self.by_month, self.by_year_group, self.by_location, self.by_status)


# -- shaping for the reader ---------------------------------------------------------


def _year_label(year: YearGroup | None) -> str:
    return year.label if year is not None else "Not known"


def _month_label(year: int, month: int) -> str:
    return date(year, month, 1).strftime("%b %Y")


def _rows(
    counts: Iterable[tuple[str, str, int]], view: TrendsView, total: int | None
) -> tuple[Figure, ...]:
    rows = list(counts)
    if view is TrendsView.PROTECTED:
        return protect(rows, total)
    return tuple(Figure(key, label, n) for key, label, n in rows)


def _shape(
    counts: Counts,
    view: TrendsView,
    period: Period,
    allegations_counted: bool,
    names: dict[int, tuple[str, YearGroup | None]],
    today: date,
) -> Trends:
    protected = view is TrendsView.PROTECTED
    total_small = protected and 0 < counts.total < SMALL
    total = (
        Figure("total", "Concerns", None, Withheld.SMALL)
        if total_small
        else Figure("total", "Concerns", counts.total)
    )
    shown_total = None if total_small else counts.total

    def rows(pairs: Iterable[tuple[str, str, int]], *, adds_up: bool = True) -> tuple[Figure, ...]:
        return _rows(pairs, view, shown_total if adds_up else None)

    # The commonest kind first (the catalogue's order between equals).
    kind_rows = sorted(
        (
            (info.id.value, info.title, counts.by_kind[info.id.value])
            for info in kinds()
            if counts.by_kind[info.id.value]
        ),
        key=lambda row: -row[2],
    )
    # Months still to come are left out: nothing can have happened in them yet.
    month_rows = [
        (f"{y}-{m:02d}", _month_label(y, m), counts.by_month[(y, m)])
        for y, m in period.months
        if (y, m) <= (today.year, today.month)
    ]
    year_rows = [
        (year.value if year else "unknown", year.label if year else "Not known", n)
        for year, n in sorted(
            counts.by_year_group.items(), key=lambda item: item[0].order if item[0] else 99
        )
    ]
    location_rows = [
        (key or "not_recorded", label, counts.by_location[key])
        for key, label in LOCATION_LABELS.items()
        if key is not None or counts.by_location[None]
    ]
    status_rows = [(key, label, counts.by_status[key]) for key, label in STATUS_LABELS.items()]
    repeat_count = len(counts.repeat)
    repeat = (
        Figure("repeat", "Pupils in two or more concerns", None, Withheld.SMALL)
        if protected and 0 < repeat_count < SMALL
        else Figure("repeat", "Pupils in two or more concerns", repeat_count)
    )
    named: tuple[RepeatPupil, ...] = ()
    if view is TrendsView.FULL:
        named = tuple(
            RepeatPupil(pid, names[pid][0], _year_label(names[pid][1]), n)
            for pid, n in counts.repeat
            if pid in names
        )
    return Trends(
        period=period,
        view=view,
        total=total,
        by_kind=Breakdown(
            "kind",
            "Concerns by kind",
            rows(kind_rows),
            None if kind_rows else "No concerns in this period.",
        ),
        by_month=Breakdown(
            "month", "Concerns by month", rows(month_rows), "The month it happened, at the school."
        ),
        by_year_group=Breakdown(
            "year_group",
            "Concerns by year group",
            rows(year_rows, adds_up=False),
            "The year group each pupil linked was in when it happened; a concern about pupils "
            "of two year groups counts in both, and one about adults only in none.",
        ),
        by_location=Breakdown("location", "Concerns by where it happened", rows(location_rows)),
        by_status=Breakdown("status", "Open and closed", rows(status_rows)),
        repeat_pupils=repeat,
        repeat_names=named,
        allegations_counted=allegations_counted,
    )


def trends(session: Session, period: Period | None = None, *, today: date | None = None) -> Trends:
    """The trends the session's actor may see for ``period`` (default: this academic year).

    The look is audited: the period, the view, and the pupils named (for the DSL).
    """
    require(session, Permission.VIEW_CONCERN_TRENDS, "see trends in concerns")
    actor = current_actor(session)
    school = session.get(School, session.info.get("school_id"))
    zone = school_zone(school.timezone if school is not None else "Europe/London")
    today = today or utcnow().astimezone(zone).date()
    period = period or Period.academic_year(today)
    view = view_for(actor.roles if actor else (), system=actor is None or actor.person_id is None)
    start, end = period.utc_bounds(zone)
    counts, allegations_counted = count(session, start, end, zone, today)
    names: dict[int, tuple[str, YearGroup | None]] = {}
    if view is TrendsView.FULL and counts.repeat:
        ids = [pid for pid, _ in counts.repeat]
        for person in session.scalars(select(Person).where(Person.id.in_(ids))):
            names[person.id] = (person.display_name, person.year_group)
    shaped = _shape(counts, view, period, allegations_counted, names, today)
    audit.record(
        session,
        "trends",
        "concern",
        after={
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "view": view.value,
            "pupils_named": [p.person_id for p in shaped.repeat_names],
        },
    )
    return shaped
