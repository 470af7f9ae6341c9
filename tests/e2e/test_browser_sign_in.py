"""A newcomer's first minutes, in a real browser against a real `esafety serve --demo`:
sign in as the DSL with two-step sign-in and as a teacher, and see their home pages."""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
import pytest

from tests.e2e.conftest import RunningServer

pytestmark = pytest.mark.e2e


def _demo_login(server: RunningServer, role_label: str) -> tuple[str, str, str | None]:
    """Read a role's username, password and secret from what `serve --demo` printed."""
    if role_label == "DSL":
        found = re.search(r"DSL: (\S+) / (\S+) / secret ([A-Z2-7]+)", server.text)
        assert found, f"serve --demo did not print the DSL's sign-in:\n{server.text}"
        return found.group(1), found.group(2), found.group(3)
    found = re.search(rf"│ {role_label}\s.*?\s(demo\.\S+)[\s│]+(demo-\S+-password)", server.text)
    assert found, f"serve --demo did not print the {role_label}'s sign-in:\n{server.text}"
    return found.group(1), found.group(2), None


def _sign_in(page, server: RunningServer, username: str, password: str) -> None:
    page.goto(server.url + "/")
    assert "/sign-in" in page.url  # signed out: a page sends you to sign in
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_dsl_signs_in_with_two_step_and_sees_their_home(
    server: RunningServer, browser, shots: Path
) -> None:
    username, password, secret = _demo_login(server, "DSL")
    assert secret is not None
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    _sign_in(page, server, username, password)

    # The password alone is not enough for someone who can read safeguarding records.
    page.wait_for_url(re.compile(r"/two-step"))
    page.goto(server.url + "/people")
    assert "/two-step" in page.url
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(server.url + "/people")  # where they were going
    page.locator("a.brand").click()
    page.wait_for_url(server.url + "/")
    assert page.get_by_role("heading", level=1).count() == 1
    body = page.inner_text("body")
    assert "Designated safeguarding lead" in body or "DSL" in body
    page.screenshot(path=str(shots / "home-dsl.png"), full_page=True)

    # A phone-sized screen gets the same page, laid out for it.
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, storage_state=context.storage_state()
    )
    small = phone.new_page()
    small.goto(server.url + "/")
    small.screenshot(path=str(shots / "home-dsl-phone.png"), full_page=True)
    phone.close()
    context.close()


def test_teacher_signs_in_and_sees_their_home(server: RunningServer, browser, shots: Path) -> None:
    username, password, _ = _demo_login(server, "Teacher")
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    _sign_in(page, server, username, password)
    page.wait_for_url(server.url + "/")
    body = page.inner_text("body")
    assert "Sign in" not in page.title()
    assert username in body or "Teacher" in body
    page.screenshot(path=str(shots / "home-teacher.png"), full_page=True)

    # The list of children who may not use technology is one click away for all staff (000 §4.5).
    page.goto(server.url + "/technology-restrictions")
    assert page.get_by_role("heading", level=1).count() == 1
    page.screenshot(path=str(shots / "technology-restrictions-teacher.png"), full_page=True)
    context.close()


def test_wrong_password_is_refused_in_plain_words(server: RunningServer, browser) -> None:
    username, _, _ = _demo_login(server, "Teacher")
    page = browser.new_page()
    _sign_in(page, server, username, "not-the-password")
    assert "/sign-in" in page.url
    assert page.get_by_role("alert").count() >= 1
    page.close()
