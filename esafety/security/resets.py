"""What staff do for someone else's account: a temporary password, a two-step reset after a
lost phone, clearing a lockout; and the account's state, for the page that offers them.

Who may do which, for whom, is :mod:`esafety.security.reset_rules`. Each function opens
one unit of work as the actor: a signed-in person's session only sees their own school, so
another school's person is not found (404). Each action is audited by the automatic row
audit and by one event naming whom it was done to (the entry's actor says who did it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from esafety.audit import Actor, record
from esafety.db import utcnow
from esafety.directory.model import Person, PersonKind, School
from esafety.errors import InvalidInput, NotFound
from esafety.installation import Installation
from esafety.security.accounts import enrolled, rules_of
from esafety.security.credentials import clear_lockout, store_password
from esafety.security.model import Account, RecoveryCode, WebSession
from esafety.security.reset_rules import (
    AccountHolder,
    Allowed,
    Requester,
    allowed_actions,
    check_password_reset,
    check_two_step_reset,
    check_unlock,
    check_view,
)
from esafety.security.temporary_passwords import make_temporary_password

__all__ = [
    "REASON_MAX",
    "AccountState",
    "TemporaryPassword",
    "TwoStepReset",
    "Unlocked",
    "account_state",
    "requester_of",
    "reset_password",
    "reset_two_step",
    "unlock_person",
]

REASON_MAX = 500


@dataclass(frozen=True)
class AccountState:
    """How a person signs in, as the staff member helping them sees it (no secrets)."""

    person_id: int
    username: str
    display_name: str
    kind: PersonKind
    group: str | None
    left_on: date | None
    has_password: bool
    must_change_password: bool
    password_changed_at: datetime | None
    locked_until: datetime | None
    failed_attempts: int
    two_step_enrolled: bool
    two_step_enrolled_at: datetime | None
    two_step_required: bool
    recovery_codes_left: int
    last_sign_in_at: datetime | None
    disabled: bool
    allowed: Allowed
    timezone: str

    def local(self, when: datetime | None, fmt: str = "%d %b %Y %H:%M") -> str:
        """A time in the school's zone (a teacher reads "10:45", not a UTC offset)."""
        return when.astimezone(ZoneInfo(self.timezone)).strftime(fmt) if when else ""


@dataclass(frozen=True)
class TemporaryPassword:
    """Shown once to the staff member who reset it; stored only as a hash."""

    person_id: int
    username: str
    display_name: str
    password: str
    generated: bool
    lockout_cleared: bool


@dataclass(frozen=True)
class Unlocked:
    person_id: int
    username: str
    display_name: str
    was_locked: bool


@dataclass(frozen=True)
class TwoStepReset:
    person_id: int
    username: str
    display_name: str
    sessions_ended: int
    #: Their role requires two-step sign-in: they set it up again at the next sign-in.
    must_enrol_again: bool


def requester_of(actor: Actor) -> Requester:
    """The server's command line (a ``system:`` actor with no person) acts on its own
    authority; anyone else by their roles."""
    return Requester(
        person_id=actor.person_id,
        roles=frozenset(actor.roles),
        server=actor.person_id is None and actor.name.startswith("system:"),
    )


def _holder(person: Person, account: Account | None) -> AccountHolder:
    return AccountHolder(
        person_id=person.id,
        name=person.display_name,
        is_pupil=person.kind is PersonKind.PUPIL,
        roles=frozenset(str(r) for r in person.role_ids),
        left_on=person.left_on,
        disabled=bool(account and account.disabled),
    )


def _person(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(
            f"no person with id {person_id} in this school; find them on the People page"
        )
    return person


def account_state(
    inst: Installation,
    person_id: int,
    *,
    actor: Actor,
    for_password_reset: bool = False,
    now: datetime | None = None,
) -> AccountState:
    """The person's sign-in state and what ``actor`` may do about it; with
    ``for_password_reset``, refused (saying why) unless the actor may reset the password."""
    now = now or utcnow()
    with inst.db.session(actor) as session:
        person = _person(session, person_id)
        account = session.get(Account, person.id)
        holder = _holder(person, account)
        by = requester_of(actor)
        check_view(by, holder)
        if for_password_reset:
            check_password_reset(by, holder)
        school = session.get(School, person.school_id)
        codes_left = session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.person_id == person.id, RecoveryCode.used_at.is_(None))
        )
        locked_until = account.locked_until if account else None
        group = person.registration_group.name if person.registration_group else None
        return AccountState(
            person_id=person.id,
            username=person.username,
            display_name=person.display_name,
            kind=person.kind,
            group=group or (person.year_group.label if person.year_group else None),
            left_on=person.left_on,
            has_password=bool(account and account.password_hash),
            must_change_password=bool(account and account.must_change_password),
            password_changed_at=account.password_changed_at if account else None,
            locked_until=locked_until if locked_until and now < locked_until else None,
            failed_attempts=account.failed_attempts if account else 0,
            two_step_enrolled=bool(account and enrolled(account)),
            two_step_enrolled_at=account.totp_enrolled_at if account else None,
            two_step_required=holder.needs_two_step,
            recovery_codes_left=codes_left or 0,
            last_sign_in_at=account.last_sign_in_at if account else None,
            disabled=holder.disabled,
            allowed=allowed_actions(by, holder),
            timezone=school.timezone if school else "Europe/London",
        )


