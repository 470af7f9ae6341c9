"""Safeguarding tables: concerns, the people in them, their entries, steps and attachments.

A recorded concern is never edited or deleted (STANDARDS R2; issue 5 §1): a correction, a
note, a change of kind, of date or of the people linked is a new :class:`ConcernEntry`
beside the original, and each step of the procedure is a new :class:`StepEntry` in the
order it was recorded. Only the closing fields of a concern (status, outcome, closed
at/by) and the acknowledgement of a break-glass read change in place; the guard at the
end of this module refuses anything else, so a route or a script cannot forget the rule.

What was seen or said, notes, reasons and the details of outside adults are sealed
(encrypted at rest, issue 5 §6): :class:`~esafety.sealing.SealedText` columns.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, relationship

from esafety.db import Base, SchoolOwned, utcnow
from esafety.errors import PermissionDenied
from esafety.safeguarding.kinds import IncidentKind
from esafety.safeguarding.procedures import StepOutcome, StepRecord
from esafety.sealing import SealedText

__all__ = [
    "APPEND_ONLY",
    "BreakGlassRead",
    "Concern",
    "ConcernAttachment",
    "ConcernEntry",
    "ConcernPerson",
    "ConcernStatus",
    "EntryKind",
    "Location",
    "Part",
    "SafeguardingSettings",
    "StepEntry",
    "allow_deletion",
]


def _enum(cls: type[StrEnum]) -> Enum:
    # Stored as plain strings: the values are stable ids, and new ones need no migration.
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=40,
        values_callable=lambda e: [m.value for m in e],
    )


class ConcernStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Location(StrEnum):
    """Where it happened (issue 5 §1); the online service or place is ``location_detail``."""

    IN_SCHOOL = "in_school"
    AT_HOME = "at_home"
    ONLINE = "online"
    ELSEWHERE = "elsewhere"


class Part(StrEnum):
    """A linked person's own part in the concern: never copied to another (STANDARDS R6)."""

    #: The child (or adult) harmed or at risk.
    HARMED = "harmed"
    #: The one who harmed others, or whom the concern is about (an allegation's subject).
    HARMED_OTHERS = "harmed_others"
    WITNESS = "witness"
    OTHER = "other"


class EntryKind(StrEnum):
    NOTE = "note"
    #: Corrects what the concern (or an earlier entry) says; the original stays (R2).
    CORRECTION = "correction"
    KIND_CHANGED = "kind_changed"
    DATE_CHANGED = "date_changed"
    PERSON_ADDED = "person_added"
    PERSON_REMOVED = "person_removed"


class Concern(SchoolOwned, Base):
    """One concern as it was recorded; what changed since is in its entries."""

    __tablename__ = "concern"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The kind as first recorded; ``current_kind`` follows the changes of kind.
    kind: Mapped[IncidentKind] = mapped_column(_enum(IncidentKind))
    happened_at: Mapped[datetime]
    noticed_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    raised_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    #: Who raised it, as a name that outlives the person's account.
    raised_by: Mapped[str] = mapped_column(String(200))
    location: Mapped[Location | None] = mapped_column(_enum(Location))
    #: Which online service, room or place.
    location_detail: Mapped[str | None] = mapped_column(SealedText())
    #: What was seen or said, in the person's own words.
    narrative: Mapped[str] = mapped_column(SealedText())
    action_taken: Mapped[str | None] = mapped_column(SealedText())
    dsl_told_in_person: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[ConcernStatus] = mapped_column(_enum(ConcernStatus), default=ConcernStatus.OPEN)
    outcome: Mapped[str | None] = mapped_column(SealedText())
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(200))

    people: Mapped[list[ConcernPerson]] = relationship(
        back_populates="concern", lazy="selectin", order_by="ConcernPerson.id"
    )
    entries: Mapped[list[ConcernEntry]] = relationship(
        back_populates="concern", lazy="selectin", order_by="ConcernEntry.id"
    )
    steps: Mapped[list[StepEntry]] = relationship(
        back_populates="concern", lazy="selectin", order_by="StepEntry.id"
    )
    attachments: Mapped[list[ConcernAttachment]] = relationship(
        back_populates="concern", lazy="selectin", order_by="ConcernAttachment.id"
    )

    @property
    def current_kind(self) -> IncidentKind:
        changes = [e.new_kind for e in self.entries if e.kind is EntryKind.KIND_CHANGED]
        return changes[-1] if changes and changes[-1] else self.kind

    @property
    def current_happened_at(self) -> datetime:
        changes = [e.new_happened_at for e in self.entries if e.kind is EntryKind.DATE_CHANGED]
        return changes[-1] if changes and changes[-1] else self.happened_at

    @property
    def linked(self) -> list[ConcernPerson]:
        """The people linked now (those removed by an entry left out)."""
        removed = {e.concern_person_id for e in self.entries if e.kind is EntryKind.PERSON_REMOVED}
        return [p for p in self.people if p.id not in removed]

    @property
    def step_records(self) -> list[StepRecord]:
        """The procedure's records in the order they were made (for procedures.state)."""
        return [s.record for s in self.steps]

    @property
    def is_open(self) -> bool:
        return self.status is ConcernStatus.OPEN


