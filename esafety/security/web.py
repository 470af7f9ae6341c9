"""Sign-in pages (password, two-step, new password, lock), "My account", and /api/v1/me.

Every step of a sign-in ends by redirecting to ``/sign-in?next=…``, which sends the person
to whatever is still to do (two-step code, new password, two-step set-up) or, when they
are fully in, to where they were going. Pages work without JavaScript. Staff actions on
other people's accounts are in :mod:`esafety.security.resets_web`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from esafety.errors import AuthenticationFailed, InvalidInput, PermissionDenied
from esafety.security import service
from esafety.security.resets_web import router as resets_router
from esafety.security.roles import Permission, needs_two_step
from esafety.security.service import Identity, Step
from esafety.web.deps import (
    SESSION_COOKIE,
    STEP_PAGES,
    Caller,
    SignInNeeded,
    client_address,
    installation,
    require,
)
from esafety.web.errors import safe_next
from esafety.web.pages import render

__all__ = ["router"]

router = APIRouter()
# Staff helping with someone else's account: resets and unlocking.
router.include_router(resets_router)

Public = Depends(require(Permission.PUBLIC))


def _identity(request: Request) -> Identity | None:
    identity: Identity | None = getattr(request.state, "identity", None)
    return identity


#: Pages that only make sense during a sign-in; never a place to go back to afterwards.
_STEP_ONLY = ("/sign-in", "/two-step", "/unlock")


def _destination(next_path: str | None) -> str:
    target = safe_next(next_path)
    path = target.split("?", 1)[0]
    return "/" if path in _STEP_ONLY else target


def _continue(next_path: str | None) -> RedirectResponse:
    return RedirectResponse(f"/sign-in?next={quote(safe_next(next_path), safe='/')}", 303)


def _cookie(request: Request) -> str:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or _identity(request) is None:
        raise SignInNeeded("Sign in to continue.")
    return cookie


def _at_step(request: Request, *steps: Step, complete_ok: bool = False) -> Identity:
    """The identity, if this page is the one it should see now; else a redirect (raised)."""
    identity = _identity(request)
    if identity is None or identity.via != "session":
        raise SignInNeeded("Sign in to continue.")
    if identity.next_step in steps or (identity.next_step is None and complete_ok):
        return identity
    raise _Elsewhere(request.query_params.get("next"))


class _Elsewhere(Exception):
    """This step is not the current one: go back through /sign-in."""

    def __init__(self, next_path: str | None) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def _set_session_cookie(request: Request, response: Response, token: str) -> None:
    settings = installation(request).settings
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=settings.web.secure_cookies,
        path="/",
    )


def _page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    caller: Caller | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(request, f"security/{template}", context, caller=caller, status_code=status_code)


# -- signing in ---------------------------------------------------------------------


@router.get("/sign-in", response_model=None)
def sign_in_page(request: Request, next: str = "/", caller: Caller | None = Public) -> Response:
    identity = _identity(request)
    if identity is not None and identity.via == "session":
        if identity.next_step is None:
            return RedirectResponse(_destination(next), 303)
        page = STEP_PAGES[identity.next_step]
        return RedirectResponse(f"{page}?next={quote(safe_next(next), safe='/')}", 303)
    return _page(request, "sign_in.html", {"next": safe_next(next), "username": ""})


@router.post("/sign-in", response_model=None)
def sign_in(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
    caller: Caller | None = Public,
) -> Response:
    inst = installation(request)
    problems = []
    if not username.strip():
        problems.append("Enter your username.")
    if not password:
        problems.append("Enter your password.")
    if problems:
        return _sign_in_again(request, username, next, " ".join(problems), 422)
    try:
        signed_in = service.sign_in(inst, username, password, address=client_address(request))
    except AuthenticationFailed as exc:
        return _sign_in_again(request, username, next, str(exc), 401)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        service.sign_out(inst, old, address=client_address(request))
    response = _continue(next)
    _set_session_cookie(request, response, signed_in.token)
    return response


def _sign_in_again(
    request: Request, username: str, next_path: str, error: str, status: int
) -> HTMLResponse:
    return _page(
        request,
        "sign_in.html",
        {"next": safe_next(next_path), "username": username[:120], "error": error},
        status_code=status,
    )


@router.get("/two-step", response_model=None)
def two_step_page(request: Request, next: str = "/", caller: Caller | None = Public) -> Response:
    try:
        _at_step(request, Step.TWO_STEP)
    except _Elsewhere as go:
        return _continue(go.next_path)
    return _page(request, "two_step.html", {"next": safe_next(next)})


@router.post("/two-step", response_model=None)
def two_step(
    request: Request,
    code: str = Form(""),
    next: str = Form("/"),
    caller: Caller | None = Public,
) -> Response:
    try:
        _at_step(request, Step.TWO_STEP)
    except _Elsewhere as go:
        return _continue(go.next_path)
    try:
        service.check_two_step(
            installation(request), _cookie(request), code, address=client_address(request)
        )
    except (AuthenticationFailed, InvalidInput) as exc:
        if isinstance(exc, SignInNeeded):
            raise
        return _page(
            request, "two_step.html", {"next": safe_next(next), "error": str(exc)}, status_code=401
        )
    return _continue(next)


@router.get("/two-step/enrol", response_model=None)
def enrol_page(request: Request, next: str = "/", caller: Caller | None = Public) -> Response:
    try:
        identity = _at_step(request, Step.ENROL_TWO_STEP, complete_ok=True)
    except _Elsewhere as go:
        return _continue(go.next_path)
    if identity.two_step_enrolled:
        return RedirectResponse("/account", 303)
    return _enrol_form(request, identity, caller, next)


def _enrol_form(
    request: Request,
    identity: Identity,
    caller: Caller | None,
    next_path: str,
    *,
    error: str | None = None,
) -> HTMLResponse:
    enrolment = service.begin_enrolment(installation(request), _cookie(request))
    return _page(
        request,
        "enrol.html",
        {
            "next": safe_next(next_path),
            "enrolment": enrolment,
            "secret_groups": " ".join(
                enrolment.secret[i : i + 4] for i in range(0, len(enrolment.secret), 4)
            ),
            "required": needs_two_step(identity.roles),
            "error": error,
        },
        caller=caller,
        status_code=422 if error else 200,
    )


@router.post("/two-step/enrol", response_model=None)
def enrol(
    request: Request,
    code: str = Form(""),
    next: str = Form("/"),
    caller: Caller | None = Public,
) -> Response:
    try:
        identity = _at_step(request, Step.ENROL_TWO_STEP, complete_ok=True)
    except _Elsewhere as go:
        return _continue(go.next_path)
    if identity.two_step_enrolled:
        return RedirectResponse("/account", 303)
    try:
        codes = service.confirm_enrolment(
            installation(request), _cookie(request), code, address=client_address(request)
        )
    except InvalidInput as exc:
        return _enrol_form(request, identity, caller, next, error=str(exc))
    # Shown once, in this answer: they are stored only as hashes.
    return _page(
        request, "recovery_codes.html", {"codes": codes, "next": safe_next(next)}, caller=caller
    )


# -- passwords ----------------------------------------------------------------------


@router.get("/password/change", response_model=None)
def password_page(request: Request, next: str = "/", caller: Caller | None = Public) -> Response:
    try:
        identity = _at_step(request, Step.CHANGE_PASSWORD, complete_ok=True)
    except _Elsewhere as go:
        return _continue(go.next_path)
    return _password_form(request, identity, caller, next)


def _password_form(
    request: Request,
    identity: Identity,
    caller: Caller | None,
    next_path: str,
    *,
    error: str | None = None,
) -> HTMLResponse:
    rules = service.password_rules(installation(request), identity.school_id)
    return _page(
        request,
        "password_change.html",
        {
            "next": safe_next(next_path),
            "forced": identity.next_step is Step.CHANGE_PASSWORD,
            "rules": rules,
            "error": error,
        },
        caller=caller,
        status_code=422 if error else 200,
    )


@router.post("/password/change", response_model=None)
def change_password(
    request: Request,
    new_password: str = Form(""),
    confirm_password: str = Form(""),
    current_password: str = Form(""),
    next: str = Form("/"),
    caller: Caller | None = Public,
) -> Response:
    try:
        identity = _at_step(request, Step.CHANGE_PASSWORD, complete_ok=True)
    except _Elsewhere as go:
        return _continue(go.next_path)
    forced = identity.next_step is Step.CHANGE_PASSWORD
    try:
        service.change_own_password(
            installation(request),
            _cookie(request),
            new_password,
            confirm_password,
            address=client_address(request),
            current_password=None if forced else current_password,
        )
    except InvalidInput as exc:
        return _password_form(request, identity, caller, next, error=str(exc))
    if forced:
        return _continue(next)
    return _account_page(request, caller, flash="Your password has been changed.")


# -- lock, unlock, sign out ---------------------------------------------------------


@router.post("/lock", response_model=None)
def lock(request: Request, caller: Caller = Depends(require(Permission.SIGNED_IN))) -> Response:
    service.lock_session(installation(request), _cookie(request), address=client_address(request))
    return RedirectResponse("/unlock", 303)


@router.get("/unlock", response_model=None)
def unlock_page(request: Request, next: str = "/", caller: Caller | None = Public) -> Response:
    try:
        identity = _at_step(request, Step.UNLOCK)
    except _Elsewhere as go:
        return _continue(go.next_path)
    return _page(request, "unlock.html", {"next": safe_next(next), "who": identity})


@router.post("/unlock", response_model=None)
def unlock(
    request: Request,
    password: str = Form(""),
    next: str = Form("/"),
    caller: Caller | None = Public,
) -> Response:
    try:
        identity = _at_step(request, Step.UNLOCK)
    except _Elsewhere as go:
        return _continue(go.next_path)
    try:
        service.unlock_session(
            installation(request), _cookie(request), password, address=client_address(request)
        )
    except AuthenticationFailed as exc:
        if isinstance(exc, SignInNeeded):
            raise
        return _page(
            request,
            "unlock.html",
            {"next": safe_next(next), "who": identity, "error": str(exc)},
            status_code=401,
        )
    return _continue(next)


@router.post("/sign-out", response_model=None)
def sign_out(request: Request, caller: Caller | None = Public) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        service.sign_out(installation(request), cookie, address=client_address(request))
    response = RedirectResponse("/sign-in?signed_out=1", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- my account and tokens ----------------------------------------------------------


@router.get("/account", response_model=None)
def account(request: Request, caller: Caller = Depends(require(Permission.SIGNED_IN))) -> Response:
    return _account_page(request, caller)


def _account_page(
    request: Request,
    caller: Caller | None,
    *,
    flash: str | None = None,
    new_token: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    if caller is None:
        raise SignInNeeded("Sign in to continue.")
    identity = _identity(request)
    can_tokens = caller.can(Permission.MANAGE_OWN_TOKENS)
    tokens = (
        service.list_tokens(installation(request), caller.person_id, actor=caller.actor)
        if can_tokens
        else []
    )
    return _page(
        request,
        "account.html",
        {
            "identity": identity,
            "roles": sorted(caller.roles, key=lambda r: r.label),
            "two_step_enrolled": bool(identity and identity.two_step_enrolled),
            "two_step_verified": bool(identity and identity.two_step_verified),
            "can_tokens": can_tokens,
            "tokens": tokens,
            "new_token": new_token,
            "flash": flash,
            "flash_kind": "good",
            "error": error,
        },
        caller=caller,
        status_code=status_code,
    )


@router.post("/account/tokens", response_model=None)
def create_token(
    request: Request,
    name: str = Form(""),
    caller: Caller = Depends(require(Permission.MANAGE_OWN_TOKENS)),
) -> Response:
    identity = _identity(request)
    if identity is None or not identity.two_step_verified:
        raise PermissionDenied(
            "API tokens can be made only in a session signed in with two-step sign-in. "
            "Set up two-step sign-in on this page, sign out, and sign in again with your code."
        )
    try:
        token, info = service.create_token(
            installation(request), caller.person_id, name, actor=caller.actor
        )
    except InvalidInput as exc:
        return _account_page(request, caller, error=str(exc), status_code=422)
    return _account_page(
        request, caller, new_token=token, flash=f"Token “{info.name}” created. Copy it now."
    )


@router.post("/account/tokens/{token_id}/revoke", response_model=None)
def revoke_token(
    request: Request,
    token_id: int,
    caller: Caller = Depends(require(Permission.MANAGE_OWN_TOKENS)),
) -> Response:
    info = service.revoke_token(
        installation(request), token_id, actor=caller.actor, owner_id=caller.person_id
    )
    return _account_page(request, caller, flash=f"Token “{info.name}” no longer works.")


# -- API ----------------------------------------------------------------------------


@router.get("/api/v1/me", tags=["accounts"])
async def me(caller: Caller = Depends(require(Permission.SIGNED_IN))) -> dict[str, Any]:
    """Who is calling: username, roles and school (its slug)."""
    return {
        "username": caller.username,
        "display_name": caller.display_name,
        "roles": sorted(str(r) for r in caller.roles),
        "school": caller.school_slug,
        "via": caller.via,
    }


@router.get("/api/v1/me/tokens", tags=["accounts"])
def my_tokens(
    request: Request, caller: Caller = Depends(require(Permission.MANAGE_OWN_TOKENS))
) -> list[dict[str, Any]]:
    """The caller's own API tokens (never the tokens themselves: they are stored hashed)."""
    tokens = service.list_tokens(installation(request), caller.person_id, actor=caller.actor)
    return [
        {
            "id": t.id,
            "name": t.name,
            "created_at": t.created_at.isoformat(),
            "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
            "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
        }
        for t in tokens
    ]
