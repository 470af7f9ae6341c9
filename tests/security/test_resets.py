"""Staff resets: a temporary password, a two-step reset after a lost phone, unlocking."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from esafety.audit import SYSTEM, Actor, AuditEntry, verify_chain
from esafety.db import utcnow
from esafety.directory.model import Person, PersonKind
from esafety.errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from esafety.security import service
from esafety.security.model import Account, RecoveryCode, WebSession
from esafety.security.roles import Role
from tests import accounts
from tests.accounts import add_member, fresh_code, make_school, session_cookie


def actor(school: accounts.TestSchool, role: Role) -> Actor:
    member = school[role]
    return Actor(member.username, member.id, school.id, frozenset({role.value}), "10.9.9.9")


def account(inst, person_id: int):
    with inst.db.session(SYSTEM) as session:
        found = session.get(Account, person_id)
        if found is not None:
            session.expunge(found)
        return found


def audit(inst, action: str) -> list[AuditEntry]:
    with inst.db.session(SYSTEM) as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        ).all()
        session.expunge_all()
        return list(entries)


def chain_problem(inst):
    with inst.db.session(SYSTEM) as session:
        return verify_chain(session, inst.audit_head_file)[1]


def live_sessions(inst, person_id: int) -> int:
    with inst.db.session(SYSTEM) as session:
        count = session.scalar(
            select(func.count())
            .select_from(WebSession)
            .where(WebSession.person_id == person_id, WebSession.ended_at.is_(None))
        )
        return int(count or 0)


@pytest.fixture
def ada(inst, school):
    """A pupil the roster brought in: no account, no password yet."""
    with inst.db.session(SYSTEM) as session:
        person = Person(
            school_id=school.id,
            kind=PersonKind.PUPIL,
            username="ada.lovelace",
            legal_first_name="Ada",
            legal_last_name="Lovelace",
        )
        session.add(person)
        session.flush()
        return person.id


def test_a_teacher_gives_a_new_pupil_a_temporary_password(inst, school, ada):
    assert account(inst, ada) is None
    result = service.reset_password(inst, ada, actor=actor(school, Role.TEACHER))
    assert result.generated and result.username == "ada.lovelace"
    made = account(inst, ada)
    assert made is not None and made.must_change_password and made.password_hash
    assert result.password not in made.password_hash
    signed = service.sign_in(inst, "ada.lovelace", result.password, address="10.1.1.1")
    assert signed.identity.next_step is service.Step.CHANGE_PASSWORD
    [entry] = audit(inst, "password_reset")
    assert entry.actor == school[Role.TEACHER].username
    assert entry.actor_id == school[Role.TEACHER].id
    assert entry.object_id == str(ada)
    assert entry.after == {
        "person": "ada.lovelace",
        "reset_by": school[Role.TEACHER].username,
        "generated": True,
        "lockout_cleared": False,
    }
    # The automatic row audit saw the account made, its secret recorded only as changed.
    with inst.db.session(SYSTEM) as session:
        rows = session.scalars(
            select(AuditEntry).where(
                AuditEntry.object_type == "account", AuditEntry.object_id == str(ada)
            )
        ).all()
        assert any(r.action == "create" for r in rows), [r.action for r in rows]
        assert all(result.password not in str(r.after) for r in rows)
    assert chain_problem(inst) is None


def test_a_typed_password_is_used_and_a_short_one_changes_nothing(inst, school):
    pupil = school[Role.PUPIL]
    before = account(inst, pupil.id)
    with pytest.raises(InvalidInput, match="at least 10"):
        service.reset_password(inst, pupil.id, actor=actor(school, Role.TEACHER), password="abc")
    with pytest.raises(InvalidInput, match="empty"):
        service.reset_password(inst, pupil.id, actor=actor(school, Role.TEACHER), password="  ")
    assert account(inst, pupil.id).password_hash == before.password_hash
    assert audit(inst, "password_reset") == []
    result = service.reset_password(
        inst, pupil.id, actor=actor(school, Role.TEACHING_ASSISTANT), password=" orange-kite-31 "
    )
    assert result.password == "orange-kite-31" and not result.generated
    assert service.sign_in(inst, pupil.username, "orange-kite-31", address="10.1.1.2").token


def test_a_reset_ends_sessions_and_clears_a_lockout(inst, school):
    pupil = school[Role.PUPIL]
    session_cookie(inst, pupil)
    assert live_sessions(inst, pupil.id) == 1
    for n in range(inst.settings.security.lockout_attempts):
        with pytest.raises(AuthenticationFailed):
            service.sign_in(inst, pupil.username, "wrong", address=f"10.2.0.{n}")
    assert account(inst, pupil.id).locked_until is not None
    result = service.reset_password(inst, pupil.id, actor=actor(school, Role.TECHNICIAN))
    assert result.lockout_cleared
    assert live_sessions(inst, pupil.id) == 0
    assert service.sign_in(inst, pupil.username, result.password, address="10.2.1.1").token


@pytest.mark.parametrize(
    ("who", "whom"),
    [
        (Role.TEACHER, Role.TEACHING_ASSISTANT),
        (Role.TEACHING_ASSISTANT, Role.PARENT),
        (Role.TECHNICIAN, Role.DSL),
        (Role.TECHNICIAN, Role.ADMIN),
        (Role.OFFICE, Role.PUPIL),
        (Role.DSL, Role.PUPIL),
    ],
)
def test_refused_resets_say_why_and_change_nothing(inst, school, who, whom):
    target = school[whom]
    before = account(inst, target.id)
    with pytest.raises(PermissionDenied):
        service.reset_password(inst, target.id, actor=actor(school, who))
    assert account(inst, target.id).password_hash == before.password_hash
    assert audit(inst, "password_reset") == []


def test_an_administrator_resets_a_dsls_password(inst, school):
    dsl = school[Role.DSL]
    result = service.reset_password(inst, dsl.id, actor=actor(school, Role.ADMIN))
    signed = service.sign_in(inst, dsl.username, result.password, address="10.3.0.1")
    # Still asked for the code from the app first: a password alone is not enough.
    assert signed.identity.next_step is service.Step.TWO_STEP


def test_another_schools_people_are_not_found(inst, school):
    other = make_school(inst, "elmtree")
    pupil = other[Role.PUPIL]
    before = account(inst, pupil.id)
    for attempt in (
        lambda: service.reset_password(inst, pupil.id, actor=actor(school, Role.ADMIN)),
        lambda: service.unlock_person(inst, pupil.id, actor=actor(school, Role.TECHNICIAN)),
        lambda: service.reset_two_step(
            inst, other[Role.DSL].id, actor=actor(school, Role.ADMIN), reason="lost phone"
        ),
        lambda: service.account_state(inst, pupil.id, actor=actor(school, Role.TEACHER)),
    ):
        with pytest.raises(NotFound):
            attempt()
    assert account(inst, pupil.id).password_hash == before.password_hash


def test_a_leaver_gets_no_new_password(inst, school):
    pupil = school[Role.PUPIL]
    with inst.db.session(SYSTEM) as session:
        session.execute(update(Person).where(Person.id == pupil.id).values(left_on=date.today()))
    with pytest.raises(InvalidInput, match="left the school"):
        service.reset_password(inst, pupil.id, actor=actor(school, Role.TEACHER))


# -- two-step sign-in after a lost phone ------------------------------------------------


def test_an_administrator_resets_a_dsls_two_step_after_a_lost_phone(inst, school):
    dsl = school[Role.DSL]
    session_cookie(inst, dsl)
    session_cookie(inst, dsl)
    result = service.reset_two_step(
        inst, dsl.id, actor=actor(school, Role.ADMIN), reason="  phone lost;  checked in person "
    )
    assert (result.sessions_ended, result.must_enrol_again) == (2, True)
    after = account(inst, dsl.id)
    assert (after.totp_secret, after.totp_enrolled_at, after.totp_last_step) == (None, None, None)
    assert live_sessions(inst, dsl.id) == 0
    with inst.db.session(SYSTEM) as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(RecoveryCode)
                .where(RecoveryCode.person_id == dsl.id)
            )
            == 0
        )
    [entry] = audit(inst, "two_step_reset")
    assert entry.reason == "phone lost; checked in person"
    assert entry.actor == school[Role.ADMIN].username
    assert (entry.after or {})["person"] == dsl.username
    # The password alone now leads to setting two-step sign-in up again, before anything else.
    signed = service.sign_in(inst, dsl.username, dsl.password, address="10.4.0.1")
    assert signed.identity.next_step is service.Step.ENROL_TWO_STEP
    assert chain_problem(inst) is None


def test_recovery_codes_are_deleted_row_by_row_so_the_audit_sees_them(inst, school):
    admin = school[Role.ADMIN]
    other_admin = add_member(inst, school.id, "second.admin", [Role.ADMIN])
    with inst.db.session(SYSTEM) as session:
        found = session.get(Account, other_admin.id)
        codes = service.replace_recovery_codes(session, found)
    assert len(codes) > 1
    service.reset_two_step(
        inst, other_admin.id, actor=actor(school, Role.ADMIN), reason="new phone"
    )
    with inst.db.session(SYSTEM) as session:
        deleted = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.object_type == "recovery_code", AuditEntry.action == "delete")
        )
    assert deleted == len(codes)
    assert admin.id != other_admin.id


def test_two_step_reset_refusals(inst, school):
    admin, dsl = school[Role.ADMIN], school[Role.DSL]
    with pytest.raises(PermissionDenied, match="your own two-step"):
        service.reset_two_step(inst, admin.id, actor=actor(school, Role.ADMIN), reason="lost")
    with pytest.raises(PermissionDenied, match="only an administrator"):
        service.reset_two_step(inst, dsl.id, actor=actor(school, Role.TECHNICIAN), reason="x")
    with pytest.raises(InvalidInput, match="write why"):
        service.reset_two_step(inst, dsl.id, actor=actor(school, Role.ADMIN), reason=" \n ")
    with pytest.raises(InvalidInput, match="at most 500"):
        service.reset_two_step(inst, dsl.id, actor=actor(school, Role.ADMIN), reason="x" * 501)
    with pytest.raises(InvalidInput, match="nothing to reset"):
        service.reset_two_step(
            inst, school[Role.TEACHER].id, actor=actor(school, Role.ADMIN), reason="lost"
        )
    assert account(inst, dsl.id).totp_secret == dsl.totp_secret
    assert audit(inst, "two_step_reset") == []


def test_two_step_reset_on_the_command_line(inst, school, cli):
    headteacher = school[Role.HEADTEACHER]
    session_cookie(inst, headteacher)
    result = cli("users", "two-step", "reset", headteacher.username, "--reason", "phone stolen")
    assert result.code == 0, result.err
    assert "1 session(s) ended" in result.out and "must set it up again" in result.out
    [entry] = audit(inst, "two_step_reset")
    assert (entry.actor, entry.reason) == ("system:cli", "phone stolen")
    again = cli("users", "two-step", "reset", headteacher.username)
    assert again.code == 2 and "nothing to reset" in again.err
    unknown = cli("users", "two-step", "reset", "nobody")
    assert unknown.code == 2 and "no person with username 'nobody'" in unknown.err
    assert "Traceback" not in again.err + unknown.err


def test_a_code_still_works_for_others_after_a_reset(inst, school):
    """Only the person reset loses their second step."""
    service.reset_two_step(
        inst, school[Role.DSL].id, actor=actor(school, Role.ADMIN), reason="lost phone"
    )
    lead = school[Role.DEPUTY_DSL]
    half = service.sign_in(inst, lead.username, lead.password, address="10.5.0.1")
    service.check_two_step(inst, half.token, fresh_code(inst, lead), address="10.5.0.1")


# -- unlocking and the account's state --------------------------------------------------


def test_a_technician_unlocks_from_the_page_service(inst, school):
    teacher = school[Role.TEACHER]
    with inst.db.session(SYSTEM) as session:
        session.execute(
            update(Account)
            .where(Account.person_id == teacher.id)
            .values(locked_until=utcnow() + timedelta(minutes=10), failed_attempts=0)
        )
    state = service.account_state(inst, teacher.id, actor=actor(school, Role.TECHNICIAN))
    assert state.locked_until is not None and state.allowed.unlock
    with pytest.raises(PermissionDenied):
        service.unlock_person(inst, teacher.id, actor=actor(school, Role.TEACHER))
    assert service.unlock_person(inst, teacher.id, actor=actor(school, Role.TECHNICIAN)).was_locked
    assert account(inst, teacher.id).locked_until is None
    [entry] = audit(inst, "account_unlocked")
    assert entry.after == {"person": teacher.username, "was_locked": True}
    assert service.sign_in(inst, teacher.username, teacher.password, address="10.6.0.1").token


def test_account_state_says_what_the_caller_may_do(inst, school):
    dsl = school[Role.DSL]
    state = service.account_state(inst, dsl.id, actor=actor(school, Role.ADMIN))
    assert state.two_step_enrolled and state.two_step_required and state.has_password
    assert state.allowed.reset_two_step and state.allowed.reset_password
    as_tech = service.account_state(inst, dsl.id, actor=actor(school, Role.TECHNICIAN))
    assert not as_tech.allowed.reset_password and not as_tech.allowed.reset_two_step
    with pytest.raises(PermissionDenied, match="pupils' passwords only"):
        service.account_state(inst, dsl.id, actor=actor(school, Role.TEACHER))
    with pytest.raises(PermissionDenied, match="only an administrator"):
        service.account_state(
            inst, dsl.id, actor=actor(school, Role.TECHNICIAN), for_password_reset=True
        )
