"""The entries of a chronology, one concern at a time: what was recorded, what happened,
each step and decision with its reason, notes, corrections, changes, attachments,
break-glass reads and the closing (STANDARDS R3; issue 5 §5).

Plain values out: :class:`Entry` carries its moment (UTC) and words already written for a
reader (times in the school's zone), so the page, the PDF and the command line show the
same thing. Nothing here reads the database or decides who may read what
(:mod:`esafety.safeguarding.chronology` does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from esafety.errors import InvalidInput
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.kinds import IncidentKind, Step
from esafety.safeguarding.model import (
    BreakGlassRead,
    Concern,
    ConcernEntry,
    ConcernPerson,
    EntryKind,
    Location,
    Part,
    StepEntry,
)
from esafety.safeguarding.procedures import StepOutcome

__all__ = [
    "ENTRY_TYPE_LABELS",
    "LOCATION_WORDS",
    "PART_WORDS",
    "Entry",
    "EntryType",
    "concern_entries",
    "local_time",
]


class EntryType(StrEnum):
    """The types of entry a chronology can be filtered by (stable ids: used in links)."""

    RECORDED = "recorded"
    HAPPENED = "happened"
    STEP = "step"
    DECISION = "decision"
    REFERRAL = "referral"
    NOTE = "note"
    CORRECTION = "correction"
    CHANGE = "change"
    ATTACHMENT = "attachment"
    BREAK_GLASS = "break_glass"
    CLOSED = "closed"


ENTRY_TYPE_LABELS: Mapping[EntryType, str] = {
    EntryType.RECORDED: "Concern recorded",
    EntryType.HAPPENED: "Happened",
    EntryType.STEP: "Step",
    EntryType.DECISION: "Decision",
    EntryType.REFERRAL: "Referral",
    EntryType.NOTE: "Note",
    EntryType.CORRECTION: "Correction",
    EntryType.CHANGE: "Change",
    EntryType.ATTACHMENT: "Attachment",
    EntryType.BREAK_GLASS: "Break-glass read",
    EntryType.CLOSED: "Concern closed",
}

#: A person's own part in a concern, in words (STANDARDS R6: each person's own).
PART_WORDS: Mapping[Part, str] = {
    Part.HARMED: "harmed or at risk",
    Part.HARMED_OTHERS: "harmed others (or the concern is about them)",
    Part.WITNESS: "witness",
    Part.OTHER: "other",
}

LOCATION_WORDS: Mapping[Location, str] = {
    Location.IN_SCHOOL: "In school",
    Location.AT_HOME: "At home",
    Location.ONLINE: "Online",
    Location.ELSEWHERE: "Elsewhere",
}


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a chronology."""

    #: When it happened or was done (UTC); the order of the chronology.
    at: datetime
    type: EntryType
    concern_id: int
    #: The concern's kind now (after any change of kind).
    kind: IncidentKind
    #: What it is, in a few words ("Refer to children's social care").
    title: str
    #: The particulars, one sentence or field a line ("Why: ...", "Reference: ...").
    details: tuple[str, ...]
    #: Who did or recorded it.
    by: str | None
    #: Tie-breaker inside one concern: the order the records were made.
    sequence: int = 0

    @property
    def type_label(self) -> str:
        return ENTRY_TYPE_LABELS[self.type]

    @property
    def heading(self) -> str:
        """The label and the title ("Referral: Report to the police"), once each."""
        label = self.type_label
        return label if not self.title or self.title == label else f"{label}: {self.title}"

    @property
    def kind_title(self) -> str:
        return kind_info(self.kind).title


def local_time(moment: datetime | None, zone: ZoneInfo) -> str:
    """A moment as the school writes it: "Tue 04 Mar 2025, 13:30"."""
    return moment.astimezone(zone).strftime("%a %d %b %Y, %H:%M") if moment else ""


#: Names of the school's people by id (for "Person linked: ...").
Names = Mapping[int, str]


def _person_words(link: ConcernPerson, names: Names) -> str:
    if link.person_id is not None:
        name = names.get(link.person_id, f"person #{link.person_id}")
    else:
        bits = [link.outside_name or "someone outside the school"]
        if link.outside_handle:
            bits.append(f"online handle {link.outside_handle}")
        name = ", ".join(bits)
    return f"{name} ({PART_WORDS.get(link.part, link.part.value)})"


