"""The DSL's desk, live, in a real browser against `esafety serve --demo` (issue 5 §4): the
DSL has the desk open; a teacher records a grave concern; the new row appears at the top
of the DSL's desk without reloading, marked and announced. A teacher's open page gets
nothing, even when it asks the stream itself."""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import RunningServer
from tests.e2e.test_browser_sign_in import _demo_login, _sign_in

pytestmark = pytest.mark.e2e

WORDS = "A man on a game asked Jo to send him photos and to keep it a secret"
GROOMING = "Online sexual abuse, exploitation or grooming"

#: Opens the desk's stream from a page and keeps whatever arrives (a teacher's attempt).
LISTEN = """() => {
  window.got = []; window.failed = false;
  const source = new EventSource('/safeguarding/desk/events?since=0');
  source.addEventListener('concern', (e) => window.got.push(e.data));
  source.onerror = () => { window.failed = source.readyState === EventSource.CLOSED; };
}"""


def _record_grave_concern(page, server: RunningServer) -> str:
    page.goto(server.url + "/safeguarding/concerns/new")
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
    page.get_by_role("button", name="Record the concern").click()
    page.wait_for_url(re.compile(r"/safeguarding/concerns/\d+\?done=recorded"))
    url: str = page.url
    return url.split("?")[0].rsplit("/", 1)[1]


def test_a_grave_concern_appears_on_the_open_desk_without_reloading(
    server: RunningServer, browser, shots: Path
) -> None:
    username, password, secret = _demo_login(server, "DSL")
    assert secret is not None
    dsl_context = browser.new_context(viewport={"width": 1280, "height": 860})
    desk = dsl_context.new_page()
    _sign_in(desk, server, username, password)
    desk.wait_for_url(re.compile(r"/two-step"))
    desk.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    desk.get_by_role("button", name="Continue").click()
    desk.wait_for_url(server.url + "/")
    desk.goto(server.url + "/safeguarding/concerns")
    expect(desk.locator("#desk")).to_be_visible()
    desk.evaluate("() => { window.stillThisPage = true; }")  # gone if the page reloads

    username, password, _ = _demo_login(server, "Teacher")
    teacher_context = browser.new_context(viewport={"width": 1280, "height": 860})
    watching = teacher_context.new_page()
    _sign_in(watching, server, username, password)
    watching.wait_for_url(server.url + "/")
    watching.goto(server.url + "/safeguarding/concerns")
    assert watching.locator("#desk").count() == 0  # a teacher has no desk
    watching.evaluate(LISTEN)
    recording = teacher_context.new_page()
    concern_id = _record_grave_concern(recording, server)

    row = desk.locator("tr.row--live")
    expect(row).to_have_count(1, timeout=15_000)
    expect(row).to_contain_text(GROOMING)
    expect(row).to_contain_text("Just arrived")
    expect(row.get_by_role("link", name=GROOMING)).to_have_attribute(
        "href", f"/safeguarding/concerns/{concern_id}"
    )
    # At the top of the desk, announced to screen readers, on the same page.
    expect(desk.locator("#desk tbody tr").first).to_have_class(re.compile("row--live"))
    expect(desk.locator("#desk-live")).to_contain_text("New grave concern on your desk")
    assert desk.evaluate("() => window.stillThisPage === true")
    assert WORDS not in desk.inner_text("body")  # the row, not the record
    desk.screenshot(path=str(shots / "desk-live-dsl.png"), full_page=True)

    # The teacher's page asked the stream itself and got nothing but a refusal.
    watching.wait_for_function("() => window.failed === true", timeout=10_000)
    assert watching.evaluate("() => window.got") == []
    assert watching.locator("tr.row--live").count() == 0

    # The row leads to the concern.
    row.get_by_role("link", name=GROOMING).click()
    desk.wait_for_url(server.url + f"/safeguarding/concerns/{concern_id}")
    assert WORDS in desk.inner_text("body")
    dsl_context.close()
    teacher_context.close()
