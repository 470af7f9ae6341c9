"""The pages of "Tell someone about a worry" (issue 5 §1): a pupil with no account sends a
worry from a school device, named or not, in words for their age; it reaches the DSL's
desk; the DSL replies from the concern's page; the private link shows the reply and
nothing else. Wrong links, a flood of worries, a forged form and a huge one are refused."""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from esafety.db import utcnow
from esafety.directory.model import Person
from esafety.installation import Installation
from esafety.safeguarding.model import Concern
from esafety.safeguarding.whisper_model import WorryReport
from esafety.safeguarding.whisper_pages import REPORTS_PER_WINDOW
from esafety.security.roles import Role
from esafety.web.app import create_app
from esafety.web.deps import SESSION_COOKIE
from tests.accounts import csrf_from, make_school, session_and_csrf
from tests.filtering.blockpage_world import DEVICES, BlockWorld, build_world

PAGE = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
WORDS = "Someone in my class keeps sending me horrible messages at night. lilac-owl-2290"


@pytest.fixture
def world(inst: Installation, tmp_path: Path) -> BlockWorld:
    return build_world(inst, tmp_path / "lists")


def visible(page: str) -> str:
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", text).split()))


def send(client: TestClient, **fields: str) -> httpx.Response:
    form = client.get("/worry")
    assert form.status_code == 200
    data = {"what": WORDS, "who": "", "now": "no", "csrf_token": csrf_from(form.text)} | fields
    answer: httpx.Response = client.post("/worry", data=data)
    return answer


def token_of(location: str) -> str:
    found = re.fullmatch(r"/worry/([A-Za-z0-9_-]+)\?sent=1", location)
    assert found, location
    return found.group(1)


def reports(inst: Installation) -> int:
    with inst.db.session() as session:
        return session.scalar(select(func.count()).select_from(WorryReport)) or 0


def as_dsl(client: TestClient, world: BlockWorld) -> dict[str, str]:
    cookie, csrf = session_and_csrf(world.inst, world.school[Role.DSL])
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie)
    return {"x-csrf-token": csrf}


# -- the form, for each age -----------------------------------------------------------


def test_a_young_pupil_gets_simple_words_and_chooses_whether_to_sign(world: BlockWorld) -> None:
    with world.client("year1") as client:
        page = client.get("/worry")
    words = visible(page.text)
    assert page.status_code == 200 and "worry--young" in page.text
    assert "The adults who keep you safe will read this." in words
    assert "Put my name on it (Yusuf)" in words and "Send it without my name" in words
    assert "If you are in danger now, tell an adult near you or call 999." in words
    assert "0800 1111" in words
    # Neither choice is made for them.
    assert 'name="name" value="yes" required>' in page.text
    assert 'name="name" value="no" required>' in page.text


def test_a_device_nobody_is_signed_in_on_offers_no_name(world: BlockWorld) -> None:
    with world.client("nobody") as client:
        page = client.get("/worry")
    assert page.status_code == 200 and "worry--unknown" in page.text
    assert "Put my name on it" not in page.text
    assert "The adults who keep you safe at school will read this." in visible(page.text)


def test_the_block_page_links_pupils_to_it_in_their_words(world: BlockWorld) -> None:
    for device, words in (
        ("year1", "Are you worried or sad about something? Tell someone about a worry"),
        ("year5", "Has something worried or upset you? Tell someone about a worry"),
    ):
        with world.client(device) as client:
            page = client.get("/", headers={**PAGE, "host": "blocked.example"})
        assert page.status_code == 403
        assert words in visible(page.text)
        assert re.search(r'href="http://[^"]+/worry"', page.text)
    with world.client("teacher") as client:
        staff = client.get("/", headers={**PAGE, "host": "blocked.example"})
    assert "Tell someone about a worry" not in staff.text


# -- sending, and the DSL's desk ------------------------------------------------------


