"""Pages and ``/api/v1`` routes where staff help with someone else's account.

    GET  /people/{id}/account            sign-in state, and what the caller may do about it
    GET  /people/{id}/password           reset a password: the form
    POST /people/{id}/password           … confirmed: the temporary password, shown once
    POST /people/{id}/unlock             clear a lockout
    POST /people/{id}/two-step/reset     turn off two-step sign-in after a lost phone (reason)
    GET  /api/v1/people/{id}/account
    POST /api/v1/people/{id}/password    {"password": optional} → the temporary password
    POST /api/v1/people/{id}/unlock
    POST /api/v1/people/{id}/two-step/reset   {"reason": "..."}

The permission on each route lets a role through the door; which people it may act on is
:mod:`esafety.security.reset_rules` (a teacher: pupils; a technician: anyone but those
whose role needs two-step sign-in; an administrator: anyone but themselves).

Pages are left out of the OpenAPI document here (it describes the JSON API only): the app
hides the pages of each slice's own router, and this router is included in another.

The person page includes ``security/account_actions.html``, whose macro asks
``account_actions_for(caller, person)`` (a template global set here) which links to show.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from esafety.directory.model import PersonKind
from esafety.errors import InvalidInput
from esafety.security import service
from esafety.security.reset_rules import AccountHolder, Allowed, Requester, allowed_actions
from esafety.security.resets import REASON_MAX, AccountState
from esafety.security.roles import Permission
from esafety.web.deps import Caller, installation, require
from esafety.web.pages import environment, render

__all__ = ["account_actions_for", "router"]

router = APIRouter()

ResetPasswords = Depends(require(Permission.RESET_PUPIL_PASSWORDS))
ManageAccounts = Depends(require(Permission.MANAGE_ACCOUNTS))
ResetTwoStep = Depends(require(Permission.RESET_TWO_STEP))

#: Messages after a form succeeds (``?done=<key>``), so a reload never re-posts.
DONE = {
    "unlocked": "The account is unlocked: they can sign in again now.",
    "not-locked": "The account was not locked; failed attempts are cleared.",
    "two-step-reset": "Two-step sign-in is reset and their sessions have ended.",
}

_NOBODY = Allowed(view=False, reset_password=False, reset_two_step=False, unlock=False)


def account_actions_for(caller: Any, person: Any) -> Allowed:
    """What ``caller`` may do to ``person``'s account (for links on the person page).

    Lockout and disabled accounts are not known here; the pages themselves say.
    """
    if caller is None or person is None:
        return _NOBODY
    by = Requester(caller.person_id, frozenset(str(r) for r in caller.roles))
    holder = AccountHolder(
        person_id=person.id,
        name=person.display_name,
        is_pupil=person.kind is PersonKind.PUPIL,
        roles=frozenset(str(r) for r in person.role_ids),
        left_on=person.left_on,
    )
    return allowed_actions(by, holder)


environment.globals["account_actions_for"] = account_actions_for


def _redirect(person_id: int, done: str) -> RedirectResponse:
    return RedirectResponse(f"/people/{person_id}/account?{urlencode({'done': done})}", 303)


# -- pages --------------------------------------------------------------------------


@router.get("/people/{person_id}/account", response_class=HTMLResponse, include_in_schema=False)
def account_page(request: Request, person_id: int, caller: Caller = ResetPasswords) -> Response:
    return _account_page(request, caller, person_id)


def _account_page(
    request: Request,
    caller: Caller,
    person_id: int,
    *,
    error: str | None = None,
    reason: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    state = service.account_state(installation(request), person_id, actor=caller.actor)
    return render(
        request,
        "security/person_account.html",
        {
            "state": state,
            "flash": DONE.get(request.query_params.get("done", "")),
            "flash_kind": "good",
            "error": error,
            "reason": reason,
            "reason_max": REASON_MAX,
        },
        caller=caller,
        status_code=status_code,
    )


@router.get("/people/{person_id}/password", response_class=HTMLResponse, include_in_schema=False)
def password_reset_page(
    request: Request, person_id: int, caller: Caller = ResetPasswords
) -> Response:
    return _password_form(request, caller, person_id)


def _password_form(
    request: Request,
    caller: Caller,
    person_id: int,
    *,
    how: str = "generate",
    typed: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    state = service.account_state(
        installation(request), person_id, actor=caller.actor, for_password_reset=True
    )
    rules = service.password_rules(installation(request), caller.school_id)
    return render(
        request,
        "security/password_reset.html",
        {
            "state": state,
            "rules": rules,
            "how": how if how in ("generate", "type") else "generate",
            "typed": typed[:256],
            "error": error,
        },
        caller=caller,
        status_code=status_code,
    )


@router.post("/people/{person_id}/password", response_model=None, include_in_schema=False)
def reset_password(
    request: Request,
    person_id: int,
    how: str = Form("generate"),
    password: str = Form(""),
    confirm: str = Form(""),
    caller: Caller = ResetPasswords,
) -> Response:
    """Confirmed by a tick; the temporary password is shown in this answer only."""

    def again(message: str) -> HTMLResponse:
        return _password_form(
            request, caller, person_id, how=how, typed=password, error=message, status_code=422
        )

    if confirm != "yes":
        return again(
            "Tick the box to confirm that you have checked who this is and want to reset "
            "their password."
        )
    if how not in ("generate", "type"):
        return again("Choose whether to make up a password or to type one.")
    try:
        result = service.reset_password(
            installation(request),
            person_id,
            actor=caller.actor,
            password=password if how == "type" else None,
        )
    except InvalidInput as exc:
        message = str(exc)
        return again(message[:1].upper() + message[1:])
    return render(request, "security/password_reset_done.html", {"result": result}, caller=caller)


@router.post("/people/{person_id}/unlock", response_model=None, include_in_schema=False)
def unlock(request: Request, person_id: int, caller: Caller = ManageAccounts) -> Response:
    result = service.unlock_person(installation(request), person_id, actor=caller.actor)
    return _redirect(person_id, "unlocked" if result.was_locked else "not-locked")


@router.post("/people/{person_id}/two-step/reset", response_model=None, include_in_schema=False)
def reset_two_step(
    request: Request,
    person_id: int,
    reason: str = Form(""),
    caller: Caller = ResetTwoStep,
) -> Response:
    try:
        service.reset_two_step(installation(request), person_id, actor=caller.actor, reason=reason)
    except InvalidInput as exc:
        message = str(exc)
        return _account_page(
            request,
            caller,
            person_id,
            error=message[:1].upper() + message[1:],
            reason=reason[: REASON_MAX * 2],
            status_code=422,
        )
    return _redirect(person_id, "two-step-reset")


# -- API ----------------------------------------------------------------------------


class AccountStateAnswer(BaseModel):
    person_id: int
    username: str
    has_password: bool
    must_change_password: bool
    locked_until: str | None
    two_step_enrolled: bool
    two_step_required: bool
    recovery_codes_left: int
    last_sign_in_at: str | None
    left: bool
    can_reset_password: bool
    can_reset_two_step: bool
    can_unlock: bool

    @classmethod
    def of(cls, state: AccountState) -> AccountStateAnswer:
        return cls(
            person_id=state.person_id,
            username=state.username,
            has_password=state.has_password,
            must_change_password=state.must_change_password,
            locked_until=state.locked_until.isoformat() if state.locked_until else None,
            two_step_enrolled=state.two_step_enrolled,
            two_step_required=state.two_step_required,
            recovery_codes_left=state.recovery_codes_left,
            last_sign_in_at=state.last_sign_in_at.isoformat() if state.last_sign_in_at else None,
            left=state.left_on is not None,
            can_reset_password=state.allowed.reset_password,
            can_reset_two_step=state.allowed.reset_two_step,
            can_unlock=state.allowed.unlock,
        )


class PasswordResetRequest(BaseModel):
    password: str | None = Field(
        None,
        max_length=256,
        description="The temporary password to set; leave it out to have one made up "
        "(three short words and two digits, easy to read aloud).",
    )


class PasswordResetAnswer(BaseModel):
    person_id: int
    username: str
    #: Shown only in this answer; stored hashed.
    temporary_password: str
    generated: bool
    must_change_at_next_sign_in: bool = True
    lockout_cleared: bool


class UnlockAnswer(BaseModel):
    person_id: int
    username: str
    was_locked: bool


class TwoStepResetRequest(BaseModel):
    reason: str = Field(
        ..., max_length=REASON_MAX * 2, description="Why (kept in the audit trail)."
    )


class TwoStepResetAnswer(BaseModel):
    person_id: int
    username: str
    sessions_ended: int
    must_enrol_again: bool


@router.get("/api/v1/people/{person_id}/account", tags=["accounts"])
def api_account(
    request: Request, person_id: int, caller: Caller = ResetPasswords
) -> AccountStateAnswer:
    """A person's sign-in state (never a secret), and what the caller may do about it."""
    state = service.account_state(installation(request), person_id, actor=caller.actor)
    return AccountStateAnswer.of(state)


