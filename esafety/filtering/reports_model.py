"""Reports of sites: one that should be blocked, or one that is wrongly blocked.

004 "Managing filtering": unsuitable sites "must be reported to the Online Safety
Coordinator and/or the ICT Technician"; 003 §7.3.1 asks leaders to watch "over blocking".
A report comes from the block page (a pupil or an unknown device, no sign-in) or from a
member of staff's page, keeps what the filter decided at the time, and stays open until
someone who reads reports resolves it with a note (issue 4 §9).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from esafety.db import Base, SchoolOwned, utcnow

__all__ = ["ReportKind", "ReportSource", "ReportStatus", "SiteReport"]


def _enum(cls: type[StrEnum]) -> Enum:
    # Stored as plain strings: values are stable ids, and new ones need no migration.
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda e: [m.value for m in e],
    )


class ReportKind(StrEnum):
    #: Over-blocking (003 §7.3.1): "I think this is wrong".
    WRONGLY_BLOCKED = "wrongly_blocked"
    #: Under-blocking, or a harmful site: "Report this site" (004, 003 §7.3.2).
    SHOULD_BE_BLOCKED = "should_be_blocked"

    @property
    def label(self) -> str:
        return "Wrongly blocked" if self is ReportKind.WRONGLY_BLOCKED else "Should be blocked"


class ReportStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class ReportSource(StrEnum):
    BLOCK_PAGE = "block_page"
    STAFF_PAGE = "staff_page"


class SiteReport(SchoolOwned, Base):
    """One report of a site, with the filter's decision when it was made."""

    __tablename__ = "site_report"
    __table_args__ = (Index("ix_site_report_open", "school_id", "status", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The normalised host (``hostnames.normalise_host``).
    site: Mapped[str] = mapped_column(String(253), index=True)
    #: The address as visited or typed, when there was more than a host (for context).
    url: Mapped[str | None] = mapped_column(String(2000))
    kind: Mapped[ReportKind] = mapped_column(_enum(ReportKind))
    source: Mapped[ReportSource] = mapped_column(_enum(ReportSource))
    comment: Mapped[str] = mapped_column(Text, default="")
    #: Who reported it; None for a device nobody is signed in on.
    reporter_id: Mapped[int | None] = mapped_column(
        ForeignKey("person.id", ondelete="SET NULL"), index=True
    )
    #: The device's address (the block page) or the member of staff's.
    client: Mapped[str | None] = mapped_column(String(64))
    #: What the filter decided then, for that person: ``block``, ``allow`` or ``rewrite``.
    decision_action: Mapped[str] = mapped_column(String(16))
    #: Category ids, comma-separated ("" for none).
    decision_categories: Mapped[str] = mapped_column(String(600), default="")
    #: The rule that decided; for an illegal-content list only a neutral description,
    #: never the listed entry (the IWF's terms keep its list confidential).
    decision_rule: Mapped[str] = mapped_column(String(2000), default="")
    decision_policy: Mapped[str] = mapped_column(String(60), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[ReportStatus] = mapped_column(_enum(ReportStatus), default=ReportStatus.OPEN)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"))
    #: The actor's name as the audit trail writes it (a person or ``system:cli``).
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None]
    #: What was done ("added to the school's block list", "left as it is: ...").
    outcome: Mapped[str | None] = mapped_column(Text)

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(c for c in self.decision_categories.split(",") if c)
