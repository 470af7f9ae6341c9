"""HTML pages: one Jinja2 environment (autoescaped), the base layout and the navigation.

Templates live in ``esafety/web/templates/`` and, for a slice that keeps its own, in
``esafety/<slice>/templates/``. Every page extends ``base.html`` (blocks ``title`` and
``content``); forms include ``{{ csrf_field() }}``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.routing import iter_route_contexts
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from esafety.security.roles import Permission

__all__ = ["NavLink", "environment", "render", "route_paths"]

_PACKAGE = Path(__file__).resolve().parent.parent
TEMPLATE_DIRS = [
    _PACKAGE / "web" / "templates",
    *sorted(p for p in _PACKAGE.glob("*/templates") if p.parent.name != "web"),
]


@dataclass(frozen=True)
class NavLink:
    path: str
    label: str
    permission: Permission


#: The main navigation; a link shows when its page exists and the caller may open it.
NAVIGATION = (
    NavLink("/", "Home", Permission.SIGNED_IN),
    NavLink("/people", "People", Permission.VIEW_DIRECTORY),
    NavLink(
        "/technology-restrictions", "No-technology list", Permission.VIEW_TECHNOLOGY_RESTRICTIONS
    ),
    NavLink("/access-register", "Access register", Permission.VIEW_ACCESS_REGISTER),
    NavLink("/calendar", "Calendar", Permission.VIEW_CALENDAR),
    NavLink("/filtering", "Filtering", Permission.VIEW_FILTERING),
    NavLink("/safeguarding/concerns", "Concerns", Permission.VIEW_CONCERNS),
    NavLink("/safeguarding/concerns/new", "Record a concern", Permission.RECORD_CONCERNS),
    NavLink("/safeguarding/pupils", "Chronologies", Permission.ACT_ON_CONCERNS),
    NavLink("/safeguarding/transfers", "Transfers", Permission.ACT_ON_CONCERNS),
    NavLink("/safeguarding/trends", "Trends", Permission.VIEW_CONCERN_TRENDS),
    NavLink("/account", "My account", Permission.SIGNED_IN),
)


def _make_environment() -> Environment:
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(d)) for d in TEMPLATE_DIRS]),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["date"] = lambda d, fmt="%d %b %Y": d.strftime(fmt) if d else ""
    env.filters["datetime"] = lambda d: d.strftime("%d %b %Y %H:%M") if d else ""
    return env


environment = _make_environment()


def csrf_token(request: Request) -> tuple[str, bool]:
    """The token forms must carry, and whether it is new (so the cookie must be set)."""
    from esafety.web.deps import CSRF_COOKIE

    identity = getattr(request.state, "identity", None)
    token = getattr(identity, "csrf_token", None)
    if token:
        return token, False
    existing = request.cookies.get(CSRF_COOKIE)
    if existing:
        return existing, False
    return secrets.token_urlsafe(32), True


def route_paths(request: Request) -> frozenset[str]:
    """Every path the app serves (to link only to pages that exist)."""
    paths: frozenset[str] | None = getattr(request.app.state, "route_paths", None)
    if paths is None:
        paths = frozenset(
            ctx.path for ctx in iter_route_contexts(request.app.routes) if ctx.path is not None
        )
        request.app.state.route_paths = paths
    return paths


def _nav(request: Request, caller: Any) -> list[dict[str, Any]]:
    if caller is None:
        return []
    paths = route_paths(request)
    current = request.url.path
    return [
        {"path": link.path, "label": link.label, "current": current == link.path}
        for link in NAVIGATION
        if link.path in paths and caller.can(link.permission)
    ]


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    caller: Any,
    status_code: int = 200,
) -> HTMLResponse:
    """Render ``template`` with the layout's context (caller, navigation, CSRF token)."""
    from esafety.web.deps import CSRF_COOKIE

    token, new = csrf_token(request)
    school_name = getattr(getattr(request.state, "identity", None), "school_name", None)
    html = environment.get_template(template).render(
        {
            "request": request,
            "caller": caller,
            "school_name": school_name,
            "nav": _nav(request, caller),
            "csrf_token": token,
            "csrf_field": lambda: Markup(  # noqa: S704 - the token is escaped
                f'<input type="hidden" name="csrf_token" value="{escape(token)}">'
            ),
            **context,
        }
    )
    response = HTMLResponse(html, status_code=status_code)
    if new:
        settings = request.app.state.inst.settings
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="lax",
            secure=settings.web.secure_cookies,
            path="/",
        )
    return response
