"""The directory's use cases: one function per thing a person does.

Every function takes a session opened for the acting person and their school
(``inst.db.session(actor, school_id=...)``): the session sees only that school's rows and
audits every change as that actor. Writes check the actor's permission here too, so a
route or command that forgot its own check still cannot change what it should not;
system actors (the command line, scheduled jobs) act on the server's authority.

Beside this module: :mod:`~esafety.directory.groups` (classes and custom groups),
:mod:`~esafety.directory.registers` (pupil flags, technology restrictions, the access
register) and :mod:`~esafety.directory.terms` (terms and closures; the rules of school
days are the pure :mod:`~esafety.directory.calendar`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from esafety.audit import Actor
from esafety.db import utcnow
from esafety.directory.calendar import school_date, school_zone
from esafety.directory.events import PersonAdded, PersonLeft, RoleGranted, RoleRemoved
from esafety.directory.model import (
    AccessGrant,
    Group,
    GroupKind,
    GroupMembership,
    ParentLink,
    Person,
    PersonKind,
    PersonRole,
    School,
    Source,
)
from esafety.directory.upn import normalise_upn
from esafety.directory.usernames import unique_username
from esafety.directory.years import YearGroup
from esafety.errors import InvalidInput, NotFound, PermissionDenied
from esafety.events import publish_on_commit
from esafety.security.model import Account
from esafety.security.roles import STAFF_ROLES, Permission, Role, allowed, roles_allowed

__all__ = [
    "add_person",
    "children_of",
    "create_school",
    "current_school",
    "find_people",
    "get_person",
    "grant_role",
    "link_parent",
    "mark_leaver",
    "parents_of",
    "remove_role",
    "require",
    "school_by_slug",
    "school_today",
    "unlink_parent",
]

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])$")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,119}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

#: The role every person of a kind has (staff are given theirs).
DEFAULT_ROLE = {
    PersonKind.PUPIL: Role.PUPIL,
    PersonKind.PARENT: Role.PARENT,
    PersonKind.GOVERNOR: Role.GOVERNOR,
    PersonKind.VOLUNTEER: Role.VOLUNTEER,
    PersonKind.VISITOR: Role.VISITOR,
}


# -- who may ------------------------------------------------------------------------


def actor_of(session: Session) -> Actor | None:
    actor = session.info.get("actor")
    return actor if isinstance(actor, Actor) else None


def require(session: Session, permission: Permission, action: str) -> None:
    """Refuse ``action`` unless the session's person may; system actors may."""
    actor = actor_of(session)
    if actor is None or actor.person_id is None:
        return
    if not allowed(actor.roles, permission):
        needed = ", ".join(sorted(r.label for r in roles_allowed(permission)))
        raise PermissionDenied(f"you cannot {action}: it needs one of the roles {needed}")


def _school_id(session: Session) -> int:
    school_id = session.info.get("school_id")
    if school_id is None:
        raise InvalidInput(
            "this needs a school: open the session for one school (--school SLUG on the command line)"
        )
    return int(school_id)


def actor_person_id(session: Session) -> int | None:
    actor = actor_of(session)
    return actor.person_id if actor is not None else None


# -- schools ------------------------------------------------------------------------


def create_school(
    session: Session,
    slug: str,
    name: str,
    *,
    timezone: str = "Europe/London",
    urn: str | None = None,
) -> School:
    """A new school: its slug is its id in the CLI and the API (``--school westpark``)."""
    actor = actor_of(session)
    if actor is not None and actor.person_id is not None and Role.ADMIN not in actor.roles:
        raise PermissionDenied("you cannot create a school: only an administrator can")
    slug = slug.strip()
    if not SLUG.match(slug):
        raise InvalidInput(
            f"school slug {slug!r} is not allowed: use 2 to 40 lowercase letters, digits and "
            "hyphens, starting and ending with a letter or digit (e.g. 'westpark')"
        )
    name = clean_text(name, "name", 200)
    school_zone(timezone)
    if urn is not None and not re.fullmatch(r"\d{6,7}", urn.strip()):
        raise InvalidInput(f"URN {urn!r} is not a DfE unique reference number (6 or 7 digits)")
    if session.scalars(select(School).where(School.slug == slug)).first() is not None:
        raise InvalidInput(f"a school with slug {slug!r} already exists; choose another slug")
    school = School(slug=slug, name=name, timezone=timezone, urn=urn.strip() if urn else None)
    session.add(school)
    session.flush()
    return school


