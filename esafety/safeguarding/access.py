"""Who may read a concern, and who may act on it (issue 5 §3; STANDARDS R5). Pure.

- The roles that read a kind come from the catalogue (``kinds.reader_roles``): the DSL and
  deputies read concerns about pupils; the online safety lead reads the kinds the school's
  setting names; an allegation about a member of staff is the headteacher's alone, and the
  chair of governors' alone when it is about the headteacher (KCSIE part 4; 003 §10.2).
- ``admin`` reads none (it appears in no kind's readers).
- A member of staff reads the concerns they raised, and nothing else.
- The person a concern is about (linked as having harmed others) never reads it by their
  role, whatever the role: a DSL accused reads nothing of it.
- Anyone else on the staff may "break glass" with a written reason (checked and recorded
  by the service; the DSL is alerted).

Every reader role needs two-step sign-in (000 §4.1): the check at the end of this module
fails at import if the catalogue ever names a reader role that does not, so the web
layer's sign-in (which asks for the second step for every role in ``TWO_STEP_ROLES``)
always stands in front of role-based reading.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from esafety.errors import ConfigError
from esafety.safeguarding.catalogue import kinds
from esafety.safeguarding.kinds import KindInfo, reader_roles
from esafety.security.roles import STAFF_ROLES, TWO_STEP_ROLES, Role

__all__ = [
    "Access",
    "ConcernFacts",
    "Grounds",
    "Linked",
    "Reader",
    "about_headteacher",
    "access",
    "break_glass_problem",
]

#: The parts that make a linked person the one the concern is about (a subject).
_SUBJECT_PARTS = frozenset({"harmed_others"})


class Grounds(StrEnum):
    """Why a person may read a concern."""

    #: Their role reads this kind (DSL, deputy, headteacher, ...): they may also act on it.
    ROLE = "role"
    #: They raised it.
    RAISED = "raised"
    #: A named system actor (the command line, a scheduled job) on the server's authority.
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Reader:
    person_id: int | None
    roles: frozenset[str]


@dataclass(frozen=True, slots=True)
class Linked:
    """A person linked to a concern: their part, and the roles they hold (for the school's
    own people; an outside adult has no ``person_id`` and no roles)."""

    person_id: int | None
    part: str
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ConcernFacts:
    """What a decision about reading needs to know of a concern."""

    kind: KindInfo
    raised_by_id: int | None
    linked: tuple[Linked, ...]


@dataclass(frozen=True, slots=True)
class Access:
    grounds: Grounds | None
    #: The role that gives access (for ROLE), for the audit trail.
    role: Role | None = None

    @property
    def can_read(self) -> bool:
        return self.grounds is not None

    @property
    def can_act(self) -> bool:
        """Record steps, change kind, date or people, close: the concern's readers by role."""
        return self.grounds in (Grounds.ROLE, Grounds.SYSTEM)

    @property
    def why(self) -> str:
        if self.grounds is Grounds.ROLE and self.role is not None:
            return f"reads this kind as {self.role.label}"
        if self.grounds is Grounds.RAISED:
            return "raised it"
        if self.grounds is Grounds.SYSTEM:
            return "system"
        return "may not read it"


NO_ACCESS = Access(None)


def about_headteacher(facts: ConcernFacts) -> bool:
    """The concern is about the headteacher: a linked subject holds the role."""
    return any(
        person.part in _SUBJECT_PARTS and Role.HEADTEACHER in person.roles
        for person in facts.linked
    )


def _is_subject(reader: Reader, facts: ConcernFacts) -> bool:
    return reader.person_id is not None and any(
        person.person_id == reader.person_id and person.part in _SUBJECT_PARTS
        for person in facts.linked
    )


def access(
    reader: Reader, facts: ConcernFacts, *, online_safety_kinds: Collection[str] | None = None
) -> Access:
    """May ``reader`` read this concern, and on what grounds."""
    if reader.person_id is None:
        return Access(Grounds.SYSTEM)
    if not _is_subject(reader, facts):
        readers = reader_roles(
            facts.kind,
            about_headteacher=about_headteacher(facts),
            online_safety_kinds=online_safety_kinds,
        )
        # The most senior role first, so the audit trail names it.
        for role in sorted(readers, key=_seniority):
            if role in reader.roles:
                return Access(Grounds.ROLE, role)
    if reader.person_id is not None and reader.person_id == facts.raised_by_id:
        return Access(Grounds.RAISED)
    return NO_ACCESS


def break_glass_problem(reader: Reader, facts: ConcernFacts) -> str | None:
    """Why ``reader`` may not break glass on this concern, or None when they may."""
    if reader.person_id is None:
        return "only a member of staff, signed in as themself, can break glass"
    if not any(role in STAFF_ROLES for role in reader.roles):
        return "only members of staff can break glass (ask the DSL)"
    if _is_subject(reader, facts):
        return "this concern is about you: you cannot read it"
    return None


_ORDER = (
    Role.DSL,
    Role.DEPUTY_DSL,
    Role.HEADTEACHER,
    Role.CHAIR_OF_GOVERNORS,
    Role.ONLINE_SAFETY_LEAD,
)


def _seniority(role: Role) -> int:
    return _ORDER.index(role) if role in _ORDER else len(_ORDER)


def all_reader_roles(every: Iterable[KindInfo] | None = None) -> frozenset[Role]:
    """Every role that reads some kind by role (the online safety lead included)."""
    found: set[Role] = {Role.ONLINE_SAFETY_LEAD}
    for info in every if every is not None else kinds():
        found |= set(info.readers) | set(info.readers_when_about_headteacher)
    return frozenset(found)


def _check_two_step() -> None:
    missing = all_reader_roles() - TWO_STEP_ROLES
    if missing:
        raise ConfigError(
            "roles that read safeguarding records must sign in with two steps (000 §4.1): "
            f"add {', '.join(sorted(missing))} to TWO_STEP_ROLES"
        )
    if Role.ADMIN in all_reader_roles():
        raise ConfigError("the admin role reads no safeguarding record (issue 5 §3)")


_check_two_step()
