"""The difference between a roster and what the school holds: what to add, change, end.

Computed in memory from :class:`Existing` before anything is written, so that problems
that need the database (a username another school uses) are found with the others, and
so that a roster that changes nothing writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from esafety.directory.model import (
    Group,
    GroupKind,
    GroupMembership,
    ParentLink,
    Person,
    PersonKind,
    PersonRole,
    Source,
)
from esafety.directory.roster.existing import Existing
from esafety.directory.roster.problems import Problems
from esafety.directory.roster.references import Placements
from esafety.directory.roster.snapshot import (
    GroupType,
    Mode,
    RosterGroup,
    RosterParentLink,
    RosterPerson,
    RosterSnapshot,
)
from esafety.directory.usernames import unique_username
from esafety.directory.years import key_stage_of
from esafety.security.roles import Role

__all__ = ["NewGroup", "Plan", "plan_changes"]


@dataclass(frozen=True)
class NewGroup:
    """A class this import creates; its id is known only once it is written."""

    sourced_id: str


@dataclass
class Plan:
    new_groups: list[RosterGroup] = field(default_factory=list)
    group_changes: list[tuple[Group, dict[str, Any]]] = field(default_factory=list)
    archived_groups: list[Group] = field(default_factory=list)
    #: New people with the username chosen for each, and their fields.
    new_people: list[tuple[RosterPerson, dict[str, Any]]] = field(default_factory=list)
    person_changes: list[tuple[Person, dict[str, Any]]] = field(default_factory=list)
    leavers: list[Person] = field(default_factory=list)
    new_roles: list[tuple[str, Role]] = field(default_factory=list)
    ended_roles: list[PersonRole] = field(default_factory=list)
    new_memberships: list[tuple[str, str, str]] = field(default_factory=list)
    membership_changes: list[tuple[GroupMembership, str]] = field(default_factory=list)
    ended_memberships: list[GroupMembership] = field(default_factory=list)
    new_links: list[RosterParentLink] = field(default_factory=list)
    link_changes: list[tuple[ParentLink, dict[str, Any]]] = field(default_factory=list)
    ended_links: list[ParentLink] = field(default_factory=list)
    #: Roster id → the person it names (None: a new person).
    people: dict[str, Person | None] = field(default_factory=dict)
    #: Roster id → the class it names (None: a new class).
    groups: dict[str, Group | None] = field(default_factory=dict)
    updated: set[str] = field(default_factory=set)
    unchanged: int = 0

    @property
    def writes(self) -> int:
        return sum(
            len(items)
            for items in (
                self.new_groups,
                self.group_changes,
                self.archived_groups,
                self.new_people,
                self.person_changes,
                self.leavers,
                self.new_roles,
                self.ended_roles,
                self.new_memberships,
                self.membership_changes,
                self.ended_memberships,
                self.new_links,
                self.link_changes,
                self.ended_links,
            )
        )


def plan_changes(
    snapshot: RosterSnapshot,
    placements: Placements,
    existing: Existing,
    problems: Problems,
    *,
    today: date,
) -> Plan:
    plan = Plan()
    _GroupPlanner(snapshot, existing, plan, today).run()
    _PeoplePlanner(snapshot, placements, existing, plan, problems).run()
    _plan_roles(snapshot, existing, plan)
    _plan_memberships(snapshot, placements, existing, plan)
    _plan_links(snapshot, placements, existing, plan)
    return plan


def _changes(row: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in wanted.items() if getattr(row, key) != value}


# -- classes ----------------------------------------------------------------------------


class _GroupPlanner:
    def __init__(
        self, snapshot: RosterSnapshot, existing: Existing, plan: Plan, today: date
    ) -> None:
        self.snapshot, self.existing, self.plan, self.today = snapshot, existing, plan, today
        self.names: dict[tuple[GroupKind, str], object] = {
            (g.kind, g.name.lower()): g for g in existing.groups
        }

    def run(self) -> None:
        for roster_group in self.snapshot.groups.values():
            self.plan.groups[roster_group.sourced_id] = self._match(roster_group)
        covered = {GroupKind(kind.value) for kind in self._kinds_covered()}
        closing: list[Group] = []
        if self.snapshot.mode is Mode.BULK:
            closing = [
                g
                for g in self.existing.groups
                if g.source is Source.ROSTER
                and g.kind in covered
                and g.sourced_id not in self.snapshot.groups
            ]
        else:
            closing = [
                g
                for sid in self.snapshot.closing
                if (g := self.existing.groups_by_sourced_id.get(sid)) is not None
            ]
        self.plan.archived_groups = [g for g in closing if g.archived_on is None]

    def _kinds_covered(self) -> set[GroupType]:
        # An MIS export names registration groups only; OneRoster names every class.
        return {GroupType.CLASS} if self.snapshot.format == "mis" else set(GroupType)

    def _match(self, roster_group: RosterGroup) -> Group | None:
        kind = GroupKind(roster_group.kind.value)
        group = self.existing.groups_by_sourced_id.get(roster_group.sourced_id)
        if group is None:
            # A class made by hand with the same name becomes the roster's class.
            same_name = self.names.get((kind, roster_group.name.lower()))
            if isinstance(same_name, Group) and same_name.sourced_id is None:
                group = same_name
        name = self._free_name(kind, roster_group, group)
        wanted: dict[str, Any] = {
            "kind": kind,
            "name": name,
            "sourced_id": roster_group.sourced_id,
            "year_group": roster_group.year_group,
            "key_stage": key_stage_of(roster_group.year_group) if roster_group.year_group else None,
            "archived_on": None,
        }
        if group is None:
            roster_group.name = name
            self.plan.new_groups.append(roster_group)
            self.names[(kind, name.lower())] = roster_group
            return None
        changes = _changes(group, wanted)
        if changes:
            self.plan.group_changes.append((group, changes))
            self.names[(kind, name.lower())] = group
        return group

    def _free_name(self, kind: GroupKind, roster_group: RosterGroup, group: Group | None) -> str:
        """The roster's name, or with its id added if another class already has it."""
        name = roster_group.name
        holder = self.names.get((kind, name.lower()))
        if holder is None or holder is group:
            return name
        return f"{name[: max(1, 116 - len(roster_group.sourced_id))]} ({roster_group.sourced_id})"[
            :120
        ]


