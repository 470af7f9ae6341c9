"""Accounts and the state of a sign-in: who a credential belongs to, what is still to do.

Shared by the sign-in, two-step and password use cases (:mod:`esafety.security.service`
gathers them). A sign-in goes: password → (two-step code, if enrolled) → (new password, if
it must change) → (two-step enrolment, if a role requires it) → in. :class:`Identity`
says which step is next.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from esafety.audit import Actor, record
from esafety.config import SecuritySettings
from esafety.directory.model import Person, School
from esafety.errors import AuthenticationFailed, NotFound
from esafety.installation import Installation
from esafety.security import passwords
from esafety.security.model import Account, WebSession
from esafety.security.roles import Role, needs_two_step

__all__ = [
    "TOUCH_EVERY",
    "WRONG_PASSWORD",
    "Identity",
    "SignedIn",
    "Step",
    "account_of",
    "actor_of",
    "count_failure",
    "enrolled",
    "find_person",
    "identity_of",
    "is_locked",
    "live_session",
    "locked_message",
    "next_step",
    "password_rules",
    "person_by_username",
    "require_session",
    "rules_of",
    "security_of",
    "token_hash",
]

WRONG_PASSWORD = "The username or password is not right. Check them and try again."  # noqa: S105


#: How often a busy session's last-seen time is written (the idle lock counts minutes).
TOUCH_EVERY = timedelta(seconds=30)


class Step(StrEnum):
    """What a half-signed-in person must do before anything else."""

    UNLOCK = "unlock"
    TWO_STEP = "two_step"
    CHANGE_PASSWORD = "change_password"  # noqa: S105 - a step, not a password
    ENROL_TWO_STEP = "enrol_two_step"

    @property
    def message(self) -> str:
        return {
            "unlock": "Your session is locked; enter your password to carry on.",
            "two_step": "Enter the code from your authenticator app to finish signing in.",
            "change_password": "Choose a new password to finish signing in.",
            "enrol_two_step": "Set up two-step sign-in to finish signing in.",
        }[self.value]


@dataclass(frozen=True)
class Identity:
    """Whose credential this is, and which step of signing in (if any) is still to do."""

    person_id: int
    username: str
    display_name: str
    school_id: int
    school_slug: str
    school_name: str
    roles: frozenset[Role]
    via: Literal["session", "token"]
    actor_name: str
    next_step: Step | None = None
    csrf_token: str | None = None
    session_id: int | None = None
    #: The session passed a two-step code (needed to create API tokens on the web).
    two_step_verified: bool = False
    two_step_enrolled: bool = False


@dataclass(frozen=True)
class SignedIn:
    token: str
    identity: Identity


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def security_of(inst: Installation) -> SecuritySettings:
    return inst.settings.security


def rules_of(inst: Installation, school: School) -> passwords.PasswordRules:
    return passwords.rules_for(
        security_of(inst),
        min_length=school.password_min_length,
        history=school.password_history,
        max_age_days=school.password_max_age_days,
    )


def password_rules(inst: Installation, school_id: int) -> passwords.PasswordRules:
    with inst.db.session(Actor.system("web")) as session:
        school = session.get(School, school_id)
        if school is None:
            raise NotFound(f"no school with id {school_id}")
        return rules_of(inst, school)


def actor_of(person: Person, address: str | None) -> Actor:
    return Actor(
        name=person.username,
        person_id=person.id,
        school_id=person.school_id,
        roles=frozenset(str(r) for r in person.role_ids),
        address=address,
    )


def account_of(session: Session, person: Person) -> Account:
    """The person's account, created (without a password) the first time it is needed."""
    account = session.get(Account, person.id)
    if account is None:
        account = Account(person_id=person.id, school_id=person.school_id)
        session.add(account)
    return account


def person_by_username(session: Session, username: str) -> Person | None:
    name = username.strip().lower()
    if not name:
        return None
    return session.scalars(select(Person).where(func.lower(Person.username) == name)).first()


