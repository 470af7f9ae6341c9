"""Accounts and security: every thing a person (or the server) does, in one place.

The use cases live beside this module, one concern each; they are gathered here so that
callers (web, CLI, other slices) import one name:

* :mod:`~esafety.security.signin`: sign in, sessions, idle lock, unlock, sign out;
  throttling per address and lockout per account.
* :mod:`~esafety.security.twostep`: two-step codes, enrolment, recovery codes.
* :mod:`~esafety.security.credentials`: set or change a password, clear a lockout.
* :mod:`~esafety.security.tokens`: personal API tokens.
* :mod:`~esafety.security.resets`: what staff do for someone else's account (a temporary
  password, a two-step reset after a lost phone, unlocking); who may, for whom, is
  :mod:`~esafety.security.reset_rules`.
* :mod:`~esafety.security.accounts`: the state of a sign-in (:class:`Identity`,
  :class:`Step`) and the helpers the others share.

Every function opens its own unit of work on the installation's database and is audited.
"""

from __future__ import annotations

from esafety.security.accounts import (
    Identity,
    SignedIn,
    Step,
    find_person,
    password_rules,
    rules_of,
)
from esafety.security.credentials import change_own_password, set_password, unlock_account
from esafety.security.resets import (
    AccountState,
    TemporaryPassword,
    TwoStepReset,
    Unlocked,
    account_state,
    reset_password,
    reset_two_step,
    unlock_person,
)
from esafety.security.signin import (
    create_session,
    identify_session,
    lock_session,
    sign_in,
    sign_out,
    unlock_session,
)
from esafety.security.tokens import (
    TokenInfo,
    authenticate_token,
    create_token,
    list_tokens,
    revoke_token,
    revoke_tokens_named,
)
from esafety.security.twostep import (
    Enrolment,
    begin_enrolment,
    check_two_step,
    confirm_enrolment,
    replace_recovery_codes,
)

__all__ = [
    "AccountState",
    "Enrolment",
    "Identity",
    "SignedIn",
    "Step",
    "TemporaryPassword",
    "TokenInfo",
    "TwoStepReset",
    "Unlocked",
    "account_state",
    "authenticate_token",
    "begin_enrolment",
    "change_own_password",
    "check_two_step",
    "confirm_enrolment",
    "create_session",
    "create_token",
    "find_person",
    "identify_session",
    "list_tokens",
    "lock_session",
    "password_rules",
    "replace_recovery_codes",
    "reset_password",
    "reset_two_step",
    "revoke_token",
    "revoke_tokens_named",
    "rules_of",
    "set_password",
    "sign_in",
    "sign_out",
    "unlock_account",
    "unlock_person",
    "unlock_session",
]
