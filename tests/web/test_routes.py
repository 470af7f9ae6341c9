"""Every role × every route, generated from the app's routes and the permission table.

A route without a ``require(...)`` dependency fails the first test, so a new route cannot
go unchecked; the second signs in as a person holding only one role, for every role, and
asks every route: 403 where the table forbids it, and never 401, 403 or a 5xx where it
allows it. API routes are asked again with a bearer token. One app and one set of people
serve the whole matrix.

Path parameters: ``{person_id}`` is a real pupil of the caller's school (not the caller),
so routes that act on a person run their own code past the permission check (a pupil is
the one person every role the table lets through may act on); other ids are 999999, which
no row has (the route answers 404).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from esafety.audit import SYSTEM
from esafety.security import service
from esafety.security.roles import Permission, Role, allowed
from esafety.web.deps import SESSION_COOKIE, Requirement, school_session
from tests.accounts import add_member, csrf_from, make_school, session_and_csrf

SAFE = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class RouteCase:
    method: str
    path: str
    permissions: frozenset[Permission]

    @property
    def url(self) -> str:
        return self.url_with({})

    def url_with(self, ids: dict[str, int]) -> str:
        """The path with ``ids`` for the parameters named there, 999999 for the rest."""
        return re.sub(
            r"\{([^}:]+)(:[^}]*)?\}", lambda m: str(ids.get(m.group(1), 999999)), self.path
        )

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")

    def allows(self, role: Role) -> bool:
        return all(allowed({role}, p) for p in self.permissions)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependants(sub)


def route_cases(app: FastAPI) -> tuple[list[RouteCase], list[str]]:
    """Every route (but static files and the OpenAPI document), and those missing a check."""
    cases, unchecked = [], []
    for ctx in iter_route_contexts(app.routes):
        dependant = getattr(ctx, "dependant", None)
        if ctx.path is None or ctx.path == app.openapi_url or dependant is None:
            continue  # the static mount and the OpenAPI document are public by design
        found = [d.call for d in _dependants(dependant) if isinstance(d.call, Requirement)]
        methods = sorted(m for m in (ctx.methods or ()) if m != "HEAD")
        if not found:
            unchecked.append(f"{','.join(methods)} {ctx.path}")
            continue
        permissions = frozenset(r.permission for r in found)
        cases += [RouteCase(m, ctx.path, permissions) for m in methods]
    return cases, unchecked


def test_every_route_declares_its_permission(app):
    cases, unchecked = route_cases(app)
    assert not unchecked, f"routes without require(Permission...): {unchecked}"
    paths = {c.path for c in cases}
    assert {"/", "/sign-in", "/account", "/api/v1/me"} <= paths
    # Staff helping with someone else's account (esafety.security.resets_web).
    assert {
        "/people/{person_id}/account",
        "/people/{person_id}/password",
        "/people/{person_id}/unlock",
        "/people/{person_id}/two-step/reset",
        "/api/v1/people/{person_id}/password",
        "/api/v1/people/{person_id}/two-step/reset",
    } <= paths


def test_school_sessions_commit_before_the_response_is_sent(app):
    """``SchoolSession`` (scope="function"): a redirect after a form never outruns its write."""
    wrong = []
    for ctx in iter_route_contexts(app.routes):
        dependant = getattr(ctx, "dependant", None)
        for sub in _dependants(dependant) if dependant else ():
            if sub.call is school_session and sub.scope != "function":
                wrong.append(f"{ctx.path}")
    assert not wrong, f"use `session: Session = SchoolSession` in: {wrong}"


def _ask(
    client: TestClient,
    case: RouteCase,
    *,
    csrf: str | None,
    bearer: str | None = None,
    ids: dict[str, int] | None = None,
):
    headers = {}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    if csrf and case.method not in SAFE:
        headers["X-CSRF-Token"] = csrf
    url = case.url_with(ids or {})
    if case.method in SAFE:
        return client.request(case.method, url, headers=headers)
    return client.request(case.method, url, headers=headers, data={"csrf_token": csrf or ""})


def _check(response, case: RouteCase, who: str, allowed_here: bool) -> str | None:
    status = response.status_code
    if "content-security-policy" not in response.headers:
        return f"{who} {case}: no Content-Security-Policy header"
    if status >= 500:
        return f"{who} {case}: {status} (never 5xx)"
    if allowed_here and status in (401, 403):
        return f"{who} {case}: {status} but the table allows it: {response.text[:200]}"
    if not allowed_here and status != 403:
        return f"{who} {case}: {status}, expected 403"
    if not allowed_here and case.api and response.json().get("error") != "permission_denied":
        return f"{who} {case}: 403 without a JSON reason"
    if not allowed_here and not case.api and "needs one of the roles" not in response.text:
        return f"{who} {case}: 403 page without a reason"
    return None


def test_every_role_on_every_route(inst):
    """The generated matrix: sessions (two-step done) and, for the API, bearer tokens."""
    from esafety.web.app import create_app

    app = create_app(inst)
    school = make_school(inst, "matrix", enrol_everyone=True)
    subject = add_member(inst, school.id, "subject.matrix", [Role.PUPIL])
    ids = {"person_id": subject.id}
    cases, unchecked = route_cases(app)
    assert not unchecked
    problems: list[str] = []
    with TestClient(app, follow_redirects=False) as client:
        for role in Role:
            member = school[role]
            token, _ = service.create_token(inst, member.id, "matrix", actor=SYSTEM)
            for case in cases:
                # A fresh session each time: some routes (sign out, lock) end or lock it.
                cookie, csrf = session_and_csrf(inst, member)
                client.cookies.clear()
                client.cookies.set(SESSION_COOKIE, cookie)
                answer = _ask(client, case, csrf=csrf, ids=ids)
                problem = _check(answer, case, role.value, case.allows(role))
                if problem:
                    problems.append(problem)
                if case.api:
                    client.cookies.clear()
                    answer = _ask(client, case, csrf=None, bearer=token, ids=ids)
                    problem = _check(answer, case, f"{role.value} (token)", case.allows(role))
                    if problem:
                        problems.append(problem)
    assert not problems, "\n".join(problems)


def test_signed_out_every_route_redirects_or_answers_401(inst):
    from esafety.web.app import create_app

    app = create_app(inst)
    cases, _ = route_cases(app)
    problems = []
    with TestClient(app, follow_redirects=False) as client:
        csrf = csrf_from(client.get("/sign-in").text)  # sets the pre-session CSRF cookie
        for case in cases:
            public = Permission.PUBLIC in case.permissions and len(case.permissions) == 1
            response = _ask(client, case, csrf=csrf)
            status = response.status_code
            if status >= 500:
                problems.append(f"{case}: {status}")
            elif public:
                if status in (401, 403):
                    problems.append(f"{case}: public route answered {status}")
            elif case.api and status != 401:
                problems.append(f"{case}: API answered {status}, expected 401")
            elif not case.api and not (
                status == 303 and response.headers["location"].startswith("/sign-in")
            ):
                problems.append(f"{case}: page answered {status}, expected a redirect to sign in")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("step_role", [Role.DSL, Role.ADMIN])
def test_no_route_works_before_two_step(inst, step_role):
    """Signed in with a password only: every non-public route sends to the code page."""
    from esafety.web.app import create_app

    app = create_app(inst)
    school = make_school(inst)
    member = school[step_role]
    half = service.sign_in(inst, member.username, member.password, address="testclient")
    assert half.identity.next_step is not None
    cases, _ = route_cases(app)
    problems = []
    with TestClient(app, follow_redirects=False) as client:
        client.cookies.set(SESSION_COOKIE, half.token)
        for case in cases:
            if Permission.PUBLIC in case.permissions:
                continue
            response = _ask(client, case, csrf=half.identity.csrf_token)
            if case.api:
                ok = response.status_code == 401
            elif case.method in SAFE:
                ok = response.status_code == 303 and response.headers["location"].startswith(
                    "/two-step"
                )
            else:
                ok = response.status_code == 303 and response.headers["location"] == "/two-step"
            if not ok:
                problems.append(
                    f"{case}: {response.status_code} {response.headers.get('location')}"
                )
    assert not problems, "\n".join(problems)
