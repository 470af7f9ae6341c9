"""A pupil's own report of a worry (issue 5 §1, SWGfL Whisper): it reaches the DSL as a
concern in the pupil's words, anonymous or named; the private link shows the conversation
and nothing else; wrong, expired and other schools' links open nothing; all of it sealed
and append-only."""

from __future__ import annotations

import logging
from dataclasses import fields
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from esafety.audit import AuditEntry
from esafety.db import utcnow
from esafety.errors import InvalidInput, NotFound, PermissionDenied
from esafety.events import subscribe
from esafety.notices import Notice
from esafety.safeguarding import concerns, reading, whisper
from esafety.safeguarding.concerns import ConcernRecorded
from esafety.safeguarding.model import Concern, EntryKind, Part
from esafety.safeguarding.whisper_model import WorryMessage, WorryReport
from esafety.safeguarding.whisper_pages import HideWorryRequests
from esafety.security.roles import Role
from tests.safeguarding.concern_people import ConcernSchool, concern_school, record

SECRET = b"test-installation-secret"
WORDS = "  An older boy in a game keeps asking me for photos. mango-kite-4417  "


@pytest.fixture
def cs(inst) -> ConcernSchool:
    return concern_school(inst)


def send(cs: ConcernSchool, **changes: object) -> whisper.Sent:
    values: dict[str, object] = {"what": WORDS, "secret": SECRET} | changes
    return whisper.send_worry(cs.inst.db, cs.id, **values)  # type: ignore[arg-type]


def count(cs: ConcernSchool, table: type) -> int:
    with cs.inst.db.session() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


# -- reaching the DSL -----------------------------------------------------------------


def test_an_anonymous_worry_reaches_the_dsl_in_the_pupils_own_words(cs: ConcernSchool) -> None:
    heard: list[ConcernRecorded] = []
    stop = subscribe(ConcernRecorded, heard.append)
    try:
        sent = send(cs, who="Max from the football game", happening_now=False)
    finally:
        stop()
    assert [(e.concern_id, e.kind) for e in heard] == [(sent.concern_id, "pupil_welfare")]

    with cs.session(Role.DSL) as session:
        listed = [o.concern.id for o in reading.list_concerns(session)]
        assert listed == [sent.concern_id]
        concern = reading.open_concern(session, sent.concern_id).concern
        assert concern.narrative == WORDS.strip()  # their words, exactly
        assert concern.kind.value == "pupil_welfare"
        assert concern.raised_by == "a pupil (anonymous)" and concern.raised_by_id is None
        (person,) = concern.linked
        assert person.person_id is None and person.part is Part.HARMED
        assert person.outside_name == "A pupil (anonymous)"
        assert person.outside_description == whisper.ANONYMOUS_WHY
        (note,) = concern.entries
        assert note.kind is EntryKind.NOTE and note.made_by == "a pupil (anonymous)"
        assert "without their name" in (note.text or "")
        assert "“Max from the football game”" in (note.text or "")
        assert "happening now, or do they feel unsafe now? No." in (note.text or "")
    # An anonymous report names no device in the audit trail.
    with cs.inst.db.session() as session:
        addresses = set(
            session.scalars(
                select(AuditEntry.address).where(AuditEntry.actor == "a pupil (anonymous)")
            )
        )
    assert addresses == {None}
    # Staff who did not raise it do not see it; it is the DSL's.
    with cs.session(Role.TEACHER) as session:
        assert reading.list_concerns(session) == []


def test_a_named_worry_is_about_the_pupil_who_sent_it(cs: ConcernSchool) -> None:
    pupil = cs[Role.PUPIL]
    sent = send(cs, pupil_id=pupil.id, happening_now=True)
    with cs.session(Role.DSL) as session:
        concern = reading.open_concern(session, sent.concern_id).concern
        assert concern.raised_by == "Pupil Tester, a pupil (their own report)"
        assert [(p.person_id, p.part) for p in concern.linked] == [(pupil.id, Part.HARMED)]
        assert "with their name" in (concern.entries[0].text or "")
    # "Happening now": the DSL and the deputy are told at once, without names or words.
    with cs.inst.db.session() as session:
        notices = session.scalars(select(Notice)).all()
    told = {n.person_id for n in notices}
    assert told == {cs[Role.DSL].id, cs[Role.DEPUTY_DSL].id}
    assert all("unsafe now" in n.text and "mango" not in n.text for n in notices)
    assert all(n.link == f"/safeguarding/concerns/{sent.concern_id}" for n in notices)


def test_a_worry_is_refused_with_what_to_fix_and_nothing_written(cs: ConcernSchool) -> None:
    with pytest.raises(InvalidInput, match="“What happened\\?” is empty"):
        send(cs, what="   ")
    with pytest.raises(InvalidInput, match="keep it under 5,000"):
        send(cs, what="x" * 5001)
    with pytest.raises(InvalidInput, match="keep it under 300"):
        send(cs, who="y" * 301)
    with pytest.raises(InvalidInput, match="is not a pupil of this school"):
        send(cs, pupil_id=cs[Role.TEACHER].id)
    assert count(cs, Concern) == 0 and count(cs, WorryReport) == 0


