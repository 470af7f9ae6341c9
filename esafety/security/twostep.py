"""Two-step sign-in for a session: checking a code, and enrolling (QR code, recovery codes).

Required for every role that can read safeguarding records (000 §4.1 "two step secure
log-in"); anyone who enrols is asked for a code at every sign-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from esafety.audit import Actor, record
from esafety.db import utcnow
from esafety.directory.model import School
from esafety.errors import AuthenticationFailed, InvalidInput
from esafety.installation import Installation
from esafety.security import totp
from esafety.security.accounts import (
    actor_of,
    count_failure,
    enrolled,
    is_locked,
    locked_message,
    require_session,
)
from esafety.security.model import Account, RecoveryCode

__all__ = [
    "Enrolment",
    "begin_enrolment",
    "check_two_step",
    "confirm_enrolment",
    "replace_recovery_codes",
]


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str
    qr_svg: str


def check_two_step(
    inst: Installation,
    cookie: str,
    code: str,
    *,
    address: str | None,
    now: datetime | None = None,
) -> None:
    """Accept a code from the app, or an unused recovery code, for this session."""
    now = now or utcnow()
    failure: str | None = None
    with inst.db.session(Actor(name="sign-in", address=address)) as session:
        ws, person, account = require_session(session, cookie)
        session.info["actor"] = actor_of(person, address)
        if not enrolled(account) or account.totp_secret is None:
            raise InvalidInput("Two-step sign-in is not set up for this account yet.")
        if is_locked(account, now):
            raise AuthenticationFailed(locked_message(session, account))
        how = _use_code(session, account, code, now)
        if how is None:
            locked = count_failure(inst, session, account, now)
            record(session, "two_step_failed", "account", person.id)
            failure = (
                "That code is not right or was already used. Enter the newest code from your app."
            )
            if locked:
                failure += " " + locked_message(session, account)
        else:
            ws.two_step_done = True
            ws.last_seen_at = now
            account.failed_attempts = 0
            record(session, "two_step", "account", person.id, after={"with": how})
    if failure is not None:
        raise AuthenticationFailed(failure)


def _use_code(session: Session, account: Account, code: str, now: datetime) -> str | None:
    """'app' or 'recovery code' if the code is good (and now used up), else None."""
    if account.totp_secret is None:
        return None
    step = totp.matching_step(account.totp_secret, code, now, last_step=account.totp_last_step)
    if step is not None:
        account.totp_last_step = step
        return "app"
    if totp.looks_like_recovery_code(code):
        found = session.scalars(
            select(RecoveryCode).where(
                RecoveryCode.person_id == account.person_id,
                RecoveryCode.code_hash == totp.hash_recovery_code(code),
                RecoveryCode.used_at.is_(None),
            )
        ).first()
        if found is not None:
            found.used_at = now
            return "recovery code"
    return None


def begin_enrolment(inst: Installation, cookie: str) -> Enrolment:
    """The secret (new, or the one already shown) and its QR code, for this session's person."""
    with inst.db.session(Actor.system("web")) as session:
        _ws, person, account = require_session(session, cookie)
        session.info["actor"] = actor_of(person, None)
        if enrolled(account):
            raise InvalidInput("Two-step sign-in is already set up for this account.")
        if account.totp_secret is None:
            # Kept until confirmed, so reloading the page does not change the QR code.
            account.totp_secret = totp.new_secret()
        school = session.get(School, person.school_id)
        school_name = school.name if school else ""
        uri = totp.provisioning_uri(account.totp_secret, person.username, school_name)
        return Enrolment(
            secret=account.totp_secret,
            uri=uri,
            qr_svg=totp.qr_svg(uri, label=f"QR code for two-step sign-in as {person.username}"),
        )


def confirm_enrolment(
    inst: Installation,
    cookie: str,
    code: str,
    *,
    address: str | None,
    now: datetime | None = None,
) -> list[str]:
    """Turn two-step sign-in on once the app shows a right code; return recovery codes
    (shown once, stored hashed)."""
    now = now or utcnow()
    with inst.db.session(Actor.system("web")) as session:
        ws, person, account = require_session(session, cookie)
        session.info["actor"] = actor_of(person, address)
        if enrolled(account):
            raise InvalidInput("Two-step sign-in is already set up for this account.")
        if account.totp_secret is None:
            raise InvalidInput("Open the set-up page first to get a QR code.")
        step = totp.matching_step(account.totp_secret, code, now, last_step=account.totp_last_step)
        if step is None:
            raise InvalidInput(
                "That code is not right. Check the app shows esafety for your username and "
                "enter the six digits it shows now."
            )
        account.totp_last_step = step
        account.totp_enrolled_at = now
        ws.two_step_done = True
        codes = replace_recovery_codes(session, account)
        record(session, "two_step_enrolled", "account", person.id)
    return codes


def replace_recovery_codes(session: Session, account: Account) -> list[str]:
    session.execute(delete(RecoveryCode).where(RecoveryCode.person_id == account.person_id))
    codes = totp.new_recovery_codes()
    for code in codes:
        session.add(
            RecoveryCode(
                school_id=account.school_id,
                person_id=account.person_id,
                code_hash=totp.hash_recovery_code(code),
            )
        )
    return codes
