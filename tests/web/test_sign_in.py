"""Signing in through the pages: password, two-step code, enrolment, forced password change."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select, update

from esafety.audit import SYSTEM, AuditEntry
from esafety.db import utcnow
from esafety.errors import AuthenticationFailed
from esafety.security import service
from esafety.security.model import Account, RecoveryCode, WebSession
from esafety.security.roles import Role
from esafety.web.deps import SESSION_COOKIE
from tests.accounts import PASSWORD, add_member, csrf_from, fresh_code, sign_in


def test_signed_out_page_redirects_to_sign_in_and_api_answers_401(client, school):
    page = client.get("/account?tab=1")
    assert page.status_code == 303
    assert page.headers["location"] == "/sign-in?next=/account%3Ftab%3D1"
    api = client.get("/api/v1/me")
    assert api.status_code == 401
    assert api.json()["error"] == "sign_in_needed"
    assert api.headers["www-authenticate"] == "Bearer"


def test_teacher_signs_in_with_password_and_lands_where_they_were_going(client, inst, school):
    response = sign_in(client, inst, school[Role.TEACHER], next_path="/account")
    assert response.status_code == 200
    assert response.url.path == "/account"
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie
    me = client.get("/api/v1/me")
    assert me.json() == {
        "username": school[Role.TEACHER].username,
        "display_name": "Teacher Tester",
        "roles": ["teacher"],
        "school": "oakfield",
        "via": "session",
    }


def test_session_cookie_is_http_only_and_same_site_lax(client, inst, school):
    page = client.get("/sign-in")
    response = client.post(
        "/sign-in",
        data={
            "username": school[Role.TEACHER].username,
            "password": PASSWORD,
            "csrf_token": csrf_from(page.text),
        },
    )
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # secure_cookies is off by default (plain http on localhost)


def test_wrong_password_shows_the_form_again_with_a_clear_message(client, inst, school):
    page = client.get("/sign-in")
    response = client.post(
        "/sign-in",
        data={
            "username": school[Role.TEACHER].username,
            "password": "not-it",
            "csrf_token": csrf_from(page.text),
        },
    )
    assert response.status_code == 401
    assert "username or password is not right" in response.text
    assert SESSION_COOKIE not in response.cookies


def test_dsl_must_enter_a_code_before_anything_else(client, inst, school):
    dsl = school[Role.DSL]
    page = client.get("/sign-in")
    response = client.post(
        "/sign-in",
        data={"username": dsl.username, "password": PASSWORD, "csrf_token": csrf_from(page.text)},
        follow_redirects=True,
    )
    assert response.url.path == "/two-step"
    # Nothing else answers yet: pages send back to the code, the API refuses.
    assert client.get("/").headers["location"].startswith("/two-step")
    assert client.get("/account").headers["location"].startswith("/two-step")
    assert client.get("/api/v1/me").status_code == 401
    wrong = client.post(
        "/two-step", data={"code": "000000", "csrf_token": csrf_from(response.text)}
    )
    assert wrong.status_code == 401
    assert "not right" in wrong.text
    done = client.post(
        "/two-step",
        data={"code": fresh_code(inst, dsl), "csrf_token": csrf_from(response.text)},
        follow_redirects=True,
    )
    assert done.url.path == "/"
    assert client.get("/api/v1/me").json()["roles"] == ["dsl"]


def test_a_code_cannot_be_used_twice(client, inst, school):
    dsl = school[Role.DSL]
    code = fresh_code(inst, dsl)
    first = service.sign_in(inst, dsl.username, PASSWORD, address="a")
    service.check_two_step(inst, first.token, code, address="a")
    second = service.sign_in(inst, dsl.username, PASSWORD, address="a")
    with pytest.raises(AuthenticationFailed, match="already used"):
        service.check_two_step(inst, second.token, code, address="a")


def test_recovery_code_works_once(client, inst, school):
    admin = school[Role.ADMIN]
    with inst.db.session(SYSTEM) as session:
        codes = service.replace_recovery_codes(session, session.get(Account, admin.id))
    first = service.sign_in(inst, admin.username, PASSWORD, address="a")
    service.check_two_step(inst, first.token, codes[0].upper(), address="a")
    second = service.sign_in(inst, admin.username, PASSWORD, address="a")
    with pytest.raises(AuthenticationFailed, match="not right"):
        service.check_two_step(inst, second.token, codes[0], address="a")
    with inst.db.session(SYSTEM) as session:
        used = session.scalars(
            select(RecoveryCode).where(
                RecoveryCode.person_id == admin.id, RecoveryCode.used_at.is_not(None)
            )
        ).all()
    assert len(used) == 1


def test_new_headteacher_must_enrol_two_step_before_anything_else(client, inst, school):
    head = add_member(inst, school.id, "new.head", [Role.HEADTEACHER], two_step=False)
    page = client.get("/sign-in")
    response = client.post(
        "/sign-in",
        data={"username": head.username, "password": PASSWORD, "csrf_token": csrf_from(page.text)},
        follow_redirects=True,
    )
    assert response.url.path == "/two-step/enrol"
    assert '<svg class="qr" role="img"' in response.text
    assert client.get("/").headers["location"].startswith("/two-step/enrol")
    assert client.get("/api/v1/me").status_code == 401
    with inst.db.session(SYSTEM) as session:
        secret = session.get(Account, head.id).totp_secret
    # The key is shown for people who cannot scan (grouped in fours for reading).
    assert secret[:4] in response.text
    again = client.get("/two-step/enrol")
    assert secret[:4] in again.text  # reloading keeps the same key
    codes_page = client.post(
        "/two-step/enrol",
        data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_from(response.text)},
    )
    assert codes_page.status_code == 200
    assert codes_page.text.count("<li>") >= 10
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/me").json()["roles"] == ["headteacher"]


def test_first_sign_in_after_a_staff_reset_asks_for_a_new_password(client, inst, school):
    ta = add_member(inst, school.id, "new.ta", [Role.TEACHING_ASSISTANT], password=None)
    service.set_password(inst, ta.id, "temporary-pass-1", actor=SYSTEM, temporary=True)
    page = client.get("/sign-in")
    response = client.post(
        "/sign-in",
        data={
            "username": ta.username,
            "password": "temporary-pass-1",
            "csrf_token": csrf_from(page.text),
        },
        follow_redirects=True,
    )
    assert response.url.path == "/password/change"
    assert client.get("/").headers["location"].startswith("/password/change")
    token = csrf_from(response.text)
    short = client.post(
        "/password/change",
        data={"new_password": "short", "confirm_password": "short", "csrf_token": token},
    )
    assert short.status_code == 422
    assert "use at least 10" in short.text
    reused = client.post(
        "/password/change",
        data={
            "new_password": "temporary-pass-1",
            "confirm_password": "temporary-pass-1",
            "csrf_token": token,
        },
    )
    assert "used it before" in reused.text
    done = client.post(
        "/password/change",
        data={
            "new_password": "meadow-kettle-42",
            "confirm_password": "meadow-kettle-42",
            "csrf_token": token,
        },
        follow_redirects=True,
    )
    assert done.url.path == "/"
    assert client.get("/api/v1/me").status_code == 200


def test_password_older_than_the_school_allows_must_be_changed(client, inst, school):
    teacher = school[Role.TEACHER]
    with inst.db.session(SYSTEM) as session:
        session.execute(
            update(Account)
            .where(Account.person_id == teacher.id)
            .values(password_changed_at=utcnow() - timedelta(days=31))
        )
    response = sign_in(client, inst, teacher)
    assert response.url.path == "/password/change"
    assert "every 30 days" in response.text


def test_idle_session_locks_and_the_password_unlocks_it(client, inst, school):
    sign_in(client, inst, school[Role.TEACHER])
    with inst.db.session(SYSTEM) as session:
        session.execute(update(WebSession).values(last_seen_at=utcnow() - timedelta(minutes=16)))
    locked = client.get("/account")
    assert locked.status_code == 303
    assert locked.headers["location"].startswith("/unlock")
    assert client.get("/api/v1/me").status_code == 401
    page = client.get("/unlock")
    assert "enter your password" in page.text
    wrong = client.post("/unlock", data={"password": "nope", "csrf_token": csrf_from(page.text)})
    assert wrong.status_code == 401
    right = client.post("/unlock", data={"password": PASSWORD, "csrf_token": csrf_from(page.text)})
    assert right.status_code == 303
    assert client.get("/account").status_code == 200
    with inst.db.session(SYSTEM) as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert "lock" in actions and "unlock" in actions


def test_session_ends_after_its_hours_whatever_happens(client, inst, school):
    sign_in(client, inst, school[Role.TEACHER])
    with inst.db.session(SYSTEM) as session:
        session.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/account").headers["location"].startswith("/sign-in")
    assert client.get("/api/v1/me").status_code == 401


def test_lock_button_and_sign_out(client, inst, school):
    home = sign_in(client, inst, school[Role.TEACHER])
    token = csrf_from(home.text)
    assert client.post("/lock", data={"csrf_token": token}).headers["location"] == "/unlock"
    assert client.get("/").headers["location"].startswith("/unlock")
    out = client.post("/sign-out", data={"csrf_token": token})
    assert out.headers["location"].startswith("/sign-in")
    assert client.get("/").headers["location"].startswith("/sign-in")
    with inst.db.session(SYSTEM) as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert {"sign_in", "lock", "sign_out"} <= set(actions)


def test_cookies_are_secure_when_the_setting_says_so(client, inst, school):
    inst.settings.web.secure_cookies = True
    page = client.get("/sign-in")
    assert "secure" in page.headers["set-cookie"].lower()  # the CSRF cookie
    response = client.post(
        "/sign-in",
        data={
            "username": school[Role.TEACHER].username,
            "password": PASSWORD,
            "csrf_token": csrf_from(page.text),
        },
    )
    assert "secure" in response.headers["set-cookie"].lower()


def test_signed_in_person_sent_to_a_sign_in_step_goes_home_not_round_in_circles(
    client, inst, school
):
    sign_in(client, inst, school[Role.TEACHER])
    for step in ("/sign-in", "/two-step", "/unlock"):
        response = client.get(f"/sign-in?next={step}")
        assert response.headers["location"] == "/", step
        assert client.get(step).status_code == 303
