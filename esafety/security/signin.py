"""Signing in and out: passwords, sessions, idle lock, throttling per address.

Every function opens its own unit of work and is audited: sign-in, failed sign-in,
lockout, lock, unlock and sign-out as events (:func:`esafety.audit.record`). Functions
take ``now`` so tests can move time.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from esafety.audit import Actor, AuditEntry, record
from esafety.db import utcnow
from esafety.directory.model import Person
from esafety.errors import AuthenticationFailed
from esafety.installation import Installation
from esafety.security import passwords
from esafety.security.accounts import (
    TOUCH_EVERY,
    WRONG_PASSWORD,
    Identity,
    SignedIn,
    actor_of,
    count_failure,
    enrolled,
    identity_of,
    is_locked,
    live_session,
    locked_message,
    person_by_username,
    require_session,
    security_of,
    token_hash,
)
from esafety.security.model import Account, WebSession

__all__ = [
    "create_session",
    "identify_session",
    "lock_session",
    "sign_in",
    "sign_out",
    "unlock_session",
]

_ATTEMPTS = ("sign_in", "sign_in_failed")


def _throttle(inst: Installation, session: Session, address: str | None, now: datetime) -> None:
    """Refuse when one address made too many sign-in attempts in the last minute.

    Counted from the audit trail, so the limit holds across processes and restarts.
    """
    if address is None:
        return
    limit = security_of(inst).sign_in_attempts_per_minute
    recent = session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(
            AuditEntry.object_type == "account",
            AuditEntry.action.in_(_ATTEMPTS),
            AuditEntry.address == address,
            AuditEntry.at >= now - timedelta(minutes=1),
        )
    )
    if (recent or 0) >= limit:
        raise AuthenticationFailed(
            f"Too many sign-in attempts from this computer ({limit} a minute at most). "
            "Wait a minute, then try again."
        )


def sign_in(
    inst: Installation,
    username: str,
    password: str,
    *,
    address: str | None,
    now: datetime | None = None,
) -> SignedIn:
    """Check a username and password; start a session (perhaps with steps still to do)."""
    now = now or utcnow()
    ph = passwords.hasher(security_of(inst))
    failure: str | None = None
    result: SignedIn | None = None
    with inst.db.session(Actor(name="sign-in", address=address)) as session:
        _throttle(inst, session, address, now)
        person = person_by_username(session, username)
        account = session.get(Account, person.id) if person else None
        if person is None or account is None or account.password_hash is None:
            passwords.verify(ph, _DUMMY_HASH.get(ph), password)  # same time as a real check
            record(session, "sign_in_failed", "account", None, after={"username": username[:120]})
            failure = WRONG_PASSWORD
        else:
            session.info["actor"] = actor_of(person, address)
            failure = _check_password(inst, session, ph, person, account, password, now)
            if failure is None:
                result = _start(inst, session, ph, person, account, password, address, now)
    if failure is not None:
        raise AuthenticationFailed(failure)
    if result is None:  # pragma: no cover - one of the two is always set
        raise AuthenticationFailed(WRONG_PASSWORD)
    return result


def _check_password(
    inst: Installation,
    session: Session,
    ph: PasswordHasher,
    person: Person,
    account: Account,
    password: str,
    now: datetime,
) -> str | None:
    if is_locked(account, now):
        record(session, "sign_in_failed", "account", person.id, reason="account locked")
        return locked_message(session, account)
    if not passwords.verify(ph, account.password_hash, password):
        locked = count_failure(inst, session, account, now)
        record(session, "sign_in_failed", "account", person.id, reason="wrong password")
        if locked:
            return WRONG_PASSWORD + " " + locked_message(session, account)
        return WRONG_PASSWORD
    if account.disabled or person.is_leaver:
        record(session, "sign_in_failed", "account", person.id, reason="account disabled")
        return "This account is turned off. Ask the school office if you should still have access."
    return None


def _start(
    inst: Installation,
    session: Session,
    ph: PasswordHasher,
    person: Person,
    account: Account,
    password: str,
    address: str | None,
    now: datetime,
) -> SignedIn:
    if account.password_hash and ph.check_needs_rehash(account.password_hash):
        account.password_hash = ph.hash(password)  # costs were raised: upgrade quietly
    account.failed_attempts = 0
    account.locked_until = None
    account.last_sign_in_at = now
    token, ws = create_session(
        inst, session, person, address=address, two_step_done=not enrolled(account), now=now
    )
    record(session, "sign_in", "account", person.id)
    return SignedIn(token, identity_of(inst, session, ws, person, account, now))


class _DummyHashes:
    """A hash to verify against when the username is unknown, so timing reveals nothing."""

    def __init__(self) -> None:
        self._by_params: dict[tuple[int, int, int], str] = {}

    def get(self, ph: PasswordHasher) -> str:
        key = (ph.time_cost, ph.memory_cost, ph.parallelism)
        if key not in self._by_params:
            self._by_params[key] = ph.hash(secrets.token_urlsafe(16))
        return self._by_params[key]


_DUMMY_HASH = _DummyHashes()


def create_session(
    inst: Installation,
    session: Session,
    person: Person,
    *,
    address: str | None,
    two_step_done: bool,
    now: datetime,
) -> tuple[str, WebSession]:
    """A new browser session for ``person`` (the cookie value, and its row)."""
    token = secrets.token_urlsafe(32)
    ws = WebSession(
        school_id=person.school_id,
        person_id=person.id,
        token_hash=token_hash(token),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=security_of(inst).session_hours),
        two_step_done=two_step_done,
        csrf_token=secrets.token_urlsafe(32),
        address=address,
    )
    session.add(ws)
    session.flush()
    return token, ws


def identify_session(
    inst: Installation, cookie: str, *, address: str | None, now: datetime | None = None
) -> Identity | None:
    """Who holds this session cookie; None if it is unknown, ended or expired.

    Locks a session idle for ``idle_lock_minutes`` (001: "15 minutes"); a half-finished
    sign-in left that long is ended instead.
    """
    now = now or utcnow()
    security = security_of(inst)
    with inst.db.session(Actor.system("web", school_id=None)) as session:
        ws = live_session(session, cookie)
        if ws is None:
            return None
        person = session.get(Person, ws.person_id)
        account = session.get(Account, ws.person_id)
        if person is None or account is None:
            return None
        session.info["actor"] = actor_of(person, address)
        if now >= ws.expires_at:
            ws.ended_at = now
            record(session, "session_expired", "web_session", ws.id)
            return None
        if account.disabled or person.is_leaver:
            ws.ended_at = now
            record(session, "session_ended", "web_session", ws.id, reason="account disabled")
            return None
        idle = now - ws.last_seen_at
        if not ws.locked and idle >= timedelta(minutes=security.idle_lock_minutes):
            if not ws.two_step_done:
                ws.ended_at = now
                record(
                    session,
                    "session_ended",
                    "web_session",
                    ws.id,
                    reason="unfinished sign-in left idle",
                )
                return None
            ws.locked = True
            record(
                session,
                "lock",
                "web_session",
                ws.id,
                reason=f"idle for {security.idle_lock_minutes} minutes",
            )
        elif not ws.locked and idle >= TOUCH_EVERY:
            ws.last_seen_at = now
        return identity_of(inst, session, ws, person, account, now)


def lock_session(inst: Installation, cookie: str, *, address: str | None) -> None:
    with inst.db.session(Actor.system("web")) as session:
        ws, person, _account = require_session(session, cookie)
        session.info["actor"] = actor_of(person, address)
        if not ws.locked:
            ws.locked = True
            record(session, "lock", "web_session", ws.id, reason="locked by its owner")


def unlock_session(
    inst: Installation,
    cookie: str,
    password: str,
    *,
    address: str | None,
    now: datetime | None = None,
) -> None:
    """Unlock an idle-locked session with the password."""
    now = now or utcnow()
    ph = passwords.hasher(security_of(inst))
    failure: str | None = None
    with inst.db.session(Actor.system("web")) as session:
        ws, person, account = require_session(session, cookie)
        session.info["actor"] = actor_of(person, address)
        if is_locked(account, now):
            failure = locked_message(session, account)
        elif not passwords.verify(ph, account.password_hash, password):
            locked = count_failure(inst, session, account, now)
            record(session, "unlock_failed", "web_session", ws.id)
            failure = "That password is not right." + (
                " " + locked_message(session, account) if locked else ""
            )
        else:
            account.failed_attempts = 0
            ws.locked = False
            ws.last_seen_at = now
            record(session, "unlock", "web_session", ws.id)
    if failure is not None:
        raise AuthenticationFailed(failure)


def sign_out(inst: Installation, cookie: str, *, address: str | None) -> None:
    with inst.db.session(Actor.system("web")) as session:
        ws = live_session(session, cookie)
        if ws is None:
            return
        person = session.get(Person, ws.person_id)
        if person is not None:
            session.info["actor"] = actor_of(person, address)
        ws.ended_at = utcnow()
        record(session, "sign_out", "web_session", ws.id, school_id=ws.school_id)