# -- people -----------------------------------------------------------------------------


class _PeoplePlanner:
    def __init__(
        self,
        snapshot: RosterSnapshot,
        placements: Placements,
        existing: Existing,
        plan: Plan,
        problems: Problems,
    ) -> None:
        self.snapshot, self.placements, self.existing = snapshot, placements, existing
        self.plan, self.problems = plan, problems
        self.assigned: set[str] = set()
        # Usernames the roster gives are kept for their people, never generated for others.
        self.reserved = {p.username for p in snapshot.people.values() if p.username}

    def run(self) -> None:
        matched: set[int] = set()
        for sourced_id, roster_person in self.snapshot.people.items():
            person = self._match(roster_person, matched)
            self.plan.people[sourced_id] = person
            if person is None:
                self._add(roster_person)
                continue
            matched.add(person.id)
            changes = _changes(person, self._wanted(roster_person, person))
            if changes:
                self.plan.person_changes.append((person, changes))
                self.plan.updated.add(sourced_id)
        self._birth_dates_only()
        self._leavers(matched)

    def _match(self, roster_person: RosterPerson, matched: set[int]) -> Person | None:
        person = self.existing.by_sourced_id.get(roster_person.sourced_id)
        if person is not None:
            return person
        candidates = []
        if roster_person.upn:
            # Same pupil under another id (an MIS export keyed by UPN, then by admission number).
            candidates.append(self.existing.by_upn.get(roster_person.upn))
        if roster_person.username:
            # Someone added by hand before the first import (the DSL, say), same username.
            same = self.existing.by_username.get(roster_person.username)
            candidates.append(same if same is not None and same.sourced_id is None else None)
        for same in candidates:
            if (
                same is not None
                and same.id not in matched
                and (same.sourced_id is None or same.sourced_id not in self.snapshot.people)
            ):
                return same
        return None

    def _registration(self, sourced_id: str, person: Person | None) -> dict[str, Any]:
        if sourced_id in self.placements.registration:
            target = self.placements.registration[sourced_id]
            if target is None:
                return {"registration_group_id": None}
            group = self.plan.groups.get(target, self.existing.groups_by_sourced_id.get(target))
            return {"registration_group_id": group.id if group is not None else NewGroup(target)}
        leaving = self.placements.unregistered.get(sourced_id)
        if leaving is not None and person is not None and person.registration_group_id is not None:
            group = self.existing.groups_by_sourced_id.get(leaving)
            if group is not None and group.id == person.registration_group_id:
                return {"registration_group_id": None}
        return {}

    def _wanted(self, roster_person: RosterPerson, person: Person | None) -> dict[str, Any]:
        p = roster_person
        wanted: dict[str, Any] = {
            "kind": PersonKind(p.kind.value),
            "sourced_id": p.sourced_id,
            "legal_first_name": p.legal_first_name,
            "legal_last_name": p.legal_last_name,
            "left_on": None,
            "source": Source.ROSTER,
        }
        for name in p.provided:
            wanted[name] = getattr(p, name)
        if p.username:
            wanted["username"] = p.username
        born = self.snapshot.birth_dates.get(p.sourced_id)
        if born is not None:
            wanted["date_of_birth"] = born[0]
        wanted.update(self._registration(p.sourced_id, person))
        if person is not None and p.username and p.username != person.username:
            self._check_username(p, person.id)
        return wanted

    def _check_username(self, roster_person: RosterPerson, person_id: int | None) -> bool:
        username = roster_person.username or ""
        owner = self.existing.usernames.get(username)
        if owner is None or owner[1] == person_id:
            return True
        where = roster_person.where
        elsewhere = owner[0] != self.existing.school_id
        self.problems.add(
            where.file,
            where.line,
            "username",
            f"username {username!r} is already used by "
            + ("a person of another school" if elsewhere else "another person of this school"),
            "usernames are unique across esafety: change it in the export, "
            "or leave it blank for esafety to choose one",
        )
        return False

    def _taken(self, username: str) -> bool:
        return (
            username in self.existing.usernames
            or username in self.assigned
            or username in self.reserved
        )

    def _add(self, roster_person: RosterPerson) -> None:
        wanted = self._wanted(roster_person, None)
        if roster_person.username:
            self._check_username(roster_person, None)
            username = roster_person.username
        else:
            username = unique_username(
                roster_person.first_name, roster_person.last_name, self._taken
            )
        self.assigned.add(username)
        wanted["username"] = username
        self.plan.new_people.append((roster_person, wanted))

    def _birth_dates_only(self) -> None:
        # A delta's demographics may change someone whose users.csv row did not change.
        for sourced_id, (born, _) in self.snapshot.birth_dates.items():
            person = self.existing.by_sourced_id.get(sourced_id)
            if sourced_id in self.snapshot.people or person is None:
                continue
            if person.date_of_birth != born:
                self.plan.person_changes.append((person, {"date_of_birth": born}))
                self.plan.updated.add(sourced_id)

    def _leavers(self, matched: set[int]) -> None:
        if self.snapshot.mode is Mode.BULK:
            covered = {PersonKind(kind.value) for kind in self.snapshot.covers}
            leaving = [
                p
                for p in self.existing.people
                if p.source is Source.ROSTER and p.kind in covered and p.id not in matched
            ]
        else:
            leaving = [
                p
                for sid in self.snapshot.leaving
                if (p := self.existing.by_sourced_id.get(sid)) is not None
            ]
        self.plan.leavers = [p for p in leaving if p.left_on is None]


