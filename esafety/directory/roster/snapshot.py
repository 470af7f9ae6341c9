"""What a roster says about a school, as plain data: both formats read into this.

People, classes, enrolments and parent links are named by the roster's own ids
(``sourced_id``: OneRoster's sourcedId; for an MIS export the admission number or UPN).
Every item keeps where it came from (:class:`Where`) so that later checks can point at
the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from esafety.directory.years import YearGroup
from esafety.security.roles import Role

__all__ = [
    "Agent",
    "Kind",
    "Mode",
    "RosterEnrolment",
    "RosterGroup",
    "RosterParentLink",
    "RosterPerson",
    "RosterSnapshot",
    "Where",
]


class Mode(StrEnum):
    #: The whole school: people missing from it leave.
    BULK = "bulk"
    #: Only what it names changes.
    DELTA = "delta"


class Kind(StrEnum):
    """The kinds of person a roster holds (the directory's PersonKind values)."""

    PUPIL = "pupil"
    STAFF = "staff"
    PARENT = "parent"


@dataclass(frozen=True)
class Where:
    file: str
    line: int


@dataclass
class RosterPerson:
    sourced_id: str
    kind: Kind
    role: Role
    legal_first_name: str
    legal_last_name: str
    where: Where
    preferred_first_name: str | None = None
    preferred_last_name: str | None = None
    upn: str | None = None
    year_group: YearGroup | None = None
    email: str | None = None
    phone: str | None = None
    #: The username the roster gives (OneRoster ``username``), lower case.
    username: str | None = None
    #: For parents: parent, guardian or relative (OneRoster) or the MIS relationship.
    relationship: str | None = None
    #: The optional fields this roster states; the others are left as they are.
    provided: frozenset[str] = frozenset()

    @property
    def first_name(self) -> str:
        return self.preferred_first_name or self.legal_first_name

    @property
    def last_name(self) -> str:
        return self.preferred_last_name or self.legal_last_name


class GroupType(StrEnum):
    """The directory's GroupKind values a roster creates."""

    #: A registration group (OneRoster homeroom; the MIS "Reg Group").
    CLASS = "class"
    #: A timetabled class (OneRoster scheduled).
    TEACHING = "teaching"


@dataclass
class RosterGroup:
    sourced_id: str
    kind: GroupType
    name: str
    where: Where
    year_group: YearGroup | None = None


@dataclass(frozen=True)
class RosterEnrolment:
    """A person in a class. ``active`` is False for a delta's ``tobedeleted`` row."""

    group_id: str
    person_id: str
    #: The membership role: pupil, teacher or teaching_assistant.
    role: str
    where: Where
    active: bool = True


@dataclass(frozen=True)
class Agent:
    """OneRoster ``agentSourcedIds``: the person on this row names ``agent_id``."""

    person_id: str
    agent_id: str
    #: 1 for the first id in the list (a pupil's first contact).
    position: int
    where: Where


@dataclass(frozen=True)
class RosterParentLink:
    parent_id: str
    child_id: str
    relationship: str
    parental_responsibility: bool
    priority: int
    where: Where


@dataclass
class RosterSnapshot:
    format: str
    mode: Mode
    people: dict[str, RosterPerson] = field(default_factory=dict)
    groups: dict[str, RosterGroup] = field(default_factory=dict)
    enrolments: list[RosterEnrolment] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)
    parent_links: list[RosterParentLink] = field(default_factory=list)
    #: Dates of birth (OneRoster demographics), by person; may name people not in users.csv.
    birth_dates: dict[str, tuple[date, Where]] = field(default_factory=dict)
    #: People a delta marks ``tobedeleted``: they become leavers.
    leaving: dict[str, Where] = field(default_factory=dict)
    #: Classes a delta marks ``tobedeleted``: they are archived.
    closing: dict[str, Where] = field(default_factory=dict)
    #: Ids seen on rows that had problems: references to them are not reported again.
    unusable: set[str] = field(default_factory=set)
    #: Bulk: the kinds of person this roster covers (only these can become leavers).
    covers: frozenset[Kind] = frozenset(Kind)
    #: Whether the roster states every pupil's registration group (bulk, and MIS).
    states_registration: bool = True
    #: Whether each person's classes are stated in full (OneRoster bulk).
    states_memberships: bool = False
    #: People whose parent links are stated in full: other roster links of theirs go.
    link_scope: set[str] = field(default_factory=set)

    @property
    def rows(self) -> int:
        return len(self.people) + len(self.groups) + len(self.enrolments) + len(self.birth_dates)
