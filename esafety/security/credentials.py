"""Setting passwords (a staff reset, or the person's own choice) and clearing lockouts.

The school's rules (:mod:`esafety.security.passwords`) apply; a change ends the person's
other sessions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from esafety.audit import Actor, record
from esafety.db import utcnow
from esafety.directory.model import Person, School
from esafety.errors import InvalidInput, NotFound
from esafety.installation import Installation
from esafety.security import passwords
from esafety.security.accounts import (
    account_of,
    actor_of,
    person_by_username,
    require_session,
    rules_of,
    security_of,
    token_hash,
)
from esafety.security.model import Account, PasswordHistory, WebSession

__all__ = [
    "change_own_password",
    "clear_lockout",
    "set_password",
    "store_password",
    "unlock_account",
]


def set_password(
    inst: Installation,
    person_id: int,
    new_password: str,
    *,
    actor: Actor,
    temporary: bool,
    current_password: str | None = None,
    keep_session: str | None = None,
    now: datetime | None = None,
) -> None:
    """Set a password.

    ``temporary``: a staff reset; the person must choose their own at the next sign-in
    (the school's length rule applies, not the reuse rule). Otherwise it is the person's
    own choice, checked against every rule; ``current_password`` is required when given
    from the account page. Other sessions of the person end.
    """
    with inst.db.session(actor) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise NotFound(f"no person with id {person_id}")
        store_password(
            inst,
            session,
            person,
            new_password,
            temporary=temporary,
            current_password=current_password,
            keep_session=keep_session,
            now=now or utcnow(),
        )


def store_password(
    inst: Installation,
    session: Session,
    person: Person,
    new_password: str,
    *,
    temporary: bool,
    now: datetime,
    current_password: str | None = None,
    keep_session: str | None = None,
    audit_after: dict[str, Any] | None = None,
) -> Account:
    """:func:`set_password` inside the caller's unit of work (a staff reset checks who may
    first, in the same transaction). Returns the account (made if the person had none)."""
    ph = passwords.hasher(security_of(inst))
    school = session.get(School, person.school_id)
    if school is None:  # pragma: no cover
        raise NotFound(f"school {person.school_id} does not exist")
    account = account_of(session, person)
    if current_password is not None and not passwords.verify(
        ph, account.password_hash, current_password
    ):
        raise InvalidInput("Your current password is not right; enter it again.")
    rules = rules_of(inst, school)
    history = session.scalars(
        select(PasswordHistory.password_hash)
        .where(PasswordHistory.person_id == person.id)
        .order_by(PasswordHistory.set_at.desc(), PasswordHistory.id.desc())
    ).all()
    passwords.check(
        new_password,
        passwords.PasswordRules(rules.min_length, 0, 0) if temporary else rules,
        ph=ph,
        previous_hashes=history,
        personal_words=() if temporary else _personal_words(person),
    )
    digest = ph.hash(new_password)
    account.password_hash = digest
    account.password_changed_at = now
    account.must_change_password = temporary
    session.add(
        PasswordHistory(
            school_id=person.school_id, person_id=person.id, password_hash=digest, set_at=now
        )
    )
    _prune_history(session, person.id, keep=max(rules.history, 1), known=len(history) + 1)
    kept = token_hash(keep_session) if keep_session else None
    for ws in session.scalars(
        select(WebSession).where(WebSession.person_id == person.id, WebSession.ended_at.is_(None))
    ):
        if ws.token_hash != kept:
            ws.ended_at = now
    record(
        session,
        "password_reset" if temporary else "password_changed",
        "account",
        person.id,
        school_id=person.school_id,
        after=audit_after,
    )
    return account


def _personal_words(person: Person) -> tuple[str, ...]:
    return (
        person.username,
        person.legal_first_name,
        person.legal_last_name,
        person.preferred_first_name or "",
        person.preferred_last_name or "",
    )


def _prune_history(session: Session, person_id: int, *, keep: int, known: int) -> None:
    if known <= keep:
        return
    session.flush()
    newest = session.scalars(
        select(PasswordHistory.id)
        .where(PasswordHistory.person_id == person_id)
        .order_by(PasswordHistory.set_at.desc(), PasswordHistory.id.desc())
        .limit(keep)
    ).all()
    session.execute(
        delete(PasswordHistory).where(
            PasswordHistory.person_id == person_id, PasswordHistory.id.not_in(newest)
        )
    )


def change_own_password(
    inst: Installation,
    cookie: str,
    new_password: str,
    confirm: str,
    *,
    address: str | None,
    current_password: str | None = None,
    now: datetime | None = None,
) -> None:
    """The person chooses their own password (forced at sign-in, or from their account)."""
    if new_password != confirm:
        raise InvalidInput("The two new passwords are not the same; type them again.")
    with inst.db.session(Actor.system("web")) as session:
        _ws, person, _account = require_session(session, cookie)
        actor = actor_of(person, address)
    set_password(
        inst,
        person.id,
        new_password,
        actor=actor,
        temporary=False,
        current_password=current_password,
        keep_session=cookie,
        now=now,
    )


def unlock_account(inst: Installation, username: str, *, actor: Actor) -> None:
    """Clear a lockout (the IT technician's job when someone is locked out)."""
    with inst.db.session(actor) as session:
        person = person_by_username(session, username)
        if person is None:
            raise NotFound(f"no person with username {username!r}")
        clear_lockout(account_of(session, person))
        record(session, "account_unlocked", "account", person.id, school_id=person.school_id)


def clear_lockout(account: Account, now: datetime | None = None) -> bool:
    """Forget failed attempts and any lockout; True if the account was locked."""
    was_locked = account.locked_until is not None and (now or utcnow()) < account.locked_until
    account.failed_attempts = 0
    account.locked_until = None
    return was_locked