# -- roles, classes, parents --------------------------------------------------------------


def _person_ids(plan: Plan) -> Callable[[str], int | None]:
    def person_id(sourced_id: str) -> int | None:
        person = plan.people.get(sourced_id)
        return person.id if person is not None else None

    return person_id


def _plan_roles(snapshot: RosterSnapshot, existing: Existing, plan: Plan) -> None:
    """Roles from the roster replace earlier roster roles; roles given by hand stay."""
    for sourced_id, roster_person in snapshot.people.items():
        person = plan.people[sourced_id]
        held = existing.roles.get(person.id, {}) if person is not None else {}
        if roster_person.role not in held:
            plan.new_roles.append((sourced_id, roster_person.role))
            if person is not None:
                plan.updated.add(sourced_id)
        for role, row in held.items():
            if row.source is Source.ROSTER and role != roster_person.role:
                plan.ended_roles.append(row)
                plan.updated.add(sourced_id)
    plan.unchanged = len([p for p in plan.people.values() if p is not None]) - len(
        plan.updated & set(snapshot.people)
    )


def _plan_memberships(
    snapshot: RosterSnapshot, placements: Placements, existing: Existing, plan: Plan
) -> None:
    person_id = _person_ids(plan)

    def group_id(sourced_id: str) -> int | None:
        group = plan.groups.get(sourced_id, existing.groups_by_sourced_id.get(sourced_id))
        return group.id if group is not None else None

    wanted: set[tuple[int, int]] = set()
    for (group_sid, person_sid), role in placements.memberships.items():
        gid = group_id(group_sid)
        pid = (
            person_id(person_sid) if person_sid in plan.people else _known_id(existing, person_sid)
        )
        row = existing.memberships.get((gid, pid)) if gid is not None and pid is not None else None
        if row is None:
            plan.new_memberships.append((group_sid, person_sid, role))
            continue
        wanted.add((row.group_id, row.person_id))
        if row.source is Source.ROSTER and row.role != role:
            plan.membership_changes.append((row, role))
    if snapshot.states_memberships:
        present = {p.id for p in plan.people.values() if p is not None}
        plan.ended_memberships = [
            m
            for key, m in existing.memberships.items()
            if m.source is Source.ROSTER and m.person_id in present and key not in wanted
        ]
    else:
        for group_sid, person_sid in placements.ended:
            gid, pid = group_id(group_sid), _known_id(existing, person_sid)
            row = (
                existing.memberships.get((gid, pid))
                if gid is not None and pid is not None
                else None
            )
            if row is not None and row.source is Source.ROSTER:
                plan.ended_memberships.append(row)


