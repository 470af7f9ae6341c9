"""Helpers for the directory service tests: schools, sessions acting as a person, people."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

from sqlalchemy.orm import Session

from esafety.audit import Actor
from esafety.directory import service
from esafety.directory.model import Person, PersonKind
from esafety.installation import Installation
from esafety.security.roles import Role

SETUP = Actor.system("test")


def new_school(inst: Installation, slug: str = "westpark", timezone: str = "Europe/London") -> int:
    with inst.db.session(SETUP) as session:
        return service.create_school(session, slug, f"{slug.title()} Primary", timezone=timezone).id


@contextmanager
def acting(inst: Installation, school_id: int, actor: Actor | None = None) -> Iterator[Session]:
    """A session for the school, acting as ``actor`` (the school's system actor by default)."""
    who = actor or Actor.system("test", school_id=school_id)
    with inst.db.session(who, school_id=school_id) as session:
        yield session


def staff_actor(
    inst: Installation, school_id: int, *roles: Role, username: str | None = None
) -> Actor:
    """Add a member of staff with these roles and return them as an actor."""
    with acting(inst, school_id) as session:
        person = service.add_person(
            session,
            PersonKind.STAFF,
            "Sam",
            "Staff",
            roles=roles,
            username=username,
            job_title="Teacher",
        )
        return Actor(
            name=person.username,
            person_id=person.id,
            school_id=school_id,
            roles=frozenset(r.value for r in roles),
        )


def birthday(years_old: int) -> date:
    return date.today() - timedelta(days=365 * years_old + 40)


def add_pupil(
    session: Session,
    first: str = "Ada",
    last: str = "Lovelace",
    *,
    year: str = "Year 3",
    class_name: str | None = "3R",
    upn: str | None = None,
) -> Person:
    return service.add_person(
        session,
        PersonKind.PUPIL,
        first,
        last,
        date_of_birth=birthday(8),
        year_group=year,
        registration_class=class_name,
        upn=upn,
    )
