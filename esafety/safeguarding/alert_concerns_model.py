"""Which concern a filter alert became (issue 5 "a filter block of extremist content that
the DSL turns into a concern from the alert list").

A link table, so that neither the alert (filtering) nor the concern (safeguarding) gains a
column for the other; append-only like the concern it points to (STANDARDS R2).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from esafety.db import Base, SchoolOwned, utcnow
from esafety.safeguarding.model import APPEND_ONLY

__all__ = ["ConcernFromAlert"]


class ConcernFromAlert(SchoolOwned, Base):
    """A concern recorded from a filter alert: one concern per alert."""

    __tablename__ = "concern_filter_alert"
    __table_args__ = (UniqueConstraint("alert_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("filter_alert.id"))
    concern_id: Mapped[int] = mapped_column(ForeignKey("concern.id"), index=True)
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


APPEND_ONLY[ConcernFromAlert] = frozenset()
