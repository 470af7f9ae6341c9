"""Who is asking, and may they: the one permission check every route declares.

Every route (pages and ``/api/v1``) names its :class:`Permission` through
``Depends(require(Permission.X))``; the role × route tests find that dependency on every
route and fail when one is missing. ``require`` also checks the CSRF token of every
unsafe request a browser makes, so no form can forget it.

Usage::

    @router.get("/people")
    def people(
        request: Request,
        caller: Caller = Depends(require(Permission.VIEW_DIRECTORY)),
        session: Session = SchoolSession,
    ) -> HTMLResponse: ...

``SchoolSession`` is ``Depends(school_session, scope="function")``: a database session
scoped to the caller's school, acting as the caller (audit), committed before the response
is sent (so a redirect after a form never outruns its write).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from esafety.audit import Actor
from esafety.errors import AuthenticationFailed, PermissionDenied
from esafety.installation import Installation
from esafety.security import service
from esafety.security.roles import Permission, Role, allowed, roles_allowed
from esafety.security.service import Identity, Step

__all__ = [
    "CSRF_COOKIE",
    "SESSION_COOKIE",
    "Caller",
    "Requirement",
    "SchoolSession",
    "SignInNeeded",
    "identify",
    "installation",
    "require",
    "school_session",
]

SESSION_COOKIE = "esafety_session"
#: Double-submit token for forms shown before there is a session (the sign-in form).
CSRF_COOKIE = "esafety_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: Where a half-finished sign-in goes next.
STEP_PAGES: dict[Step, str] = {
    Step.UNLOCK: "/unlock",
    Step.TWO_STEP: "/two-step",
    Step.CHANGE_PASSWORD: "/password/change",
    Step.ENROL_TWO_STEP: "/two-step/enrol",
}


@dataclass(frozen=True)
class Caller:
    """A signed-in person (fully: password, two-step where needed, not locked)."""

    person_id: int
    username: str
    display_name: str
    school_id: int
    school_slug: str
    roles: frozenset[Role]
    actor: Actor
    via: Literal["session", "token"]

    def can(self, permission: Permission) -> bool:
        return allowed(self.roles, permission)


class SignInNeeded(AuthenticationFailed):
    """Not signed in, or the sign-in is not finished: pages redirect to ``page``."""

    def __init__(self, message: str, *, page: str = "/sign-in") -> None:
        super().__init__(message)
        self.page = page


def installation(request: Request) -> Installation:
    inst: Installation = request.app.state.inst
    return inst


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


# -- who is asking ------------------------------------------------------------------


async def identify(request: Request) -> Identity | None:
    """The credential's owner and what they still have to do; memoised per request.

    A bearer token is read on ``/api/`` paths only; otherwise the session cookie.
    A bad bearer token raises (401); a stale or unknown cookie is simply no identity.
    """
    if hasattr(request.state, "identity"):
        cached: Identity | None = request.state.identity
        return cached
    inst = installation(request)
    address = client_address(request)
    identity: Identity | None = None
    bearer = _bearer(request)
    if bearer is not None:
        identity = await run_in_threadpool(
            service.authenticate_token, inst, bearer, address=address
        )
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            identity = await run_in_threadpool(
                service.identify_session, inst, cookie, address=address
            )
    request.state.identity = identity
    return identity


def _bearer(request: Request) -> str | None:
    if not request.url.path.startswith("/api/"):
        return None
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthenticationFailed(
            "the Authorization header must be 'Bearer <token>'; create a token with "
            "`esafety users token create USERNAME --name LABEL`"
        )
    return value.strip()


def caller_of(identity: Identity, address: str | None) -> Caller:
    roles = frozenset(identity.roles)
    return Caller(
        person_id=identity.person_id,
        username=identity.username,
        display_name=identity.display_name,
        school_id=identity.school_id,
        school_slug=identity.school_slug,
        roles=roles,
        actor=Actor(
            name=identity.actor_name,
            person_id=identity.person_id,
            school_id=identity.school_id,
            roles=frozenset(str(r) for r in roles),
            address=address,
        ),
        via=identity.via,
    )


def _unfinished(identity: Identity | None) -> SignInNeeded | None:
    if identity is None:
        return SignInNeeded("Sign in to continue.")
    if identity.next_step is None:
        return None
    return SignInNeeded(identity.next_step.message, page=STEP_PAGES[identity.next_step])


# -- cross-site request forgery -----------------------------------------------------


async def check_csrf(request: Request, identity: Identity | None) -> None:
    """Unsafe requests from a browser carry the session's token (form field or header).

    Bearer-token calls need none (a browser never adds that header on its own). Before a
    session exists (the sign-in form), the token must match the ``esafety_csrf`` cookie.
    """
    if request.method not in _UNSAFE or (identity is not None and identity.via == "token"):
        return
    expected = identity.csrf_token if identity is not None else request.cookies.get(CSRF_COOKIE)
    given = request.headers.get(CSRF_HEADER)
    if given is None and _is_form(request):
        value = (await request.form()).get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not expected or not given or not hmac.compare_digest(expected, given):
        raise PermissionDenied(
            "this form has expired or did not come from esafety (its security token is "
            "missing or wrong); go back, reload the page and try again"
        )
    request.state.csrf_checked = True


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


# -- the one check ------------------------------------------------------------------


_ACTIONS = {
    Permission.VIEW_DIRECTORY: "see the people directory",
    Permission.MANAGE_DIRECTORY: "change the people directory",
    Permission.IMPORT_ROSTER: "import the roster",
    Permission.VIEW_PUPIL_FLAGS: "see pupils' vulnerability flags",
    Permission.MANAGE_PUPIL_FLAGS: "set or remove pupils' vulnerability flags",
    Permission.VIEW_TECHNOLOGY_RESTRICTIONS: "see the list of children who may not use technology",
    Permission.MANAGE_TECHNOLOGY_RESTRICTIONS: "change the list of children who may not use technology",
    Permission.VIEW_ACCESS_REGISTER: "see the access register",
    Permission.MANAGE_ACCESS_REGISTER: "change the access register",
    Permission.VIEW_CALENDAR: "see the school calendar",
    Permission.MANAGE_CALENDAR: "change the school calendar",
    Permission.RESET_PUPIL_PASSWORDS: "reset pupils' passwords",
    Permission.MANAGE_ACCOUNTS: "manage people's accounts",
    Permission.RESET_TWO_STEP: "reset someone's two-step sign-in",
    Permission.VIEW_AUDIT: "read the audit trail",
    Permission.MANAGE_OWN_TOKENS: "make or manage API tokens",
    Permission.RECORD_CONCERNS: "record a safeguarding concern",
    Permission.VIEW_CONCERNS: "see safeguarding concerns",
    Permission.ACT_ON_CONCERNS: "act on safeguarding concerns (designated safeguarding leads)",
    Permission.BREAK_GLASS: "open a concern in an emergency (break glass)",
    Permission.MANAGE_SAFEGUARDING_SETTINGS: "change the school's safeguarding settings",
    Permission.EXPORT_SUBJECT_ACCESS: "export everything held about a person (subject access)",
    Permission.VIEW_CONCERN_TRENDS: "see trends in safeguarding concerns",
}


def permission_text(permission: Permission) -> str:
    """What a permission lets a person do, in words for the refusal message."""
    return _ACTIONS.get(permission, permission.value.replace("_", " "))


class Requirement:
    """The dependency ``require(permission)`` returns; routes are found by it in tests."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def __repr__(self) -> str:
        return f"require(Permission.{self.permission.name})"

    async def __call__(self, request: Request) -> Any:
        identity = await identify(request)
        await check_csrf(request, identity)
        problem = _unfinished(identity)
        if self.permission is Permission.PUBLIC:
            # Public pages get the caller when there is one (None otherwise).
            caller = None if problem or identity is None else caller_of(identity, _addr(request))
            request.state.caller = caller
            return caller
        if problem is not None:
            raise problem
        if identity is None:  # pragma: no cover - _unfinished covers it
            raise SignInNeeded("Sign in to continue.")
        caller = caller_of(identity, _addr(request))
        request.state.caller = caller  # the refusal page still shows who is signed in
        if not caller.can(self.permission):
            raise PermissionDenied(_denied(caller, self.permission))
        return caller


