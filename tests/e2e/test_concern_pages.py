"""Concern pages in a real browser against `esafety serve --demo`: a teacher records a
concern through the form; the DSL opens it and blanks the screen with Escape (R5)."""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
import pytest

from tests.e2e.conftest import RunningServer
from tests.e2e.test_browser_sign_in import _demo_login, _sign_in

pytestmark = pytest.mark.e2e


WORDS = "Jo showed me a message from an older boy asking her to send a photo"


def test_teacher_records_and_the_dsl_blanks_the_screen(
    server: RunningServer, browser, shots: Path
) -> None:
    username, password, _ = _demo_login(server, "Teacher")
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    _sign_in(page, server, username, password)
    page.wait_for_url(server.url + "/")
    page.get_by_role("link", name="Record a concern").click()
    page.wait_for_url(server.url + "/safeguarding/concerns/new")
    pupil = page.locator("#people option").first.get_attribute("value")
    assert pupil
    page.get_by_label("Person 1").fill(pupil)
    page.get_by_label("What kind of concern").select_option("online_sexual_abuse")
    page.get_by_label("It happened (date)").fill(
        page.get_by_label("Noticed or told (date)").input_value()
    )
    page.locator("#happened_time").fill("00:00")
    page.get_by_label("Online", exact=True).check()
    page.get_by_label("Which online service, room or place").fill("Roblox chat")
    page.get_by_label("What was seen or said").fill(WORDS)
    page.screenshot(path=str(shots / "concern-new-teacher.png"), full_page=True)
    page.get_by_role("button", name="Record the concern").click()
    page.wait_for_url(re.compile(r"/safeguarding/concerns/\d+\?done=recorded"))
    concern_url = page.url.split("?")[0]
    assert WORDS in page.inner_text("body")
    context.close()

    username, password, secret = _demo_login(server, "DSL")
    assert secret is not None
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    _sign_in(page, server, username, password)
    page.wait_for_url(re.compile(r"/two-step"))
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(server.url + "/")
    page.goto(server.url + "/safeguarding/concerns")
    assert "Grave" in page.inner_text("body")
    page.screenshot(path=str(shots / "concerns-desk-dsl.png"), full_page=True)
    page.goto(concern_url)
    assert WORDS in page.inner_text("body")
    page.screenshot(path=str(shots / "concern-dsl.png"), full_page=True)

    page.keyboard.press("Escape")
    assert page.locator("#blank-screen").is_visible()
    assert not page.locator("#record").is_visible()
    assert WORDS not in page.inner_text("body")
    assert page.title() == "esafety"
    page.screenshot(path=str(shots / "concern-blanked.png"), full_page=True)
    page.get_by_role("button", name="Show the page again").click()
    assert page.locator("#record").is_visible() and WORDS in page.inner_text("body")
    page.get_by_role("link", name="Blank the screen (Esc)").click()
    assert page.locator("#blank-screen").is_visible()
    assert page.url == concern_url  # the script keeps the page (the link is the fallback)
    context.close()
