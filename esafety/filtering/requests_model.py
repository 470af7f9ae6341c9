"""Tables of what the school decides about its filter beyond the lists: unblock requests
and the exceptions they become, the school's filter settings, and its own policies.

An unblock request is asked for by a member of staff for a lesson, approved or refused by
the school's approver (headteacher by default, 000 §5 "via head permission"), and, once
approved, is an exception for its groups and times that lapses by itself (000 "returned to
high-level security as soon as possible"). Every row change is in the audit trail, which
the filter change log reads (002 §7.3, 003 §7.3.1).
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
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from esafety.db import Base, SchoolOwned, utcnow
from esafety.security.roles import Role

__all__ = [
    "CustomPolicy",
    "SchoolFilterSettings",
    "UnblockRequest",
    "UnblockState",
]


def _enum(cls: type[StrEnum]) -> Enum:
    # Stored as plain strings: values are stable ids, and new ones need no migration.
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda e: [m.value for m in e],
    )


class UnblockState(StrEnum):
    """requested → approved | refused | withdrawn; approved → active → lapsed | revoked."""

    REQUESTED = "requested"
    APPROVED = "approved"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    ACTIVE = "active"
    LAPSED = "lapsed"
    REVOKED = "revoked"

    @property
    def label(self) -> str:
        return _STATE_LABELS[self]

    @property
    def is_exception(self) -> bool:
        """Approved and not yet over: the filter applies it within its times."""
        return self in (UnblockState.APPROVED, UnblockState.ACTIVE)


_STATE_LABELS = {
    UnblockState.REQUESTED: "Waiting for approval",
    UnblockState.APPROVED: "Approved (starts later)",
    UnblockState.REFUSED: "Refused",
    UnblockState.WITHDRAWN: "Withdrawn",
    UnblockState.ACTIVE: "Active now",
    UnblockState.LAPSED: "Ended",
    UnblockState.REVOKED: "Revoked",
}


class UnblockRequest(SchoolOwned, Base):
    """A request to reach a site for some groups for a time, and the exception it becomes."""

    __tablename__ = "unblock_request"
    __table_args__ = (Index("ix_unblock_request_state", "school_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: A normalised host (and its subdomains) or a ``urls.url_key`` prefix (contains ``/``).
    target: Mapped[str] = mapped_column(String(2000))
    #: The site as the member of staff wrote it.
    site: Mapped[str] = mapped_column(String(2000))
    #: The educational reason, in full sentences (001 "auditable, with clear reasons").
    reason: Mapped[str] = mapped_column(Text)
    #: Who it is for, as policies are assigned: ``[{"kind": "group"|"year"|"key_stage"|
    #: "role", "target": "12"|"year5"|"ks2"|"teacher", "label": "Oak"}]``.
    groups: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    state: Mapped[UnblockState] = mapped_column(_enum(UnblockState), default=UnblockState.REQUESTED)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The approver's risk assessment, required to approve or refuse (002 §7.3).
    risk_assessment: Mapped[str | None] = mapped_column(Text)
    decision_note: Mapped[str | None] = mapped_column(Text)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
    warned_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    #: When it lapsed, was revoked or withdrawn.
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(200))
    end_reason: Mapped[str | None] = mapped_column(Text)


class SchoolFilterSettings(SchoolOwned, Base):
    """One row per school; a school without one has the defaults."""

    __tablename__ = "school_filter_settings"
    __table_args__ = (UniqueConstraint("school_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Who approves unblock requests (000 §5: the headteacher).
    approver_role: Mapped[Role] = mapped_column(_enum(Role), default=Role.HEADTEACHER)
    #: How long before an exception starts its pre-warning goes out (000 "pre-warning").
    warn_minutes: Mapped[int] = mapped_column(Integer, default=30)
    #: The longest an exception may last.
    max_days: Mapped[int] = mapped_column(Integer, default=14)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200), default="")


class CustomPolicy(SchoolOwned, Base):
    """A school's own policy: a built-in one with changes (issue 4 §4 "plus custom ones").

    It follows its built-in: categories the catalogue adds later are blocked by it too
    when the built-in blocks them, unless this policy allows them.
    """

    __tablename__ = "custom_policy"
    __table_args__ = (UniqueConstraint("school_id", "policy_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The id used in assignments and on the command line, such as ``year3-4``.
    policy_id: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(120))
    based_on: Mapped[str] = mapped_column(String(60))
    #: Categories blocked on top of the built-in's, and those it blocks that are allowed.
    block: Mapped[list[str]] = mapped_column(JSON, default=list)
    allow: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: None: as the built-in.
    safe_search: Mapped[str | None] = mapped_column(String(20))
    youtube: Mapped[str | None] = mapped_column(String(20))
    block_bypass: Mapped[bool | None] = mapped_column(Boolean)
    default: Mapped[str | None] = mapped_column(String(10))
    #: Times of day: ``[{"action": "allow", "categories": ["games"], "start": "12:00",
    #: "end": "13:00", "days": [0, 1, 2, 3, 4]}]`` in the school's time zone.
    times: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
