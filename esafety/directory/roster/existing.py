"""What a school already holds, loaded once per import into dicts (no query per row)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, raiseload

from esafety.directory.model import (
    Group,
    GroupKind,
    GroupMembership,
    ParentLink,
    Person,
    PersonKind,
    PersonRole,
)
from esafety.directory.roster.references import Known
from esafety.directory.roster.snapshot import GroupType, Kind
from esafety.security.roles import Role

__all__ = ["Existing", "load_existing"]


@dataclass
class Existing:
    """The school's rows; the session is scoped to the school, so these are only its own."""

    school_id: int
    people: list[Person]
    by_sourced_id: dict[str, Person]
    by_upn: dict[str, Person]
    #: This school's people by username (lower case).
    by_username: dict[str, Person]
    groups: list[Group]
    groups_by_sourced_id: dict[str, Group]
    roles: dict[int, dict[Role, PersonRole]]
    memberships: dict[tuple[int, int], GroupMembership]
    links: dict[tuple[int, int], ParentLink]
    #: Every username of the installation (lower case) → (school id, person id).
    usernames: dict[str, tuple[int, int]] = field(default_factory=dict)

    def known(self) -> Known:
        return Known(
            people={sid: _kind(p.kind) for sid, p in self.by_sourced_id.items()},
            groups={
                sid: GroupType(g.kind.value)
                for sid, g in self.groups_by_sourced_id.items()
                if g.kind in (GroupKind.CLASS, GroupKind.TEACHING)
            },
        )


def _kind(kind: PersonKind) -> Kind:
    # Governors, volunteers and visitors are never a pupil's agent: to a roster, staff.
    return {PersonKind.PUPIL: Kind.PUPIL, PersonKind.PARENT: Kind.PARENT}.get(kind, Kind.STAFF)


def load_existing(session: Session, school_id: int) -> Existing:
    people = list(
        session.scalars(
            select(Person).options(raiseload(Person.roles), raiseload(Person.registration_group))
        )
    )
    groups = list(session.scalars(select(Group)))
    roles: dict[int, dict[Role, PersonRole]] = {}
    for role in session.scalars(select(PersonRole)):
        roles.setdefault(role.person_id, {})[role.role] = role
    # Usernames are unique across the installation, so read them all: through the
    # connection, past the school scope (names only, nothing else of another school).
    person = Person.__table__.c
    usernames = {
        username.lower(): (owner_school, person_id)
        for username, owner_school, person_id in session.connection().execute(
            select(person.username, person.school_id, person.id)
        )
    }
    return Existing(
        school_id=school_id,
        people=people,
        by_sourced_id={p.sourced_id: p for p in people if p.sourced_id},
        by_upn={p.upn: p for p in people if p.upn},
        by_username={p.username.lower(): p for p in people},
        groups=groups,
        groups_by_sourced_id={g.sourced_id: g for g in groups if g.sourced_id},
        roles=roles,
        memberships={
            (m.group_id, m.person_id): m for m in session.scalars(select(GroupMembership))
        },
        links={(k.parent_id, k.child_id): k for k in session.scalars(select(ParentLink))},
        usernames=usernames,
    )