def find_person(inst: Installation, username: str) -> Person:
    with inst.db.session(Actor.system("cli")) as session:
        person = person_by_username(session, username)
        if person is None:
            raise NotFound(f"no person with username {username!r}; `esafety users list` shows them")
        session.expunge(person)
        return person


def enrolled(account: Account) -> bool:
    return account.totp_enrolled_at is not None and account.totp_secret is not None


def next_step(
    inst: Installation,
    ws: WebSession,
    account: Account,
    person: Person,
    school: School,
    now: datetime,
) -> Step | None:
    if ws.locked:
        return Step.UNLOCK
    if enrolled(account) and not ws.two_step_done:
        return Step.TWO_STEP
    expired = passwords.is_expired(account.password_changed_at, rules_of(inst, school), now)
    if account.must_change_password or expired:
        return Step.CHANGE_PASSWORD
    if needs_two_step(person.role_ids) and not enrolled(account):
        return Step.ENROL_TWO_STEP
    return None


def identity_of(
    inst: Installation,
    session: Session,
    ws: WebSession,
    person: Person,
    account: Account,
    now: datetime,
) -> Identity:
    school = session.get(School, person.school_id)
    if school is None:  # pragma: no cover - a foreign key guarantees it
        raise NotFound(f"school {person.school_id} does not exist")
    return Identity(
        person_id=person.id,
        username=person.username,
        display_name=person.display_name,
        school_id=school.id,
        school_slug=school.slug,
        school_name=school.name,
        roles=person.role_ids,
        via="session",
        actor_name=person.username,
        next_step=next_step(inst, ws, account, person, school, now),
        csrf_token=ws.csrf_token,
        session_id=ws.id,
        two_step_verified=ws.two_step_done and enrolled(account),
        two_step_enrolled=enrolled(account),
    )


def live_session(session: Session, cookie: str) -> WebSession | None:
    return session.scalars(
        select(WebSession).where(
            WebSession.token_hash == token_hash(cookie), WebSession.ended_at.is_(None)
        )
    ).first()


def require_session(session: Session, cookie: str | None) -> tuple[WebSession, Person, Account]:
    ws = live_session(session, cookie) if cookie else None
    person = session.get(Person, ws.person_id) if ws else None
    account = session.get(Account, ws.person_id) if ws else None
    if ws is None or person is None or account is None:
        raise AuthenticationFailed("Your session has ended; sign in again.")
    return ws, person, account


def locked_message(session: Session, account: Account) -> str:
    until = account.locked_until
    school = session.get(School, account.school_id)
    # Times are the school's (a teacher reads "10:45", not a UTC offset).
    zone = ZoneInfo(school.timezone if school else "Europe/London")
    when = until.astimezone(zone).strftime("%H:%M") if until else "later"
    return (
        f"This account is locked after too many failed attempts, until {when}. "
        "Try again then, or ask your IT technician to unlock it."
    )


def count_failure(inst: Installation, session: Session, account: Account, now: datetime) -> bool:
    """Count one wrong password or code; lock the account at the limit. True if locked now."""
    security = security_of(inst)
    account.failed_attempts += 1
    if account.failed_attempts < security.lockout_attempts:
        return False
    account.failed_attempts = 0
    account.locked_until = now + timedelta(minutes=security.lockout_minutes)
    record(
        session,
        "lockout",
        "account",
        account.person_id,
        school_id=account.school_id,
        reason=f"{security.lockout_attempts} failed attempts; locked for {security.lockout_minutes} minutes",
    )
    # A locked account's unfinished and locked sessions end: whoever is guessing starts over.
    for ws in session.scalars(
        select(WebSession).where(
            WebSession.person_id == account.person_id, WebSession.ended_at.is_(None)
        )
    ):
        if ws.locked or not ws.two_step_done:
            ws.ended_at = now
    return True


def is_locked(account: Account, now: datetime) -> bool:
    return account.locked_until is not None and now < account.locked_until
