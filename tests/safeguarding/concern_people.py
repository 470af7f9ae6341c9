"""A school for concern tests: one person per role (tests.accounts), a second teacher and
a second pupil, and sessions acting as any of them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from esafety.audit import Actor
from esafety.directory.model import Person
from esafety.installation import Installation
from esafety.safeguarding import concerns
from esafety.safeguarding.concerns import About
from esafety.security.roles import Role
from tests.accounts import Member, TestSchool, add_member, make_school

MARKER = "purple-giraffe-7731"


@dataclass
class ConcernSchool:
    inst: Installation
    school: TestSchool
    teacher2: Member
    pupil2: Member

    @property
    def id(self) -> int:
        return self.school.id

    def __getitem__(self, role: Role) -> Member:
        return self.school[role]

    def actor(self, member: Member, *roles: Role) -> Actor:
        held = roles or (member.role,)
        return Actor(member.username, member.id, self.school.id, frozenset(r.value for r in held))

    @contextmanager
    def session(self, who: Member | Role, *roles: Role) -> Iterator[Session]:
        member = self.school[who] if isinstance(who, Role) else who
        with self.inst.db.session(self.actor(member, *roles)) as session:
            yield session


def concern_school(inst: Installation, slug: str = "oak") -> ConcernSchool:
    school = make_school(inst, slug)
    teacher2 = add_member(inst, school.id, f"teacher2.{slug}", [Role.TEACHER])
    pupil2 = add_member(inst, school.id, f"pupil2.{slug}", [Role.PUPIL])
    with inst.db.session(Actor.system("test", school_id=school.id)) as session:
        pupil = session.get(Person, school[Role.PUPIL].id)
        assert pupil is not None
        pupil.upn = "A123456789012"
    return ConcernSchool(inst, school, teacher2, pupil2)


def an_hour_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


def record(
    cs: ConcernSchool,
    who: Member | Role = Role.TEACHER,
    *,
    kind: str = "online_bullying",
    about: list[About | str] | None = None,
    narrative: str = f"Sam showed me messages calling him names. {MARKER}",
) -> int:
    with cs.session(who) as session:
        concern = concerns.record_concern(
            session,
            kind=kind,
            narrative=narrative,
            happened_at=an_hour_ago(),
            about=about if about is not None else [cs[Role.PUPIL].username],
            location="online",
            location_detail="a game's chat",
        )
        return concern.id
