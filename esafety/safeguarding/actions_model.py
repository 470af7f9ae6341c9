"""Actions on a concern: what is to be done, by whom, by when (issue 5 §4 "actions with
owners and due dates").

Append-only like the rest of the record (STANDARDS R2): an action is one
:class:`ConcernAction` row; that it was done (when, by whom, a note) or cancelled (the
reason) is one :class:`ConcernActionEnd` row beside it. Neither is ever edited; the guard
of :mod:`esafety.safeguarding.model` refuses it. What is to be done and the notes may name
a child: sealed (issue 5 §6).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from esafety.db import Base, SchoolOwned, utcnow
from esafety.safeguarding.model import APPEND_ONLY
from esafety.sealing import SealedText

__all__ = ["ActionEnd", "ConcernAction", "ConcernActionEnd"]


class ActionEnd(StrEnum):
    DONE = "done"
    CANCELLED = "cancelled"


class ConcernAction(SchoolOwned, Base):
    """Something a member of staff is to do for a concern, by a date."""

    __tablename__ = "concern_action"

    id: Mapped[int] = mapped_column(primary_key=True)
    concern_id: Mapped[int] = mapped_column(ForeignKey("concern.id"), index=True)
    #: What is to be done (may name a child: sealed).
    what: Mapped[str] = mapped_column(SealedText())
    owner_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    #: The owner's name as it was, so the record outlives their account.
    owner: Mapped[str] = mapped_column(String(200))
    #: The school day it is due by (the end of that day, school time).
    due_on: Mapped[date]
    set_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    set_by: Mapped[str] = mapped_column(String(200))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConcernActionEnd(SchoolOwned, Base):
    """An action done (when, by whom, a note) or cancelled (why): one per action."""

    __tablename__ = "concern_action_end"
    __table_args__ = (UniqueConstraint("action_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("concern_action.id"), index=True)
    outcome: Mapped[ActionEnd] = mapped_column(
        Enum(
            ActionEnd,
            native_enum=False,
            create_constraint=False,
            length=20,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    #: When it was done (or cancelled): may be earlier than when it was recorded.
    at: Mapped[datetime]
    by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    by: Mapped[str] = mapped_column(String(200))
    #: What was done, or why the action was cancelled.
    note: Mapped[str | None] = mapped_column(SealedText())
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


# The one append-only guard (esafety.safeguarding.model) covers these tables too.
APPEND_ONLY[ConcernAction] = frozenset()
APPEND_ONLY[ConcernActionEnd] = frozenset()
