"""CSRF on every form, security headers on every answer, autoescaping, safe redirects."""

from __future__ import annotations

from sqlalchemy import update

from esafety.audit import SYSTEM
from esafety.directory.model import Person
from esafety.security.roles import Role
from esafety.web.deps import SESSION_COOKIE
from esafety.web.security_headers import CONTENT_SECURITY_POLICY
from tests.accounts import PASSWORD, csrf_from, session_and_csrf, sign_in


def test_sign_in_form_without_its_token_is_refused(client, school):
    response = client.post(
        "/sign-in", data={"username": school[Role.TEACHER].username, "password": PASSWORD}
    )
    assert response.status_code == 403
    assert "security token" in response.text
    assert SESSION_COOKIE not in response.cookies


def test_sign_in_form_with_another_token_is_refused(client, school):
    client.get("/sign-in")
    response = client.post(
        "/sign-in",
        data={
            "username": school[Role.TEACHER].username,
            "password": PASSWORD,
            "csrf_token": "forged",
        },
    )
    assert response.status_code == 403


def test_signed_in_form_needs_the_sessions_token(client, inst, school):
    cookie, csrf = session_and_csrf(inst, school[Role.TEACHER])
    client.cookies.set(SESSION_COOKIE, cookie)
    assert client.post("/lock").status_code == 403
    assert client.post("/lock", data={"csrf_token": "x" * 43}).status_code == 403
    # The header works too (for scripts using the session cookie).
    assert client.post("/lock", headers={"X-CSRF-Token": csrf}).status_code == 303


def test_bearer_token_calls_need_no_csrf_token(client, inst, school, cli_env):
    from esafety.security import service

    token, _ = service.create_token(inst, school[Role.TEACHER].id, "script", actor=SYSTEM)
    # No API route takes a POST yet; a GET shows the token is accepted without one.
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_security_headers_on_pages_api_errors_and_static_files(client, inst, school):
    for response in (
        client.get("/sign-in"),
        client.get("/api/v1/me"),
        client.get("/no-such-page"),
        client.get("/static/esafety.css"),
        client.get("/api/v1/openapi.json"),
    ):
        headers = response.headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert client.get("/sign-in").headers["cache-control"] == "no-store"


def test_pages_have_no_inline_script_or_style(client, inst, school):
    pages = [client.get("/sign-in").text]
    sign_in(client, inst, school[Role.ADMIN])
    pages += [client.get("/").text, client.get("/account").text]
    for html in pages:
        assert "<script" not in html
        assert "style=" not in html
        assert 'href="#content"' in html  # the skip link


def test_names_are_escaped_in_pages(client, inst, school):
    teacher = school[Role.TEACHER]
    with inst.db.session(SYSTEM) as session:
        session.execute(
            update(Person)
            .where(Person.id == teacher.id)
            .values(legal_first_name="<script>alert(1)</script>")
        )
    page = sign_in(client, inst, teacher)
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_sign_in_never_redirects_to_another_site(client, inst, school):
    page = client.get("/sign-in")
    response = client.post(
        "/sign-in",
        data={
            "username": school[Role.TEACHER].username,
            "password": PASSWORD,
            "next": "//evil.example/",
            "csrf_token": csrf_from(page.text),
        },
        follow_redirects=True,
    )
    assert response.url.host == "testserver"
    assert response.url.path == "/"


def test_forbidden_page_says_why(client, inst, school):
    sign_in(client, inst, school[Role.PUPIL])
    response = client.get("/api/v1/me/tokens")
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "permission_denied"
    assert "make or manage API tokens" in body["detail"]
    assert "Pupil" in body["detail"]


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "There is no page at this address" in response.text
    assert client.get("/api/v1/nothing").json()["error"] == "http_error"


def test_openapi_document_describes_the_api_only(client):
    document = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/me" in document["paths"]
    assert all(path.startswith("/api/") for path in document["paths"])
    assert client.get("/docs").status_code == 404  # no third-party scripts served
