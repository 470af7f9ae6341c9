"""Counting concerns for the trends (issue 5 §7), in SQL where the columns are plain.

Kinds, locations, dates and status are plain columns, so kinds, places, status and
repeat pupils are counted by the database; only months (the school's time zone) and year
groups at the time (a shift by academic years) are worked out here from a few plain
columns. No sealed column is read. The counting follows the changes recorded beside a
concern: its kind now, its corrected date, the people still linked to it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Subquery, distinct, exists, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from esafety.db import UtcDateTime
from esafety.directory.calendar import academic_year_start
from esafety.directory.model import Person, PersonKind, PersonRole
from esafety.directory.years import YearGroup
from esafety.safeguarding.access import ConcernFacts, Grounds, Linked, access
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.kinds import IncidentKind
from esafety.safeguarding.model import Concern, ConcernEntry, ConcernPerson, EntryKind, Part
from esafety.safeguarding.reading import current_actor, online_safety_kinds, reader_of

__all__ = ["Counts", "count", "year_group_then"]


def _latest(column: Any, entry_kind: EntryKind) -> Any:
    """The newest value a change of this kind gave the concern (None: never changed)."""
    return (
        select(column)
        .where(
            ConcernEntry.concern_id == Concern.id,
            ConcernEntry.kind == entry_kind,
            column.is_not(None),
        )
        .order_by(ConcernEntry.id.desc())
        .limit(1)
        .correlate(Concern)
        .scalar_subquery()
    )


def _current_kind() -> ColumnElement[Any]:
    # Concern.current_kind in SQL: the last change of kind wins.
    return func.coalesce(_latest(ConcernEntry.new_kind, EntryKind.KIND_CHANGED), Concern.kind)


def _current_happened_at() -> ColumnElement[datetime]:
    # Concern.current_happened_at in SQL: a corrected date counts in its corrected month.
    latest = _latest(ConcernEntry.new_happened_at, EntryKind.DATE_CHANGED)
    return type_coerce(func.coalesce(latest, Concern.happened_at), UtcDateTime())


def _still_linked() -> ColumnElement[bool]:
    """The ConcernPerson has not been unlinked by a later entry."""
    return ~exists().where(
        ConcernEntry.concern_person_id == ConcernPerson.id,
        ConcernEntry.kind == EntryKind.PERSON_REMOVED,
    )


def _counted(
    start: datetime, end: datetime, *, reader_id: int | None, allegations: Collection[int]
) -> Subquery:
    """The concerns counted: in the period, not about the reader, staff allegations only
    those the reader reads by role."""
    kind = _current_kind()
    happened = _current_happened_at()
    query = select(
        Concern.id.label("id"),
        kind.label("kind"),
        happened.label("happened_at"),
        Concern.location.label("location"),
        Concern.status.label("status"),
    ).where(
        happened >= start,
        happened < end,
        or_(kind != IncidentKind.STAFF_ALLEGATION, Concern.id.in_(list(allegations))),
    )
    if reader_id is not None:
        query = query.where(
            ~exists().where(
                ConcernPerson.concern_id == Concern.id,
                ConcernPerson.person_id == reader_id,
                ConcernPerson.part == Part.HARMED_OTHERS,
                _still_linked(),
            )
        )
    return query.subquery("counted")


def _readable_allegations(session: Session, start: datetime, end: datetime) -> list[int] | None:
    """Ids of the staff allegations in the period the actor reads by role; None when the
    actor's roles read none (the figures leave them out)."""
    actor = current_actor(session)
    reader = reader_of(session)
    allegation = kind_info(IncidentKind.STAFF_ALLEGATION)
    if reader.person_id is not None and not set(allegation.readers) & reader.roles:
        return None
    happened = _current_happened_at()
    ids = list(
        session.scalars(
            select(Concern.id).where(
                _current_kind() == IncidentKind.STAFF_ALLEGATION,
                happened >= start,
                happened < end,
            )
        )
    )
    if actor is None or reader.person_id is None or not ids:
        return ids
    raised = dict(
        session.execute(select(Concern.id, Concern.raised_by_id).where(Concern.id.in_(ids))).all()
    )
    linked: dict[int, list[tuple[int | None, str]]] = {}
    for concern_id, person_id, part in session.execute(
        select(ConcernPerson.concern_id, ConcernPerson.person_id, ConcernPerson.part).where(
            ConcernPerson.concern_id.in_(ids), _still_linked()
        )
    ):
        linked.setdefault(concern_id, []).append((person_id, str(part)))
    people = {p for rows in linked.values() for p, _ in rows if p is not None}
    roles: dict[int, set[str]] = {}
    for person_id, role in session.execute(
        select(PersonRole.person_id, PersonRole.role).where(PersonRole.person_id.in_(people))
    ):
        roles.setdefault(person_id, set()).add(str(role))
    osl_kinds = online_safety_kinds(session)
    readable = []
    for concern_id in ids:
        facts = ConcernFacts(
            allegation,
            raised[concern_id],
            tuple(
                Linked(p, part, frozenset(roles.get(p, ()) if p is not None else ()))
                for p, part in linked.get(concern_id, [])
            ),
        )
        # By role only: raising an allegation does not make one its counter.
        if access(reader, facts, online_safety_kinds=osl_kinds).grounds is Grounds.ROLE:
            readable.append(concern_id)
    return readable


