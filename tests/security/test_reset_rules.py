"""Who may reset whose password or two-step sign-in, or unlock whose account (pure)."""

from __future__ import annotations

from datetime import date

import pytest

from esafety.errors import InvalidInput, PermissionDenied
from esafety.security.reset_rules import (
    AccountHolder,
    Requester,
    allowed_actions,
    check_password_reset,
    check_two_step_reset,
    check_unlock,
    check_view,
)
from esafety.security.roles import PERMISSIONS, TWO_STEP_ROLES, Permission, Role

SERVER = Requester(None, frozenset(), server=True)


def by(role: Role, person_id: int = 1) -> Requester:
    return Requester(person_id, frozenset({role.value}))


def holder(*roles: Role, pupil: bool = False, **kw) -> AccountHolder:
    return AccountHolder(
        person_id=kw.pop("person_id", 99),
        name="Sam Smith",
        is_pupil=pupil,
        roles=frozenset(r.value for r in roles),
        **kw,
    )


PUPIL = holder(Role.PUPIL, pupil=True)


def passes(check, requester, target) -> bool:
    try:
        check(requester, target)
    except PermissionDenied:
        return False
    return True


@pytest.mark.parametrize("role", list(Role))
def test_a_pupils_password_can_be_reset_by_exactly_the_roles_in_the_table(role):
    expected = role in PERMISSIONS[Permission.RESET_PUPIL_PASSWORDS]
    assert passes(check_password_reset, by(role), PUPIL) is expected


@pytest.mark.parametrize("target", [r for r in Role if r is not Role.PUPIL])
@pytest.mark.parametrize("role", [Role.TEACHER, Role.TEACHING_ASSISTANT])
def test_teachers_reset_pupils_only(role, target):
    with pytest.raises(PermissionDenied, match="pupils' passwords only"):
        check_password_reset(by(role), holder(target))


def test_a_pupil_holding_another_role_is_not_only_a_pupil():
    with pytest.raises(PermissionDenied):
        check_password_reset(by(Role.TEACHER), holder(Role.PUPIL, Role.TECHNICIAN, pupil=True))
    check_password_reset(by(Role.TECHNICIAN), holder(Role.PUPIL, Role.TECHNICIAN, pupil=True))


@pytest.mark.parametrize("target", list(Role))
def test_technicians_reset_anyone_but_those_whose_role_needs_two_step(target):
    if target in TWO_STEP_ROLES:
        with pytest.raises(PermissionDenied, match="only an administrator"):
            check_password_reset(by(Role.TECHNICIAN), holder(target))
    else:
        check_password_reset(by(Role.TECHNICIAN), holder(target, pupil=target is Role.PUPIL))


@pytest.mark.parametrize("target", list(Role))
def test_administrators_reset_anyone_else(target):
    check_password_reset(by(Role.ADMIN), holder(target, pupil=target is Role.PUPIL))


def test_nobody_resets_their_own_password_here():
    me = holder(Role.ADMIN, person_id=1)
    with pytest.raises(PermissionDenied, match="your own password"):
        check_password_reset(by(Role.ADMIN, person_id=1), me)


def test_a_leaver_or_a_disabled_account_gets_no_new_password():
    leaver = holder(Role.PUPIL, pupil=True, left_on=date(2025, 7, 18))
    with pytest.raises(InvalidInput, match="left the school on 18 Jul 2025"):
        check_password_reset(by(Role.TEACHER), leaver)
    with pytest.raises(InvalidInput, match="turned off"):
        check_password_reset(by(Role.ADMIN), holder(Role.TEACHER, disabled=True))
    assert not allowed_actions(by(Role.ADMIN), leaver).reset_password


@pytest.mark.parametrize("role", list(Role))
def test_only_administrators_reset_someone_elses_two_step(role):
    assert passes(check_two_step_reset, by(role), holder(Role.DSL)) is (role is Role.ADMIN)


def test_nobody_resets_their_own_two_step_not_even_an_administrator():
    with pytest.raises(PermissionDenied, match="your own two-step"):
        check_two_step_reset(by(Role.ADMIN, person_id=5), holder(Role.ADMIN, person_id=5))


def test_the_server_command_line_may_reset_anyones_two_step():
    check_two_step_reset(SERVER, holder(Role.ADMIN))
    check_password_reset(SERVER, holder(Role.DSL))


@pytest.mark.parametrize("role", list(Role))
def test_unlocking_follows_manage_accounts(role):
    expected = role in PERMISSIONS[Permission.MANAGE_ACCOUNTS]
    assert passes(check_unlock, by(role), holder(Role.DSL)) is expected


def test_who_sees_an_account_page():
    assert passes(check_view, by(Role.TEACHER), PUPIL)
    assert not passes(check_view, by(Role.TEACHER), holder(Role.OFFICE))
    assert passes(check_view, by(Role.TECHNICIAN), holder(Role.DSL))
    assert not passes(check_view, by(Role.DSL), PUPIL)


def test_allowed_actions_gathers_the_rules():
    tech_on_dsl = allowed_actions(by(Role.TECHNICIAN), holder(Role.DSL))
    assert (tech_on_dsl.view, tech_on_dsl.reset_password, tech_on_dsl.unlock) == (True, False, True)
    assert not tech_on_dsl.reset_two_step
    admin_on_dsl = allowed_actions(by(Role.ADMIN), holder(Role.DSL))
    assert admin_on_dsl.reset_password and admin_on_dsl.reset_two_step
    teacher = allowed_actions(by(Role.TEACHER), PUPIL)
    assert teacher.view and teacher.reset_password
    assert not teacher.unlock and not teacher.reset_two_step
