"""Staff helping with someone else's account, on pages and in the API: a temporary
password (shown once), a two-step reset after a lost phone, unlocking."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, update

from esafety.audit import SYSTEM, AuditEntry
from esafety.db import utcnow
from esafety.directory.model import Person
from esafety.security import service
from esafety.security.model import Account
from esafety.security.roles import Role
from esafety.web.deps import SESSION_COOKIE
from esafety.web.pages import environment
from tests.accounts import make_school, session_and_csrf, sign_in


def as_member(client, inst, member) -> str:
    """Sign ``client`` in as ``member`` (a fresh session); return its CSRF token."""
    cookie, csrf = session_and_csrf(inst, member)
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie)
    return csrf


def bearer(inst, member) -> dict[str, str]:
    token, _ = service.create_token(inst, member.id, "resets", actor=SYSTEM)
    return {"Authorization": f"Bearer {token}"}


def password_hash(inst, person_id):
    with inst.db.session(SYSTEM) as session:
        return session.scalar(select(Account.password_hash).where(Account.person_id == person_id))


def shown_password(html: str) -> str:
    found = re.search(r'id="temporary-password">([^<]+)<', html)
    assert found, "the page shows no temporary password"
    return found.group(1)


# -- a temporary password, on the page ----------------------------------------------


def test_a_teacher_resets_a_pupils_password_and_the_pupil_signs_in_with_it(
    client, app, inst, school
):
    pupil = school[Role.PUPIL]
    csrf = as_member(client, inst, school[Role.TEACHER])
    form = client.get(f"/people/{pupil.id}/password")
    assert form.status_code == 200
    assert "Reset Pupil Tester's password" in form.text and pupil.username in form.text
    unconfirmed = client.post(
        f"/people/{pupil.id}/password", data={"csrf_token": csrf, "how": "generate"}
    )
    assert unconfirmed.status_code == 422 and "Tick the box" in unconfirmed.text
    assert password_hash(inst, pupil.id) is not None
    done = client.post(
        f"/people/{pupil.id}/password",
        data={"csrf_token": csrf, "how": "generate", "confirm": "yes"},
    )
    assert done.status_code == 200
    assert done.headers["cache-control"] == "no-store"
    temporary = shown_password(done.text)
    assert re.fullmatch(r"([a-z]+-){3}\d\d", temporary)
    # The pupil signs in with it, and is asked to choose their own first.
    pupil.password = temporary
    pupil.totp_secret = None
    from fastapi.testclient import TestClient

    with TestClient(app) as browser:
        landed = sign_in(browser, inst, pupil)
    assert landed.url.path == "/password/change"
    assert "Choose a new password" in landed.text


def test_a_typed_password_that_is_too_short_is_shown_again_with_the_rule(client, inst, school):
    pupil = school[Role.PUPIL]
    before = password_hash(inst, pupil.id)
    csrf = as_member(client, inst, school[Role.TEACHING_ASSISTANT])
    short = client.post(
        f"/people/{pupil.id}/password",
        data={"csrf_token": csrf, "how": "type", "password": "kite", "confirm": "yes"},
    )
    assert short.status_code == 422
    assert "at least 10" in short.text and 'value="kite"' in short.text
    assert password_hash(inst, pupil.id) == before
    typed = client.post(
        f"/people/{pupil.id}/password",
        data={"csrf_token": csrf, "how": "type", "password": "purple-kite-12", "confirm": "yes"},
    )
    assert typed.status_code == 200 and shown_password(typed.text) == "purple-kite-12"


def test_a_teacher_cannot_reset_a_colleague_and_is_told_why(client, inst, school):
    colleague = school[Role.OFFICE]
    before = password_hash(inst, colleague.id)
    csrf = as_member(client, inst, school[Role.TEACHER])
    page = client.get(f"/people/{colleague.id}/password")
    assert page.status_code == 403 and "pupils" in page.text
    posted = client.post(
        f"/people/{colleague.id}/password",
        data={"csrf_token": csrf, "how": "generate", "confirm": "yes"},
    )
    assert posted.status_code == 403
    assert password_hash(inst, colleague.id) == before


def test_a_technician_cannot_reset_a_dsl_but_an_administrator_can(client, inst, school):
    dsl = school[Role.DSL]
    csrf = as_member(client, inst, school[Role.TECHNICIAN])
    refused = client.post(
        f"/people/{dsl.id}/password",
        data={"csrf_token": csrf, "how": "generate", "confirm": "yes"},
    )
    assert refused.status_code == 403 and "Only an administrator" in refused.text
    csrf = as_member(client, inst, school[Role.ADMIN])
    done = client.post(
        f"/people/{dsl.id}/password",
        data={"csrf_token": csrf, "how": "generate", "confirm": "yes"},
    )
    assert done.status_code == 200 and shown_password(done.text)


def test_another_schools_person_is_not_found_on_any_reset_route(client, inst, school):
    other = make_school(inst, "elmtree")
    pupil, dsl = other[Role.PUPIL], other[Role.DSL]
    before = password_hash(inst, pupil.id)
    csrf = as_member(client, inst, school[Role.ADMIN])
    data = {"csrf_token": csrf, "how": "generate", "confirm": "yes", "reason": "lost"}
    for method, path in [
        ("GET", f"/people/{pupil.id}/account"),
        ("GET", f"/people/{pupil.id}/password"),
        ("POST", f"/people/{pupil.id}/password"),
        ("POST", f"/people/{pupil.id}/unlock"),
        ("POST", f"/people/{dsl.id}/two-step/reset"),
    ]:
        answer = client.request(method, path, data=data if method == "POST" else None)
        assert answer.status_code == 404, (method, path, answer.status_code)
    headers = bearer(inst, school[Role.ADMIN])
    client.cookies.clear()
    for path, body in [
        (f"/api/v1/people/{pupil.id}/password", {}),
        (f"/api/v1/people/{pupil.id}/unlock", None),
        (f"/api/v1/people/{dsl.id}/two-step/reset", {"reason": "lost"}),
    ]:
        answer = client.post(path, json=body, headers=headers)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["error"] == "not_found"
    assert client.get(f"/api/v1/people/{pupil.id}/account", headers=headers).status_code == 404
    assert password_hash(inst, pupil.id) == before


# -- a temporary password, in the API -----------------------------------------------


def test_the_api_returns_a_temporary_password(client, inst, school):
    pupil = school[Role.PUPIL]
    headers = bearer(inst, school[Role.TEACHER])
    made = client.post(f"/api/v1/people/{pupil.id}/password", headers=headers)
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["generated"] and body["must_change_at_next_sign_in"]
    assert body["username"] == pupil.username
    signed = service.sign_in(inst, pupil.username, body["temporary_password"], address="x")
    assert signed.identity.next_step is service.Step.CHANGE_PASSWORD
    typed = client.post(
        f"/api/v1/people/{pupil.id}/password",
        json={"password": "green-boat-44"},
        headers=headers,
    )
    assert typed.json()["temporary_password"] == "green-boat-44"
    short = client.post(
        f"/api/v1/people/{pupil.id}/password", json={"password": "abc"}, headers=headers
    )
    assert short.status_code == 422 and "at least 10" in short.json()["detail"]
    staff = client.post(f"/api/v1/people/{school[Role.OFFICE].id}/password", headers=headers)
    assert staff.status_code == 403 and staff.json()["error"] == "permission_denied"


def test_the_audit_trail_names_who_reset_whom(client, inst, school):
    pupil = school[Role.PUPIL]
    client.post(f"/api/v1/people/{pupil.id}/password", headers=bearer(inst, school[Role.TEACHER]))
    with inst.db.session(SYSTEM) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "password_reset")
        ).one()
    assert entry.actor.startswith(school[Role.TEACHER].username)
    assert entry.actor_id == school[Role.TEACHER].id
    assert entry.after["person"] == pupil.username
    assert (entry.object_type, entry.object_id) == ("account", str(pupil.id))


# -- a lost phone -------------------------------------------------------------------


def test_an_administrator_resets_a_dsls_two_step_on_the_page(app, client, inst, school):
    dsl = school[Role.DSL]
    dsl_cookie, _ = session_and_csrf(inst, dsl)
    csrf = as_member(client, inst, school[Role.ADMIN])
    page = client.get(f"/people/{dsl.id}/account")
    assert page.status_code == 200 and "Lost phone" in page.text
    no_reason = client.post(f"/people/{dsl.id}/two-step/reset", data={"csrf_token": csrf})
    assert no_reason.status_code == 422 and "Write why" in no_reason.text
    done = client.post(
        f"/people/{dsl.id}/two-step/reset",
        data={"csrf_token": csrf, "reason": "phone lost at the conference"},
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/people/{dsl.id}/account?done=two-step-reset"
    shown = client.get(done.headers["location"])
    assert "Two-step sign-in is reset" in shown.text and "Not set up yet" in shown.text
    # The DSL's open session has ended; signing in again leads to setting it up again.
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, dsl_cookie)
    assert client.get("/").headers["location"].startswith("/sign-in")
    from fastapi.testclient import TestClient

    with TestClient(app) as browser:
        landed = sign_in(browser, inst, dsl)
    assert landed.url.path == "/two-step/enrol"
    with inst.db.session(SYSTEM) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "two_step_reset")
        ).one()
    assert entry.reason == "phone lost at the conference"
    assert entry.actor == school[Role.ADMIN].username


def test_an_administrator_cannot_reset_their_own_two_step(client, inst, school):
    admin = school[Role.ADMIN]
    csrf = as_member(client, inst, admin)
    own = client.post(
        f"/people/{admin.id}/two-step/reset", data={"csrf_token": csrf, "reason": "lost"}
    )
    assert own.status_code == 403 and "your own two-step" in own.text
    page = client.get(f"/people/{admin.id}/account")
    assert page.status_code == 200 and "Lost phone" not in page.text


def test_two_step_reset_in_the_api(client, inst, school):
    dsl = school[Role.DSL]
    headers = bearer(inst, school[Role.ADMIN])
    missing = client.post(f"/api/v1/people/{dsl.id}/two-step/reset", json={}, headers=headers)
    assert missing.status_code == 422
    done = client.post(
        f"/api/v1/people/{dsl.id}/two-step/reset", json={"reason": "stolen"}, headers=headers
    )
    assert done.status_code == 200, done.text
    assert done.json()["must_enrol_again"] is True
    technician = bearer(inst, school[Role.TECHNICIAN])
    refused = client.post(
        f"/api/v1/people/{school[Role.HEADTEACHER].id}/two-step/reset",
        json={"reason": "stolen"},
        headers=technician,
    )
    assert refused.status_code == 403


# -- unlocking ----------------------------------------------------------------------


def test_a_technician_unlocks_a_locked_out_teacher_on_the_page(client, inst, school):
    teacher = school[Role.TEACHER]
    with inst.db.session(SYSTEM) as session:
        session.execute(
            update(Account)
            .where(Account.person_id == teacher.id)
            .values(locked_until=utcnow() + timedelta(minutes=12))
        )
    csrf = as_member(client, inst, school[Role.TECHNICIAN])
    page = client.get(f"/people/{teacher.id}/account")
    assert "Locked until" in page.text and "Unlock now" in page.text
    done = client.post(f"/people/{teacher.id}/unlock", data={"csrf_token": csrf})
    assert done.status_code == 303 and done.headers["location"].endswith("done=unlocked")
    assert "Not locked." in client.get(done.headers["location"]).text
    assert service.sign_in(inst, teacher.username, teacher.password, address="y").token
    api = client.post(
        f"/api/v1/people/{teacher.id}/unlock", headers=bearer(inst, school[Role.TECHNICIAN])
    )
    assert api.status_code == 200 and api.json()["was_locked"] is False


def test_the_account_page_is_for_those_who_may_act(client, inst, school):
    as_member(client, inst, school[Role.TEACHER])
    pupil_page = client.get(f"/people/{school[Role.PUPIL].id}/account")
    assert pupil_page.status_code == 200
    assert f'href="/people/{school[Role.PUPIL].id}/password"' in pupil_page.text
    assert "Unlock now" not in pupil_page.text and "Lost phone" not in pupil_page.text
    assert client.get(f"/people/{school[Role.DSL].id}/account").status_code == 403
    api = client.get(
        f"/api/v1/people/{school[Role.DSL].id}/account", headers=bearer(inst, school[Role.ADMIN])
    )
    assert api.status_code == 200
    assert api.json()["two_step_enrolled"] and api.json()["can_reset_two_step"]
    assert "totp" not in api.text and "hash" not in api.text


# -- the partial for the person page ------------------------------------------------


def _actions_html(inst, caller_member, role: Role, person_id: int) -> str:
    from esafety.web.deps import Caller

    template = environment.from_string(
        '{% from "security/account_actions.html" import account_actions %}'
        "{{ account_actions(person, caller) }}"
    )
    caller = Caller(
        caller_member.id, caller_member.username, "X", 1, "s", frozenset({role}), SYSTEM, "session"
    )
    with inst.db.session(SYSTEM) as session:
        return template.render(person=session.get(Person, person_id), caller=caller)


def test_the_account_actions_partial_shows_only_what_the_caller_may_do(app, inst, school):
    pupil, dsl = school[Role.PUPIL].id, school[Role.DSL].id
    teacher_on_pupil = _actions_html(inst, school[Role.TEACHER], Role.TEACHER, pupil)
    assert f'href="/people/{pupil}/password"' in teacher_on_pupil
    assert _actions_html(inst, school[Role.TEACHER], Role.TEACHER, dsl).strip() == ""
    tech_on_dsl = _actions_html(inst, school[Role.TECHNICIAN], Role.TECHNICIAN, dsl)
    assert f"/people/{dsl}/account" in tech_on_dsl and "/password" not in tech_on_dsl
    admin_on_dsl = _actions_html(inst, school[Role.ADMIN], Role.ADMIN, dsl)
    assert f'href="/people/{dsl}/password"' in admin_on_dsl and "lost phone" in admin_on_dsl
    assert _actions_html(inst, school[Role.OFFICE], Role.OFFICE, pupil).strip() == ""