def _kinds_of(concern: Concern) -> list[IncidentKind]:
    """Every kind the concern has had, newest first (to name steps of an earlier kind)."""
    found = [concern.current_kind]
    for entry in reversed(concern.entries):
        for value in (entry.new_kind, entry.old_kind):
            if value is not None and value not in found:
                found.append(value)
    if concern.kind not in found:
        found.append(concern.kind)
    return found


def _step_of(concern: Concern, step_id: str) -> Step | None:
    for which in _kinds_of(concern):
        try:
            return kind_info(which).step(step_id)
        except InvalidInput:
            continue
    return None


class _Builder:
    """The entries of one concern, as seen from one pupil's chronology."""

    def __init__(
        self,
        concern: Concern,
        *,
        subject_id: int,
        names: Names,
        zone: ZoneInfo,
        break_glass: list[BreakGlassRead],
    ) -> None:
        self.concern = concern
        self.subject_id = subject_id
        self.names = names
        self.zone = zone
        self.break_glass = break_glass
        self.kind = concern.current_kind
        self._sequence = 0

    def entry(
        self, at: datetime, type_: EntryType, title: str, details: list[str], by: str | None
    ) -> Entry:
        self._sequence += 1
        return Entry(
            at=at,
            type=type_,
            concern_id=self.concern.id,
            kind=self.kind,
            title=title,
            details=tuple(d for d in details if d),
            by=by,
            sequence=self._sequence,
        )

    def all(self) -> Iterator[Entry]:
        yield self.happened()
        yield self.recorded()
        for row in self.concern.steps:
            yield self.step(row)
        for change in self.concern.entries:
            yield self.change(change)
        for attachment in self.concern.attachments:
            yield self.entry(
                attachment.added_at,
                EntryType.ATTACHMENT,
                f"Attachment added: {attachment.filename}",
                [],
                attachment.added_by,
            )
        for alert in self.break_glass:
            yield self.glass(alert)
        if not self.concern.is_open and self.concern.closed_at is not None:
            yield self.entry(
                self.concern.closed_at,
                EntryType.CLOSED,
                "",
                [f"Outcome: {self.concern.outcome}" if self.concern.outcome else ""],
                self.concern.closed_by,
            )

    # -- the record itself ----------------------------------------------------------

    def _where(self) -> str:
        concern = self.concern
        place = LOCATION_WORDS.get(concern.location, "") if concern.location else ""
        if place and concern.location_detail:
            return f"{place}: {concern.location_detail}"
        return place or (concern.location_detail or "")

    def happened(self) -> Entry:
        concern = self.concern
        details = []
        if concern.current_happened_at != concern.happened_at:
            details.append(f"First recorded as {local_time(concern.happened_at, self.zone)}")
        where = self._where()
        if where:
            details.append(f"Where: {where}")
        details.append(f"Noticed: {local_time(concern.noticed_at, self.zone)}")
        return self.entry(
            concern.current_happened_at,
            EntryType.HAPPENED,
            kind_info(self.kind).title,
            details,
            None,
        )

    def recorded(self) -> Entry:
        concern = self.concern
        own = [p for p in concern.linked if p.person_id == self.subject_id]
        others = [p for p in concern.linked if p.person_id != self.subject_id]
        details = []
        if own:
            details.append(f"Their part: {PART_WORDS.get(own[0].part, own[0].part.value)}")
        if concern.kind != concern.current_kind:
            details.append(f"Recorded as: {kind_info(concern.kind).title}")
        details.append(f"What was seen or said: {concern.narrative}")
        if concern.action_taken:
            details.append(f"Action taken: {concern.action_taken}")
        details.append(f"DSL told in person: {'yes' if concern.dsl_told_in_person else 'no'}")
        if others:
            details.append(
                "Also linked: " + "; ".join(_person_words(p, self.names) for p in others)
            )
        return self.entry(
            concern.recorded_at,
            EntryType.RECORDED,
            f"{kind_info(concern.kind).title}, raised by {concern.raised_by}",
            details,
            concern.raised_by,
        )

    # -- the procedure --------------------------------------------------------------

    def step(self, row: StepEntry) -> Entry:
        step = _step_of(self.concern, row.step_id)
        title = step.title if step is not None else row.step_id
        type_ = EntryType.STEP
        if step is not None and step.referral:
            type_ = EntryType.REFERRAL
        elif step is not None and step.decision is not None:
            type_ = EntryType.DECISION
        details = []
        if row.outcome is StepOutcome.NOT_APPLICABLE:
            details.append("Does not apply")
        if row.choice is not None:
            choice = step.decision.choice(row.choice) if step and step.decision else None
            question = step.decision.question if step and step.decision else "Decision"
            details.append(f"{question} {choice.label if choice else row.choice}")
        if row.rationale:
            details.append(f"Why: {row.rationale}")
        if row.note:
            details.append(f"What was done: {row.note}")
        if row.reference:
            agency = step.referral if step is not None and step.referral else "Agency"
            details.append(f"{agency} reference: {row.reference}")
        if row.corrects:
            details.append(f"Corrects the earlier record of this step: {row.correction_reason}")
        if abs((row.recorded_at - row.done_at).total_seconds()) > 3600:
            details.append(f"Recorded {local_time(row.recorded_at, self.zone)}")
        return self.entry(row.done_at, type_, title, details, row.done_by)

    # -- notes, corrections and changes ---------------------------------------------

    def _linked_row(self, link_id: int | None) -> ConcernPerson | None:
        return next((p for p in self.concern.people if p.id == link_id), None)

    def change(self, entry: ConcernEntry) -> Entry:
        handlers: dict[EntryKind, Callable[[ConcernEntry], tuple[EntryType, str, list[str]]]] = {
            EntryKind.NOTE: lambda e: (EntryType.NOTE, "", [e.text or ""]),
            EntryKind.CORRECTION: self._correction,
            EntryKind.KIND_CHANGED: self._kind_changed,
            EntryKind.DATE_CHANGED: self._date_changed,
            EntryKind.PERSON_ADDED: lambda e: self._person(e, "Person linked"),
            EntryKind.PERSON_REMOVED: lambda e: self._person(e, "Person unlinked"),
        }
        type_, title, details = handlers[entry.kind](entry)
        if entry.reason and entry.kind is not EntryKind.CORRECTION:
            details.append(f"Why: {entry.reason}")
        return self.entry(entry.made_at, type_, title, details, entry.made_by)

    def _correction(self, entry: ConcernEntry) -> tuple[EntryType, str, list[str]]:
        if entry.corrects_entry_id is not None:
            earlier = next(
                (e for e in self.concern.entries if e.id == entry.corrects_entry_id), None
            )
            when = local_time(earlier.made_at, self.zone) if earlier else "an earlier entry"
            what = f"Correction of the note of {when}"
        else:
            what = f"Correction of the {(entry.field or 'narrative').replace('_', ' ')}"
        return EntryType.CORRECTION, what, [entry.text or "", f"Why: {entry.reason or ''}"]

    def _kind_changed(self, entry: ConcernEntry) -> tuple[EntryType, str, list[str]]:
        old = kind_info(entry.old_kind).title if entry.old_kind else "?"
        new = kind_info(entry.new_kind).title if entry.new_kind else "?"
        return EntryType.CHANGE, "Kind changed", [f"{old} → {new}"]

    def _date_changed(self, entry: ConcernEntry) -> tuple[EntryType, str, list[str]]:
        old = local_time(entry.old_happened_at, self.zone)
        new = local_time(entry.new_happened_at, self.zone)
        return EntryType.CHANGE, "When it happened changed", [f"{old} → {new}"]

    def _person(self, entry: ConcernEntry, what: str) -> tuple[EntryType, str, list[str]]:
        link = self._linked_row(entry.concern_person_id)
        who = _person_words(link, self.names) if link is not None else "a person"
        return EntryType.CHANGE, f"{what}: {who}", []

    def glass(self, alert: BreakGlassRead) -> Entry:
        details = [f"Reason given: {alert.reason}"]
        if alert.acknowledged_at is not None:
            details.append(
                f"Acknowledged by {alert.acknowledged_by}, "
                f"{local_time(alert.acknowledged_at, self.zone)}"
            )
        return self.entry(
            alert.at,
            EntryType.BREAK_GLASS,
            f"Read by breaking glass: {alert.by}",
            details,
            alert.by,
        )


def concern_entries(
    concern: Concern,
    *,
    subject_id: int,
    names: Names,
    zone: ZoneInfo,
    break_glass: list[BreakGlassRead],
) -> list[Entry]:
    """Every entry of ``concern`` for the chronology of person ``subject_id``."""
    builder = _Builder(
        concern, subject_id=subject_id, names=names, zone=zone, break_glass=break_glass
    )
    return list(builder.all())
