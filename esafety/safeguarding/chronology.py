"""A pupil's safeguarding chronology: every concern they are linked to, in any part, and
everything that happened and was done about it in time order (STANDARDS R3; issue 5 §5).

Built for the case conference and for the DSL's own picture of a child: each step with its
decision and the reason for it (decisions not to refer included, KCSIE), referrals with
their reference numbers, notes, corrections, changes, attachments, break-glass reads and
closing. Filterable by kind, by a range of dates and by type of entry.

Reading rules are the concerns' own (:mod:`esafety.safeguarding.access`): only the
concerns the reader may read are in it, so a deputy's chronology leaves out an allegation
about staff, and a teacher's holds only the concerns they raised. One who may read none
of a pupil's concerns and does not act on concerns gets :class:`NotFound`, the same
answer as for no such pupil, so that a pupil's having concerns is not revealed. Every
chronology read (and every refused one) is one entry in the audit trail naming the
concerns shown (R2).

Linked pupils are visible (issue 5 §5): the others linked to the same concerns, and
siblings (sharing a parent, :class:`~esafety.directory.model.ParentLink`) with concerns
the reader may read. Each keeps their own part (R6): nothing of one is given to another.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety import audit
from esafety.db import utcnow
from esafety.directory.model import ParentLink, Person, PersonKind, School
from esafety.directory.service import require
from esafety.errors import NotFound
from esafety.safeguarding.access import Access, access
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.chronology_entries import (
    ENTRY_TYPE_LABELS,
    PART_WORDS,
    Entry,
    EntryType,
    concern_entries,
)
from esafety.safeguarding.chronology_filter import ChronologyFilter, parse_filter
from esafety.safeguarding.kinds import IncidentKind
from esafety.safeguarding.model import BreakGlassRead, Concern, ConcernPerson, Part
from esafety.safeguarding.reading import (
    actor_name,
    current_actor,
    facts_of,
    online_safety_kinds,
    reader_of,
)
from esafety.security.roles import Permission, allowed

__all__ = [
    "ENTRY_TYPE_LABELS",
    "Chronology",
    "ChronologyConcern",
    "ChronologyFilter",
    "Entry",
    "EntryType",
    "LinkedPupil",
    "Subject",
    "chronology",
    "parse_filter",
]


@dataclass(frozen=True)
class Subject:
    """The pupil (or, where a concern links an adult of the school, that adult)."""

    id: int
    name: str
    username: str
    kind: PersonKind
    date_of_birth: date | None
    year_group: str | None
    registration_group: str | None
    upn: str | None
    job_title: str | None


@dataclass(frozen=True)
class ChronologyConcern:
    id: int
    kind: IncidentKind
    title: str
    grave: bool
    #: The pupil's own part in it (R6).
    part: Part
    happened_at: datetime
    is_open: bool

    @property
    def part_words(self) -> str:
        return PART_WORDS.get(self.part, self.part.value)


@dataclass(frozen=True)
class LinkedPupil:
    """Another pupil linked to the same concerns, or a sibling with concerns."""

    id: int
    name: str
    year_group: str | None
    #: For the same incident: the concerns shared and the other pupil's own part in each.
    concerns: tuple[tuple[int, str], ...] = ()
    #: For a sibling: how many of their concerns the reader may read.
    concern_count: int = 0


@dataclass(frozen=True)
class Chronology:
    school: str
    zone: ZoneInfo
    subject: Subject
    filter: ChronologyFilter
    #: The entries kept by the filter, oldest first.
    entries: tuple[Entry, ...]
    #: Every concern the reader may read that links the pupil (and the kinds kept).
    concerns: tuple[ChronologyConcern, ...]
    linked: tuple[LinkedPupil, ...]
    siblings: tuple[LinkedPupil, ...]
    #: Entries before the filter (to say "12 of 140").
    total_entries: int
    read_by: str
    read_at: datetime
    #: Whether the reader acts on concerns (a teacher sees only what they raised).
    reader_acts: bool
    kinds_present: tuple[IncidentKind, ...] = field(default=())


# -- who may read which ---------------------------------------------------------------


def _reader_acts(session: Session) -> bool:
    actor = current_actor(session)
    return (
        actor is None or actor.person_id is None or allowed(actor.roles, Permission.ACT_ON_CONCERNS)
    )


def _readable(session: Session, concerns: Iterable[Concern]) -> list[tuple[Concern, Access]]:
    kinds = online_safety_kinds(session)
    reader = reader_of(session)
    found = []
    for concern in concerns:
        granted = access(reader, facts_of(session, concern), online_safety_kinds=kinds)
        if granted.can_read:
            found.append((concern, granted))
    return found


def _concerns_linking(session: Session, person_ids: Collection[int]) -> list[Concern]:
    """Concerns linking any of ``person_ids`` now (a link removed as a mistake does not
    count: the concern was never about them)."""
    if not person_ids:
        return []
    linked_ids = select(ConcernPerson.concern_id).where(ConcernPerson.person_id.in_(person_ids))
    rows = session.scalars(
        select(Concern).where(Concern.id.in_(linked_ids)).order_by(Concern.id)
    ).all()
    wanted = set(person_ids)
    return [c for c in rows if any(p.person_id in wanted for p in c.linked)]


def _reader_name(session: Session) -> str:
    """Who is reading, as a printed record names them: "Jo Smith (dsl.oak)"."""
    actor = current_actor(session)
    if actor is None or actor.person_id is None:
        return actor_name(session)
    person = session.get(Person, actor.person_id)
    return f"{person.display_name} ({actor.name})" if person is not None else actor.name


def _not_found(person_id: int) -> NotFound:
    return NotFound(f"no chronology for person #{person_id} that you can read")


# -- the people around the pupil ------------------------------------------------------


def _year(person: Person) -> str | None:
    return person.year_group.label if person.year_group else None


def _subject(person: Person) -> Subject:
    group = person.registration_group.name if person.registration_group else None
    return Subject(
        id=person.id,
        name=person.display_name,
        username=person.username,
        kind=person.kind,
        date_of_birth=person.date_of_birth,
        year_group=_year(person),
        registration_group=group,
        upn=person.upn,
        job_title=person.job_title,
    )


def _people(session: Session, ids: Collection[int]) -> dict[int, Person]:
    if not ids:
        return {}
    return {p.id: p for p in session.scalars(select(Person).where(Person.id.in_(ids)))}


def _linked_pupils(
    session: Session, subject_id: int, concerns: Sequence[Concern]
) -> list[LinkedPupil]:
    shared: dict[int, list[tuple[int, str]]] = {}
    for concern in concerns:
        for link in concern.linked:
            if link.person_id is None or link.person_id == subject_id:
                continue
            words = PART_WORDS.get(link.part, link.part.value)
            shared.setdefault(link.person_id, []).append((concern.id, words))
    people = _people(session, shared)
    found = [
        LinkedPupil(
            id=pid,
            name=people[pid].display_name,
            year_group=_year(people[pid]),
            concerns=tuple(shared[pid]),
        )
        for pid in shared
        if pid in people and people[pid].kind is PersonKind.PUPIL
    ]
    return sorted(found, key=lambda p: p.name)


def _sibling_ids(session: Session, subject_id: int) -> set[int]:
    parents = select(ParentLink.parent_id).where(ParentLink.child_id == subject_id)
    return set(
        session.scalars(
            select(ParentLink.child_id).where(
                ParentLink.parent_id.in_(parents), ParentLink.child_id != subject_id
            )
        )
    )


def _siblings(session: Session, subject_id: int) -> tuple[list[LinkedPupil], list[int]]:
    """Siblings with concerns the reader may read, and those concerns' ids (audited)."""
    ids = _sibling_ids(session, subject_id)
    people = _people(session, ids)
    found, seen = [], []
    for pid, person in people.items():
        readable = [c.id for c, _ in _readable(session, _concerns_linking(session, [pid]))]
        if not readable:
            continue
        seen += readable
        found.append(
            LinkedPupil(
                id=pid,
                name=person.display_name,
                year_group=_year(person),
                concern_count=len(readable),
            )
        )
    return sorted(found, key=lambda p: p.name), sorted(set(seen))