def _known_id(existing: Existing, sourced_id: str) -> int | None:
    person = existing.by_sourced_id.get(sourced_id)
    return person.id if person is not None else None


def _plan_links(
    snapshot: RosterSnapshot, placements: Placements, existing: Existing, plan: Plan
) -> None:
    def pid(sourced_id: str) -> int | None:
        if sourced_id in plan.people:
            person = plan.people[sourced_id]
            return person.id if person is not None else None
        return _known_id(existing, sourced_id)

    wanted: set[tuple[int, int]] = set()
    for link in placements.links.values():
        parent_id, child_id = pid(link.parent_id), pid(link.child_id)
        row = existing.links.get((parent_id, child_id)) if parent_id and child_id else None
        if row is None:
            plan.new_links.append(link)
            continue
        wanted.add((row.parent_id, row.child_id))
        if row.source is not Source.ROSTER:
            continue  # a link made by hand stays as it was made
        values: dict[str, Any] = {"priority": link.priority}
        # A delta may link a pupil to a parent it does not describe: keep what we know.
        if link.parent_id in snapshot.people:
            values["relationship_to_child"] = link.relationship
            values["parental_responsibility"] = link.parental_responsibility
        changes = _changes(row, values)
        if changes:
            plan.link_changes.append((row, changes))
    scope = {i for sid in snapshot.link_scope if (i := pid(sid)) is not None}
    plan.ended_links = [
        row
        for key, row in existing.links.items()
        if row.source is Source.ROSTER
        and key not in wanted
        and (row.parent_id in scope or row.child_id in scope)
    ]
