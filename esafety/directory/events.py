"""What the directory tells other slices (through :mod:`esafety.events`, after commit)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from esafety.events import Event

__all__ = [
    "AccessGranted",
    "AccessRevoked",
    "PersonAdded",
    "PersonLeft",
    "PupilFlagRemoved",
    "PupilFlagSet",
    "RoleGranted",
    "RoleRemoved",
    "TechnologyRestrictionAdded",
    "TechnologyRestrictionEnded",
]


@dataclass(frozen=True)
class PersonAdded(Event):
    subject = "directory.person.added"
    school_id: int
    person_id: int
    kind: str


@dataclass(frozen=True)
class PersonLeft(Event):
    """Accounts are disabled; filtering and retention rules may act on it."""

    subject = "directory.person.left"
    school_id: int
    person_id: int
    left_on: date


@dataclass(frozen=True)
class RoleGranted(Event):
    subject = "directory.role.granted"
    school_id: int
    person_id: int
    role: str


@dataclass(frozen=True)
class RoleRemoved(Event):
    subject = "directory.role.removed"
    school_id: int
    person_id: int
    role: str


@dataclass(frozen=True)
class PupilFlagSet(Event):
    subject = "directory.flag.set"
    school_id: int
    person_id: int
    flag: str


@dataclass(frozen=True)
class PupilFlagRemoved(Event):
    subject = "directory.flag.removed"
    school_id: int
    person_id: int
    flag: str


@dataclass(frozen=True)
class TechnologyRestrictionAdded(Event):
    subject = "directory.technology_restriction.added"
    school_id: int
    person_id: int
    review_on: date


@dataclass(frozen=True)
class TechnologyRestrictionEnded(Event):
    subject = "directory.technology_restriction.ended"
    school_id: int
    person_id: int
    ended_on: date


@dataclass(frozen=True)
class AccessGranted(Event):
    subject = "directory.access.granted"
    school_id: int
    person_id: int
    system: str


@dataclass(frozen=True)
class AccessRevoked(Event):
    subject = "directory.access.revoked"
    school_id: int
    person_id: int
    system: str