def test_an_anonymous_worry_reaches_the_desk_and_the_reply_reaches_the_pupil(
    world: BlockWorld,
) -> None:
    with world.client("year5") as pupil:
        sent = send(pupil, name="no", who="a boy called Jordan", now="yes")
        assert sent.status_code == 303
        token = token_of(sent.headers["location"])
        page = pupil.get(sent.headers["location"])
        words = visible(page.text)
        assert page.status_code == 200 and "Thank you for telling us." in words
        assert f"/worry/{token}" in words and re.search(r"Your code: [A-Z2-9]{4}-", words)
        assert "If you are in danger now" in words  # they said it is happening now
        assert WORDS in words and "No answer yet" in words

    with world.client("teacher") as dsl:
        headers = as_dsl(dsl, world)
        desk = dsl.get("/safeguarding/concerns")
        with world.inst.db.session() as session:
            concern_id = session.scalar(select(Concern.id))
        assert f'href="/safeguarding/concerns/{concern_id}"' in desk.text
        concern = dsl.get(f"/safeguarding/concerns/{concern_id}")
        shown = visible(concern.text)
        assert "Raised by a pupil (anonymous)" in shown and WORDS in shown
        assert "Reply to the pupil" in shown and "without their name" in shown
        assert "They said it is happening now" in shown
        replied = dsl.post(
            f"/safeguarding/concerns/{concern_id}/pupil-reply",
            data={"text": "Thank you for telling us. Please come to the office at break."},
            headers=headers,
        )
        assert replied.status_code == 303
        assert replied.headers["location"].endswith("?pupil_reply=sent#pupil-reply")
        again = visible(dsl.get(f"/safeguarding/concerns/{concern_id}?pupil_reply=sent").text)
        assert "Your reply was sent" in again
        dsl.post(
            f"/safeguarding/concerns/{concern_id}/notes",
            data={"text": "Spoke to Mr Okafor about Jordan's phone."},
            headers=headers,
        )

    with world.client("nobody") as anyone:  # the link works on any device
        page = anyone.get(f"/worry/{token}")
    words = visible(page.text)
    assert page.status_code == 200
    assert "Please come to the office at break." in words
    assert "The adults who keep you safe at school wrote" in words
    for hidden in ("Okafor", "dsl.westpark", "Dsl Tester", "Worry about a pupil", "#"):
        assert hidden not in words, hidden


def test_a_named_worry_is_about_the_pupil_and_a_signed_reply_shows_the_name(
    world: BlockWorld,
) -> None:
    with world.client("year5") as pupil:
        unsure = send(pupil)
        assert unsure.status_code == 422
        assert "Please choose: put your name on it" in visible(unsure.text)
        assert WORDS in html.unescape(unsure.text)
        sent = send(pupil, name="yes")
        token = token_of(sent.headers["location"])
    fatima = _person_id(world, "year5")
    with world.inst.db.session() as session:
        concern = session.scalars(select(Concern)).one()
        assert concern.raised_by == "Fatima Pupil, a pupil (their own report)"
        assert [p.person_id for p in concern.people] == [fatima]
    with world.client("teacher") as dsl:
        headers = as_dsl(dsl, world)
        dsl.post(
            f"/safeguarding/concerns/{concern.id}/pupil-reply",
            data={"text": "We will talk to you today.", "sign": "yes"},
            headers=headers,
        )
        empty = dsl.post(
            f"/safeguarding/concerns/{concern.id}/pupil-reply", data={"text": " "}, headers=headers
        )
        assert empty.headers["location"].endswith("?pupil_reply=empty#pupil-reply")
    with world.client("year5") as pupil:
        words = visible(pupil.get(f"/worry/{token}").text)
    assert "Dsl Tester, at school, wrote" in words and "We will talk to you today." in words


def _person_id(world: BlockWorld, device: str) -> int:
    with world.inst.db.session() as session:
        found = session.scalar(select(Person.id).where(Person.username == world.pupils[device]))
    assert found is not None
    return found


