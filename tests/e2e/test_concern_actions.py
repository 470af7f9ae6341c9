"""The concern page in a real browser against `esafety serve --demo`: the DSL records a
concern, is refused when closing it too early (the open steps listed), attaches a
screenshot and downloads it, works through the steps with a referral number, corrects a
note and a step, sets an action, and closes it once every required step is recorded."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pyotp
import pytest

from tests.e2e.conftest import RunningServer
from tests.e2e.test_browser_sign_in import _demo_login, _sign_in

pytestmark = pytest.mark.e2e

WORDS = "Sam showed me a group chat where three pupils called him names every evening"


def _png(width: int = 4, height: int = 3) -> bytes:
    """A small real PNG (grey pixels): a screenshot stands in for one."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _submit(page, button) -> None:
    with page.expect_navigation():
        button.click()


def _step(page, step_id: str, *, choice: str | None = None, **fields: str) -> None:
    """Open a step's form, fill it by its labels, and record it."""
    step = page.locator(f"#step-{step_id}")
    step.locator("summary", has_text="Record this step").click()
    if choice is not None:  # the radio's label is "Yes" or "Yes (say why)"
        step.locator(f"#choice-{step_id}-{choice}").check()
    for label, value in fields.items():
        step.get_by_label(label.replace("_", " "), exact=True).fill(value)
    button = "Record the decision" if choice is not None else "Record as done"
    _submit(page, step.get_by_role("button", name=button))
    assert "The step was recorded." in page.inner_text("body"), page.inner_text("#record")[:600]