def _addr(request: Request) -> str | None:
    return client_address(request)


def _denied(caller: Caller, permission: Permission) -> str:
    needed = sorted(roles_allowed(permission), key=lambda r: r.label)
    held = ", ".join(sorted(r.label for r in caller.roles)) or "no role"
    return (
        f"you cannot {permission_text(permission)}: it needs one of the roles "
        f"{', '.join(r.label for r in needed)}, and you are {held}. "
        "Ask your school's administrator if you need it."
    )


def require(permission: Permission) -> Requirement:
    """The dependency that lets a request through only with ``permission``.

    It returns the :class:`Caller` (for ``Permission.PUBLIC``: the caller or None).
    """
    return Requirement(permission)


async def signed_in_caller(request: Request) -> Caller:
    """The fully signed-in caller (no permission check of its own: the route's
    ``require`` makes that)."""
    caller = getattr(request.state, "caller", None)
    if isinstance(caller, Caller):
        return caller
    identity = await identify(request)
    problem = _unfinished(identity)
    if problem is not None or identity is None:
        raise problem or SignInNeeded("Sign in to continue.")
    caller = caller_of(identity, _addr(request))
    request.state.caller = caller
    return caller


def school_session(
    request: Request, caller: Caller = Depends(signed_in_caller)
) -> Iterator[Session]:
    """A database session for the caller's school, acting as the caller; committed at the
    end of the route (use through :data:`SchoolSession`)."""
    with installation(request).db.session(caller.actor, school_id=caller.school_id) as session:
        yield session


#: ``session: Session = SchoolSession`` in a route's parameters.
SchoolSession: Any = Depends(school_session, scope="function")