def school_by_slug(session: Session, slug: str) -> School:
    school = session.scalars(select(School).where(School.slug == slug.strip())).first()
    if school is None:
        known = ", ".join(session.scalars(select(School.slug).order_by(School.slug))) or "none yet"
        raise NotFound(f"no school with slug {slug!r} (schools: {known})")
    return school


def current_school(session: Session) -> School:
    school = session.get(School, _school_id(session))
    if school is None:
        raise NotFound("this session's school does not exist")
    return school


def school_today(session: Session) -> date:
    """Today's date at the school (its time zone, not the server's)."""
    return school_date(utcnow(), current_school(session).timezone)


# -- people -------------------------------------------------------------------------


def clean_text(value: str | None, field: str, limit: int, *, required: bool = True) -> str:
    cleaned = (value or "").strip()
    if required and not cleaned:
        raise InvalidInput(f"{field} is empty: give a {field.replace('_', ' ')}")
    if len(cleaned) > limit:
        raise InvalidInput(f"{field} is {len(cleaned)} characters long: use at most {limit}")
    return cleaned


def _optional(value: str | None, field: str, limit: int) -> str | None:
    cleaned = clean_text(value, field, limit, required=False)
    return cleaned or None


def _parse_roles(roles: Iterable[str | Role]) -> set[Role]:
    parsed = set()
    for role in roles:
        try:
            parsed.add(Role(str(role).strip()))
        except ValueError:
            allowed_ids = ", ".join(r.value for r in Role)
            raise InvalidInput(f"unknown role {role!r}: use one of {allowed_ids}") from None
    return parsed


def _check_roles(kind: PersonKind, roles: set[Role] | frozenset[Role]) -> None:
    if kind is PersonKind.PUPIL and roles - {Role.PUPIL}:
        extra = ", ".join(sorted(roles - {Role.PUPIL}))
        raise InvalidInput(f"a pupil cannot have the roles {extra}: pupils have the role 'pupil'")
    if kind is not PersonKind.PUPIL and Role.PUPIL in roles:
        raise InvalidInput(f"role 'pupil' is for pupils only, not a {kind.value}")
    if kind in (PersonKind.PARENT, PersonKind.VISITOR) and roles & (STAFF_ROLES | {Role.ADMIN}):
        raise InvalidInput(
            f"a {kind.value} cannot hold staff roles; add them as staff (kind 'staff') instead"
        )
    if kind is PersonKind.STAFF and not roles:
        staff_ids = ", ".join(sorted(r.value for r in STAFF_ROLES | {Role.ADMIN}))
        raise InvalidInput(f"staff need at least one role: give one of {staff_ids}")


def _check_birth(day: date | None, kind: PersonKind, today: date) -> None:
    if day is None:
        if kind is PersonKind.PUPIL:
            raise InvalidInput("date_of_birth is missing: every pupil needs a date of birth")
        return
    if day > today:
        raise InvalidInput(f"date_of_birth {day.isoformat()} is in the future")
    age = (today - day).days // 365
    if kind is PersonKind.PUPIL and not 1 <= age <= 21:
        raise InvalidInput(
            f"date_of_birth {day.isoformat()} makes this pupil {age}: a pupil is 1 to 21 years old"
        )
    if age > 120:
        raise InvalidInput(f"date_of_birth {day.isoformat()} is more than 120 years ago")