def test_dsl_is_refused_closing_early_attaches_a_file_and_closes_at_the_end(
    server: RunningServer, browser, shots: Path, tmp_path: Path
) -> None:
    username, password, secret = _demo_login(server, "DSL")
    assert secret is not None
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    _sign_in(page, server, username, password)
    page.wait_for_url(re.compile(r"/two-step"))
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(server.url + "/")

    page.goto(server.url + "/safeguarding/concerns/new")
    pupil = page.locator("#people option").first.get_attribute("value")
    assert pupil
    page.get_by_label("Person 1").fill(pupil)
    page.get_by_label("What kind of concern").select_option("online_bullying")
    page.get_by_label("It happened (date)").fill(
        page.get_by_label("Noticed or told (date)").input_value()
    )
    page.locator("#happened_time").fill("00:00")
    page.get_by_label("Online", exact=True).check()
    page.get_by_label("Which online service, room or place").fill("WhatsApp group")
    page.get_by_label("What was seen or said").fill(WORDS)
    page.get_by_role("button", name="Record the concern").click()
    page.wait_for_url(re.compile(r"/safeguarding/concerns/\d+\?done=recorded"))
    concern_url = page.url.split("?")[0]

    # Closing now is refused, on the page, with the required steps still open.
    _submit(page, page.get_by_role("button", name="Close the concern"))
    alert = page.get_by_role("alert")
    assert "This concern cannot be closed yet." in alert.inner_text()
    assert "Keep a record of the bullying as evidence: still to do" in alert.inner_text()
    assert "Record the outcome: waits for the steps above" in alert.inner_text()
    assert "Closed" not in page.locator("h1").inner_text()
    page.screenshot(path=str(shots / "concern-close-refused.png"), full_page=False)

    # A screenshot attached, listed, and downloaded as it was.
    picture = tmp_path / "group-chat.png"
    picture.write_bytes(_png())
    page.get_by_label("File to attach").set_input_files(str(picture))
    _submit(page, page.get_by_role("button", name="Attach the file"))
    assert "The file was attached." in page.inner_text("body")
    link = page.get_by_role("link", name="Download group-chat.png")
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_bytes() == picture.read_bytes()
    # Not a type esafety keeps: refused with the reason, shown on the page.
    odd = tmp_path / "notes.bin"
    odd.write_bytes(b"MZ\x90\x00 not a document")
    page.get_by_label("File to attach").set_input_files(str(odd))
    _submit(page, page.get_by_role("button", name="Attach the file"))
    assert "is not a type esafety keeps" in page.get_by_role("alert").inner_text()

    # Steps, a referral's reference number, the parents' decision.
    _step(page, "keep_evidence", What_was_done="Screenshots kept on the school system.")
    _step(page, "investigate", What_was_done="Spoke to the three pupils and their tutors.")
    _step(page, "support", What_was_done="Weekly check-ins with the learning mentor.")
    _step(
        page, "sanctions", choice="no", Why="A restorative meeting instead: all three apologised."
    )
    _step(
        page,
        "police",
        choice="yes",
        Why="One message threatened violence.",
        Police_reference_number="PC-4471-22",
    )
    _step(page, "inform_parents", choice="yes", What_was_done="Phoned Sam's mother at 4pm.")

    # A note, and its correction beside it.
    page.get_by_label("Add a note").fill("Sam's mother will bring his phone on Monday.")
    _submit(page, page.get_by_role("button", name="Add the note"))
    history = page.locator("#history")
    history.locator("summary", has_text="Correct this note").first.click()
    history.get_by_label("The corrected note", exact=False).first.fill(
        "Sam's father will bring his phone on Tuesday."
    )
    history.get_by_label("Why it is being corrected", exact=False).first.fill(
        "His father rang to change the day."
    )
    _submit(page, history.get_by_role("button", name="Record the correction"))
    assert "The correction was recorded beside the original." in page.inner_text("body")

    # An action for a member of staff, due in a week.
    page.locator("summary", has_text="Set an action").click()
    page.get_by_label("What is to be done").fill("Check in with Sam every Monday this term")
    owner = page.get_by_label("Who does it")
    owner.select_option(index=1)
    minimum = page.get_by_label("Due by (date)").get_attribute("min")
    assert minimum
    page.get_by_label("Due by (date)").fill(minimum)
    _submit(page, page.get_by_role("button", name="Set the action"))
    assert "The action was set, and its owner told." in page.inner_text("body")

    referrals = page.locator("#referrals").inner_text()
    assert "Police" in referrals and "PC-4471-22" in referrals
    assert "Told" in page.locator("#parents-told").inner_text()
    page.goto(concern_url + "#record")
    page.screenshot(path=str(shots / "concern-steps-referrals-actions.png"), full_page=True)

    # A correction of a step: the earlier record stays beside it.
    police = page.locator("#step-police")
    police.locator("summary", has_text="Correct this step").click()
    police.locator("#fix-choice-police-yes").check()
    police.get_by_label("Why", exact=True).fill("Threat of violence; the police asked.")
    police.get_by_label("Police reference number").fill("PC-4471-23")
    police.get_by_label("Why the record is being corrected").fill("The police gave a new number.")
    _submit(page, police.get_by_role("button", name="Record the correction"))
    assert "kept beside the correction" in page.locator("#step-police").inner_text()

    # Then the closing steps, and the concern closes.
    _step(page, "outcome", The_outcome="The messages stopped; Sam is settled.")
    _step(page, "debrief", Lessons_learnt="Parents want more guidance on group chats.")
    _step(
        page,
        "changes",
        choice="yes",
        Why="Parents asked for guidance.",
        Changes_made="A parents' session on group chats in the spring term.",
    )
    assert page.locator("#close-blockers").count() == 0
    _submit(page, page.get_by_role("button", name="Close the concern"))
    assert "The concern was closed." in page.inner_text("body"), page.inner_text("#record")[:1500]
    assert "Closed" in page.locator("h1").inner_text()
    summary = page.locator("#closing-summary").inner_text()
    assert "Parents want more guidance on group chats." in summary
    page.screenshot(path=str(shots / "concern-closed.png"), full_page=True)

    # The desk lists the open action on the DSL's concerns, with its owner and due date.
    page.goto(server.url + "/safeguarding/concerns")
    listed = page.locator("#desk-actions").inner_text()
    assert "Check in with Sam every Monday this term" in listed and "Due today" in listed
    page.screenshot(path=str(shots / "concerns-desk-actions.png"), full_page=True)
    context.close()