# -- the private link -----------------------------------------------------------------


def test_the_link_shows_the_conversation_and_nothing_else(cs: ConcernSchool) -> None:
    sent = send(cs)
    with cs.session(Role.DSL) as session:
        concerns.add_note(session, sent.concern_id, "Private: spoke to class teacher Mrs Hill")
        whisper.reply(session, sent.concern_id, "Thank you for telling us. We will help.")
        whisper.reply(session, sent.concern_id, "Can we talk at break?", signed=True)
    thread = whisper.open_by_token(cs.inst.db, sent.token)
    assert thread is not None
    assert [(m.from_pupil, m.text, m.signed_as) for m in thread.messages] == [
        (True, WORDS.strip(), None),
        (False, "Thank you for telling us. We will help.", None),  # unsigned: no name
        (False, "Can we talk at break?", "Dsl Tester"),
    ]
    # Nothing of the concern travels with it: no kind, no notes, no staff, no number.
    assert {f.name for f in fields(thread)} == {
        "school_id",
        "timezone",
        "happening_now",
        "messages",
    }
    shown = repr(thread)
    for hidden in ("Mrs Hill", "dsl.oak", "pupil_welfare", "concern"):
        assert hidden not in shown
    # The replies are in the concern's record too, with who wrote them.
    with cs.session(Role.DSL) as session:
        notes = [e for e in reading.open_concern(session, sent.concern_id).concern.entries]
        replies = [e for e in notes if "Reply sent to the pupil" in (e.text or "")]
        assert [e.made_by for e in replies] == ["dsl.oak", "dsl.oak"]
        assert "not signed" in (replies[0].text or "")
        assert "signed “Dsl Tester”" in (replies[1].text or "")


def test_the_code_opens_the_same_conversation(cs: ConcernSchool) -> None:
    sent = send(cs)
    assert len(sent.code) == 14 and sent.code.count("-") == 2
    assert whisper.code_for(SECRET, sent.token) == sent.code  # the link's page shows it again
    typed = sent.code.lower().replace("-", " ")
    by_code = whisper.open_by_code(cs.inst.db, typed, secret=SECRET)
    assert by_code is not None and by_code.messages[0].text == WORDS.strip()
    assert whisper.open_by_code(cs.inst.db, "ABCD-EFGH-JKMN", secret=SECRET) is None
    assert whisper.open_by_code(cs.inst.db, sent.code, secret=b"another secret") is None


def test_wrong_expired_and_other_schools_links_open_nothing(cs: ConcernSchool) -> None:
    sent = send(cs)
    db = cs.inst.db
    assert whisper.open_by_token(db, sent.token) is not None
    assert (
        whisper.open_by_token(db, sent.token[:-1] + ("A" if sent.token[-1] != "A" else "B")) is None
    )
    assert whisper.open_by_token(db, "short") is None
    assert whisper.open_by_token(db, "../../etc/passwd" * 3) is None
    later = utcnow() + timedelta(days=whisper.LINK_DAYS, minutes=1)
    assert whisper.open_by_token(db, sent.token, now=later) is None
    assert whisper.add_from_pupil(db, "more", secret=SECRET, token=sent.token, now=later) is None
    other = concern_school(cs.inst, "elm")
    with db.session() as session:
        before = session.scalar(select(WorryReport.last_opened_at))
    assert whisper.open_by_token(db, sent.token, school_id=other.id) is None
    with db.session() as session:
        assert session.scalar(select(WorryReport.last_opened_at)) == before  # nothing written


def test_the_pupil_adds_more_and_the_dsl_is_told(cs: ConcernSchool) -> None:
    sent = send(cs)
    with cs.inst.db.session() as session:
        first_expiry = session.scalar(select(WorryReport.expires_at))
    thread = whisper.add_from_pupil(
        cs.inst.db, "It happened again tonight.", secret=SECRET, token=sent.token
    )
    assert thread is not None and thread.messages[-1].text == "It happened again tonight."
    assert (
        whisper.add_from_pupil(cs.inst.db, "And this morning.", secret=SECRET, code=sent.code)
        is not None
    )
    with cs.session(Role.DSL) as session:
        notes = reading.open_concern(session, sent.concern_id).concern.entries
        added = [e for e in notes if "Added by the pupil" in (e.text or "")]
        assert [e.made_by for e in added] == ["a pupil (anonymous)"] * 2
        assert added[0].text is not None and added[0].text.endswith("It happened again tonight.")
    with cs.inst.db.session() as session:
        assert session.scalar(select(WorryReport.expires_at)) >= first_expiry  # type: ignore[operator]
        notices = session.scalars(select(Notice)).all()
    assert {n.person_id for n in notices} == {cs[Role.DSL].id, cs[Role.DEPUTY_DSL].id}
    assert all("added to the worry" in n.text and "tonight" not in n.text for n in notices)
    with pytest.raises(InvalidInput, match="is empty"):
        whisper.add_from_pupil(cs.inst.db, "  ", secret=SECRET, token=sent.token)