# -- the chronology -------------------------------------------------------------------


def _summary(concern: Concern, subject_id: int) -> ChronologyConcern:
    info = kind_info(concern.current_kind)
    own = next((p for p in concern.linked if p.person_id == subject_id), None)
    return ChronologyConcern(
        id=concern.id,
        kind=info.id,
        title=info.title,
        grave=info.grave,
        part=own.part if own is not None else Part.OTHER,
        happened_at=concern.current_happened_at,
        is_open=concern.is_open,
    )


def _entries(
    session: Session, subject_id: int, concerns: Sequence[Concern], zone: ZoneInfo
) -> list[Entry]:
    ids = [c.id for c in concerns]
    glass: dict[int, list[BreakGlassRead]] = {}
    if ids:
        for alert in session.scalars(
            select(BreakGlassRead)
            .where(BreakGlassRead.concern_id.in_(ids))
            .order_by(BreakGlassRead.at, BreakGlassRead.id)
        ):
            glass.setdefault(alert.concern_id, []).append(alert)
    named: set[int] = set()
    for concern in concerns:
        named |= {p.person_id for p in concern.people if p.person_id is not None}
    names = {pid: p.display_name for pid, p in _people(session, named).items()}
    found: list[Entry] = []
    for concern in concerns:
        found += concern_entries(
            concern,
            subject_id=subject_id,
            names=names,
            zone=zone,
            break_glass=glass.get(concern.id, []),
        )
    return sorted(found, key=lambda e: (e.at, e.concern_id, e.sequence))


