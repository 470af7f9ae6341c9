"""Sign-in rules: lockout per account, throttling per address, leavers, audit events."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from esafety.audit import SYSTEM, AuditEntry
from esafety.db import utcnow
from esafety.directory.model import Person
from esafety.errors import AuthenticationFailed, InvalidInput
from esafety.security import service
from esafety.security.model import Account, PasswordHistory, WebSession
from esafety.security.roles import Role
from tests.accounts import PASSWORD, add_member


def _actions(inst, object_type="account"):
    with inst.db.session(SYSTEM) as session:
        return session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.object_type == object_type)
            .order_by(AuditEntry.seq)
        ).all()


def test_account_locks_after_the_set_number_of_failures(inst, school):
    teacher = school[Role.TEACHER]
    limit = inst.settings.security.lockout_attempts
    for _ in range(limit - 1):
        with pytest.raises(AuthenticationFailed, match="not right"):
            service.sign_in(inst, teacher.username, "wrong", address=f"10.0.0.{_}")
    with pytest.raises(AuthenticationFailed, match="locked"):
        service.sign_in(inst, teacher.username, "wrong", address="10.0.1.1")
    # Even the right password is refused while locked.
    with pytest.raises(AuthenticationFailed, match="locked"):
        service.sign_in(inst, teacher.username, PASSWORD, address="10.0.1.2")
    assert "lockout" in _actions(inst)
    # When the lock has passed, the right password works again.
    with inst.db.session(SYSTEM) as session:
        session.execute(
            update(Account)
            .where(Account.person_id == teacher.id)
            .values(locked_until=utcnow() - timedelta(seconds=1))
        )
    assert service.sign_in(inst, teacher.username, PASSWORD, address="10.0.1.3").token


def test_technician_can_unlock_an_account(inst, school, cli):
    teacher = school[Role.TEACHER]
    for n in range(inst.settings.security.lockout_attempts):
        with pytest.raises(AuthenticationFailed):
            service.sign_in(inst, teacher.username, "wrong", address=f"10.0.0.{n}")
    result = cli("users", "unlock", teacher.username)
    assert result.code == 0, result.err
    assert service.sign_in(inst, teacher.username, PASSWORD, address="10.0.2.1").token
    assert "account_unlocked" in _actions(inst)


def test_one_address_is_throttled_across_accounts(inst, school):
    limit = inst.settings.security.sign_in_attempts_per_minute
    for n in range(limit):
        with pytest.raises(AuthenticationFailed, match="not right"):
            service.sign_in(inst, f"nobody{n}", "wrong", address="192.0.2.9")
    with pytest.raises(AuthenticationFailed, match="Too many sign-in attempts"):
        service.sign_in(inst, school[Role.TEACHER].username, PASSWORD, address="192.0.2.9")
    # Another address is not affected.
    assert service.sign_in(inst, school[Role.TEACHER].username, PASSWORD, address="192.0.2.10")


def test_unknown_username_and_wrong_password_read_the_same(inst, school):
    with pytest.raises(AuthenticationFailed) as unknown:
        service.sign_in(inst, "no.such.person", "whatever", address="a")
    with pytest.raises(AuthenticationFailed) as wrong:
        service.sign_in(inst, school[Role.TEACHER].username, "whatever", address="a")
    assert str(unknown.value) == str(wrong.value)


def test_username_is_not_case_sensitive(inst, school):
    assert service.sign_in(inst, school[Role.TEACHER].username.upper(), PASSWORD, address="a")


def test_leaver_cannot_sign_in_and_their_sessions_end(inst, school):
    teacher = school[Role.TEACHER]
    signed = service.sign_in(inst, teacher.username, PASSWORD, address="a")
    with inst.db.session(SYSTEM) as session:
        session.execute(update(Person).where(Person.id == teacher.id).values(left_on=date.today()))
    assert service.identify_session(inst, signed.token, address="a") is None
    with pytest.raises(AuthenticationFailed, match="turned off"):
        service.sign_in(inst, teacher.username, PASSWORD, address="a")


def test_person_without_a_password_cannot_sign_in(inst, school):
    member = add_member(inst, school.id, "no.password", [Role.TEACHER], password=None)
    with pytest.raises(AuthenticationFailed, match="not right"):
        service.sign_in(inst, member.username, "", address="a")


def test_sign_in_and_failures_are_audited_with_the_address(inst, school):
    teacher = school[Role.TEACHER]
    with pytest.raises(AuthenticationFailed):
        service.sign_in(inst, teacher.username, "wrong", address="198.51.100.7")
    service.sign_in(inst, teacher.username, PASSWORD, address="198.51.100.7")
    with inst.db.session(SYSTEM) as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action.in_(["sign_in", "sign_in_failed"]))
        ).all()
    assert [(e.action, e.address, e.actor) for e in entries] == [
        ("sign_in_failed", "198.51.100.7", teacher.username),
        ("sign_in", "198.51.100.7", teacher.username),
    ]
    assert all(e.school_id == school.id for e in entries)


def test_staff_reset_ends_the_persons_sessions_and_forces_a_change(inst, school):
    teacher = school[Role.TEACHER]
    signed = service.sign_in(inst, teacher.username, PASSWORD, address="a")
    service.set_password(inst, teacher.id, "reset-by-office-1", actor=SYSTEM, temporary=True)
    assert service.identify_session(inst, signed.token, address="a") is None
    again = service.sign_in(inst, teacher.username, "reset-by-office-1", address="a")
    assert again.identity.next_step is service.Step.CHANGE_PASSWORD


def test_changing_own_password_keeps_this_session_and_ends_the_others(inst, school):
    teacher = school[Role.TEACHER]
    here = service.sign_in(inst, teacher.username, PASSWORD, address="a")
    there = service.sign_in(inst, teacher.username, PASSWORD, address="b")
    with pytest.raises(InvalidInput, match="current password"):
        service.change_own_password(
            inst,
            here.token,
            "new-pass-phrase",
            "new-pass-phrase",
            address="a",
            current_password="wrong",
        )
    service.change_own_password(
        inst,
        here.token,
        "new-pass-phrase",
        "new-pass-phrase",
        address="a",
        current_password=PASSWORD,
    )
    assert service.identify_session(inst, here.token, address="a") is not None
    assert service.identify_session(inst, there.token, address="b") is None


def test_password_history_is_kept_to_the_school_rule(inst, school):
    teacher = school[Role.TEACHER]
    keep = inst.settings.security.password_history
    for n in range(keep + 3):
        service.set_password(inst, teacher.id, f"history-pass-{n}", actor=SYSTEM, temporary=False)
    with inst.db.session(SYSTEM) as session:
        count = len(
            session.scalars(
                select(PasswordHistory).where(PasswordHistory.person_id == teacher.id)
            ).all()
        )
    assert count == keep
    with pytest.raises(InvalidInput, match="used it before"):
        service.set_password(
            inst, teacher.id, f"history-pass-{keep + 2}", actor=SYSTEM, temporary=False
        )


def test_password_hash_never_reaches_the_audit_trail(inst, school):
    teacher = school[Role.TEACHER]
    service.set_password(inst, teacher.id, "audit-check-pass", actor=SYSTEM, temporary=False)
    with inst.db.session(SYSTEM) as session:
        digest = session.get(Account, teacher.id).password_hash
        dumped = repr([(e.before, e.after) for e in session.scalars(select(AuditEntry)).all()])
    assert digest not in dumped and "$argon2" not in dumped


def test_half_finished_sign_in_left_idle_is_ended_not_locked(inst, school):
    dsl = school[Role.DSL]
    half = service.sign_in(inst, dsl.username, PASSWORD, address="a")
    with inst.db.session(SYSTEM) as session:
        session.execute(update(WebSession).values(last_seen_at=utcnow() - timedelta(minutes=20)))
    assert service.identify_session(inst, half.token, address="a") is None


def test_wrong_codes_count_towards_the_lockout(inst, school):
    dsl = school[Role.DSL]
    half = service.sign_in(inst, dsl.username, PASSWORD, address="a")
    for _ in range(inst.settings.security.lockout_attempts - 1):
        with pytest.raises(AuthenticationFailed, match="not right"):
            service.check_two_step(inst, half.token, "000000", address="a")
    with pytest.raises(AuthenticationFailed, match="locked"):
        service.check_two_step(inst, half.token, "000000", address="a")
    # The half-finished session ended with the lockout.
    assert service.identify_session(inst, half.token, address="a") is None


def test_the_schools_own_rules_apply(inst, school):
    from esafety.directory.model import School

    with inst.db.session(SYSTEM) as session:
        session.execute(update(School).where(School.id == school.id).values(password_min_length=16))
    with pytest.raises(InvalidInput, match="at least 16"):
        service.set_password(
            inst, school[Role.TEACHER].id, "fifteen-chars-x", actor=SYSTEM, temporary=False
        )
    assert service.password_rules(inst, school.id).min_length == 16
