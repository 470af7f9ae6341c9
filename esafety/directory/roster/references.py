"""What a roster's rows refer to: classes, people, agents; where each pupil is registered.

A bulk roster must name everything it refers to; a delta may also refer to people and
classes the school already holds (``Known``). Pure: the caller passes what is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from esafety.directory.roster.problems import Problems
from esafety.directory.roster.snapshot import (
    GroupType,
    Kind,
    RosterEnrolment,
    RosterParentLink,
    RosterSnapshot,
    Where,
)

__all__ = ["Known", "Placements", "place"]

_KIND_WORDS = {Kind.PUPIL: "a student", Kind.STAFF: "staff", Kind.PARENT: "a parent"}


@dataclass(frozen=True)
class Known:
    """People and classes the school already holds from earlier imports, by roster id."""

    people: Mapping[str, Kind] = field(default_factory=dict)
    groups: Mapping[str, GroupType] = field(default_factory=dict)


@dataclass
class Placements:
    #: Pupil → registration group (None: in none). Bulk: every pupil; delta: those named.
    registration: dict[str, str | None] = field(default_factory=dict)
    #: Delta: pupil → registration group they leave (if they are still in it).
    unregistered: dict[str, str] = field(default_factory=dict)
    #: (class, person) → membership role, for every membership the roster states.
    memberships: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Delta: memberships to end.
    ended: set[tuple[str, str]] = field(default_factory=set)
    #: (parent, child) → link.
    links: dict[tuple[str, str], RosterParentLink] = field(default_factory=dict)


def place(snapshot: RosterSnapshot, known: Known, problems: Problems) -> Placements:
    """Resolve every reference, reporting unknown ones; say where everyone belongs."""
    resolver = _Resolver(snapshot, known, problems)
    placements = Placements()
    if snapshot.states_registration:
        placements.registration = {
            sid: None for sid, p in snapshot.people.items() if p.kind is Kind.PUPIL
        }
    homeroom: dict[str, tuple[str, Where]] = {}
    for enrolment in snapshot.enrolments:
        resolved = resolver.enrolment(enrolment)
        if resolved is None:
            continue
        group_kind, person_kind = resolved
        key = (enrolment.group_id, enrolment.person_id)
        is_registration = group_kind is GroupType.CLASS and person_kind is Kind.PUPIL
        if not enrolment.active:
            if is_registration:
                placements.unregistered[enrolment.person_id] = enrolment.group_id
            else:
                placements.ended.add(key)
            continue
        if not is_registration:
            placements.memberships[key] = enrolment.role
            continue
        first = homeroom.get(enrolment.person_id)
        if first is not None and first[0] != enrolment.group_id:
            problems.add(
                enrolment.where.file,
                enrolment.where.line,
                "classSourcedId",
                f"pupil {enrolment.person_id!r} is in two registration groups: "
                f"{first[0]!r} (line {first[1].line}) and {enrolment.group_id!r}",
                "enrol each pupil in one homeroom class; use scheduled classes for the others",
            )
            continue
        homeroom[enrolment.person_id] = (enrolment.group_id, enrolment.where)
        placements.registration[enrolment.person_id] = enrolment.group_id
    placements.links = resolver.links()
    resolver.birth_dates()
    return placements


class _Resolver:
    def __init__(self, snapshot: RosterSnapshot, known: Known, problems: Problems) -> None:
        self.snapshot = snapshot
        self.known = known
        self.problems = problems

    def person_kind(self, sourced_id: str) -> Kind | None:
        person = self.snapshot.people.get(sourced_id)
        return person.kind if person is not None else self.known.people.get(sourced_id)

    def _skip(self, sourced_id: str) -> bool:
        """Refers to a row that had its own problem, or that is being deleted."""
        s = self.snapshot
        return sourced_id in s.unusable or sourced_id in s.leaving or sourced_id in s.closing

    def enrolment(self, enrolment: RosterEnrolment) -> tuple[GroupType, Kind] | None:
        group = self.snapshot.groups.get(enrolment.group_id)
        group_kind = group.kind if group is not None else self.known.groups.get(enrolment.group_id)
        person_kind = self.person_kind(enrolment.person_id)
        where = enrolment.where
        if group_kind is None and not self._skip(enrolment.group_id):
            self.problems.add(
                where.file,
                where.line,
                "classSourcedId",
                f"unknown class {enrolment.group_id!r}",
                "use a sourcedId from classes.csv (or add the class there)",
            )
        if person_kind is None and not self._skip(enrolment.person_id):
            self.problems.add(
                where.file,
                where.line,
                "userSourcedId",
                f"unknown user {enrolment.person_id!r}",
                "use a sourcedId from users.csv (or add the person there)",
            )
        if group_kind is None or person_kind is None:
            return None
        return group_kind, person_kind

    def links(self) -> dict[tuple[str, str], RosterParentLink]:
        links = {(link.parent_id, link.child_id): link for link in self.snapshot.parent_links}
        from_child: set[tuple[str, str]] = set()
        for agent in self.snapshot.agents:
            own = self.snapshot.people[agent.person_id].kind
            other = self.person_kind(agent.agent_id)
            where = agent.where
            if other is None:
                if not self._skip(agent.agent_id):
                    self.problems.add(
                        where.file,
                        where.line,
                        "agentSourcedIds",
                        f"unknown user {agent.agent_id!r}",
                        "use a sourcedId from users.csv (or add the parent or pupil there)",
                    )
                continue
            pair = {own, other}
            if pair != {Kind.PUPIL, Kind.PARENT}:
                self.problems.add(
                    where.file,
                    where.line,
                    "agentSourcedIds",
                    f"{agent.agent_id!r} is {_KIND_WORDS[other]}; agents link a student "
                    f"with a parent, guardian or relative, and this row is {_KIND_WORDS[own]}",
                    "list a student's parents (or a parent's children) in agentSourcedIds",
                )
                continue
            parent_id, child_id = (
                (agent.person_id, agent.agent_id)
                if own is Kind.PARENT
                else (agent.agent_id, agent.person_id)
            )
            key = (parent_id, child_id)
            # The order of a pupil's agents is the order of their contacts.
            priority = agent.position if own is Kind.PUPIL else 1
            if key in from_child and own is Kind.PARENT:
                continue
            parent = self.snapshot.people.get(parent_id)
            relationship = (parent.relationship if parent else None) or "parent"
            links[key] = RosterParentLink(
                parent_id,
                child_id,
                relationship,
                relationship != "relative",
                priority,
                where,
            )
            if own is Kind.PUPIL:
                from_child.add(key)
        return links

    def birth_dates(self) -> None:
        for sourced_id, (_, where) in self.snapshot.birth_dates.items():
            if self.person_kind(sourced_id) is None and not self._skip(sourced_id):
                self.problems.add(
                    where.file,
                    where.line,
                    "sourcedId",
                    f"unknown user {sourced_id!r}",
                    "demographics rows use the person's sourcedId from users.csv",
                )
