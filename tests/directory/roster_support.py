"""Shared steps of the roster tests: a school to import into, counts, and people by id."""

from __future__ import annotations

from sqlalchemy import func, select

from esafety.audit import SYSTEM, AuditEntry
from esafety.directory.model import Group, Person, School
from esafety.installation import Installation


def new_school(inst: Installation, slug: str = "westpark", name: str = "West Park Primary") -> int:
    with inst.db.session(SYSTEM) as session:
        school = School(slug=slug, name=name)
        session.add(school)
        session.flush()
        return school.id


def counts(inst: Installation) -> tuple[int, int]:
    """(people, audit entries): what a refused import must leave as it was."""
    with inst.db.session() as session:
        people = session.scalar(select(func.count()).select_from(Person)) or 0
        entries = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
    return people, entries


def people(inst: Installation, school_id: int) -> dict[str, Person]:
    """The school's people by roster id, with their roles loaded."""
    with inst.db.session(school_id=school_id) as session:
        return {p.sourced_id or p.username: p for p in session.scalars(select(Person))}


def groups(inst: Installation, school_id: int) -> dict[str, Group]:
    with inst.db.session(school_id=school_id) as session:
        return {g.sourced_id or g.name: g for g in session.scalars(select(Group))}


def audit_about(inst: Installation, *object_types: str, after_seq: int = 0) -> list[AuditEntry]:
    with inst.db.session() as session:
        query = select(AuditEntry).where(AuditEntry.seq > after_seq)
        if object_types:
            query = query.where(AuditEntry.object_type.in_(object_types))
        return list(session.scalars(query.order_by(AuditEntry.seq)))


def last_seq(inst: Installation) -> int:
    with inst.db.session() as session:
        return session.scalar(select(func.max(AuditEntry.seq))) or 0


def registration(person: Person) -> str | None:
    """The name of the person's registration group."""
    return person.registration_group.name if person.registration_group else None