def username_taken(session: Session, username: str) -> bool:
    # Usernames are what people sign in with, unique across the installation, so this one
    # check looks past the school: through the connection, reading only the name.
    table = Person.__table__
    found = session.connection().execute(
        select(table.c.id).where(table.c.username == username).limit(1)
    )
    return found.first() is not None


def add_person(
    session: Session,
    kind: PersonKind | str,
    first_name: str,
    last_name: str,
    *,
    preferred_first_name: str | None = None,
    preferred_last_name: str | None = None,
    date_of_birth: date | None = None,
    upn: str | None = None,
    year_group: YearGroup | str | None = None,
    registration_class: str | None = None,
    job_title: str | None = None,
    roles: Iterable[str | Role] = (),
    email: str | None = None,
    phone: str | None = None,
    username: str | None = None,
) -> Person:
    """Add a pupil, member of staff, governor, volunteer, visitor or parent."""
    require(session, Permission.MANAGE_DIRECTORY, "add people to the directory")
    school_id = _school_id(session)
    try:
        kind = PersonKind(kind)
    except ValueError:
        raise InvalidInput(
            f"unknown kind of person {kind!r}: use one of {', '.join(k.value for k in PersonKind)}"
        ) from None
    first = clean_text(first_name, "first_name", 100)
    last = clean_text(last_name, "last_name", 100)
    wanted = _parse_roles(roles)
    if kind in DEFAULT_ROLE:
        wanted.add(DEFAULT_ROLE[kind])
    _check_roles(kind, wanted)
    _check_birth(date_of_birth, kind, school_today(session))
    year = _pupil_fields(kind, upn, year_group, registration_class)
    clean_upn = normalise_upn(upn) if upn else None
    if clean_upn and session.scalars(select(Person.id).where(Person.upn == clean_upn)).first():
        raise InvalidInput(f"UPN {clean_upn} is already used by another pupil of this school")
    if email is not None and email.strip() and not EMAIL.match(email.strip()):
        raise InvalidInput(f"email {email!r} is not an e-mail address (name@example.org)")
    username = _username(session, username, first, last)
    person = Person(
        school_id=school_id,
        kind=kind,
        username=username,
        legal_first_name=first,
        legal_last_name=last,
        preferred_first_name=_optional(preferred_first_name, "preferred_first_name", 100),
        preferred_last_name=_optional(preferred_last_name, "preferred_last_name", 100),
        date_of_birth=date_of_birth,
        upn=clean_upn,
        year_group=year,
        job_title=_optional(job_title, "job_title", 120),
        email=_optional(email, "email", 254),
        phone=_optional(phone, "phone", 40),
        source=Source.MANUAL,
        roles=[
            PersonRole(school_id=school_id, role=r, source=Source.MANUAL) for r in sorted(wanted)
        ],
    )
    if registration_class and year is not None:
        person.registration_group = _class_group(session, registration_class, year)
    session.add(person)
    session.flush()
    publish_on_commit(session, PersonAdded(school_id, person.id, kind.value))
    return person


def _pupil_fields(
    kind: PersonKind, upn: str | None, year_group: YearGroup | str | None, class_name: str | None
) -> YearGroup | None:
    if kind is not PersonKind.PUPIL:
        for value, field in ((upn, "upn"), (year_group, "year_group"), (class_name, "class")):
            if value:
                raise InvalidInput(f"{field} is for pupils only; leave it empty for a {kind.value}")
        return None
    if not year_group:
        raise InvalidInput("year_group is missing: every pupil is in a year (Nursery to Year 13)")
    if isinstance(year_group, YearGroup):
        return year_group
    try:
        return YearGroup.parse(year_group)
    except ValueError:
        raise InvalidInput(
            f"year_group {year_group!r} is not a year: write Nursery, Reception, or Year 1 to Year 13"
        ) from None


