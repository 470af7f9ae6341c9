"""A school with one person per role, each with an account, for security and web tests.

``make_school(inst)`` builds it straight from the tables (so these tests do not depend on
the directory's services); people holding a role that needs two-step sign-in are enrolled.
``session_cookie`` starts a fully signed-in session without the forms, for tests that are
about something else; ``sign_in`` goes through the real forms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from re import search

import pyotp
from sqlalchemy import select

from esafety.audit import SYSTEM
from esafety.db import utcnow
from esafety.directory.model import Person, PersonKind, PersonRole, School
from esafety.installation import Installation
from esafety.security import passwords, service, totp
from esafety.security.model import Account, PasswordHistory
from esafety.security.roles import TWO_STEP_ROLES, Role

PASSWORD = "plum-orchard-lantern"

_KIND = {
    Role.PUPIL: PersonKind.PUPIL,
    Role.PARENT: PersonKind.PARENT,
    Role.GOVERNOR: PersonKind.GOVERNOR,
    Role.CHAIR_OF_GOVERNORS: PersonKind.GOVERNOR,
    Role.VOLUNTEER: PersonKind.VOLUNTEER,
    Role.VISITOR: PersonKind.VISITOR,
}


@dataclass
class Member:
    id: int
    username: str
    role: Role
    password: str
    totp_secret: str | None


@dataclass
class TestSchool:
    id: int
    slug: str
    people: dict[Role, Member]

    def __getitem__(self, role: Role) -> Member:
        return self.people[role]


def add_member(
    inst: Installation,
    school_id: int,
    username: str,
    roles: list[Role],
    *,
    password: str | None = PASSWORD,
    two_step: bool | None = None,
    kind: PersonKind | None = None,
) -> Member:
    """One person with an account (and two-step enrolled when a role needs it)."""
    ph = passwords.hasher(inst.settings.security)
    now = utcnow()
    enrol = two_step if two_step is not None else any(r in TWO_STEP_ROLES for r in roles)
    secret = totp.new_secret() if enrol else None
    with inst.db.session(SYSTEM) as session:
        person = Person(
            school_id=school_id,
            kind=kind or _KIND.get(roles[0], PersonKind.STAFF),
            username=username,
            legal_first_name=username.split(".")[0].capitalize(),
            legal_last_name="Tester",
        )
        person.roles = [PersonRole(school_id=school_id, role=r) for r in roles]
        session.add(person)
        session.flush()
        digest = ph.hash(password) if password else None
        session.add(
            Account(
                school_id=school_id,
                person_id=person.id,
                password_hash=digest,
                password_changed_at=now if password else None,
                totp_secret=secret,
                totp_enrolled_at=now if secret else None,
            )
        )
        if digest:
            session.add(
                PasswordHistory(
                    school_id=school_id, person_id=person.id, password_hash=digest, set_at=now
                )
            )
        return Member(person.id, username, roles[0], password or "", secret)


def make_school(
    inst: Installation, slug: str = "oakfield", *, enrol_everyone: bool = False
) -> TestSchool:
    with inst.db.session(SYSTEM) as session:
        school = School(slug=slug, name=f"{slug.capitalize()} Primary School")
        session.add(school)
        session.flush()
        school_id = school.id
    people = {
        role: add_member(
            inst,
            school_id,
            f"{role.value.replace('_', '')}.{slug}",
            [role],
            two_step=True if enrol_everyone else None,
        )
        for role in Role
    }
    return TestSchool(school_id, slug, people)


def session_cookie(inst: Installation, member: Member, *, address: str = "testclient") -> str:
    """A session past every sign-in step, as if the forms had been filled in."""
    return session_and_csrf(inst, member, address=address)[0]


def session_and_csrf(
    inst: Installation, member: Member, *, address: str = "testclient"
) -> tuple[str, str]:
    """The cookie of a fully signed-in session, and its CSRF token."""
    with inst.db.session(SYSTEM) as session:
        person = session.get(Person, member.id)
        assert person is not None
        token, ws = service.create_session(
            inst, session, person, address=address, two_step_done=True, now=utcnow()
        )
        return token, ws.csrf_token


def fresh_code(inst: Installation, member: Member, at: datetime | None = None) -> str:
    """A code the app would show that has not been used yet (codes cannot be replayed)."""
    assert member.totp_secret is not None
    at = at or utcnow()
    with inst.db.session(SYSTEM) as session:
        last = session.scalar(select(Account.totp_last_step).where(Account.person_id == member.id))
    step = int(at.timestamp()) // totp.STEP_SECONDS
    # The current step first: a code for the step before would stop working if a step
    # boundary passed before the test used it (it is accepted one step either side).
    for candidate in (step, step + 1, step - 1):
        if last is None or candidate > last:
            return pyotp.TOTP(member.totp_secret).generate_otp(candidate)
    raise RuntimeError("no unused code in this 90-second window; reset totp_last_step")


def csrf_from(html: str) -> str:
    found = search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(client, inst: Installation, member: Member, *, next_path: str = "/"):
    """Sign in through the real forms (password, then the two-step code if enrolled)."""
    page = client.get("/sign-in")
    response = client.post(
        "/sign-in",
        data={
            "username": member.username,
            "password": member.password,
            "next": next_path,
            "csrf_token": csrf_from(page.text),
        },
        follow_redirects=True,
    )
    if member.totp_secret is not None and "/two-step" in str(response.url):
        response = client.post(
            "/two-step",
            data={
                "code": fresh_code(inst, member),
                "next": next_path,
                "csrf_token": csrf_from(response.text),
            },
            follow_redirects=True,
        )
    return response