# -- who may reply --------------------------------------------------------------------


def test_only_the_concerns_readers_reply_and_only_to_a_pupils_report(cs: ConcernSchool) -> None:
    sent = send(cs)
    with cs.session(Role.TEACHER) as session, pytest.raises(PermissionDenied):
        whisper.reply(session, sent.concern_id, "Hello")
    # The online safety lead acts on some kinds, but not on a worry about a pupil.
    with cs.session(Role.ONLINE_SAFETY_LEAD) as session, pytest.raises(NotFound):
        whisper.reply(session, sent.concern_id, "Hello")
    ordinary = record(cs)
    with cs.session(Role.DSL) as session, pytest.raises(NotFound, match="pupil's own report"):
        whisper.reply(session, ordinary, "Hello")
    with cs.session(Role.DSL) as session, pytest.raises(InvalidInput, match="is empty"):
        whisper.reply(session, sent.concern_id, "   ")
    with cs.session(Role.DSL) as session:
        concern = reading.open_concern(session, sent.concern_id).concern
        view = whisper.staff_view(session, concern)
        assert view is not None and view.can_reply and not view.named and view.replies == 0
        assert whisper.staff_view(session, reading.open_concern(session, ordinary).concern) is None


# -- sealed and append-only -----------------------------------------------------------


def test_the_words_are_sealed_and_the_link_is_kept_only_as_hashes(cs: ConcernSchool) -> None:
    sent = send(cs)
    with cs.session(Role.DSL) as session:
        whisper.reply(session, sent.concern_id, "We will help you. reply-marker-9931")
    with cs.inst.db.session() as session:
        for column in ("text",):
            for raw in session.execute(text(f"SELECT {column} FROM worry_message")).scalars():
                assert b"mango-kite" not in bytes(raw) and b"reply-marker" not in bytes(raw)
        narrative = session.execute(text("SELECT narrative FROM concern")).scalar_one()
        assert b"mango-kite" not in bytes(narrative)
        row = session.execute(text("SELECT token_hash, code_hash FROM worry_report")).one()
        assert sent.token not in row and sent.code not in row
        assert row[0] == whisper.token_hash(sent.token)
        trail = " ".join(
            str(a.after) for a in session.scalars(select(AuditEntry)) if a.after is not None
        )
    assert sent.token not in trail and row[0] not in trail and "mango-kite" not in trail
    cs.inst.db.dispose()
    if cs.inst.db.dialect == "sqlite":
        for path in cs.inst.data_dir.glob("*.db*"):
            data = path.read_bytes()
            assert b"mango-kite" not in data and b"reply-marker" not in data, path
            assert sent.token.encode() not in data, path


def _edit_message(cs: ConcernSchool) -> None:
    with cs.inst.db.session() as session:
        session.scalars(select(WorryMessage)).one().text = "changed"


def _delete_message(cs: ConcernSchool) -> None:
    with cs.inst.db.session() as session:
        session.delete(session.scalars(select(WorryMessage)).one())


def _change_token(cs: ConcernSchool) -> None:
    with cs.inst.db.session() as session:
        session.scalars(select(WorryReport)).one().token_hash = "0" * 64


def _bulk_sign(cs: ConcernSchool) -> None:
    with cs.inst.db.session() as session:
        session.execute(update(WorryMessage).values(signed_as="someone"))


def test_the_conversation_is_never_edited_or_deleted(cs: ConcernSchool) -> None:
    sent = send(cs)
    with pytest.raises(PermissionDenied, match="never edited"):
        _edit_message(cs)
    with pytest.raises(PermissionDenied, match="never deleted"):
        _delete_message(cs)
    with pytest.raises(PermissionDenied, match="never edited"):
        _change_token(cs)
    with pytest.raises(PermissionDenied, match="in bulk"):
        _bulk_sign(cs)
    thread = whisper.open_by_token(cs.inst.db, sent.token)
    assert thread is not None and thread.messages[0].text == WORDS.strip()


# -- the server's log -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/worry/AbCdEfGhIjKlMnOpQrStUvWxYz012345", "/worry"),
        ("/worry?x=1", "/worry?x=1"),
        ("/worry-code", "/worry-code"),
        ("/static/worry.css", "/static/worry.css"),
    ],
)
def test_the_access_log_keeps_no_device_or_token_of_a_worry(path: str, shown: str) -> None:
    record_ = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1,
        '%s - "%s %s HTTP/%s" %d', ("10.1.2.3:5555", "GET", path, "1.1", 200), None,
    )  # fmt: skip
    assert HideWorryRequests().filter(record_)
    line = record_.getMessage()
    assert "10.1.2.3" not in line and "AbCdEf" not in line
    assert f'- "GET {shown} HTTP/1.1" 200' in line
    other = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1,
        '%s - "%s %s HTTP/%s" %d', ("10.1.2.3:5555", "GET", "/people", "1.1", 200), None,
    )  # fmt: skip
    assert HideWorryRequests().filter(other) and "10.1.2.3" in other.getMessage()