@router.post("/api/v1/people/{person_id}/password", tags=["accounts"])
def api_reset_password(
    request: Request,
    person_id: int,
    body: PasswordResetRequest | None = Body(None),
    caller: Caller = ResetPasswords,
) -> PasswordResetAnswer:
    """Give a person a temporary password (they choose their own at the next sign-in).

    Teachers and teaching assistants: pupils; IT technicians: anyone whose role does not
    need two-step sign-in; administrators: anyone else in the school.
    """
    result = service.reset_password(
        installation(request),
        person_id,
        actor=caller.actor,
        password=body.password if body else None,
    )
    return PasswordResetAnswer(
        person_id=result.person_id,
        username=result.username,
        temporary_password=result.password,
        generated=result.generated,
        lockout_cleared=result.lockout_cleared,
    )


@router.post("/api/v1/people/{person_id}/unlock", tags=["accounts"])
def api_unlock(request: Request, person_id: int, caller: Caller = ManageAccounts) -> UnlockAnswer:
    """Clear a lockout after too many failed sign-ins."""
    result = service.unlock_person(installation(request), person_id, actor=caller.actor)
    return UnlockAnswer(
        person_id=result.person_id, username=result.username, was_locked=result.was_locked
    )


@router.post("/api/v1/people/{person_id}/two-step/reset", tags=["accounts"])
def api_reset_two_step(
    request: Request,
    person_id: int,
    body: TwoStepResetRequest,
    caller: Caller = ResetTwoStep,
) -> TwoStepResetAnswer:
    """Turn off a person's two-step sign-in after a lost phone (administrators; never
    one's own). Their sessions end; a role that needs it sets it up again at sign-in."""
    result = service.reset_two_step(
        installation(request), person_id, actor=caller.actor, reason=body.reason
    )
    return TwoStepResetAnswer(
        person_id=result.person_id,
        username=result.username,
        sessions_ended=result.sessions_ended,
        must_enrol_again=result.must_enrol_again,
    )
