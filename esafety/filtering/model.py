"""Filtering tables: lists (metadata only), policy assignments, the school's own entries,
subnet mappings and sign-ins (issue 4 §3, §4, §6).

A list's entries are not rows: they live in a file per list (:mod:`esafety.filtering.store`),
and the row here describes the list and the copy on disk.

Lists come in two tables because school scoping (``esafety.db``) applies to
:class:`~esafety.db.SchoolOwned` tables only: an installation-wide list (shared by every
school, such as the IWF list a trust subscribes to once) is a :class:`FilterList`; a list
one school adds for itself is a :class:`SchoolFilterList`, scoped like every school row.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Enum, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from esafety.db import Base, SchoolOwned, utcnow

__all__ = [
    "ClientSignIn",
    "EntryAction",
    "FilterList",
    "ListColumns",
    "PolicyAssignment",
    "SchoolFilterEntry",
    "SchoolFilterList",
    "SignInSource",
    "SubnetMapping",
    "TargetKind",
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


class ListColumns:
    """What every list row says: where it comes from, what it blocks, and its stored copy."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    #: A ``lists.ListFormat`` value.
    format: Mapped[str] = mapped_column(String(20))
    #: A ``categories.Category`` value.
    category: Mapped[str] = mapped_column(String(40))
    #: Illegal-content lists (IWF, CTIRU) are never lifted by anything (issue 4 §3).
    illegal: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(Text, default="")
    #: Where updates are downloaded from; None for a list imported from a file.
    url: Mapped[str | None] = mapped_column(String(2000))
    update_every_hours: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None]
    #: When the stored copy was last replaced by a good one.
    last_good_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    entry_count: Mapped[int] = mapped_column(Integer, default=0)
    problem_count: Mapped[int] = mapped_column(Integer, default=0)
    #: SHA-256 of the stored copy, so a filter node can tell it has the same one.
    sha256: Mapped[str | None] = mapped_column(String(64))

    @property
    def store_key(self) -> str:
        """The stored copy's file name (without suffix) in the list store."""
        raise NotImplementedError


class FilterList(ListColumns, Base):
    """An installation-wide list: every school's filter uses it."""

    __tablename__ = "filter_list"
    __table_args__ = (UniqueConstraint("name"),)

    @property
    def store_key(self) -> str:
        return f"{self.id}"


class SchoolFilterList(ListColumns, SchoolOwned, Base):
    """A list one school added for itself."""

    __tablename__ = "school_filter_list"
    __table_args__ = (UniqueConstraint("school_id", "name"),)

    @property
    def store_key(self) -> str:
        return f"school{self.school_id}-{self.id}"


class TargetKind(StrEnum):
    """Who a policy is assigned to, most specific first (issue 4 §4)."""

    PERSON = "person"
    GROUP = "group"  # a class, teaching group or custom group
    YEAR = "year"
    KEY_STAGE = "key_stage"
    ROLE = "role"


class PolicyAssignment(SchoolOwned, Base):
    """A policy given to a person, group, year group, key stage or role.

    ``target`` is the person's or group's id (as text), a ``YearGroup``, ``KeyStage`` or
    ``Role`` value. 003 §7.1 "Swiggle up to Year 4, safe search from Year 5" is two
    year-group assignments.
    """

    __tablename__ = "policy_assignment"
    __table_args__ = (UniqueConstraint("school_id", "target_kind", "target"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    target_kind: Mapped[TargetKind] = mapped_column(_enum(TargetKind))
    target: Mapped[str] = mapped_column(String(120))
    policy_id: Mapped[str] = mapped_column(String(60))
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)


class EntryAction(StrEnum):
    BLOCK = "block"
    ALLOW = "allow"


class SchoolFilterEntry(SchoolOwned, Base):
    """The school's own block or allow for a host (and subdomains) or a URL prefix."""

    __tablename__ = "school_filter_entry"
    __table_args__ = (UniqueConstraint("school_id", "target", "action"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: A normalised host, or a ``urls.url_key`` prefix (it contains ``/``).
    target: Mapped[str] = mapped_column(String(2000))
    action: Mapped[EntryAction] = mapped_column(_enum(EntryAction))
    reason: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SubnetMapping(SchoolOwned, Base):
    """A network whose devices count as one group or policy (the KS1 iPad network)."""

    __tablename__ = "subnet_mapping"
    __table_args__ = (UniqueConstraint("school_id", "network"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: CIDR in its normal form (``10.1.2.0/24``, ``2001:db8::/64``).
    network: Mapped[str] = mapped_column(String(64))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("group.id", ondelete="CASCADE"))
    policy_id: Mapped[str | None] = mapped_column(String(60))
    note: Mapped[str] = mapped_column(Text, default="")


class SignInSource(StrEnum):
    API = "api"
    RADIUS = "radius"
    PROXY = "proxy"
    MDM = "mdm"


class ClientSignIn(SchoolOwned, Base):
    """A client address in use by a person until ``expires_at`` (issue 4 §6)."""

    __tablename__ = "client_sign_in"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The address in its normal form (IPv4-mapped IPv6 written as IPv4).
    client: Mapped[str] = mapped_column(String(64), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    source: Mapped[SignInSource] = mapped_column(_enum(SignInSource))
    signed_in_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
