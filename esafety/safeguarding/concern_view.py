"""What the concern page shows beyond the record itself: the history with each correction
beside what it corrects (STANDARDS R2), the referrals with their reference numbers, whether
the parents were told (issue 5 §4), the closing and learning (002 §8, 003 §10), the
actions and the attachments.

Plain values built from a concern already opened (and its read audited) by
:func:`esafety.safeguarding.reading.open_concern`; the template only lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.directory.model import Person
from esafety.safeguarding import actions, reading
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.catalogue import kinds
from esafety.safeguarding.concerns import CORRECTABLE_FIELDS
from esafety.safeguarding.model import Concern, ConcernEntry, EntryKind, Part
from esafety.safeguarding.procedures import ProcedureState, StepRecord, StepState, StepStatus

__all__ = [
    "FIELD_LABELS",
    "NOTE_LABELS",
    "Closing",
    "HistoryItem",
    "ParentsTold",
    "Referral",
    "desk_extras",
    "page_extras",
]

#: The fields a correction may put right, in the page's words.
FIELD_LABELS = {
    "narrative": "What was seen or said",
    "action_taken": "Action taken",
    "location_detail": "Where (the service or place)",
}

#: The "what was done" box of a step, for the closing steps (002 §8; 003 §10: "debrief,
#: identify lessons learnt and implement any policy or curriculum changes").
NOTE_LABELS = {
    "outcome": ("The outcome", "How the concern ended, for each person involved."),
    "debrief": ("Lessons learnt", "What the debrief found: was best practice followed?"),
    "changes": ("Changes made", "To policies, teaching or filtering, and who makes them."),
}

#: The step every procedure that involves children has for telling the parents (003 §10.1).
INFORM_PARENTS = "inform_parents"


@dataclass(frozen=True)
class HistoryItem:
    """One entry of the history; a correction carries the words it replaces."""

    entry: ConcernEntry
    label: str
    #: A correction: what it puts right ("What was seen or said", "the note of …").
    corrects: str | None = None
    #: A correction: the words before it (the original, or the previous correction).
    before: str | None = None
    #: Later corrections of this entry (ids), to say it was corrected.
    corrected_by: tuple[int, ...] = ()
    #: A person linked or unlinked: who, and their part.
    person: str | None = None
    old_kind: str | None = None
    new_kind: str | None = None


@dataclass(frozen=True)
class FieldVersion:
    """A correctable field: the words as recorded and each correction after it."""

    field: str
    label: str
    original: str | None
    corrections: tuple[ConcernEntry, ...]


@dataclass(frozen=True)
class Referral:
    """A step that refers to an outside agency, and where it stands."""

    state: StepState
    agency: str
    status: str
    choice: str | None

    @property
    def record(self) -> StepRecord | None:
        return self.state.record


@dataclass(frozen=True)
class ParentsTold:
    """The inform-parents decision: told (when, by whom, how) or not (why), or not yet."""

    state: StepState
    #: "told", "not_told", "to_decide", "waiting", "not_needed", "not_applicable"
    status: str

    @property
    def record(self) -> StepRecord | None:
        return self.state.record


@dataclass(frozen=True)
class Closing:
    """The three closing steps (002 §8; 003 §10), for the closing summary."""

    outcome: StepState | None
    debrief: StepState | None
    changes: StepState | None


def _choice(state: StepState) -> str | None:
    record, decision = state.record, state.step.decision
    if record is None or record.choice is None:
        return None
    found = decision.choice(record.choice) if decision is not None else None
    return found.label if found is not None else record.choice


def _status_text(state: StepState) -> str:
    return {
        StepStatus.DONE: "Done",
        StepStatus.NOT_APPLICABLE: "Does not apply",
        StepStatus.NOT_NEEDED: "Not needed",
        StepStatus.OPEN: "To do",
        StepStatus.BLOCKED: "Waiting",
    }[state.status]


def referrals(current: ProcedureState) -> list[Referral]:
    return [
        Referral(s, s.step.referral, _status_text(s), _choice(s))
        for s in current.steps
        if s.step.referral
    ]


def parents_told(current: ProcedureState) -> ParentsTold | None:
    state = next((s for s in current.steps if s.step.id == INFORM_PARENTS), None)
    if state is None:
        return None
    record = state.record
    if state.status is StepStatus.DONE and record is not None:
        status = "told" if record.choice and record.choice.startswith("yes") else "not_told"
    else:
        status = {
            StepStatus.OPEN: "to_decide",
            StepStatus.BLOCKED: "waiting",
            StepStatus.NOT_NEEDED: "not_needed",
            StepStatus.NOT_APPLICABLE: "not_applicable",
        }.get(state.status, "to_decide")
    return ParentsTold(state, status)


def closing(current: ProcedureState) -> Closing:
    by_id = {s.step.id: s for s in current.steps if s.step.closing}
    return Closing(by_id.get("outcome"), by_id.get("debrief"), by_id.get("changes"))


def _kind_title(value: object) -> str | None:
    return kind_info(str(value)).title if value else None


def _link_names(session: Session, concern: Concern) -> dict[int, str]:
    """ConcernPerson id → "name (part)", for every link, removed ones too."""
    ids = [p.person_id for p in concern.people if p.person_id is not None]
    found = (
        {p.id: p for p in session.scalars(select(Person).where(Person.id.in_(ids)))} if ids else {}
    )
    names = {}
    for link in concern.people:
        person = found.get(link.person_id) if link.person_id is not None else None
        name = person.display_name if person else (link.outside_name or link.outside_handle)
        names[link.id] = f"{name or 'someone outside the school'} ({_PARTS[link.part]})"
    return names


_PARTS = {
    Part.HARMED: "harmed or at risk",
    Part.HARMED_OTHERS: "harmed others, or the concern is about them",
    Part.WITNESS: "witness",
    Part.OTHER: "other",
}


def history(
    session: Session,
    concern: Concern,
    labels: dict[EntryKind, str],
    local: Any,
) -> tuple[list[HistoryItem], list[FieldVersion]]:
    """Every entry in the order made, each correction with the words it replaces; and the
    correctable fields of the record with their corrections."""
    entries = sorted(concern.entries, key=lambda e: (e.made_at, e.id))
    by_id = {e.id: e for e in entries}
    later: dict[int, list[int]] = {}
    latest_of_field: dict[str, str | None] = {f: getattr(concern, f) for f in CORRECTABLE_FIELDS}
    names = _link_names(session, concern)
    items = []
    for entry in entries:
        corrects = before = None
        if entry.kind is EntryKind.CORRECTION:
            if entry.corrects_entry_id is not None:
                target = by_id.get(entry.corrects_entry_id)
                later.setdefault(entry.corrects_entry_id, []).append(entry.id)
                when = local(target.made_at) if target else ""
                corrects = f"the {labels[target.kind].lower() if target else 'entry'} of {when}"
                before = target.text if target else None
            elif entry.field:
                corrects = FIELD_LABELS.get(entry.field, entry.field)
                before = latest_of_field.get(entry.field)
                latest_of_field[entry.field] = entry.text
        person = names.get(entry.concern_person_id) if entry.concern_person_id else None
        items.append(
            HistoryItem(
                entry=entry,
                label=labels[entry.kind],
                corrects=corrects,
                before=before,
                person=person,
                old_kind=_kind_title(entry.old_kind),
                new_kind=_kind_title(entry.new_kind),
            )
        )
    items = [
        HistoryItem(**{**item.__dict__, "corrected_by": tuple(later.get(item.entry.id, ()))})
        for item in items
    ]
    fields = [
        FieldVersion(
            field=name,
            label=FIELD_LABELS[name],
            original=getattr(concern, name),
            corrections=tuple(
                e
                for e in entries
                if e.kind is EntryKind.CORRECTION
                and e.field == name
                and e.corrects_entry_id is None
            ),
        )
        for name in CORRECTABLE_FIELDS
    ]
    return items, fields


def page_extras(
    session: Session,
    concern: Concern,
    current: ProcedureState,
    *,
    labels: dict[EntryKind, str],
    local: Any,
    zone: ZoneInfo,
    can_act: bool,
    now: datetime,
) -> dict[str, Any]:
    """The concern page's context beyond the record and its steps."""
    items, fields = history(session, concern, labels, local)
    happened = concern.current_happened_at.astimezone(zone)
    return {
        "happened_day": happened.date().isoformat(),
        "happened_time": happened.strftime("%H:%M"),
        "today": now.astimezone(zone).date().isoformat(),
        "history": items,
        "fields": fields,
        "field_labels": FIELD_LABELS,
        "note_labels": NOTE_LABELS,
        "referrals": referrals(current),
        "parents": parents_told(current),
        "closing": closing(current),
        "actions": actions.actions_of(session, concern, now=now),
        "owners": actions.owner_choices(session) if can_act else [],
        "all_kinds": kinds(),
        "attachments": sorted(concern.attachments, key=lambda a: (a.added_at, a.id)),
        "refuses_images": kind_info(concern.current_kind).image_refusal,
    }


def desk_extras(session: Session, *, acts: bool, now: datetime) -> dict[str, Any]:
    """The desk's additions: the reader's own actions, the open actions on the concerns
    they act on (overdue first), and break-glass alerts to acknowledge (issue 5 §3, §4)."""
    return {
        "my_actions": actions.my_actions(session, now=now),
        "desk_actions": actions.desk_actions(session, now=now) if acts else [],
        "break_glass_alerts": reading.break_glass_alerts(session) if acts else [],
    }
