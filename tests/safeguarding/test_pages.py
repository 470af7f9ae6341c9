"""The pages of concerns (issue 5 §1, §2, §4): a teacher records one through the form,
the DSL works through its procedure on the desk and closes it; readers only (404 else)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from esafety.audit import AuditEntry
from esafety.safeguarding import concerns
from esafety.safeguarding.model import Concern
from esafety.security.roles import Role
from esafety.web.app import create_app
from esafety.web.deps import SESSION_COOKIE
from tests.accounts import Member, session_and_csrf
from tests.safeguarding.concern_people import MARKER, ConcernSchool, concern_school, record


@pytest.fixture
def cs(inst) -> ConcernSchool:
    return concern_school(inst)


@pytest.fixture
def client(inst) -> Iterator[TestClient]:
    with TestClient(create_app(inst), follow_redirects=False) as c:
        yield c


def as_member(client: TestClient, cs: ConcernSchool, who: Member | Role) -> dict[str, str]:
    member = cs[who] if isinstance(who, Role) else who
    cookie, csrf = session_and_csrf(cs.inst, member)
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie)
    return {"x-csrf-token": csrf}


def the_form(cs: ConcernSchool, **changes: object) -> dict[str, object]:
    earlier = datetime.now(UTC) - timedelta(hours=3)
    return {
        "kind": "online_bullying",
        "person": [cs[Role.PUPIL].username, cs.pupil2.username, ""],
        "part": ["", "witness", ""],
        "happened_day": earlier.date().isoformat(),
        "happened_time": earlier.strftime("%H:%M"),
        "noticed_day": "",
        "noticed_time": "",
        "location": "online",
        "location_detail": "WhatsApp",
        "narrative": f"Sam showed me a group chat calling him names. {MARKER}",
        "action_taken": "Kept the screenshot on his phone and told the DSL.",
        "dsl_told_in_person": "yes",
    } | changes


def concern_ids(inst) -> list[int]:
    with inst.db.session() as session:
        return list(session.scalars(select(Concern.id).order_by(Concern.id)))


def test_a_teacher_records_a_concern_and_only_they_and_the_dsl_read_it(
    cs: ConcernSchool, client: TestClient
) -> None:
    headers = as_member(client, cs, Role.TEACHER)
    page = client.get("/safeguarding/concerns/new")
    assert page.status_code == 200
    assert "Facts and full names, not opinions or initials" in page.text
    assert f'<option value="{cs[Role.PUPIL].username}">' in page.text  # picked by name
    assert "Nude or sexual images made or shared by children" in page.text  # plain titles
    assert 'href="/safeguarding/concerns/new"' in client.get("/").text  # from any page

    sent = client.post("/safeguarding/concerns/new", data=the_form(cs), headers=headers)
    assert sent.status_code == 303, sent.text
    (concern_id,) = concern_ids(cs.inst)
    assert sent.headers["location"] == f"/safeguarding/concerns/{concern_id}?done=recorded"
    mine = client.get(sent.headers["location"])
    assert mine.status_code == 200
    text = html.unescape(mine.text)
    assert MARKER in text and "The concern was recorded" in text
    assert "WhatsApp" in text and "Witness" in text and "Harmed or at risk" in text
    assert "Record this step" not in text  # the raiser reads it, the DSL acts on it
    listed = client.get("/safeguarding/concerns")
    assert f'href="/safeguarding/concerns/{concern_id}"' in listed.text
    assert "Open concerns" not in listed.text  # no desk for a teacher

    as_member(client, cs, cs.teacher2)
    other = client.get(f"/safeguarding/concerns/{concern_id}")
    assert other.status_code == 404 and MARKER not in other.text
    assert f"/safeguarding/concerns/{concern_id}" not in client.get("/safeguarding/concerns").text
    with cs.inst.db.session() as session:
        refused = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "read_refused", AuditEntry.object_id == str(concern_id)
            )
        ).all()
    assert len(refused) == 1


def test_bad_input_shows_the_reason_and_keeps_what_was_typed(
    cs: ConcernSchool, client: TestClient
) -> None:
    headers = as_member(client, cs, Role.TEACHER)
    words = "Priya said an older boy asked her for photos in a game chat"
    answer = client.post(
        "/safeguarding/concerns/new",
        data=the_form(cs, person=["", "", ""], narrative=words),
        headers=headers,
    )
    assert answer.status_code == 422
    assert "say who the concern is about" in answer.text
    assert words in answer.text and 'value="WhatsApp"' in answer.text
    initials = client.post(
        "/safeguarding/concerns/new",
        data=the_form(cs, person=["", "", ""], narrative=words, outside_name="J. B."),
        headers=headers,
    )
    assert initials.status_code == 422 and "not initials" in initials.text
    assert 'value="J. B."' in initials.text and words in initials.text
    no_time = client.post(
        "/safeguarding/concerns/new", data=the_form(cs, happened_time=""), headers=headers
    )
    assert no_time.status_code == 422 and "when it happened" in no_time.text
    assert concern_ids(cs.inst) == []


def _step(
    client: TestClient, headers: dict[str, str], concern_id: int, step: str, **fields: str
) -> int:
    data = {"step": step, "outcome": "done"} | fields
    answer = client.post(f"/safeguarding/concerns/{concern_id}/steps", data=data, headers=headers)
    assert answer.status_code in (303, 422), answer.text
    status: int = answer.status_code
    return status


def test_the_dsl_works_through_the_procedure_and_closes_only_at_the_end(
    cs: ConcernSchool, client: TestClient
) -> None:
    bullying = record(cs)
    grave = record(cs, kind="youth_produced_sexual_imagery", narrative="A pupil showed me")
    with cs.session(Role.TEACHER) as session:
        late = concerns.record_concern(
            session,
            kind="data_breach",
            narrative="A list of pupils' names was e-mailed to a parent by mistake.",
            happened_at=datetime.now(UTC) - timedelta(days=5),
            noticed_at=datetime.now(UTC) - timedelta(days=4),
            about=[cs[Role.PUPIL].username],
        ).id
    headers = as_member(client, cs, Role.DSL)
    desk = client.get("/safeguarding/concerns")
    assert desk.status_code == 200 and "Open concerns" in desk.text
    order = [int(m) for m in re.findall(r'href="/safeguarding/concerns/(\d+)"', desk.text)]
    assert order[0] == grave  # grave first
    assert set(order) == {bullying, grave, late}
    # The data breach's 72 hours to the ICO are gone: highlighted on the desk.
    assert "Overdue: Report the breach to the ICO" in desk.text
    assert desk.text.count('class="row--overdue"') == 1

    url = f"/safeguarding/concerns/{bullying}"
    page = client.get(url)
    assert page.status_code == 200 and "Record this step" in page.text
    early = client.post(f"{url}/close", data={"outcome": "Sorted."}, headers=headers)
    assert early.status_code == 422
    assert "cannot be closed yet" in html.unescape(early.text) and "keep_evidence" in early.text

    # A decision without its reason: refused, the reason shown, what was typed kept.
    typed = "Spoke to both families on Tuesday"
    assert _step(client, headers, bullying, "sanctions", choice="no", note=typed) == 422
    refused = client.post(
        f"{url}/steps",
        data={"step": "investigate", "outcome": "not_applicable", "note": typed},
        headers=headers,
    )
    assert refused.status_code == 422 and "say why it does not apply" in refused.text
    assert typed in refused.text

    assert _step(client, headers, bullying, "keep_evidence", note="Screenshots kept") == 303
    assert _step(client, headers, bullying, "investigate", note="Spoke to both") == 303
    assert _step(client, headers, bullying, "support", note="Weekly check-ins") == 303
    assert (
        _step(
            client,
            headers,
            bullying,
            "sanctions",
            choice="yes",
            rationale="The messages broke the behaviour policy, so a detention was given.",
        )
        == 303
    )
    assert _step(client, headers, bullying, "police", choice="no") == 303
    assert _step(client, headers, bullying, "inform_parents", choice="yes") == 303
    still = client.post(f"{url}/close", data={}, headers=headers)
    assert still.status_code == 422 and "outcome" in still.text
    assert _step(client, headers, bullying, "outcome", note="The messages stopped.") == 303
    assert _step(client, headers, bullying, "debrief", note="Talked it through with Sam") == 303
    assert _step(client, headers, bullying, "changes", choice="no") == 303
    assert client.get(url).text.count("Record this step") == 1  # only the optional step

    closed = client.post(f"{url}/close", data={}, headers=headers)
    assert closed.status_code == 303, closed.text
    after = client.get(closed.headers["location"])
    assert "The concern was closed" in after.text and "The messages stopped." in after.text
    assert "Record this step" not in after.text
    text = html.unescape(after.text)
    assert "Done by dsl.oak" in text and "a detention was given" in text

    note = client.post(f"/safeguarding/concerns/{grave}/notes", data={"text": ""}, headers=headers)
    assert note.status_code == 422 and "the note is empty" in note.text
    note = client.post(
        f"/safeguarding/concerns/{grave}/notes",
        data={"text": "Mother phoned at 4pm."},
        headers=headers,
    )
    assert note.status_code == 303
    assert "Mother phoned at 4pm." in client.get(f"/safeguarding/concerns/{grave}").text


def test_a_teacher_cannot_act_and_a_deputy_cannot_read_a_staff_allegation(
    cs: ConcernSchool, client: TestClient
) -> None:
    bullying = record(cs)
    allegation = record(cs, cs.teacher2, kind="staff_allegation", about=[cs[Role.TEACHER].username])
    headers = as_member(client, cs, Role.TEACHER)
    step = client.post(
        f"/safeguarding/concerns/{bullying}/steps",
        data={"step": "keep_evidence"},
        headers=headers,
    )
    assert step.status_code == 403
    assert client.get(f"/safeguarding/concerns/{allegation}").status_code == 404

    headers = as_member(client, cs, Role.DEPUTY_DSL)
    url = f"/safeguarding/concerns/{allegation}"
    page = client.get(url)
    assert page.status_code == 404 and MARKER not in page.text
    assert f'href="{url}"' not in client.get("/safeguarding/concerns").text
    for action, data in (("notes", {"text": "x"}), ("close", {}), ("steps", {"step": "x"})):
        answer = client.post(f"{url}/{action}", data=data, headers=headers)
        assert answer.status_code == 404, (action, answer.text)

    as_member(client, cs, Role.HEADTEACHER)
    head = client.get(url)
    assert head.status_code == 200 and MARKER in head.text


def test_the_concern_page_has_the_blank_screen_key(cs: ConcernSchool, client: TestClient) -> None:
    concern_id = record(cs)
    as_member(client, cs, Role.DSL)
    page = client.get(f"/safeguarding/concerns/{concern_id}").text
    assert 'id="blank-screen-button"' in page and "Blank the screen (Esc)" in page
    assert '<div id="blank-screen" class="blank-screen" hidden>' in page
    assert '<script src="/static/blank-screen.js" defer></script>' in page
    script = client.get("/static/blank-screen.js")
    assert script.status_code == 200 and '"Escape"' in script.text
