"""A pupil tells someone about a worry in a real Chromium against `esafety serve --demo`
(issue 5 §1; SWGfL Whisper): no account, no name; they get a private link and a code; the
DSL finds it on their desk and replies; the pupil opens the link and reads the reply, with
no member of staff named."""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
import pytest

from tests.e2e.conftest import RunningServer
from tests.e2e.test_browser_sign_in import _demo_login, _sign_in

pytestmark = pytest.mark.e2e

WORRY = "A man in my game chat said he would give me skins if I send him a photo of me."
REPLY = "Thank you for telling us. You did the right thing. Please come to the office at break."


def test_a_pupil_sends_a_worry_and_reads_the_dsls_reply(
    server: RunningServer, browser, shots: Path
) -> None:
    context = browser.new_context(viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.goto(server.url + "/worry")
    assert page.get_by_role("heading", level=1).inner_text() == "Tell someone about a worry"
    assert "The adults who keep you safe at school will read this." in page.inner_text("body")
    assert page.get_by_text("Put my name on it").count() == 0  # nobody known at this device
    page.get_by_label("What happened?").fill(WORRY)
    page.get_by_label("Who was it?").fill("someone called SkinzKing on Roblox")
    danger = page.locator(".worry__danger--when-now")
    assert not danger.is_visible()
    page.get_by_label("Yes", exact=True).check()
    assert danger.is_visible()  # "in danger now? 999, Childline" as soon as they say yes
    page.screenshot(path=str(shots / "worry-form.png"), full_page=True)
    page.get_by_role("button", name="Send my worry").click()
    page.wait_for_url(re.compile(r"/worry/[A-Za-z0-9_-]{30,}\?sent=1$"))
    link = page.url.split("?")[0]
    body = page.inner_text("body")
    assert "Thank you for telling us." in body and link in body
    code = page.locator("#worry-code").inner_text()
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", code)
    assert "No answer yet" in body and WORRY in body
    page.screenshot(path=str(shots / "worry-sent.png"), full_page=True)
    context.close()

    username, password, secret = _demo_login(server, "DSL")
    assert secret is not None
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    _sign_in(page, server, username, password)
    page.wait_for_url(re.compile(r"/two-step"))
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(server.url + "/")
    page.goto(server.url + "/safeguarding/concerns")
    row = page.locator("#desk tr", has_text="a pupil (anonymous)")
    assert row.count() == 1
    row.get_by_role("link").first.click()
    page.wait_for_url(re.compile(r"/safeguarding/concerns/\d+$"))
    body = page.inner_text("body")
    assert WORRY in body and "SkinzKing" in body
    assert "They said it is happening now" in body
    page.get_by_label("Your reply").fill(REPLY)
    page.get_by_role("button", name="Send the reply").click()
    page.wait_for_url(re.compile(r"\?pupil_reply=sent#pupil-reply$"))
    assert "Your reply was sent" in page.inner_text("body")
    page.screenshot(path=str(shots / "worry-dsl-replied.png"), full_page=True)
    dsl_name = page.locator(".who__name").inner_text()
    context.close()

    context = browser.new_context(viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.goto(link)
    body = page.inner_text("body")
    assert REPLY in body and "The adults who keep you safe at school wrote" in body
    assert dsl_name not in body and username not in body
    assert "Worry about a pupil" not in body  # nothing of the concern but the conversation
    page.screenshot(path=str(shots / "worry-pupil-reads-reply.png"), full_page=True)

    # The code, typed on the worry page, opens the same conversation.
    page.goto(server.url + "/worry")
    page.get_by_label("Type your code to read the answer").fill(code.lower())
    page.get_by_role("button", name="Read the answer").click()
    assert REPLY in page.inner_text("body")
    context.close()