def test_the_pupil_adds_more_by_link_and_by_code(world: BlockWorld) -> None:
    with world.client("nobody") as pupil:
        sent = send(pupil)
        token = token_of(sent.headers["location"])
        page = pupil.get(f"/worry/{token}")
        code = re.search(r'id="worry-code">([A-Z2-9-]+)<', page.text)
        assert code is not None
        added = pupil.post(
            f"/worry/{token}",
            data={"more": "It happened again.", "csrf_token": csrf_from(page.text)},
        )
        assert added.status_code == 303 and added.headers["location"] == f"/worry/{token}?added=1"
        form = pupil.get("/worry")
        by_code = pupil.post(
            "/worry-code",
            data={"code": code.group(1).lower(), "csrf_token": csrf_from(form.text)},
        )
        words = visible(by_code.text)
        assert by_code.status_code == 200 and "It happened again." in words
        assert f"/worry/{token}" not in by_code.text  # the code page never shows the link
        more = pupil.post(
            "/worry-code",
            data={"code": code.group(1), "more": "And today.", "csrf_token": csrf_from(form.text)},
        )
        assert more.status_code == 200 and "And today." in visible(more.text)


# -- refusals -------------------------------------------------------------------------


def test_wrong_and_expired_links_and_codes_look_the_same(world: BlockWorld) -> None:
    with world.client("nobody") as pupil:
        sent = send(pupil)
        token = token_of(sent.headers["location"])
        wrong = pupil.get("/worry/" + "A" * 32)
        with world.inst.db.session() as session:
            report = session.scalars(select(WorryReport)).one()
            report.expires_at = utcnow()  # the one column that moves
        expired = pupil.get(f"/worry/{token}")
        form = pupil.get("/worry")
        code = pupil.post(
            "/worry-code", data={"code": "ABCD-EFGH-JKMN", "csrf_token": csrf_from(form.text)}
        )
    assert wrong.status_code == expired.status_code == code.status_code == 404
    assert visible(wrong.text) == visible(expired.text) == visible(code.text)
    assert "This link or code does not work" in visible(wrong.text)


def test_someone_signed_in_to_another_school_opens_nothing(
    world: BlockWorld, inst: Installation
) -> None:
    with world.client("nobody") as pupil:
        token = token_of(send(pupil).headers["location"])
    other = make_school(inst, "elmtree")
    cookie, _ = session_and_csrf(inst, other[Role.DSL])
    with world.client("nobody") as client:
        client.cookies.set(SESSION_COOKIE, cookie)
        assert client.get(f"/worry/{token}").status_code == 404


def test_a_device_sending_many_worries_is_asked_to_wait(world: BlockWorld) -> None:
    with world.client("nobody") as pupil:
        for _ in range(REPORTS_PER_WINDOW):
            assert send(pupil).status_code == 303
        flood = send(pupil, what="one more")
        assert flood.status_code == 429
        assert "Please wait ten minutes" in visible(flood.text)
        assert "one more" in flood.text  # kept for them
    assert reports(world.inst) == REPORTS_PER_WINDOW
    with world.client(DEVICES["year5"]) as other_device:
        assert send(other_device, name="no").status_code == 303


def test_a_forged_or_huge_form_is_refused_and_nothing_is_written(world: BlockWorld) -> None:
    with world.client("nobody") as pupil:
        forged = pupil.post("/worry", data={"what": WORDS, "now": "no"})
        assert forged.status_code == 403
        form = pupil.get("/worry")
        huge = pupil.post("/worry", data={"what": "x" * 70_000, "csrf_token": csrf_from(form.text)})
        assert huge.status_code == 413
        empty = pupil.post("/worry", data={"what": "  ", "csrf_token": csrf_from(form.text)})
        assert empty.status_code == 422
        assert "Please write what happened" in visible(empty.text)
    assert reports(world.inst) == 0


def test_a_teacher_cannot_reply_to_a_pupil(world: BlockWorld) -> None:
    with world.client("nobody") as pupil:
        send(pupil)
    with world.inst.db.session() as session:
        concern_id = session.scalar(select(Concern.id))
    app = create_app(world.inst)
    with TestClient(app, follow_redirects=False) as client:
        cookie, csrf = session_and_csrf(world.inst, world.school[Role.TEACHER])
        client.cookies.set(SESSION_COOKIE, cookie)
        answer = client.post(
            f"/safeguarding/concerns/{concern_id}/pupil-reply",
            data={"text": "hello"},
            headers={"x-csrf-token": csrf},
        )
    assert answer.status_code == 403
