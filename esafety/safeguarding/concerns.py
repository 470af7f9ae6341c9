"""Recording concerns and everything added to them: notes, corrections, changes of kind,
date or people, the procedure's steps, and closing (issue 5 §1, §2, §7).

Nothing recorded is edited or deleted (STANDARDS R2): every function here adds a row.
The form asks for facts and full names, not opinions or initials (issue 5 §1). Every
function acts as the session's actor; times without a zone are the school's local time.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from esafety.db import utcnow
from esafety.directory.calendar import to_utc
from esafety.directory.model import Person, PersonKind, School
from esafety.directory.service import require
from esafety.errors import InvalidInput
from esafety.events import Event, publish_on_commit
from esafety.safeguarding import procedures
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.kinds import IncidentKind, KindInfo
from esafety.safeguarding.model import (
    Concern,
    ConcernEntry,
    ConcernPerson,
    ConcernStatus,
    EntryKind,
    Location,
    Part,
    StepEntry,
)
from esafety.safeguarding.procedures import ProcedureState, StepOutcome, StepRecord
from esafety.safeguarding.reading import (
    actor_name,
    current_actor,
    find_concern,
    require_grounds,
)
from esafety.security.roles import Permission

__all__ = [
    "CORRECTABLE_FIELDS",
    "About",
    "ConcernRecorded",
    "add_note",
    "change_happened_at",
    "change_kind",
    "close_concern",
    "correct",
    "link_person",
    "procedure_state",
    "record_concern",
    "record_step",
    "unlink_person",
]

#: A time a minute or two ahead of the server's clock is "now" (a device's clock).
FUTURE_GRACE = timedelta(minutes=5)
MAX_TEXT = 20_000
#: Fields of the concern as recorded that a correction may put right.
CORRECTABLE_FIELDS = ("narrative", "action_taken", "location_detail")
#: Kinds whose linked adults are, by default, the one the concern is about.
_ABOUT_AN_ADULT = frozenset({IncidentKind.STAFF_ALLEGATION, IncidentKind.PARENT_CARER_CONCERN})


@dataclass(frozen=True)
class ConcernRecorded(Event):
    """A concern was recorded: the DSL's desk and e-mail listen (no narrative, no names)."""

    subject = "safeguarding.concern.recorded"

    school_id: int
    concern_id: int
    kind: str
    grave: bool


@dataclass(frozen=True)
class About:
    """Someone a concern is about: a person of the school (``person``: username or UPN), or
    an adult outside it (``name``, ``description``, ``handle``); ``part`` is their own."""

    person: str | None = None
    part: Part | str | None = None
    name: str | None = None
    description: str | None = None
    handle: str | None = None


# -- small checks -------------------------------------------------------------------


def _text(
    value: str | None, what: str, *, required: bool = False, limit: int = MAX_TEXT
) -> str | None:
    cleaned = (value or "").strip()
    if not cleaned:
        if required:
            raise InvalidInput(f"{what} is empty: write it in full, as facts")
        return None
    if len(cleaned) > limit:
        raise InvalidInput(f"{what} is {len(cleaned)} characters long: keep it to {limit}")
    return cleaned


_INITIAL = re.compile(r"[^\W\d_]\.?", re.UNICODE)


def _initials_only(name: str) -> bool:
    parts = [p for p in re.split(r"[\s.]+", name) if p]
    if not parts:
        return True
    if all(len(p) == 1 for p in parts):
        return True
    return len(parts) == 1 and name.isupper() and len(name.replace(".", "")) <= 3


def _school_zone(session: Session, concern_school: int | None = None) -> str:
    school_id = concern_school or session.info.get("school_id")
    school = session.get(School, school_id) if school_id is not None else None
    if school is None:
        raise InvalidInput(
            "recording a concern needs a school: open the session for one school "
            "(--school SLUG on the command line)"
        )
    return school.timezone


def _moment(value: datetime, zone: str) -> datetime:
    return to_utc(value, zone)


def _not_future(moment: datetime, what: str, now: datetime) -> None:
    if moment > now + FUTURE_GRACE:
        raise InvalidInput(
            f"{what} {moment.isoformat(timespec='minutes')} is in the future: give when it happened"
        )


