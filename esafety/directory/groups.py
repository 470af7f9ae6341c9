"""Groups: classes, teaching groups and custom groups; year and key stage derived.

A pupil's year and key stage groups are computed from the pupil's year, never stored as
memberships, so they cannot drift from it; classes come with the pupil (or the roster);
custom groups (e.g. "Digital leaders") are made and filled by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.directory.model import Group, GroupKind, GroupMembership, Person, PersonKind, Source
from esafety.directory.service import clean_text, find_people, get_person, require
from esafety.directory.years import KeyStage, YearGroup
from esafety.errors import InvalidInput, NotFound
from esafety.security.roles import Permission

__all__ = [
    "PersonGroups",
    "add_to_group",
    "assign_teacher",
    "create_group",
    "get_group",
    "groups_of",
    "list_groups",
    "members_of",
    "remove_from_group",
]


@dataclass(frozen=True)
class PersonGroups:
    """A person's groups. Year and key stage come from the pupil's year, so they never drift."""

    #: A pupil's registration class.
    registration: Group | None
    year: YearGroup | None
    key_stage: KeyStage | None
    #: Classes and teaching groups the person is enrolled in or teaches.
    classes: tuple[Group, ...]
    custom: tuple[Group, ...]

    def labels(self) -> list[str]:
        names = [self.registration.name] if self.registration else []
        names += [g.label for g in (self.year, self.key_stage) if g is not None]
        names += [g.name for g in (*self.classes, *self.custom)]
        return names


def groups_of(session: Session, person: Person) -> PersonGroups:
    memberships = list(
        session.scalars(
            select(Group)
            .join(GroupMembership, GroupMembership.group_id == Group.id)
            .where(GroupMembership.person_id == person.id, Group.archived_on.is_(None))
            .order_by(Group.name)
        )
    )
    registration = person.registration_group
    return PersonGroups(
        registration=registration,
        year=person.year_group,
        key_stage=person.key_stage,
        classes=tuple(
            g
            for g in memberships
            if g.kind in (GroupKind.CLASS, GroupKind.TEACHING) and g is not registration
        ),
        custom=tuple(g for g in memberships if g.kind is GroupKind.CUSTOM),
    )


def create_group(session: Session, name: str, *, kind: GroupKind = GroupKind.CUSTOM) -> Group:
    """A custom group (e.g. 'Digital leaders'); classes come with pupils or the roster."""
    require(session, Permission.MANAGE_DIRECTORY, "create groups")
    if kind in (GroupKind.YEAR, GroupKind.KEY_STAGE):
        raise InvalidInput(
            "year and key stage groups come from pupils' years; create a custom group"
        )
    name = clean_text(name, "name", 120)
    exists = session.scalars(select(Group).where(Group.kind == kind, Group.name == name)).first()
    if exists is not None:
        raise InvalidInput(f"a {kind.value} group called {name!r} already exists")
    group = Group(kind=kind, name=name, source=Source.MANUAL)
    session.add(group)
    session.flush()
    return group


def get_group(session: Session, group_id: int) -> Group:
    group = session.scalars(select(Group).where(Group.id == group_id)).first()
    if group is None:
        raise NotFound(f"no group with id {group_id} in this school")
    return group


def add_to_group(session: Session, group_id: int, person_id: int) -> GroupMembership:
    require(session, Permission.MANAGE_DIRECTORY, "change groups")
    group, person = get_group(session, group_id), get_person(session, person_id)
    if group.kind is not GroupKind.CUSTOM:
        raise InvalidInput(
            f"{group.name!r} is a {group.kind.value} group; its members come from the roster"
        )
    membership = session.get(GroupMembership, (group.id, person.id))
    if membership is None:
        membership = GroupMembership(group_id=group.id, person_id=person.id, source=Source.MANUAL)
        session.add(membership)
        session.flush()
    return membership


def assign_teacher(session: Session, group_id: int, person_id: int) -> GroupMembership:
    """Record that a member of staff teaches (or supports) a class or teaching group."""
    require(session, Permission.MANAGE_DIRECTORY, "assign staff to classes")
    group, person = get_group(session, group_id), get_person(session, person_id)
    if group.kind not in (GroupKind.CLASS, GroupKind.TEACHING):
        raise InvalidInput(f"{group.name!r} is not a class or teaching group")
    if person.kind is not PersonKind.STAFF:
        raise InvalidInput(f"{person.display_name} is a {person.kind.value}, not staff")
    membership = session.get(GroupMembership, (group.id, person.id))
    if membership is None:
        membership = GroupMembership(
            group_id=group.id, person_id=person.id, role="teacher", source=Source.MANUAL
        )
        session.add(membership)
        session.flush()
    return membership


def remove_from_group(session: Session, group_id: int, person_id: int) -> None:
    require(session, Permission.MANAGE_DIRECTORY, "change groups")
    group = get_group(session, group_id)
    membership = session.scalars(
        select(GroupMembership).where(
            GroupMembership.group_id == group.id, GroupMembership.person_id == person_id
        )
    ).first()
    if membership is None:
        raise NotFound(f"person {person_id} is not in the group {group.name!r}")
    session.delete(membership)
    session.flush()


def members_of(session: Session, group_id: int) -> list[Person]:
    group = get_group(session, group_id)
    return find_people(session, group_id=group.id)


def list_groups(session: Session, kind: GroupKind | None = None) -> list[Group]:
    """The school's current groups (classes in year order, then by name)."""
    query = select(Group).where(Group.archived_on.is_(None))
    if kind is not None:
        query = query.where(Group.kind == kind)
    found = list(session.scalars(query.order_by(Group.name)))
    found.sort(key=lambda g: g.year_group.order if g.year_group else 99)
    return found
