"""Directory tables: schools, people, roles, groups, parents, flags, registers, calendar."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Date, Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from esafety.db import Base, SchoolOwned, utcnow
from esafety.directory.years import KeyStage, YearGroup, key_stage_of
from esafety.security.roles import Role

__all__ = [
    "AccessGrant",
    "Closure",
    "Group",
    "GroupKind",
    "GroupMembership",
    "ParentLink",
    "Person",
    "PersonKind",
    "PersonRole",
    "PupilFlag",
    "PupilFlagKind",
    "RosterImport",
    "School",
    "Source",
    "TechnologyRestriction",
    "Term",
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


class Source(StrEnum):
    """Where a row came from: a roster import may replace only what it created."""

    ROSTER = "roster"
    MANUAL = "manual"


class PersonKind(StrEnum):
    PUPIL = "pupil"
    STAFF = "staff"
    GOVERNOR = "governor"
    VOLUNTEER = "volunteer"
    VISITOR = "visitor"
    PARENT = "parent"


class GroupKind(StrEnum):
    CLASS = "class"  # a registration group (form, class): each pupil is in at most one
    TEACHING = "teaching"  # a taught class or set from a timetable
    YEAR = "year"
    KEY_STAGE = "key_stage"
    CUSTOM = "custom"


class PupilFlagKind(StrEnum):
    SEND = "send"
    LOOKED_AFTER = "looked_after"
    PREVIOUSLY_LOOKED_AFTER = "previously_looked_after"
    CHILD_PROTECTION_PLAN = "child_protection_plan"
    CHILD_IN_NEED = "child_in_need"
    YOUNG_CARER = "young_carer"
    EAL = "eal"
    OTHER_VULNERABILITY = "other_vulnerability"

    @property
    def label(self) -> str:
        return {
            "send": "SEND",
            "looked_after": "Looked-after child",
            "previously_looked_after": "Previously looked-after",
            "child_protection_plan": "Child protection plan",
            "child_in_need": "Child in need",
            "young_carer": "Young carer",
            "eal": "English as an additional language",
            "other_vulnerability": "Other vulnerability",
        }[self.value]


class School(Base):
    __tablename__ = "school"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    #: The DfE unique reference number, when known.
    urn: Mapped[str | None] = mapped_column(String(12))
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/London")
    # The school's password rules (001: 30-day change); None means the installation default.
    password_min_length: Mapped[int | None]
    password_max_age_days: Mapped[int | None]
    password_history: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Group(SchoolOwned, Base):
    __tablename__ = "group"
    __table_args__ = (
        UniqueConstraint("school_id", "kind", "name"),
        Index("ix_group_sourced", "school_id", "sourced_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[GroupKind] = mapped_column(_enum(GroupKind))
    name: Mapped[str] = mapped_column(String(120))
    #: The roster's id for this class (OneRoster sourcedId), if it came from one.
    sourced_id: Mapped[str | None] = mapped_column(String(120))
    year_group: Mapped[YearGroup | None] = mapped_column(_enum(YearGroup))
    key_stage: Mapped[KeyStage | None] = mapped_column(_enum(KeyStage))
    source: Mapped[Source] = mapped_column(_enum(Source), default=Source.MANUAL)
    archived_on: Mapped[date | None] = mapped_column(Date)


class Person(SchoolOwned, Base):
    __tablename__ = "person"
    __table_args__ = (
        UniqueConstraint("school_id", "sourced_id"),
        Index("ix_person_upn", "school_id", "upn"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[PersonKind] = mapped_column(_enum(PersonKind))
    #: Unique across the installation: it is what people sign in with.
    username: Mapped[str] = mapped_column(String(120), unique=True)
    #: The roster's id (OneRoster sourcedId, or the MIS admission number/UPN).
    sourced_id: Mapped[str | None] = mapped_column(String(120))
    legal_first_name: Mapped[str] = mapped_column(String(100))
    legal_last_name: Mapped[str] = mapped_column(String(100))
    preferred_first_name: Mapped[str | None] = mapped_column(String(100))
    preferred_last_name: Mapped[str | None] = mapped_column(String(100))
    #: Pupils' and staff's (allegation retention needs staff dates of birth too).
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    #: Unique pupil number (DfE), pupils only.
    upn: Mapped[str | None] = mapped_column(String(13))
    year_group: Mapped[YearGroup | None] = mapped_column(_enum(YearGroup))
    registration_group_id: Mapped[int | None] = mapped_column(ForeignKey("group.id"))
    job_title: Mapped[str | None] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    #: Set when the person leaves: their account is disabled; retention counts from here.
    left_on: Mapped[date | None] = mapped_column(Date)
    source: Mapped[Source] = mapped_column(_enum(Source), default=Source.MANUAL)

    roles: Mapped[list[PersonRole]] = relationship(
        back_populates="person", cascade="all, delete-orphan", lazy="selectin"
    )
    registration_group: Mapped[Group | None] = relationship(lazy="joined")

    @property
    def first_name(self) -> str:
        return self.preferred_first_name or self.legal_first_name

    @property
    def last_name(self) -> str:
        return self.preferred_last_name or self.legal_last_name

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def key_stage(self) -> KeyStage | None:
        return key_stage_of(self.year_group) if self.year_group else None

    @property
    def role_ids(self) -> frozenset[Role]:
        return frozenset(r.role for r in self.roles)

    @property
    def is_leaver(self) -> bool:
        return self.left_on is not None


class PersonRole(SchoolOwned, Base):
    __tablename__ = "person_role"

    person_id: Mapped[int] = mapped_column(
        ForeignKey("person.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[Role] = mapped_column(_enum(Role), primary_key=True)
    #: Roles given by hand (such as dsl) survive a roster re-import.
    source: Mapped[Source] = mapped_column(_enum(Source), default=Source.MANUAL)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)

    person: Mapped[Person] = relationship(back_populates="roles")


class GroupMembership(SchoolOwned, Base):
    __tablename__ = "group_membership"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("group.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[int] = mapped_column(
        ForeignKey("person.id", ondelete="CASCADE"), primary_key=True
    )
    #: "pupil" or "teacher" (OneRoster enrolment role) or "member".
    role: Mapped[str] = mapped_column(String(20), default="member")
    source: Mapped[Source] = mapped_column(_enum(Source), default=Source.MANUAL)


class ParentLink(SchoolOwned, Base):
    __tablename__ = "parent_link"

    parent_id: Mapped[int] = mapped_column(
        ForeignKey("person.id", ondelete="CASCADE"), primary_key=True
    )
    child_id: Mapped[int] = mapped_column(
        ForeignKey("person.id", ondelete="CASCADE"), primary_key=True
    )
    relationship_to_child: Mapped[str] = mapped_column(String(40), default="parent")
    parental_responsibility: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Contact order (1 = first contact).
    priority: Mapped[int] = mapped_column(default=1)
    source: Mapped[Source] = mapped_column(_enum(Source), default=Source.MANUAL)


class PupilFlag(SchoolOwned, Base):
    """A vulnerability the DSL records on a pupil; filtering and monitoring rules may use it."""

    __tablename__ = "pupil_flag"
    __audit_reads__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    flag: Mapped[PupilFlagKind] = mapped_column(_enum(PupilFlagKind))
    note: Mapped[str | None] = mapped_column(Text)
    set_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]


class TechnologyRestriction(SchoolOwned, Base):
    """A child who may not use technology, with why and when to review (000 §4.5)."""

    __tablename__ = "technology_restriction"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    review_on: Mapped[date] = mapped_column(Date)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_on: Mapped[date | None] = mapped_column(Date)


class AccessGrant(SchoolOwned, Base):
    """The written register of who was granted access to which system (003 §7.2)."""

    __tablename__ = "access_grant"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    system: Mapped[str] = mapped_column(String(120))
    granted_on: Mapped[date] = mapped_column(Date)
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    revoked_on: Mapped[date | None] = mapped_column(Date)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    note: Mapped[str | None] = mapped_column(Text)


class Term(SchoolOwned, Base):
    __tablename__ = "term"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)


class Closure(SchoolOwned, Base):
    """Days inside a term when the school is closed (INSET, bank holidays, snow)."""

    __tablename__ = "closure"

    id: Mapped[int] = mapped_column(primary_key=True)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(120))


class RosterImport(SchoolOwned, Base):
    __tablename__ = "roster_import"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    path: Mapped[str] = mapped_column(String(500))
    format: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(10))
    added: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    left: Mapped[int] = mapped_column(default=0)