def _part(value: Part | str | None, default: Part) -> Part:
    if value is None or value == "":
        return default
    try:
        return Part(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(p.value for p in Part)
        raise InvalidInput(f"role in the concern {value!r}: expected one of {allowed}") from None


def _location(value: Location | str | None) -> Location | None:
    if value is None or value == "":
        return None
    try:
        return Location(str(value).strip().lower().replace(" ", "_").replace("-", "_"))
    except ValueError:
        allowed = ", ".join(p.value for p in Location)
        raise InvalidInput(f"location {value!r}: expected one of {allowed}") from None


def _person(session: Session, handle: str) -> Person:
    wanted = handle.strip()
    found = session.scalars(
        select(Person).where(or_(Person.username == wanted, Person.upn == wanted.upper()))
    ).all()
    if len(found) != 1:
        raise InvalidInput(
            f"person {handle!r}: no one of this school has that username or UPN; give a "
            "pupil's or adult's username (as on their account) or a pupil's UPN"
        )
    return found[0]


def _default_part(info: KindInfo, person: Person | None) -> Part:
    if person is not None and person.kind is PersonKind.PUPIL:
        return Part.HARMED
    return Part.HARMED_OTHERS if info.id in _ABOUT_AN_ADULT else Part.OTHER


def _linked_row(
    session: Session, info: KindInfo, about: About | str, taken: set[int], by: str
) -> ConcernPerson:
    item = About(person=about) if isinstance(about, str) else about
    if item.person:
        if item.name or item.handle or item.description:
            raise InvalidInput(
                f"person {item.person!r}: give a username/UPN or an outside adult's name, not both"
            )
        person = _person(session, item.person)
        if person.id in taken:
            raise InvalidInput(f"person {item.person!r} is named twice: name each person once")
        taken.add(person.id)
        return ConcernPerson(
            person_id=person.id, part=_part(item.part, _default_part(info, person)), added_by=by
        )
    name = _text(item.name, "the outside adult's name", limit=200)
    handle = _text(item.handle, "the online handle", limit=200)
    description = _text(item.description, "the description", limit=2000)
    if name is None and handle is None and description is None:
        raise InvalidInput(
            "someone the concern is about is empty: give a username or UPN, or an outside "
            "adult's full name, description and online handle"
        )
    if name is not None and _initials_only(name):
        raise InvalidInput(
            f"name {name!r}: write the person's full name, not initials (issue 5 §1); if you "
            "do not know it, leave it out and describe them and their online handle"
        )
    return ConcernPerson(
        person_id=None,
        part=_part(item.part, _default_part(info, None)),
        outside_name=name,
        outside_description=description,
        outside_handle=handle,
        added_by=by,
    )


# -- recording ----------------------------------------------------------------------


def record_concern(
    session: Session,
    *,
    kind: IncidentKind | str,
    narrative: str,
    happened_at: datetime,
    about: Sequence[About | str],
    noticed_at: datetime | None = None,
    location: Location | str | None = None,
    location_detail: str | None = None,
    action_taken: str | None = None,
    dsl_told_in_person: bool = False,
    now: datetime | None = None,
) -> Concern:
    """Record a concern raised by the session's actor (issue 5 §1; R1).

    ``happened_at`` and ``noticed_at`` without a zone are the school's local time;
    ``noticed_at`` defaults to now. Refused with what to fix: an unknown kind, an empty
    narrative, no one it is about, a time in the future, noticed before it happened,
    an outside adult named by initials.
    """
    require(session, Permission.RECORD_CONCERNS, "record a concern")
    now = now or utcnow()
    info = kind_info(kind)
    zone = _school_zone(session)
    happened = _moment(happened_at, zone)
    noticed = _moment(noticed_at, zone) if noticed_at is not None else now
    _not_future(happened, "it happened at", now)
    _not_future(noticed, "it was noticed at", now)
    if noticed < happened:
        raise InvalidInput(
            f"noticed at {noticed.isoformat(timespec='minutes')} is before it happened "
            f"({happened.isoformat(timespec='minutes')}): check both times"
        )
    words = _text(narrative, "what was seen or said (the narrative)", required=True)
    if not about:
        raise InvalidInput(
            "say who the concern is about: one or more pupils (username or UPN), a member "
            "of staff, a parent, or an outside adult by name, description and online handle"
        )
    actor = current_actor(session)
    by = actor_name(session)
    taken: set[int] = set()
    people = [_linked_row(session, info, item, taken, by) for item in about]
    school_id = int(session.info["school_id"])
    for row in people:
        row.school_id = school_id
    concern = Concern(
        school_id=school_id,
        kind=info.id,
        happened_at=happened,
        noticed_at=noticed,
        recorded_at=now,
        raised_by_id=actor.person_id if actor else None,
        raised_by=by,
        location=_location(location),
        location_detail=_text(location_detail, "where (the service or place)", limit=500),
        narrative=words or "",
        action_taken=_text(action_taken, "the action taken"),
        dsl_told_in_person=bool(dsl_told_in_person),
        status=ConcernStatus.OPEN,
    )
    concern.people = people
    session.add(concern)
    session.flush()
    publish_on_commit(
        session,
        ConcernRecorded(concern.school_id, concern.id, info.id.value, info.grave),
    )
    return concern


def _entry(session: Session, concern: Concern, kind: EntryKind, **values: object) -> ConcernEntry:
    actor = current_actor(session)
    entry = ConcernEntry(
        school_id=concern.school_id,
        concern_id=concern.id,
        kind=kind,
        made_by_id=actor.person_id if actor else None,
        made_by=actor_name(session),
        made_at=utcnow(),
        **values,
    )
    concern.entries.append(entry)
    session.flush()
    return entry


def _reason(reason: str | None, what: str) -> str:
    cleaned = _text(reason, f"the reason for {what}", required=True, limit=2000)
    return cleaned or ""


def add_note(session: Session, concern_id: int, text: str) -> ConcernEntry:
    """A note added to a concern by one who may read it (the one who raised it too)."""
    require(session, Permission.VIEW_CONCERNS, "add a note to a concern")
    concern = find_concern(session, concern_id)
    require_grounds(session, concern, act=False)
    return _entry(session, concern, EntryKind.NOTE, text=_text(text, "the note", required=True))


def correct(
    session: Session,
    concern_id: int,
    text: str,
    reason: str,
    *,
    field: str = "narrative",
    entry_id: int | None = None,
) -> ConcernEntry:
    """Put right what the concern (``field``) or an earlier entry (``entry_id``) says: a
    new entry beside it, with the reason; the original stays (R2)."""
    require(session, Permission.VIEW_CONCERNS, "correct a concern")
    concern = find_concern(session, concern_id)
    require_grounds(session, concern, act=False)
    words = _text(text, "the corrected words", required=True)
    why = _reason(reason, "the correction")
    if entry_id is not None:
        target = next((e for e in concern.entries if e.id == entry_id), None)
        if target is None or target.kind not in (EntryKind.NOTE, EntryKind.CORRECTION):
            raise InvalidInput(
                f"entry #{entry_id} is not a note or correction of concern #{concern.id}"
            )
        return _entry(
            session,
            concern,
            EntryKind.CORRECTION,
            text=words,
            reason=why,
            corrects_entry_id=entry_id,
        )
    if field not in CORRECTABLE_FIELDS:
        raise InvalidInput(
            f"field {field!r}: a correction puts right one of {', '.join(CORRECTABLE_FIELDS)}; "
            "the kind, the date and the people have their own changes"
        )
    return _entry(session, concern, EntryKind.CORRECTION, text=words, reason=why, field=field)


def change_kind(
    session: Session, concern_id: int, new_kind: IncidentKind | str, reason: str
) -> ConcernEntry:
    """Record that the concern is of another kind (R2: the change is itself recorded).

    Step records of the old kind stay (procedures.state reports them as ``unknown``); the
    new kind's procedure starts from its own steps.
    """
    require(session, Permission.ACT_ON_CONCERNS, "change a concern's kind")
    concern = find_concern(session, concern_id)
    require_grounds(session, concern, act=True)
    info = kind_info(new_kind)
    if info.id is concern.current_kind:
        raise InvalidInput(f"concern #{concern.id} is already of kind '{info.id}'")
    why = _reason(reason, "the change of kind")
    entry = _entry(
        session,
        concern,
        EntryKind.KIND_CHANGED,
        new_kind=info.id,
        old_kind=concern.current_kind,
        reason=why,
    )
    # The new readers must read it now (it may have become grave).
    publish_on_commit(
        session, ConcernRecorded(concern.school_id, concern.id, info.id.value, info.grave)
    )
    return entry


def change_happened_at(
    session: Session,
    concern_id: int,
    happened_at: datetime,
    reason: str,
    *,
    now: datetime | None = None,
) -> ConcernEntry:
    require(session, Permission.ACT_ON_CONCERNS, "change when a concern happened")
    concern = find_concern(session, concern_id)
    require_grounds(session, concern, act=True)
    new = _moment(happened_at, _school_zone(session, concern.school_id))
    _not_future(new, "it happened at", now or utcnow())
    if new > concern.noticed_at:
        raise InvalidInput(
            f"it happened at {new.isoformat(timespec='minutes')}, after it was noticed "
            f"({concern.noticed_at.isoformat(timespec='minutes')}): check the time"
        )
    return _entry(
        session,
        concern,
        EntryKind.DATE_CHANGED,
        new_happened_at=new,
        old_happened_at=concern.current_happened_at,
        reason=_reason(reason, "the change of date"),
    )


def link_person(session: Session, concern_id: int, about: About | str, reason: str) -> ConcernEntry:
    """Link another person, with their own part (R6: nothing copied from the others)."""
    require(session, Permission.ACT_ON_CONCERNS, "link a person to a concern")
    concern = find_concern(session, concern_id)
    require_grounds(session, concern, act=True)
    taken = {p.person_id for p in concern.linked if p.person_id is not None}
    row = _linked_row(session, kind_info(concern.current_kind), about, taken, actor_name(session))
    row.concern_id, row.school_id = concern.id, concern.school_id
    concern.people.append(row)
    session.flush()
    return _entry(
        session,
        concern,
        EntryKind.PERSON_ADDED,
        concern_person_id=row.id,
        reason=_reason(reason, "linking the person"),
    )


def unlink_person(
    session: Session, concern_id: int, concern_person_id: int, reason: str
) -> ConcernEntry:
    """Record that a person was linked by mistake (the link stays in the history)."""
    require(session, Permission.ACT_ON_CONCERNS, "unlink a person from a concern")
    concern = find_concern(session, concern_id)
    require_grounds(session, concern, act=True)
    linked = [p for p in concern.linked]
    if concern_person_id not in {p.id for p in linked}:
        raise InvalidInput(f"person link #{concern_person_id} is not on concern #{concern.id}")
    if len(linked) == 1:
        raise InvalidInput(
            "a concern is always about someone: link the right person before unlinking this one"
        )
    return _entry(
        session,
        concern,
        EntryKind.PERSON_REMOVED,
        concern_person_id=concern_person_id,
        reason=_reason(reason, "unlinking the person"),
    )


# -- the procedure ------------------------------------------------------------------


def procedure_state(
    concern: Concern, *, now: datetime | None = None, holidays: Collection[date] = ()
) -> ProcedureState:
    """Where the concern's procedure stands (due times from when it was noticed)."""
    return procedures.state(
        concern.current_kind,
        concern.step_records,
        aware_at=concern.noticed_at,
        now=now,
        holidays=holidays,
    )


def record_step(
    session: Session,
    concern_id: int,
    step_id: str,
    *,
    done_at: datetime | None = None,
    outcome: StepOutcome | str = StepOutcome.DONE,
    choice: str | None = None,
    rationale: str | None = None,
    note: str | None = None,
    reference: str | None = None,
    corrects: bool = False,
    correction_reason: str | None = None,
    now: datetime | None = None,
) -> StepEntry:
    """Record one step of the concern's procedure (validated against the records before
    it: order, decisions and their reasons, corrections)."""
    require(session, Permission.ACT_ON_CONCERNS, "record a step of a concern's procedure")
    concern = find_concern(session, concern_id)
    require_grounds(session, concern, act=True)
    if not concern.is_open:
        raise InvalidInput(f"concern #{concern.id} is closed: its steps can no longer change")
    now = now or utcnow()
    zone = _school_zone(session, concern.school_id)
    try:
        result = StepOutcome(str(outcome))
    except ValueError:
        allowed = ", ".join(o.value for o in StepOutcome)
        raise InvalidInput(f"outcome {outcome!r}: expected one of {allowed}") from None
    actor = current_actor(session)
    record = StepRecord(
        step_id=step_id,
        done_by=actor_name(session),
        done_at=_moment(done_at, zone) if done_at is not None else now,
        outcome=result,
        choice=choice,
        rationale=rationale,
        note=note,
        reference=reference,
        corrects=corrects,
        correction_reason=correction_reason,
    )
    record = procedures.validate(concern.current_kind, record, concern.step_records, now=now)
    row = StepEntry(
        school_id=concern.school_id,
        concern_id=concern.id,
        step_id=record.step_id,
        done_by=record.done_by,
        done_at=record.done_at,
        outcome=record.outcome,
        choice=record.choice,
        rationale=record.rationale,
        note=record.note,
        reference=record.reference,
        corrects=record.corrects,
        correction_reason=record.correction_reason,
        recorded_by_id=actor.person_id if actor else None,
        recorded_at=now,
    )
    concern.steps.append(row)
    session.flush()
    return row


def close_concern(
    session: Session, concern_id: int, *, outcome: str | None = None, now: datetime | None = None
) -> Concern:
    """Close the concern once every required step is settled (refused with the steps
    still open). The outcome defaults to the note of the "Record the outcome" step."""
    require(session, Permission.ACT_ON_CONCERNS, "close a concern")
    concern = find_concern(session, concern_id)
    require_grounds(session, concern, act=True)
    if not concern.is_open:
        raise InvalidInput(f"concern #{concern.id} is already closed")
    procedures.ensure_closable(procedure_state(concern))
    words = _text(outcome, "the outcome")
    if words is None:
        step = procedure_state(concern).step("outcome").record
        words = step.note if step is not None else None
    if words is None:
        raise InvalidInput("say what the outcome was: how the concern ended, for each person")
    concern.status = ConcernStatus.CLOSED
    concern.outcome = words
    concern.closed_at = now or utcnow()
    concern.closed_by = actor_name(session)
    session.flush()
    return concern