def reset_password(
    inst: Installation,
    person_id: int,
    *,
    actor: Actor,
    password: str | None = None,
    now: datetime | None = None,
) -> TemporaryPassword:
    """Give the person a temporary password (``password``, or one made up to read aloud);
    they must choose their own at the next sign-in. Their sessions end and any lockout is
    cleared (whoever was guessing the old password gains nothing). An account is made if
    they had none."""
    now = now or utcnow()
    if password is not None:
        password = password.strip()  # spaces at either end cannot be read aloud
        if not password:
            raise InvalidInput(
                "the temporary password is empty; type one, or choose to have one made up"
            )
    with inst.db.session(actor) as session:
        person = _person(session, person_id)
        check_password_reset(requester_of(actor), _holder(person, session.get(Account, person.id)))
        school = session.get(School, person.school_id)
        if school is None:  # pragma: no cover - a foreign key guarantees it
            raise NotFound(f"school {person.school_id} does not exist")
        chosen = password or make_temporary_password(rules_of(inst, school).min_length)
        account = session.get(Account, person.id)
        was_locked = account is not None and clear_lockout(account, now)
        store_password(
            inst,
            session,
            person,
            chosen,
            temporary=True,
            now=now,
            audit_after={
                "person": person.username,
                "reset_by": actor.name,
                "generated": password is None,
                "lockout_cleared": was_locked,
            },
        )
        return TemporaryPassword(
            person_id=person.id,
            username=person.username,
            display_name=person.display_name,
            password=chosen,
            generated=password is None,
            lockout_cleared=was_locked,
        )


def _reason(text: str) -> str:
    reason = " ".join(text.split())
    if not reason:
        raise InvalidInput(
            "write why two-step sign-in is being reset (for example 'phone lost on the "
            "school trip, checked in person'); it is kept in the audit trail"
        )
    if len(reason) > REASON_MAX:
        raise InvalidInput(
            f"the reason has {len(reason)} characters; shorten it to at most {REASON_MAX}"
        )
    return reason


def reset_two_step(
    inst: Installation,
    person_id: int,
    *,
    actor: Actor,
    reason: str,
    now: datetime | None = None,
) -> TwoStepReset:
    """Turn off the person's two-step sign-in after a lost phone: the app's secret and the
    recovery codes go, and every session of theirs ends. If their role requires two-step
    sign-in, they set it up again at the next sign-in before anything else."""
    now = now or utcnow()
    why = _reason(reason)
    with inst.db.session(actor) as session:
        person = _person(session, person_id)
        account = session.get(Account, person.id)
        holder = _holder(person, account)
        check_two_step_reset(requester_of(actor), holder)
        if account is None or account.totp_secret is None:
            raise InvalidInput(
                f"{person.display_name} has not set up two-step sign-in, so there is nothing "
                "to reset"
            )
        account.totp_secret = None
        account.totp_enrolled_at = None
        account.totp_last_step = None
        # One by one, not a bulk delete, so the row audit sees each code go.
        for code in session.scalars(
            select(RecoveryCode).where(RecoveryCode.person_id == person.id)
        ):
            session.delete(code)
        ended = _end_sessions(session, person.id, now)
        record(
            session,
            "two_step_reset",
            "account",
            person.id,
            school_id=person.school_id,
            after={
                "person": person.username,
                "reset_by": actor.name,
                "sessions_ended": ended,
                "must_enrol_again": holder.needs_two_step,
            },
            reason=why,
        )
        return TwoStepReset(
            person_id=person.id,
            username=person.username,
            display_name=person.display_name,
            sessions_ended=ended,
            must_enrol_again=holder.needs_two_step,
        )


def _end_sessions(session: Session, person_id: int, now: datetime) -> int:
    live = session.scalars(
        select(WebSession).where(WebSession.person_id == person_id, WebSession.ended_at.is_(None))
    ).all()
    for ws in live:
        ws.ended_at = now
    return len(live)


def unlock_person(
    inst: Installation, person_id: int, *, actor: Actor, now: datetime | None = None
) -> Unlocked:
    """Clear the person's lockout after too many failed sign-ins; True if they were locked."""
    now = now or utcnow()
    with inst.db.session(actor) as session:
        person = _person(session, person_id)
        account = session.get(Account, person.id)
        check_unlock(requester_of(actor), _holder(person, account))
        was_locked = account is not None and clear_lockout(account, now)
        record(
            session,
            "account_unlocked",
            "account",
            person.id,
            school_id=person.school_id,
            after={"person": person.username, "was_locked": was_locked},
        )
        return Unlocked(person.id, person.username, person.display_name, was_locked)