class ConcernPerson(SchoolOwned, Base):
    """A person linked to a concern, with their own part in it: a pupil or adult of the
    school (``person_id``), or someone outside it described by name, description and
    online handle."""

    __tablename__ = "concern_person"

    id: Mapped[int] = mapped_column(primary_key=True)
    concern_id: Mapped[int] = mapped_column(ForeignKey("concern.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    part: Mapped[Part] = mapped_column(_enum(Part))
    outside_name: Mapped[str | None] = mapped_column(SealedText())
    outside_description: Mapped[str | None] = mapped_column(SealedText())
    outside_handle: Mapped[str | None] = mapped_column(SealedText())
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    added_by: Mapped[str] = mapped_column(String(200))

    concern: Mapped[Concern] = relationship(back_populates="people")


class ConcernEntry(SchoolOwned, Base):
    """Something added to a concern after it was recorded: never edited, never deleted."""

    __tablename__ = "concern_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    concern_id: Mapped[int] = mapped_column(ForeignKey("concern.id"), index=True)
    kind: Mapped[EntryKind] = mapped_column(_enum(EntryKind))
    #: The note, or the corrected words.
    text: Mapped[str | None] = mapped_column(SealedText())
    #: Why (a correction's or a change's reason).
    reason: Mapped[str | None] = mapped_column(SealedText())
    #: A correction of an earlier entry (None: of the concern as recorded).
    corrects_entry_id: Mapped[int | None] = mapped_column(ForeignKey("concern_entry.id"))
    #: For a correction of the concern: which field ("narrative", "action_taken", ...).
    field: Mapped[str | None] = mapped_column(String(40))
    new_kind: Mapped[IncidentKind | None] = mapped_column(_enum(IncidentKind))
    old_kind: Mapped[IncidentKind | None] = mapped_column(_enum(IncidentKind))
    new_happened_at: Mapped[datetime | None]
    old_happened_at: Mapped[datetime | None]
    concern_person_id: Mapped[int | None] = mapped_column(ForeignKey("concern_person.id"))
    made_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    made_by: Mapped[str] = mapped_column(String(200))
    made_at: Mapped[datetime] = mapped_column(default=utcnow)

    concern: Mapped[Concern] = relationship(back_populates="entries")


class StepEntry(SchoolOwned, Base):
    """One record of one step of the concern's procedure (procedures.StepRecord)."""

    __tablename__ = "concern_step"

    id: Mapped[int] = mapped_column(primary_key=True)
    concern_id: Mapped[int] = mapped_column(ForeignKey("concern.id"), index=True)
    step_id: Mapped[str] = mapped_column(String(64))
    done_by: Mapped[str] = mapped_column(String(200))
    done_at: Mapped[datetime]
    outcome: Mapped[StepOutcome] = mapped_column(_enum(StepOutcome))
    choice: Mapped[str | None] = mapped_column(String(64))
    rationale: Mapped[str | None] = mapped_column(SealedText())
    note: Mapped[str | None] = mapped_column(SealedText())
    reference: Mapped[str | None] = mapped_column(SealedText())
    corrects: Mapped[bool] = mapped_column(Boolean, default=False)
    correction_reason: Mapped[str | None] = mapped_column(SealedText())
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    concern: Mapped[Concern] = relationship(back_populates="steps")

    @property
    def record(self) -> StepRecord:
        return StepRecord(
            step_id=self.step_id,
            done_by=self.done_by,
            done_at=self.done_at,
            outcome=self.outcome,
            choice=self.choice,
            rationale=self.rationale,
            note=self.note,
            reference=self.reference,
            corrects=self.corrects,
            correction_reason=self.correction_reason,
        )


class ConcernAttachment(SchoolOwned, Base):
    """A screenshot or document, sealed in DATA/attachments/ (``file_id``)."""

    __tablename__ = "concern_attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    concern_id: Mapped[int] = mapped_column(ForeignKey("concern.id"), index=True)
    file_id: Mapped[str] = mapped_column(String(64), unique=True)
    #: The name it was uploaded with (may name a child: sealed).
    filename: Mapped[str] = mapped_column(SealedText())
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)

    concern: Mapped[Concern] = relationship(back_populates="attachments")


class BreakGlassRead(SchoolOwned, Base):
    """A member of staff read a concern they could not otherwise read, giving a reason;
    the alert the DSL (or the concern's readers) acknowledge (issue 5 §3)."""

    __tablename__ = "concern_break_glass"

    id: Mapped[int] = mapped_column(primary_key=True)
    concern_id: Mapped[int] = mapped_column(ForeignKey("concern.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(SealedText())
    at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))


class SafeguardingSettings(SchoolOwned, Base):
    """A school's safeguarding settings (one row; none means the defaults)."""

    __tablename__ = "safeguarding_settings"
    __table_args__ = (UniqueConstraint("school_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Kinds the online safety lead reads (issue 5 §3); None: the catalogue's default
    #: (filtering_breach, technology_misuse, data_breach).
    online_safety_kinds: Mapped[list[str] | None] = mapped_column(JSON)
    #: School days after sending a child-protection file before the DSL is reminded that
    #: no receipt came (issue 5 §5; None: 3, esafety.safeguarding.transfer).
    transfer_receipt_days: Mapped[int | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))


# -- append-only, enforced once -----------------------------------------------------

#: Tables whose rows are never changed or deleted, and the columns that may change.
APPEND_ONLY: dict[type[Base], frozenset[str]] = {
    Concern: frozenset({"status", "outcome", "closed_at", "closed_by"}),
    ConcernPerson: frozenset(),
    ConcernEntry: frozenset(),
    StepEntry: frozenset(),
    ConcernAttachment: frozenset(),
    BreakGlassRead: frozenset({"acknowledged_at", "acknowledged_by"}),
}
_DELETION_ALLOWED = "safeguarding_deletion_allowed"


def allow_deletion(session: Session, why: str) -> None:
    """Let this session delete safeguarding rows: for the retention schedule only (R8),
    which records what it deleted and why."""
    session.info[_DELETION_ALLOWED] = why


def _changed_columns(obj: Base) -> set[str]:
    state = inspect(obj)
    return {
        attr.key
        for attr in state.mapper.column_attrs
        if state.attrs[attr.key].history.has_changes()
    }


@event.listens_for(Session, "before_flush")
def _refuse_edits(session: Session, _context: Any, _instances: Any) -> None:
    for obj in session.dirty:
        allowed = APPEND_ONLY.get(type(obj))
        if allowed is None:
            continue
        changed = _changed_columns(obj) - allowed
        if changed:
            raise PermissionDenied(
                f"a {type(obj).__tablename__.replace('_', ' ')} is never edited "
                f"(STANDARDS R2; tried to change {', '.join(sorted(changed))}): "
                "record a correction or a note beside it instead"
            )
    if session.info.get(_DELETION_ALLOWED):
        return
    for obj in session.deleted:
        if type(obj) in APPEND_ONLY:
            raise PermissionDenied(
                f"a {type(obj).__tablename__.replace('_', ' ')} is never deleted "
                "(STANDARDS R2): only the retention schedule removes safeguarding records"
            )


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_edits(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete) or state.session.info.get(_DELETION_ALLOWED):
        return
    name = getattr(getattr(state.statement, "table", None), "name", None)
    # Read at each call: other modules add their tables to APPEND_ONLY (actions_model).
    if name in {cls.__tablename__ for cls in APPEND_ONLY}:
        raise PermissionDenied(
            f"safeguarding records ({name}) are never changed or deleted in bulk (STANDARDS R2)"
        )
