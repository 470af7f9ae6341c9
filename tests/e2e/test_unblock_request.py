"""An unblock request in a real browser: a teacher asks for a blocked site for their class
(from the link the block page gives), and the headteacher, signed in with two-step, records
a risk assessment and approves it (000 §5, 001 "auditable, with clear reasons")."""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
import pytest

from tests.e2e.conftest import RunningServer
from tests.e2e.test_browser_sign_in import _demo_login, _sign_in

pytestmark = pytest.mark.e2e

REASON = (
    "My class will play the times-table games on this site in Thursday's maths lesson; "
    "I have tried every game myself and there is no chat."
)
RISK = (
    "I checked the site with the computing lead: no chat, no adverts and no links out. "
    "The class teacher supervises the whole lesson."
)


def _headteacher(server: RunningServer) -> tuple[str, str, str]:
    found = re.search(
        r"│ Headteacher\s.*?\s(demo\.\S+)[\s│]+(demo-\S+-password)[\s│]+([A-Z2-7]{16,})",
        server.text,
    )
    assert found, f"serve --demo did not print the headteacher's sign-in:\n{server.text}"
    return found.group(1), found.group(2), found.group(3)


def test_a_teacher_asks_and_the_headteacher_approves(
    server: RunningServer, browser, shots: Path
) -> None:
    username, password, _ = _demo_login(server, "Teacher")
    teacher = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = teacher.new_page()
    _sign_in(page, server, username, password)
    page.wait_for_url(server.url + "/")
    # The block page's "ask for it to be unblocked" link carries the site.
    page.goto(server.url + "/filtering/requests/new?site=games.example")
    assert page.get_by_label("Site").input_value() == "games.example"
    page.get_by_label("Educational reason").fill(REASON)
    own = page.locator(".choice-grid").first.get_by_role("checkbox").first
    own.check()
    page.screenshot(path=str(shots / "unblock-request-teacher.png"), full_page=True)
    page.get_by_role("button", name="Send the request").click()
    page.wait_for_url(re.compile(r"/filtering/requests/\d+\?done=asked"))
    assert "Your request was sent" in page.get_by_role("status").inner_text()
    body = page.inner_text("body")
    assert "Waiting for approval" in body and REASON in body
    number = re.search(r"/filtering/requests/(\d+)", page.url).group(1)  # type: ignore[union-attr]
    teacher.close()

    username, password, secret = _headteacher(server)
    head = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = head.new_page()
    _sign_in(page, server, username, password)
    page.wait_for_url(re.compile(r"/two-step"))
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(server.url + "/")
    home = page.inner_text("body")
    assert "games.example to be unblocked" in home and "please decide" in home
    page.get_by_role("link", name="Decide", exact=True).click()
    page.wait_for_url(server.url + "/filtering/requests")
    page.get_by_role("link", name="games.example").first.click()
    page.wait_for_url(server.url + f"/filtering/requests/{number}")
    page.get_by_label("Risk assessment").fill(RISK)
    page.get_by_label(re.compile(r"^Note for")).fill("Enjoy the lesson.")
    page.screenshot(path=str(shots / "unblock-approve-head.png"), full_page=True)
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(re.compile(rf"/filtering/requests/{number}\?done=approved"))
    assert "Approved" in page.get_by_role("status").inner_text()
    body = page.inner_text("body")
    assert RISK in body and "Approved by" in body
    page.screenshot(path=str(shots / "unblock-approved-head.png"), full_page=True)

    # Governors and the head read it in the filter change log.
    page.goto(server.url + "/filtering/changes?kind=exception")
    approved = page.locator("tbody tr", has_text=f"Approved exception #{number}: games.example")
    asked = page.locator("tbody tr", has_text="asked to unblock games.example")
    assert RISK in approved.inner_text() and REASON in asked.inner_text()
    # (A pre-warning row too when the lesson starts within the warning time.)
    page.screenshot(path=str(shots / "filter-changes-head.png"), full_page=True)
    head.close()

    # The teacher is told on their home page.
    username, password, _ = _demo_login(server, "Teacher")
    teacher = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = teacher.new_page()
    _sign_in(page, server, username, password)
    page.wait_for_url(server.url + "/")
    notices = page.get_by_role("region", name="For you")
    assert f"Your request #{number} for games.example was approved" in notices.inner_text()
    page.screenshot(path=str(shots / "unblock-home-teacher.png"), full_page=True)
    notices.get_by_role("button", name="Mark as read").click()
    page.wait_for_url(server.url + "/")
    assert page.get_by_role("region", name="For you").count() == 0
    teacher.close()
