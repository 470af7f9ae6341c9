"""The DSL's filter alerts: a block in an alerting category, kept until acknowledged.

One row stands for one person (or an unknown device at one address) trying one site in
one set of alerting categories; repeats close together are counted on it
(:mod:`esafety.filtering.alerts`). Reading alerts is audited: they name pupils and what
they tried to reach (KCSIE: the DSL's records).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from esafety.db import Base, SchoolOwned, utcnow

__all__ = ["FilterAlert"]


class FilterAlert(SchoolOwned, Base):
    """A block in a category whose ``alerts_dsl`` is set (issue 4 §8)."""

    __tablename__ = "filter_alert"
    __audit_reads__ = True
    __table_args__ = (Index("ix_filter_alert_open", "school_id", "acknowledged_at", "last_seen"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The person signed in at the address; None for an unknown device (or one since removed).
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"))
    #: The username as logged ("" for an unknown device), kept if the person is removed.
    username: Mapped[str] = mapped_column(String(120), default="")
    client: Mapped[str] = mapped_column(String(64))
    #: The registrable domain (``example.com`` for ``www.example.com``): repeats on any of
    #: its names are one alert.
    site: Mapped[str] = mapped_column(String(253))
    #: The first name asked for.
    name: Mapped[str] = mapped_column(String(2000))
    #: The alerting categories of the block, comma-separated ids in order.
    categories: Mapped[str] = mapped_column(String(400))
    rule: Mapped[str] = mapped_column(String(500), default="")
    policy: Mapped[str] = mapped_column(String(60), default="")
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    count: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("person.id", ondelete="SET NULL")
    )
    acknowledged_by: Mapped[str | None] = mapped_column(String(120))

    @property
    def category_ids(self) -> list[str]:
        return [c for c in self.categories.split(",") if c]
