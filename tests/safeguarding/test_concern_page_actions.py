"""The concern page's forms (issue 5 §1-§4, §7): corrections beside the original, changes
of kind, date and people, attachments, steps with referrals and parents, closing, actions
with owners and due dates, breaking glass, and a filter alert turned into a concern.
Every refusal is shown on the page with its reason (never a traceback)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from esafety.audit import Actor, AuditEntry
from esafety.filtering.alerts import FilterAlertRaised, store_alert
from esafety.filtering.alerts_model import FilterAlert
from esafety.notices import unread
from esafety.safeguarding import actions
from esafety.safeguarding.actions_model import ConcernAction
from esafety.safeguarding.attachments import MAX_ATTACHMENT_BYTES
from esafety.safeguarding.model import Concern, ConcernEntry
from esafety.security.roles import Role
from esafety.web.app import create_app
from tests.accounts import Member
from tests.safeguarding.concern_people import MARKER, ConcernSchool, concern_school, record
from tests.safeguarding.test_pages import as_member

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n% a letter from a parent\n"


@pytest.fixture
def cs(inst) -> ConcernSchool:
    return concern_school(inst)


@pytest.fixture
def client(inst) -> Iterator[TestClient]:
    with TestClient(create_app(inst), follow_redirects=False) as c:
        yield c


def text_of(answer) -> str:
    return html.unescape(answer.text)


def words(fragment: str) -> str:
    """The text a reader sees: tags dropped, spaces collapsed."""
    inline = re.sub(r"</?(span|strong|a|em)\b[^>]*>", "", fragment)
    return " ".join(re.sub(r"<[^>]+>", " ", inline).split())


def post(client: TestClient, headers: dict[str, str], url: str, **data: str):
    return client.post(url, data=data, headers=headers)


def step(client, headers, concern_id: int, step_id: str, **fields: str) -> None:
    answer = post(
        client,
        headers,
        f"/safeguarding/concerns/{concern_id}/steps",
        step=step_id,
        outcome=fields.pop("outcome", "done"),
        **fields,
    )
    assert answer.status_code == 303, text_of(answer)[:2000]


# -- corrections --------------------------------------------------------------------


def test_a_correction_stands_beside_the_original_in_the_record_and_the_history(
    cs: ConcernSchool, client: TestClient
) -> None:
    concern_id = record(cs)
    url = f"/safeguarding/concerns/{concern_id}"
    headers = as_member(client, cs, Role.TEACHER)  # the one who raised it may correct it
    page = client.get(url).text
    assert 'for="correct-text"' in page and "Record the correction" in page
    assert "Change the kind" not in page  # a raiser corrects; the DSL changes

    refused = post(client, headers, f"{url}/corrections", field="narrative", text="Sam said")
    assert refused.status_code == 422
    assert "the reason for the correction is empty" in text_of(refused)
    assert "Sam said" in refused.text  # what was typed is kept

    fixed = "Sam showed me messages calling him names on Tuesday, not Monday."
    done = post(
        client,
        headers,
        f"{url}/corrections",
        field="narrative",
        text=fixed,
        reason="I had the day wrong",
    )
    assert done.status_code == 303 and done.headers["location"].endswith("done=corrected")
    text = text_of(client.get(done.headers["location"]))
    assert "The correction was recorded beside the original" in text
    # In the record: the original, marked as recorded, and the correction beside it.
    record_part = text.split('id="people-heading"')[0]
    assert "As recorded" in record_part and MARKER in record_part and fixed in record_part
    assert record_part.index(MARKER) < record_part.index(fixed)
    # In the history: before and after side by side, with the reason.
    history = text.split('id="entries-heading"')[1]
    assert "Correction</strong> of What was seen or said" in history
    pair = re.search(r'class="correction-pair">(.*?)</li>', history, re.S)
    assert pair and MARKER in pair.group(1) and fixed in pair.group(1)
    assert "Why: I had the day wrong" in history
    with cs.inst.db.session() as session:
        concern = session.get(Concern, concern_id)
        assert concern is not None and MARKER in concern.narrative  # never edited

    # A note, then its correction: the note is marked corrected and both are kept.
    headers = as_member(client, cs, Role.DSL)
    post(client, headers, f"{url}/notes", text="Spoke to Sam's mother at 3pm.")
    with cs.inst.db.session() as session:
        (note_id,) = [  # sealed: compared in Python
            e.id
            for e in session.scalars(select(ConcernEntry))
            if e.text == "Spoke to Sam's mother at 3pm."
        ]
    done = post(
        client,
        headers,
        f"{url}/corrections",
        entry=str(note_id),
        text="Spoke to Sam's father at 3pm.",
        reason="It was his father",
    )
    assert done.status_code == 303
    history = text_of(client.get(url)).split('id="entries-heading"')[1]
    assert f'id="entry-{note_id}"' in history and "see the correction" in history
    assert "Spoke to Sam's mother at 3pm." in history and "Spoke to Sam's father" in history
    wrong = post(client, headers, f"{url}/corrections", entry="999999", text="x", reason="because")
    assert wrong.status_code == 422 and "is not a note or correction" in wrong.text


def test_changes_of_kind_date_and_people_are_recorded_and_shown(
    cs: ConcernSchool, client: TestClient
) -> None:
    concern_id = record(cs)
    url = f"/safeguarding/concerns/{concern_id}"
    teacher = as_member(client, cs, Role.TEACHER)
    assert post(client, teacher, f"{url}/kind", kind="online_hate", reason="x").status_code == 403

    headers = as_member(client, cs, Role.DSL)
    page = client.get(url).text
    for label in ("The kind it is now", "It happened on (date)", "Pupil or adult of the school"):
        assert label in page
    no_reason = post(client, headers, f"{url}/kind", kind="online_hate", reason="")
    assert no_reason.status_code == 422 and "the reason for the change of kind" in no_reason.text
    assert "Something went wrong" not in no_reason.text
    assert (
        post(
            client, headers, f"{url}/kind", kind="online_hate", reason="The messages were racist."
        ).status_code
        == 303
    )
    earlier = datetime.now(UTC) - timedelta(days=2)
    assert (
        post(
            client,
            headers,
            f"{url}/happened",
            happened_day=earlier.date().isoformat(),
            happened_time="09:15",
            reason="Sam remembered it was the weekend before.",
        ).status_code
        == 303
    )
    future = post(
        client,
        headers,
        f"{url}/happened",
        happened_day=(date.today() + timedelta(days=3)).isoformat(),
        happened_time="09:15",
        reason="typo",
    )
    assert future.status_code == 422 and "in the future" in future.text
    linked = post(
        client,
        headers,
        f"{url}/people",
        person=cs.pupil2.username,
        part="witness",
        reason="She was in the group chat.",
    )
    assert linked.status_code == 303, linked.text
    outside = post(client, headers, f"{url}/people", outside_name="J. B.", reason="He sent them")
    assert outside.status_code == 422 and "not initials" in outside.text

    text = text_of(client.get(url))
    assert "Online hate" in text and "(recorded as Online bullying)" in text
    history = text.split('id="entries-heading"')[1]
    assert "Kind changed" in history and "Online bullying → Online hate" in words(history)
    assert "Why: The messages were racist." in history
    assert "Date changed" in history and "09:15" in history
    assert "Person linked" in history and "(witness)" in history
    with cs.inst.db.session() as session:
        concern = session.get(Concern, concern_id)
        assert concern is not None
        link_id = next(p.id for p in concern.linked if p.person_id == cs.pupil2.id)
    assert f'for="unlink-reason-{link_id}"' in text
    unlinked = post(
        client, headers, f"{url}/people/unlink", link=str(link_id), reason="Wrong Priya."
    )
    assert unlinked.status_code == 303
    text = text_of(client.get(url))
    history = text.split('id="entries-heading"')[1]
    assert "Person unlinked" in history and "Why: Wrong Priya." in history
    assert f'for="unlink-reason-{link_id}"' not in text  # no longer linked
    last = post(client, headers, f"{url}/people/unlink", link="", reason="x")
    assert last.status_code == 422 and "choose the person to unlink" in last.text


# -- attachments --------------------------------------------------------------------


def test_attachments_upload_list_download_and_the_image_refusal(
    cs: ConcernSchool, client: TestClient
) -> None:
    bullying = record(cs)
    headers = as_member(client, cs, Role.TEACHER)
    url = f"/safeguarding/concerns/{bullying}"
    sent = client.post(
        f"{url}/attachments",
        files={"file": ("letter from mum.pdf", PDF, "application/pdf")},
        headers=headers,
    )
    assert sent.status_code == 303, sent.text
    page = text_of(client.get(sent.headers["location"]))
    assert "The file was attached" in page and "Download letter from mum.pdf" in page
    (href,) = re.findall(rf'href="({url}/attachments/\d+)"', page)
    got = client.get(href)
    assert got.status_code == 200 and got.content == PDF
    assert "attachment;" in got.headers["content-disposition"]
    assert got.headers["cache-control"] == "no-store"
    with cs.inst.db.session() as session:
        reads = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "read", AuditEntry.object_type == "concern_attachment"
            )
        ).all()
    assert len(reads) == 1

    odd = client.post(
        f"{url}/attachments",
        files={"file": ("run.exe", b"MZ\x90\x00", "application/octet-stream")},
        headers=headers,
    )
    assert odd.status_code == 422 and "is not a type esafety keeps" in odd.text
    empty = client.post(f"{url}/attachments", data={}, headers=headers)
    assert empty.status_code == 422 and "choose a file to attach" in empty.text
    big = client.post(
        f"{url}/attachments",
        files={"file": ("scan.pdf", PDF + b"0" * MAX_ATTACHMENT_BYTES, "application/pdf")},
        headers=headers,
    )
    assert big.status_code == 422 and "the largest is 10 MB" in big.text

    ypsi = record(cs, kind="youth_produced_sexual_imagery", narrative="Jo was sent a photo")
    page = text_of(client.get(f"/safeguarding/concerns/{ypsi}"))
    assert "Do not attach images for this kind of concern" in page
    refused = client.post(
        f"/safeguarding/concerns/{ypsi}/attachments",
        files={"file": ("photo.png", PNG, "image/png")},
        headers=headers,
    )
    assert refused.status_code == 422
    said = text_of(refused)
    assert 'role="alert"' in said and "is an image, and images are not kept" in said
    assert "Record a description of what was seen instead" in said
    with cs.inst.db.session() as session:
        concern = session.get(Concern, ypsi)
        assert concern is not None and concern.attachments == []

    as_member(client, cs, cs.teacher2)
    assert client.get(href).status_code == 404  # not theirs to read


# -- steps, referrals, parents, closing ---------------------------------------------


def test_steps_referrals_parents_corrections_and_closing(
    cs: ConcernSchool, client: TestClient
) -> None:
    concern_id = record(cs, kind="radicalisation", narrative=f"Ali searched for videos. {MARKER}")
    url = f"/safeguarding/concerns/{concern_id}"
    headers = as_member(client, cs, Role.DSL)
    page = text_of(client.get(url))
    seen = words(page)
    assert "Record as done: Have the extremist content blocked" in seen
    assert "Record the decision: Decide whether to make a Prevent referral" in seen
    assert 'for="reference-prevent_referral"' in page and "Prevent reference number" in page
    assert "Not decided yet" in seen  # whether to tell the parents

    early = post(client, headers, f"{url}/close", outcome="Sorted.")
    assert early.status_code == 422
    said = text_of(early)
    refusal = words(said.split('id="concern-error"')[1].split("</div>")[0])
    assert 'role="alert"' in said and "This concern cannot be closed yet." in refusal
    assert "Decide whether to make a Prevent referral: still to do" in refusal
    assert (
        "Decide whether to tell the parents or carers: waits for ‘Decide whether to make a Prevent referral’"
        in refusal
    )
    assert "Record the outcome: waits for the steps above" in refusal

    yesterday = datetime.now(UTC) - timedelta(days=1)
    step(
        client,
        headers,
        concern_id,
        "block_content",
        note="The site was already blocked.",
        done_day=yesterday.date().isoformat(),
        done_time="10:30",
    )
    step(
        client,
        headers,
        concern_id,
        "prevent_referral",
        choice="yes",
        rationale="He shared the videos with others.",
        reference="PRV-2231",
    )
    step(client, headers, concern_id, "refer_social_care", choice="no", rationale="No need.")
    no_reason = post(
        client, headers, f"{url}/steps", step="inform_parents", outcome="done", choice="no"
    )
    assert no_reason.status_code == 422 and "needs the reason" in text_of(no_reason)
    step(
        client,
        headers,
        concern_id,
        "inform_parents",
        choice="no",
        rationale="Prevent asked us not to tell them yet.",
    )
    text = text_of(client.get(url))
    referrals = text.split('id="referrals-heading"')[1].split('id="parents-heading"')[0]
    assert "Prevent" in referrals and "PRV-2231" in referrals and "Done: Yes" in referrals
    assert "Children's social care" in referrals and "Why: No need." in referrals
    parents = text.split('id="parents-told"')[1].split("</p>")[0]
    assert "Not told" in parents and "Prevent asked us not to tell them yet." in parents
    assert "dsl.oak" in parents
    assert "10:30" in text.split('id="step-block_content"')[1].split("</li>")[0]

    # A correction of a decision: the new record counts, the old one stays beside it.
    fix = post(
        client,
        headers,
        f"{url}/steps",
        step="refer_social_care",
        outcome="done",
        choice="yes",
        rationale="Prevent advised a referral.",
        reference="CSC-77",
        corrects="yes",
        correction_reason="Prevent rang back with advice.",
    )
    assert fix.status_code == 303 and fix.headers["location"].endswith("done=corrected")
    text = text_of(client.get(url))
    social = text.split('id="step-refer_social_care"')[1].split("</li>\n")[0]
    assert "Correction" in social and "Prevent rang back with advice." in social
    assert "kept beside the correction" in social and "Why: No need." in social
    assert "CSC-77" in text.split('id="referrals-heading"')[1]
    unexplained = post(
        client,
        headers,
        f"{url}/steps",
        step="support",
        outcome="done",
        corrects="yes",
        correction_reason="oops",
    )
    assert unexplained.status_code == 422 and "has no record to correct" in unexplained.text

    skipped = post(client, headers, f"{url}/steps", step="support", outcome="not_applicable")
    assert skipped.status_code == 422 and "say why it does not apply" in skipped.text
    step(
        client,
        headers,
        concern_id,
        "support",
        outcome="not_applicable",
        rationale="He has left the school; his new school's DSL was told.",
    )
    support = words(text_of(client.get(url)).split('id="step-support"')[1].split("</li>")[0])
    assert "Recorded as not applying by dsl.oak" in support and "new school's DSL" in support
    step(client, headers, concern_id, "outcome", note="Prevent took the case on.")
    step(client, headers, concern_id, "debrief", note="The filter worked; tell staff sooner.")
    step(
        client,
        headers,
        concern_id,
        "changes",
        choice="yes",
        rationale="Staff asked for training.",
        note="Prevent training for all staff in March.",
    )
    ready = text_of(client.get(url))
    summary = ready.split('id="closing-summary"')[1].split("</dl>")[0]
    assert "Prevent took the case on." in summary
    assert "The filter worked; tell staff sooner." in summary
    assert "Prevent training for all staff in March." in summary and "Yes" in summary
    assert 'id="close-blockers"' not in ready
    closed = post(client, headers, f"{url}/close")
    assert closed.status_code == 303
    after = text_of(client.get(url))
    assert "Closing and learning" in after and "Prevent took the case on." in after
    assert "Set an action" not in after and "Record as done" not in after


def test_overdue_steps_say_so_in_words(cs: ConcernSchool, client: TestClient) -> None:
    with cs.session(Role.TEACHER) as session:
        from esafety.safeguarding import concerns

        concern_id = concerns.record_concern(
            session,
            kind="data_breach",
            narrative="A list of pupils' names was e-mailed to a parent by mistake.",
            happened_at=datetime.now(UTC) - timedelta(days=5),
            noticed_at=datetime.now(UTC) - timedelta(days=4),
            about=[cs[Role.PUPIL].username],
        ).id
    as_member(client, cs, Role.DSL)
    text = text_of(client.get(f"/safeguarding/concerns/{concern_id}"))
    assert "Overdue: it was due by" in text and "overdue." in text


# -- actions ------------------------------------------------------------------------


def _desk(client: TestClient) -> str:
    return text_of(client.get("/safeguarding/concerns"))


def test_actions_with_owners_and_due_dates(cs: ConcernSchool, client: TestClient) -> None:
    concern_id = record(cs)
    url = f"/safeguarding/concerns/{concern_id}"
    headers = as_member(client, cs, Role.DSL)
    page = text_of(client.get(url))
    assert 'for="action-what"' in page and "Who does it" in page and "Set the action" in page
    assert f'value="{cs.teacher2.username}"' in page
    assert f'value="{cs[Role.PUPIL].username}"' not in page.split('id="action-owner"')[1]

    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    past = post(
        client,
        headers,
        f"{url}/actions",
        what="Check in with Sam every Monday",
        owner=cs.teacher2.username,
        due_on="2020-01-01",
    )
    assert past.status_code == 422 and "is in the past" in past.text
    assert "Check in with Sam every Monday" in past.text
    pupil = post(
        client, headers, f"{url}/actions", what="x", owner=cs[Role.PUPIL].username, due_on=tomorrow
    )
    assert pupil.status_code == 422 and "owned by a member of staff" in pupil.text
    done = post(
        client,
        headers,
        f"{url}/actions",
        what="Check in with Sam every Monday",
        owner=cs.teacher2.username,
        due_on=tomorrow,
    )
    assert done.status_code == 303, done.text
    with cs.inst.db.session() as session:
        action_id = session.scalars(select(ConcernAction.id)).one()
        notices = unread(session, cs.teacher2.id)
    assert len(notices) == 1
    assert f"concern #{concern_id}" in notices[0].text and "Sam" not in notices[0].text
    assert notices[0].link == "/safeguarding/concerns#my-actions"
    page = text_of(client.get(url))
    assert "Check in with Sam every Monday" in page and "Owner: Teacher2 Tester" in page

    # An action set earlier and now overdue comes first on the DSL's desk.
    with cs.session(Role.DSL) as session:
        old = actions.add_action(
            session,
            concern_id,
            "Phone Sam's mother",
            cs[Role.DSL].username,
            date.today() - timedelta(days=3),
            now=datetime.now(UTC) - timedelta(days=5),
        )
    desk = _desk(client)
    listed = desk.split('id="desk-actions-heading"')[1]
    assert listed.index("Phone Sam's mother") < listed.index("Check in with Sam every Monday")
    assert "Overdue" in listed.split("Check in with Sam")[0]
    assert 'id="my-actions"' in desk  # the DSL owns the overdue one

    # The owner reads their action, not the concern, and marks it done from the list.
    owner = as_member(client, cs, cs.teacher2)
    assert client.get(url).status_code == 404
    mine = _desk(client)
    assert "Check in with Sam every Monday" in mine.split('id="my-actions"')[1]
    assert f"Concern #{concern_id}" in mine and "(the DSL reads it)" in mine
    assert "Phone Sam's mother" not in mine
    marked = post(
        client, owner, "/safeguarding/actions/done", action=str(action_id), note="Seen twice."
    )
    assert marked.status_code == 303
    assert "Check in with Sam" not in _desk(client)
    again = post(client, owner, "/safeguarding/actions/done", action=str(action_id))
    assert again.status_code == 422 and "already marked done or cancelled" in again.text
    other = post(client, owner, "/safeguarding/actions/done", action=str(old.id))
    assert other.status_code == 404

    headers = as_member(client, cs, Role.DSL)
    cancel = post(client, headers, f"{url}/actions/cancel", action=str(old.id), reason="")
    assert cancel.status_code == 422 and "the reason for cancelling" in cancel.text
    cancel = post(
        client, headers, f"{url}/actions/cancel", action=str(old.id), reason="She rang us."
    )
    assert cancel.status_code == 303
    page = text_of(client.get(url)).split('id="actions-heading"')[1]
    assert "Done by teacher2.oak" in page and "Seen twice." in page
    assert "Cancelled by dsl.oak" in page and "She rang us." in page
    assert 'id="desk-actions"' not in _desk(client)


# -- break glass --------------------------------------------------------------------


def test_break_glass_reads_once_with_a_reason_and_the_dsl_acknowledges(
    cs: ConcernSchool, client: TestClient
) -> None:
    concern_id = record(cs)
    headers = as_member(client, cs, cs.teacher2)
    missing = client.get(f"/safeguarding/concerns/{concern_id}")
    nothing = client.get("/safeguarding/concerns/999999")
    assert missing.status_code == nothing.status_code == 404
    assert missing.text.replace(f"#{concern_id} ", "#N ") == nothing.text.replace("#999999 ", "#N ")
    assert f"no concern #{concern_id} that you can read" in missing.text
    form = client.get("/safeguarding/concerns/break-glass")
    assert form.status_code == 200
    assert 'for="break-glass-concern"' in form.text and 'for="break-glass-reason"' in form.text
    assert 'href="/safeguarding/concerns/break-glass"' in client.get("/safeguarding/concerns").text

    short = post(
        client, headers, "/safeguarding/concerns/break-glass", concern=str(concern_id), reason="x"
    )
    assert short.status_code == 422 and "at least 4 words" in short.text
    unknown = post(
        client,
        headers,
        "/safeguarding/concerns/break-glass",
        concern="999999",
        reason="Sam is missing and I need to know who he talks to.",
    )
    assert unknown.status_code == 404 and "no concern #999999 that you can read" in unknown.text
    read = post(
        client,
        headers,
        "/safeguarding/concerns/break-glass",
        concern=f"#{concern_id}",
        reason="Sam is missing and I need to know who he talks to.",
    )
    assert read.status_code == 200
    text = text_of(read)
    assert MARKER in text and "You broke glass to read it" in text
    assert "Add the note" not in text and "Attach the file" not in text
    assert client.get(f"/safeguarding/concerns/{concern_id}").status_code == 404  # once

    headers = as_member(client, cs, Role.DSL)
    desk = _desk(client)
    alerts = desk.split('id="break-glass-heading"')[1]
    assert "teacher2.oak" in alerts and "Sam is missing" in alerts
    (alert_id,) = re.findall(r'name="alert" value="(\d+)"', alerts)
    assert post(client, headers, "/safeguarding/concerns/break-glass/acknowledge").status_code == (
        404
    )
    done = post(client, headers, "/safeguarding/concerns/break-glass/acknowledge", alert=alert_id)
    assert done.status_code == 303
    assert 'id="break-glass-heading"' not in _desk(client)


# -- from a filter alert ------------------------------------------------------------


def _alert(cs: ConcernSchool, who: Member, categories: tuple[str, ...]) -> int:
    at = datetime.now(UTC) - timedelta(minutes=30)
    with cs.inst.db.session(Actor.system("dsl alerts", school_id=cs.id), school_id=cs.id) as s:
        row = store_alert(
            s,
            FilterAlertRaised(
                cs.id,
                who.username,
                "10.1.2.3",
                "extreme.example",
                "www.extreme.example",
                categories,
                "extreme.example",
                "ks2",
                at,
                at,
                1,
            ),
            timedelta(minutes=10),
        )
        return row.id


def test_the_dsl_turns_a_filter_alert_into_a_concern(cs: ConcernSchool, client: TestClient) -> None:
    alert_id = _alert(cs, cs[Role.PUPIL], ("extremism",))
    headers = as_member(client, cs, Role.DSL)
    alerts = client.get("/filtering/alerts").text
    link = f'href="/safeguarding/concerns/new?alert={alert_id}"'
    assert link in alerts and "Record a concern" in alerts

    form = text_of(client.get(f"/safeguarding/concerns/new?alert={alert_id}"))
    assert 'id="from-alert"' in form and f'name="alert" value="{alert_id}"' in form
    assert '<option value="radicalisation" selected>' in form
    assert f'id="person-0" name="person" list="people" autocomplete="off" value="{cs[Role.PUPIL].username}"' in form  # fmt: skip
    assert "The filter blocked www.extreme.example (category: Extremism) for Pupil Tester" in form
    fields = dict(re.findall(r'name="(\w+)"[^>]*value="([^"]*)"', form))
    narrative = re.search(r'<textarea id="narrative"[^>]*>(.*?)</textarea>', form, re.S)
    assert narrative is not None

    data = {
        "alert": str(alert_id),
        "kind": "radicalisation",
        "person": [cs[Role.PUPIL].username, "", ""],
        "part": ["", "", ""],
        "happened_day": fields["happened_day"],
        "happened_time": fields["happened_time"],
        "noticed_day": "",
        "noticed_time": "",
        "location": "in_school",
        "location_detail": fields["location_detail"],
        "narrative": narrative.group(1),
        "action_taken": "",
    }
    sent = client.post("/safeguarding/concerns/new", data=data, headers=headers)
    assert sent.status_code == 303, sent.text
    concern_id = int(sent.headers["location"].split("/")[-1].split("?")[0])
    page = text_of(client.get(f"/safeguarding/concerns/{concern_id}"))
    assert "Risk of radicalisation or extremism" in page and "www.extreme.example" in page

    alerts = client.get("/filtering/alerts").text
    assert f'href="/safeguarding/concerns/{concern_id}">Concern #{concern_id} recorded' in alerts
    assert link not in alerts
    with cs.inst.db.session() as session:
        alert = session.get(FilterAlert, alert_id)
        assert alert is not None and alert.acknowledged_by is not None

    twice = client.post("/safeguarding/concerns/new", data=data, headers=headers)
    assert twice.status_code == 422 and "already became a concern" in twice.text
    with cs.inst.db.session() as session:
        assert len(session.scalars(select(Concern.id)).all()) == 1

    # A teacher cannot open the form from an alert (filter alerts are the DSL's).
    as_member(client, cs, Role.TEACHER)
    assert client.get(f"/safeguarding/concerns/new?alert={alert_id}").status_code == 403


def test_the_kind_follows_the_alerts_category(cs: ConcernSchool, client: TestClient) -> None:
    from esafety.filtering.categories import Category, info
    from esafety.safeguarding.alert_concerns import KIND_OF_CATEGORY, kind_for

    alerting = {c.value for c in Category if info(c).alerts_dsl}
    assert alerting <= set(KIND_OF_CATEGORY)  # every alerting category has a kind
    assert kind_for(["self_harm"]).value == "pupil_welfare"
    assert kind_for(["pornography"]).value == "technology_misuse"
    assert kind_for(["nothing", "hate"]).value == "online_hate"
    alert_id = _alert(cs, cs[Role.PUPIL], ("self_harm",))
    as_member(client, cs, Role.DSL)
    form = client.get(f"/safeguarding/concerns/new?alert={alert_id}").text
    assert '<option value="pupil_welfare" selected>' in form
