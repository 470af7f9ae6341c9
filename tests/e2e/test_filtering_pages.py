"""The technician's filtering page in a real browser: block a site for the school with a
reason, then ask the filter whether it is blocked and read why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningServer
from tests.e2e.test_browser_sign_in import _demo_login, _sign_in

pytestmark = pytest.mark.e2e


def test_technician_blocks_a_site_and_checks_it(
    server: RunningServer, browser, shots: Path
) -> None:
    username, password, _ = _demo_login(server, "IT technician")
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    _sign_in(page, server, username, password)
    page.wait_for_url(server.url + "/")
    page.get_by_role("link", name="Filtering").click()
    page.wait_for_url(server.url + "/filtering")

    form = page.get_by_role("form", name="Block or allow a site")
    form.get_by_label("Site or web address").fill("Games.Example.com")
    form.get_by_label("Block for everyone").check()
    form.get_by_label("Why").fill("Distracting during lessons (staff meeting 12 Nov)")
    form.get_by_role("button", name="Add the entry").click()
    page.wait_for_url(re.compile(r"/filtering\?done=entry-added"))
    assert page.get_by_role("status").first.inner_text().startswith("The entry was added")
    assert "games.example.com" in page.inner_text("body")
    page.screenshot(path=str(shots / "filtering-technician.png"), full_page=True)

    page.get_by_role("form", name="Would a site be blocked?").get_by_label(
        "Site or web address"
    ).fill("play.games.example.com")
    page.get_by_role("button", name="Check", exact=True).click()
    page.wait_for_url(re.compile(r"/filtering/check\?site="))
    verdict = page.get_by_role("status").inner_text()
    assert "Blocked: play.games.example.com" in verdict
    assert "Distracting during lessons" in verdict or "school" in verdict.lower()
    page.screenshot(path=str(shots / "filter-check-technician.png"), full_page=True)
    context.close()