def _username(session: Session, wanted: str | None, first: str, last: str) -> str:
    if wanted is None or not wanted.strip():
        return unique_username(first, last, lambda name: username_taken(session, name))
    username = wanted.strip().lower()
    if not USERNAME.match(username):
        raise InvalidInput(
            f"username {wanted!r} is not allowed: use 2 to 120 lowercase letters, digits, dots, "
            "hyphens or underscores, starting with a letter or digit"
        )
    if username_taken(session, username):
        raise InvalidInput(f"username {username!r} is already taken; choose another")
    return username


def _class_group(session: Session, name: str, year: YearGroup) -> Group:
    name = clean_text(name, "class", 120)
    group = session.scalars(
        select(Group).where(Group.kind == GroupKind.CLASS, Group.name == name)
    ).first()
    if group is None:
        group = Group(kind=GroupKind.CLASS, name=name, year_group=year, source=Source.MANUAL)
        session.add(group)
    return group


def get_person(session: Session, person_id: int) -> Person:
    """The person with this id in the session's school, else NotFound (never another school's)."""
    # The session's school scope applies to get() too; an object already in the session
    # is this school's (the session refuses to hold another school's), so no query then.
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(f"no person with id {person_id} in this school")
    return person


def find_people(
    session: Session,
    *,
    text: str | None = None,
    kind: PersonKind | str | None = None,
    year_group: YearGroup | str | None = None,
    group_id: int | None = None,
    include_leavers: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> list[Person]:
    """People of the school by name, username or UPN, kind, year and class."""
    query = select(Person)
    if text and text.strip():
        needle = text.strip().lower()
        query = query.where(
            or_(
                *(
                    func.lower(column).contains(needle, autoescape=True)
                    for column in (
                        Person.legal_first_name,
                        Person.legal_last_name,
                        Person.preferred_first_name,
                        Person.preferred_last_name,
                        Person.username,
                        Person.upn,
                    )
                ),
                func.lower(Person.legal_first_name + " " + Person.legal_last_name).contains(
                    needle, autoescape=True
                ),
            )
        )
    if kind:
        try:
            query = query.where(Person.kind == PersonKind(kind))
        except ValueError:
            raise InvalidInput(
                f"unknown kind {kind!r}: use one of {', '.join(PersonKind)}"
            ) from None
    if year_group:
        year = _pupil_fields(PersonKind.PUPIL, None, year_group, None)
        query = query.where(Person.year_group == year)
    if group_id is not None:
        members = select(GroupMembership.person_id).where(GroupMembership.group_id == group_id)
        query = query.where(or_(Person.registration_group_id == group_id, Person.id.in_(members)))
    if not include_leavers:
        query = query.where(Person.left_on.is_(None))
    query = query.order_by(Person.legal_last_name, Person.legal_first_name, Person.id)
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


# -- parents ------------------------------------------------------------------------


def link_parent(
    session: Session,
    parent_id: int,
    child_id: int,
    *,
    relationship: str = "parent",
    parental_responsibility: bool = True,
    priority: int = 1,
) -> ParentLink:
    """Record that a parent or carer is linked to a pupil of the school."""
    require(session, Permission.MANAGE_DIRECTORY, "link parents to pupils")
    parent, child = get_person(session, parent_id), get_person(session, child_id)
    if parent.kind is not PersonKind.PARENT:
        raise InvalidInput(f"{parent.display_name} is a {parent.kind.value}, not a parent or carer")
    if child.kind is not PersonKind.PUPIL:
        raise InvalidInput(f"{child.display_name} is a {child.kind.value}, not a pupil")
    if not 1 <= priority <= 20:
        raise InvalidInput(f"priority {priority} is out of range: 1 (first contact) to 20")
    link = session.get(ParentLink, (parent_id, child_id))
    if link is None:
        link = ParentLink(parent_id=parent_id, child_id=child_id)
        session.add(link)
    link.relationship_to_child = clean_text(relationship, "relationship", 40)
    link.parental_responsibility = parental_responsibility
    link.priority = priority
    return link


def unlink_parent(session: Session, parent_id: int, child_id: int) -> None:
    require(session, Permission.MANAGE_DIRECTORY, "unlink parents from pupils")
    link = session.scalars(
        select(ParentLink).where(ParentLink.parent_id == parent_id, ParentLink.child_id == child_id)
    ).first()
    if link is None:
        raise NotFound(f"person {parent_id} is not linked to pupil {child_id}")
    session.delete(link)
    session.flush()


def parents_of(session: Session, child_id: int) -> list[tuple[ParentLink, Person]]:
    rows = session.execute(
        select(ParentLink, Person)
        .join(Person, Person.id == ParentLink.parent_id)
        .where(ParentLink.child_id == child_id)
        .order_by(ParentLink.priority, Person.legal_last_name)
    )
    return [(link, person) for link, person in rows]


def children_of(session: Session, parent_id: int) -> list[tuple[ParentLink, Person]]:
    rows = session.execute(
        select(ParentLink, Person)
        .join(Person, Person.id == ParentLink.child_id)
        .where(ParentLink.parent_id == parent_id)
        .order_by(Person.legal_last_name, Person.legal_first_name)
    )
    return [(link, person) for link, person in rows]


# -- roles --------------------------------------------------------------------------


def grant_role(session: Session, person_id: int, role: Role | str) -> PersonRole:
    """Give a role by hand (it survives a roster re-import)."""
    require(session, Permission.MANAGE_DIRECTORY, "give roles")
    (wanted,) = _parse_roles([role])
    person = get_person(session, person_id)
    if person.is_leaver:
        raise InvalidInput(f"{person.display_name} has left the school; roles cannot be given")
    _check_roles(person.kind, person.role_ids | {wanted})
    existing = next((r for r in person.roles if r.role == wanted), None)
    if existing is not None:
        existing.source = Source.MANUAL
        return existing
    granted = PersonRole(school_id=person.school_id, role=wanted, source=Source.MANUAL)
    person.roles.append(granted)
    session.flush()
    publish_on_commit(session, RoleGranted(person.school_id, person.id, wanted.value))
    return granted


def remove_role(session: Session, person_id: int, role: Role | str) -> None:
    require(session, Permission.MANAGE_DIRECTORY, "remove roles")
    (wanted,) = _parse_roles([role])
    person = get_person(session, person_id)
    existing = next((r for r in person.roles if r.role == wanted), None)
    if existing is None:
        raise InvalidInput(f"{person.display_name} does not have the role {wanted.value!r}")
    # Deleted explicitly (not only dropped from the collection) so the audit sees it.
    person.roles.remove(existing)
    session.delete(existing)
    session.flush()
    publish_on_commit(session, RoleRemoved(person.school_id, person.id, wanted.value))


# -- leavers ------------------------------------------------------------------------


def mark_leaver(session: Session, person_id: int, left_on: date) -> Person:
    """Record the day a person left: their account is disabled and their access register
    entries closed; retention periods count from this date (000 §4.1)."""
    require(session, Permission.MANAGE_DIRECTORY, "mark leavers")
    person = get_person(session, person_id)
    if person.date_of_birth is not None and left_on < person.date_of_birth:
        raise InvalidInput(f"left_on {left_on.isoformat()} is before the person was born")
    person.left_on = left_on
    account = session.get(Account, person.id)
    if account is not None:
        account.disabled = True
    for grant in session.scalars(
        select(AccessGrant).where(
            AccessGrant.person_id == person.id, AccessGrant.revoked_on.is_(None)
        )
    ):
        grant.revoked_on = max(left_on, grant.granted_on)
        grant.revoked_by_id = actor_person_id(session)
    session.flush()
    publish_on_commit(session, PersonLeft(person.school_id, person.id, left_on))
    return person