def year_group_then(now: YearGroup | None, reference: date, then: date) -> YearGroup | None:
    """The year group a pupil was in on ``then``, from the one they are in at ``reference``.

    The directory keeps only a pupil's year group now (or when they left), not its
    history, so this steps back one year group per academic year in between: right for
    every pupil who moved up each September, wrong only for one held back or moved up
    early. None when it falls outside Nursery to Year 13.
    """
    if now is None:
        return None
    shift = academic_year_start(reference) - academic_year_start(then)
    index = now.order - shift
    every = list(YearGroup)
    return every[index] if 0 <= index < len(every) else None


@dataclass(frozen=True, slots=True)
class Counts:
    total: int
    by_kind: Counter[str]
    by_month: Counter[tuple[int, int]]
    by_year_group: Counter[YearGroup | None]
    by_location: Counter[str | None]
    by_status: Counter[str]
    repeat: list[tuple[int, int]]


def _value(raw: Any) -> str | None:
    return None if raw is None else str(getattr(raw, "value", raw))


def count(
    session: Session, start: datetime, end: datetime, zone: ZoneInfo, today: date
) -> tuple[Counts, bool]:
    """The concerns from ``start`` to ``end`` (UTC) the session's actor counts, and whether
    staff allegations are among them."""
    allegations = _readable_allegations(session, start, end)
    reader = reader_of(session)
    counted = _counted(start, end, reader_id=reader.person_id, allegations=allegations or [])

    def grouped(column: Any) -> Counter[str | None]:
        rows = session.execute(select(column, func.count()).group_by(column)).all()
        return Counter({_value(key): n for key, n in rows})

    by_kind = grouped(counted.c.kind)
    by_location = grouped(counted.c.location)
    by_status = grouped(counted.c.status)
    # Months at the school, not in UTC: SQL has no portable time-zone arithmetic, and a
    # concern at 00:30 on 1 March (GMT+1 in summer) belongs to the school's March.
    by_month: Counter[tuple[int, int]] = Counter()
    for (moment,) in session.execute(select(counted.c.happened_at)):
        local = moment.astimezone(zone)
        by_month[(local.year, local.month)] += 1

    pupils = (
        select(counted.c.id, counted.c.happened_at, Person.id, Person.year_group, Person.left_on)
        .distinct()
        .join(ConcernPerson, ConcernPerson.concern_id == counted.c.id)
        .join(Person, Person.id == ConcernPerson.person_id)
        .where(Person.kind == PersonKind.PUPIL, _still_linked())
    )
    by_year: Counter[YearGroup | None] = Counter()
    years_seen: dict[int, set[YearGroup | None]] = {}
    for concern_id, moment, _pupil, year, left_on in session.execute(pupils):
        then = year_group_then(
            YearGroup(str(_value(year))) if year else None,
            left_on or today,
            moment.astimezone(zone).date(),
        )
        # A concern about two pupils of one year counts once for that year.
        if then not in years_seen.setdefault(concern_id, set()):
            years_seen[concern_id].add(then)
            by_year[then] += 1

    repeat_rows = session.execute(
        select(Person.id, func.count(distinct(counted.c.id)))
        .join(ConcernPerson, ConcernPerson.person_id == Person.id)
        .join(counted, counted.c.id == ConcernPerson.concern_id)
        .where(Person.kind == PersonKind.PUPIL, _still_linked())
        .group_by(Person.id)
        .having(func.count(distinct(counted.c.id)) >= 2)
    ).all()
    total = sum(by_status.values())
    counts = Counts(
        total=total,
        by_kind=Counter({k: n for k, n in by_kind.items() if k is not None}),
        by_month=by_month,
        by_year_group=by_year,
        by_location=by_location,
        by_status=Counter({k: n for k, n in by_status.items() if k is not None}),
        repeat=sorted(((pid, n) for pid, n in repeat_rows), key=lambda r: (-r[1], r[0])),
    )
    return counts, allegations is not None
