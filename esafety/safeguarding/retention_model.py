"""Tables of the retention schedule: the school's periods, legal holds, and the record of
what was deleted (issue 5 §8; STANDARDS R8).

A :class:`DeletionRecord` outlives the concern it records and holds nothing of its
content: the concern's number, its kind, the dates, how many rows went, the rule that
applied, when and by whom. It is never edited (only the list of sealed files still to be
removed from disk empties) and never deleted: the guard at the end of this module refuses.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Integer, String, UniqueConstraint, event, inspect
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column

from esafety.db import Base, SchoolOwned, utcnow
from esafety.errors import PermissionDenied
from esafety.safeguarding.retention_rules import (
    DEFAULT_ALLEGATION_YEARS,
    DEFAULT_PUPIL_YEARS,
    DEFAULT_RETIREMENT_AGE,
)
from esafety.sealing import SealedText

__all__ = [
    "DeletionRecord",
    "LegalHold",
    "RetentionSettings",
]


class RetentionSettings(SchoolOwned, Base):
    """A school's retention periods (one row; none means the defaults)."""

    __tablename__ = "safeguarding_retention"
    __table_args__ = (UniqueConstraint("school_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Years after a pupil's date of birth that a concern about them is kept.
    pupil_years: Mapped[int] = mapped_column(Integer, default=DEFAULT_PUPIL_YEARS)
    #: The age at which an allegation's subject is taken to retire.
    retirement_age: Mapped[int] = mapped_column(Integer, default=DEFAULT_RETIREMENT_AGE)
    #: Years after an allegation is closed that it is kept (when later than retirement).
    allegation_years: Mapped[int] = mapped_column(Integer, default=DEFAULT_ALLEGATION_YEARS)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))


class LegalHold(SchoolOwned, Base):
    """Do not delete: one concern (``concern_id``) or, with none, every concern of the
    school, while an investigation or inquiry may need them (IICSA asked schools not to
    destroy records). Lifted, not deleted; a concern's holds go with it."""

    __tablename__ = "safeguarding_legal_hold"

    id: Mapped[int] = mapped_column(primary_key=True)
    concern_id: Mapped[int | None] = mapped_column(ForeignKey("concern.id"), index=True)
    #: Why (may name an investigation or a person: sealed).
    reason: Mapped[str] = mapped_column(SealedText())
    placed_at: Mapped[datetime] = mapped_column(default=utcnow)
    placed_by: Mapped[str] = mapped_column(String(200))
    lifted_at: Mapped[datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(200))
    lift_reason: Mapped[str | None] = mapped_column(SealedText())

    @property
    def is_active(self) -> bool:
        return self.lifted_at is None


class DeletionRecord(SchoolOwned, Base):
    """A concern the retention schedule deleted: what, when, under which rule, by whom.

    Nothing here names a person or repeats what the concern said (no narrative, no
    names, no dates of birth): a record of deletion must not keep what it deleted.
    """

    __tablename__ = "safeguarding_deletion"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The deleted concern's number (no foreign key: the concern is gone).
    concern_id: Mapped[int] = mapped_column(Integer, index=True)
    #: The kind it had when it was deleted.
    kind: Mapped[str] = mapped_column(String(64))
    recorded_on: Mapped[date] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    #: The day it became due, and the rule that made it so (in words, without names).
    due_on: Mapped[date] = mapped_column(Date)
    rule: Mapped[str] = mapped_column(String(300))
    #: How many rows went, by what they were: {"entries": 3, "steps": 9, ...}.
    removed: Mapped[dict[str, int]] = mapped_column(JSON)
    deleted_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The actor: ``system:job:safeguarding.retention`` or the command line.
    deleted_by: Mapped[str] = mapped_column(String(200))
    #: Sealed attachment files still to remove from disk once the deletion is committed;
    #: emptied when they are gone (a crash in between is finished by the next run).
    files_pending: Mapped[list[str]] = mapped_column(JSON, default=list)


# -- the record of deletion is never edited or deleted ------------------------------

_CHANGEABLE = frozenset({"files_pending"})


@event.listens_for(Session, "before_flush")
def _keep_deletion_records(session: Session, _context: Any, _instances: Any) -> None:
    for obj in session.dirty:
        if not isinstance(obj, DeletionRecord):
            continue
        state = inspect(obj)
        changed = {
            attr.key
            for attr in state.mapper.column_attrs
            if state.attrs[attr.key].history.has_changes()
        }
        if changed - _CHANGEABLE:
            raise PermissionDenied(
                "a record of deletion is never edited (STANDARDS R8; tried to change "
                f"{', '.join(sorted(changed - _CHANGEABLE))})"
            )
    for obj in session.deleted:
        if isinstance(obj, DeletionRecord):
            raise PermissionDenied(
                "a record of deletion is never deleted (STANDARDS R8): it is what shows "
                "that the retention schedule was kept"
            )


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    name = getattr(getattr(state.statement, "table", None), "name", None)
    if name == DeletionRecord.__tablename__:
        raise PermissionDenied(
            "records of deletion (safeguarding_deletion) are never changed or deleted in bulk"
        )