def chronology(
    session: Session,
    person_id: int,
    filters: ChronologyFilter | None = None,
    *,
    purpose: str = "read",
) -> Chronology:
    """The chronology of ``person_id`` as the session's actor may read it; audited.

    ``purpose`` names the audit action: "read" for the page, "export" for the PDF or
    JSON. NotFound when there is no such person in the school, or the actor may read none
    of their concerns and does not act on concerns (the refusal is audited too).
    """
    require(session, Permission.VIEW_CONCERNS, "read a pupil's safeguarding chronology")
    chosen = filters or ChronologyFilter()
    person = session.scalars(select(Person).where(Person.id == person_id)).first()
    if person is None:
        raise _not_found(person_id)
    readable = [c for c, _ in _readable(session, _concerns_linking(session, [person.id]))]
    acts = _reader_acts(session)
    if not readable and not acts:
        # Committed at once: the NotFound that follows rolls the session back (R2, R5).
        audit.record(session, f"{purpose}_refused", "chronology", person.id)
        session.commit()
        raise _not_found(person_id)
    school = session.get(School, person.school_id)
    zone = ZoneInfo(school.timezone if school is not None else "Europe/London")
    kept = [c for c in readable if chosen.keeps_kind(c.current_kind)]
    every = _entries(session, person.id, kept, zone)
    siblings, sibling_concerns = _siblings(session, person.id)
    audit.record(
        session,
        purpose,
        "chronology",
        person.id,
        after={
            "concerns": [c.id for c in kept],
            "filter": chosen.as_json(),
            "sibling_concerns_counted": sibling_concerns,
        },
    )
    present: list[IncidentKind] = []
    for concern in readable:
        if concern.current_kind not in present:
            present.append(concern.current_kind)
    return Chronology(
        school=school.name if school is not None else "",
        zone=zone,
        subject=_subject(person),
        filter=chosen,
        entries=tuple(e for e in every if chosen.keeps(e, zone)),
        concerns=tuple(
            sorted((_summary(c, person.id) for c in kept), key=lambda s: (s.happened_at, s.id))
        ),
        linked=tuple(_linked_pupils(session, person.id, kept)),
        siblings=tuple(siblings),
        total_entries=len(every),
        read_by=_reader_name(session),
        read_at=utcnow(),
        reader_acts=acts,
        kinds_present=tuple(present),
    )
