"""Who may reset whose password or two-step sign-in, or unlock whose account.

The permission table (:mod:`esafety.security.roles`) says who may use each page at all;
these rules say for which person. Pure: no database, no web.

* A password: a teacher or teaching assistant resets a pupil's (the issue: "pupils and
  staff set theirs at first sign-in or by a staff reset"); an IT technician or an
  administrator resets anyone's, but only an administrator resets the password of someone
  whose role needs two-step sign-in (they can read safeguarding records, 000 §4.1).
  Nobody resets their own here (they change it on "My account"), and a leaver's account
  stays off.
* Two-step sign-in (a lost phone): an administrator, or the server's command line; never
  one's own, so that a stolen administrator session cannot remove its own second step.
* A lockout: an IT technician or an administrator (the sign-in page tells a locked-out
  person to ask them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

from esafety.errors import InvalidInput, PermissionDenied
from esafety.security.roles import TWO_STEP_ROLES, Permission, Role, allowed

__all__ = [
    "AccountHolder",
    "Allowed",
    "Requester",
    "allowed_actions",
    "check_password_reset",
    "check_two_step_reset",
    "check_unlock",
    "check_view",
]


@dataclass(frozen=True)
class Requester:
    """Who asks: a signed-in person (id and roles), or the server's command line."""

    person_id: int | None
    roles: frozenset[str]
    server: bool = False

    def can(self, permission: Permission) -> bool:
        return self.server or allowed(self.roles, permission)


@dataclass(frozen=True)
class AccountHolder:
    """Whose account it is."""

    person_id: int
    name: str
    is_pupil: bool
    roles: frozenset[str]
    left_on: date | None = None
    disabled: bool = False

    @property
    def only_a_pupil(self) -> bool:
        """A pupil who holds no other role (a teacher may reset nothing more powerful)."""
        return self.is_pupil and self.roles <= {Role.PUPIL.value}

    @property
    def needs_two_step(self) -> bool:
        return any(role in TWO_STEP_ROLES for role in self.roles)


@dataclass(frozen=True)
class Allowed:
    """What a requester may do to one person's account (for pages and links)."""

    view: bool
    reset_password: bool
    reset_two_step: bool
    unlock: bool


def _role_labels(roles: Iterable[str]) -> str:
    known = {role.value: role for role in Role}
    labels = sorted(known[r].label for r in roles if r in known)
    return ", ".join(labels) or "no role"


def check_view(by: Requester, holder: AccountHolder) -> None:
    """May ``by`` see the state of ``holder``'s sign-in (and act on it)?"""
    if by.can(Permission.MANAGE_ACCOUNTS):
        return
    if by.can(Permission.RESET_PUPIL_PASSWORDS) and holder.only_a_pupil:
        return
    raise PermissionDenied(
        f"you cannot manage {holder.name}'s account: your role lets you reset pupils' "
        "passwords only. Ask your IT technician or administrator"
    )


def check_password_reset(by: Requester, holder: AccountHolder) -> None:
    """Raise unless ``by`` may give ``holder`` a temporary password."""
    if by.person_id is not None and by.person_id == holder.person_id:
        raise PermissionDenied(
            "you cannot reset your own password here; change it from My account "
            "(/password/change), or ask your IT technician"
        )
    if holder.left_on is not None:
        raise InvalidInput(
            f"{holder.name} left the school on {holder.left_on:%d %b %Y}, so their account is "
            "turned off and a new password would not let them sign in; the school office "
            "can bring them back first if they should still have access"
        )
    if holder.disabled:
        raise InvalidInput(
            f"{holder.name}'s account is turned off, so a new password would not let them "
            "sign in; ask your administrator to turn it back on first"
        )
    if by.server:
        return
    if by.can(Permission.MANAGE_ACCOUNTS):
        if holder.needs_two_step and Role.ADMIN not in by.roles:
            raise PermissionDenied(
                f"only an administrator can reset the password of {holder.name}, who is "
                f"{_role_labels(holder.roles)} (a role that can read safeguarding records "
                "or run the installation); ask your administrator"
            )
        return
    if by.can(Permission.RESET_PUPIL_PASSWORDS):
        if holder.only_a_pupil:
            return
        raise PermissionDenied(
            f"you can reset pupils' passwords only, and {holder.name} is "
            f"{_role_labels(holder.roles)}; ask your IT technician"
        )
    raise PermissionDenied(
        "you cannot reset passwords; ask your IT technician or a teacher to reset it"
    )


def check_two_step_reset(by: Requester, holder: AccountHolder) -> None:
    """Raise unless ``by`` may turn off ``holder``'s two-step sign-in (a lost phone)."""
    if by.person_id is not None and by.person_id == holder.person_id:
        raise PermissionDenied(
            "you cannot reset your own two-step sign-in: use one of your recovery codes to "
            "sign in, or ask another administrator (or the server's "
            "`esafety users two-step reset`)"
        )
    if by.can(Permission.RESET_TWO_STEP):
        return
    raise PermissionDenied(
        "only an administrator can reset someone's two-step sign-in; ask your administrator"
    )


def check_unlock(by: Requester, holder: AccountHolder) -> None:
    """Raise unless ``by`` may clear ``holder``'s lockout."""
    if by.can(Permission.MANAGE_ACCOUNTS):
        return
    raise PermissionDenied(
        f"you cannot unlock {holder.name}'s account; ask your IT technician or administrator"
    )


def _passes(
    check: Callable[[Requester, AccountHolder], None], by: Requester, holder: AccountHolder
) -> bool:
    try:
        check(by, holder)
    except (PermissionDenied, InvalidInput):
        return False
    return True


def allowed_actions(by: Requester, holder: AccountHolder) -> Allowed:
    return Allowed(
        view=_passes(check_view, by, holder),
        reset_password=_passes(check_password_reset, by, holder),
        reset_two_step=_passes(check_two_step_reset, by, holder),
        unlock=_passes(check_unlock, by, holder),
    )
