"""Tables for sending a pupil's child-protection file to their new school, and for
receiving one (issue 5 §5; STANDARDS R7; KCSIE part 2: the file goes to the new school's
DSL separately from the pupil record, within five school days).

Like the concerns themselves these rows are never edited or deleted (STANDARDS R2): the
sending, the receipt, a correction of the details or a withdrawal is a new
:class:`TransferEntry`, and the newest of each kind counts. The guard in
:mod:`esafety.safeguarding.model` covers these tables too.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Date, Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from esafety.db import Base, SchoolOwned, utcnow
from esafety.safeguarding.model import APPEND_ONLY
from esafety.sealing import SealedText

__all__ = [
    "ImportedConcern",
    "PupilTransfer",
    "TransferEntry",
    "TransferEntryKind",
    "TransferImport",
    "TransferMethod",
]


def _enum(cls: type[StrEnum]) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=40,
        values_callable=lambda e: [m.value for m in e],
    )


class TransferMethod(StrEnum):
    """How the file went (issue 5 §5)."""

    SECURE_EMAIL = "secure_email"
    TRANSFER_PORTAL = "transfer_portal"
    BY_HAND = "by_hand"
    RECORDED_DELIVERY = "recorded_delivery"
    ESAFETY_FILE = "esafety_file"

    @property
    def label(self) -> str:
        return {
            "secure_email": "Secure e-mail",
            "transfer_portal": "Secure transfer portal",
            "by_hand": "By hand",
            "recorded_delivery": "Recorded delivery",
            "esafety_file": "esafety export file",
        }[self.value]


class TransferEntryKind(StrEnum):
    #: An encrypted esafety file of the pupil's records was made (``bundle_id``).
    EXPORTED = "exported"
    #: The file was sent (``method``, ``at``, ``items``).
    SENT = "sent"
    #: The new school acknowledged receipt (``by_name``, ``at``).
    RECEIVED = "received"
    #: The destination or the dates were put right (``details``, ``reason``).
    CORRECTED = "corrected"
    #: The pupil is not moving after all (``reason``): no reminders any more.
    WITHDRAWN = "withdrawn"


class PupilTransfer(SchoolOwned, Base):
    """A pupil leaving, whose child-protection file must reach the new school's DSL."""

    __tablename__ = "cp_transfer"

    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    #: The pupil's name when the transfer started (the record outlives the account).
    pupil_name: Mapped[str] = mapped_column(String(200))
    destination_name: Mapped[str] = mapped_column(String(200))
    destination_urn: Mapped[str | None] = mapped_column(String(12))
    destination_dsl_name: Mapped[str | None] = mapped_column(String(200))
    destination_dsl_email: Mapped[str | None] = mapped_column(String(254))
    #: The day the school learned of the move (or the pupil's last day): the count starts.
    learned_on: Mapped[date] = mapped_column(Date)
    left_on: Mapped[date | None] = mapped_column(Date)
    #: Five school days after ``learned_on`` (KCSIE part 2).
    due_on: Mapped[date] = mapped_column(Date)
    #: How ``due_on`` was counted: the school's calendar, or weekdays less bank holidays.
    due_basis: Mapped[str] = mapped_column(String(300))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_by: Mapped[str] = mapped_column(String(200))
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))

    entries: Mapped[list[TransferEntry]] = relationship(
        back_populates="transfer", lazy="selectin", order_by="TransferEntry.id"
    )

    def latest(self, kind: TransferEntryKind) -> TransferEntry | None:
        found = [e for e in self.entries if e.kind is kind]
        return found[-1] if found else None

    def current(self, field: str) -> Any:
        """A detail as it stands after the corrections (the newest one naming it)."""
        for entry in reversed(self.entries):
            if entry.kind is TransferEntryKind.CORRECTED and field in (entry.details or {}):
                value = (entry.details or {})[field]
                if field in ("learned_on", "left_on", "due_on") and value is not None:
                    return date.fromisoformat(value)
                return value
        return getattr(self, field)


class TransferEntry(SchoolOwned, Base):
    """Something that happened to a transfer: never edited, never deleted."""

    __tablename__ = "cp_transfer_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("cp_transfer.id"), index=True)
    kind: Mapped[TransferEntryKind] = mapped_column(_enum(TransferEntryKind))
    method: Mapped[TransferMethod | None] = mapped_column(_enum(TransferMethod))
    #: When it was sent, acknowledged or made.
    at: Mapped[datetime | None]
    #: Who sent it (the school's side), or who acknowledged receipt (the new school's).
    by_name: Mapped[str | None] = mapped_column(String(200))
    #: What was sent: one line per concern or paper record (no narratives).
    items: Mapped[list[str] | None] = mapped_column(JSON)
    #: The esafety file's id (EXPORTED; SENT by esafety file), and its sealed copy here.
    bundle_id: Mapped[str | None] = mapped_column(String(64), index=True)
    file_id: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(SealedText())
    reason: Mapped[str | None] = mapped_column(SealedText())
    #: CORRECTED: the details as they now are ({"destination_name": ..., ...}).
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: A SENT or RECEIVED record that this one puts right (the earlier one stays).
    corrects_entry_id: Mapped[int | None] = mapped_column(ForeignKey("cp_transfer_entry.id"))
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    transfer: Mapped[PupilTransfer] = relationship(back_populates="entries")


class TransferImport(SchoolOwned, Base):
    """A child-protection file received from another school and imported: the receipt."""

    __tablename__ = "cp_transfer_import"
    __table_args__ = (UniqueConstraint("school_id", "bundle_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle_id: Mapped[str] = mapped_column(String(64))
    from_school_name: Mapped[str] = mapped_column(String(200))
    from_school_urn: Mapped[str | None] = mapped_column(String(12))
    #: The sending school's transfer number (for the receipt they record).
    sender_transfer_id: Mapped[int | None]
    made_at: Mapped[datetime]
    made_by: Mapped[str] = mapped_column(String(200))
    pupil_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    pupil_created: Mapped[bool] = mapped_column(default=False)
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    imported_by: Mapped[str] = mapped_column(String(200))
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    #: The file's manifest summary: one line per concern (no narratives).
    items: Mapped[list[str]] = mapped_column(JSON)
    attachment_count: Mapped[int] = mapped_column(default=0)

    concerns: Mapped[list[ImportedConcern]] = relationship(
        back_populates="file", lazy="selectin", order_by="ImportedConcern.id"
    )


class ImportedConcern(SchoolOwned, Base):
    """A concern that came in a child-protection file: its number and school there."""

    __tablename__ = "cp_imported_concern"

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("cp_transfer_import.id"), index=True)
    concern_id: Mapped[int] = mapped_column(ForeignKey("concern.id"), unique=True)
    original_id: Mapped[int]
    original_school: Mapped[str] = mapped_column(String(200))

    file: Mapped[TransferImport] = relationship(back_populates="concerns")


# The one append-only guard (esafety.safeguarding.model) covers these tables too.
APPEND_ONLY[PupilTransfer] = frozenset()
APPEND_ONLY[TransferEntry] = frozenset()
APPEND_ONLY[TransferImport] = frozenset()
APPEND_ONLY[ImportedConcern] = frozenset()
