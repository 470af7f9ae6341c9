"""Restricted access through the service, on both databases (issue 5 §3): who reads what,
every read audited, break glass audited and alerting, attachments checked and sealed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from esafety.audit import AuditEntry
from esafety.errors import InvalidInput, NotFound
from esafety.events import subscribe
from esafety.safeguarding import attachments, reading
from esafety.safeguarding.concerns import About
from esafety.safeguarding.model import BreakGlassRead, ConcernAttachment
from esafety.safeguarding.reading import ConcernBrokenInto
from esafety.security.roles import Role
from tests.accounts import Member
from tests.safeguarding.concern_people import MARKER, ConcernSchool, concern_school, record

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n" + MARKER.encode() + b"\n%%EOF\n"


@pytest.fixture
def cs(inst) -> ConcernSchool:
    return concern_school(inst)


def can_read(cs: ConcernSchool, who: Member | Role, concern_id: int, *roles: Role) -> bool:
    try:
        with cs.session(who, *roles) as session:
            reading.open_concern(session, concern_id)
    except NotFound:
        return False
    return True


def audit_rows(cs: ConcernSchool, concern_id: int) -> list[tuple[str, str | None, str]]:
    with cs.inst.db.session() as session:
        rows = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.object_type == "concern", AuditEntry.object_id == str(concern_id))
            .order_by(AuditEntry.seq)
        )
        return [(r.action, None if r.actor_id is None else str(r.actor_id), r.actor) for r in rows]


def test_a_teacher_reads_their_own_concern_and_no_one_elses(cs: ConcernSchool) -> None:
    mine = record(cs, Role.TEACHER)
    theirs = record(cs, cs.teacher2)
    assert can_read(cs, Role.TEACHER, mine)
    assert not can_read(cs, Role.TEACHER, theirs)
    with cs.session(Role.TEACHER) as session:
        assert [o.concern.id for o in reading.list_concerns(session)] == [mine]


def test_dsl_and_deputy_read_every_concern_about_pupils_and_admin_none(cs: ConcernSchool) -> None:
    concern_id = record(cs, cs.teacher2, kind="youth_produced_sexual_imagery")
    assert can_read(cs, Role.DSL, concern_id)
    assert can_read(cs, Role.DEPUTY_DSL, concern_id)
    assert not can_read(cs, Role.ADMIN, concern_id, Role.ADMIN, Role.TEACHER)
    assert not can_read(cs, Role.ONLINE_SAFETY_LEAD, concern_id)


def test_a_staff_allegation_is_the_headteachers_and_not_the_deputys(cs: ConcernSchool) -> None:
    concern_id = record(cs, cs.teacher2, kind="staff_allegation", about=[cs[Role.TEACHER].username])
    assert can_read(cs, Role.HEADTEACHER, concern_id)
    assert not can_read(cs, Role.DEPUTY_DSL, concern_id)
    assert not can_read(cs, Role.DSL, concern_id)
    assert not can_read(cs, Role.TEACHER, concern_id)  # the one it is about
    assert not can_read(cs, Role.CHAIR_OF_GOVERNORS, concern_id)


def test_the_chair_reads_an_allegation_about_the_head(cs: ConcernSchool) -> None:
    concern_id = record(
        cs,
        Role.DSL,
        kind="staff_allegation",
        about=[About(person=cs[Role.HEADTEACHER].username, part="harmed_others")],
    )
    assert can_read(cs, Role.CHAIR_OF_GOVERNORS, concern_id)
    assert not can_read(cs, Role.HEADTEACHER, concern_id)
    assert not can_read(cs, Role.DEPUTY_DSL, concern_id)
    assert can_read(cs, Role.DSL, concern_id)  # raised it


def test_the_online_safety_lead_reads_only_the_named_kinds(cs: ConcernSchool) -> None:
    breach = record(cs, kind="filtering_breach")
    bullying = record(cs, kind="online_bullying")
    assert can_read(cs, Role.ONLINE_SAFETY_LEAD, breach)
    assert not can_read(cs, Role.ONLINE_SAFETY_LEAD, bullying)
    with cs.session(Role.DSL) as session:
        reading.set_online_safety_kinds(session, ["online_bullying"], "the OSL leads on bullying")
    assert can_read(cs, Role.ONLINE_SAFETY_LEAD, bullying)
    assert not can_read(cs, Role.ONLINE_SAFETY_LEAD, breach)
    with pytest.raises(InvalidInput, match="headteacher"), cs.session(Role.DSL) as session:
        reading.set_online_safety_kinds(session, ["staff_allegation"], "why not, for once")


def test_every_read_and_every_refused_read_is_audited(cs: ConcernSchool) -> None:
    concern_id = record(cs, Role.TEACHER)
    assert can_read(cs, Role.DSL, concern_id)
    assert can_read(cs, Role.TEACHER, concern_id)
    assert not can_read(cs, cs.teacher2, concern_id)
    actions = [(action, who) for action, _, who in audit_rows(cs, concern_id)]
    assert ("read", cs[Role.DSL].username) in actions
    assert ("read", cs[Role.TEACHER].username) in actions
    assert ("read_refused", cs.teacher2.username) in actions
    with cs.inst.db.session() as session:
        grounds = session.scalars(
            select(AuditEntry.after).where(
                AuditEntry.action == "read", AuditEntry.actor == cs[Role.DSL].username
            )
        ).one()
    assert grounds == {"grounds": "reads this kind as Designated safeguarding lead"}


def test_break_glass_reads_with_a_reason_audits_and_alerts(cs: ConcernSchool) -> None:
    concern_id = record(cs, Role.TEACHER)
    heard: list[ConcernBrokenInto] = []
    stop = subscribe(ConcernBrokenInto, heard.append)
    try:
        with (
            pytest.raises(InvalidInput, match="in a sentence"),
            cs.session(cs.teacher2) as session,
        ):
            reading.break_glass(session, concern_id, "need")
        assert heard == []
        with cs.session(cs.teacher2) as session:
            opened = reading.break_glass(
                session, concern_id, "Sam is in my lesson now and is distressed"
            )
            assert MARKER in opened.concern.narrative
    finally:
        stop()
    assert [(e.concern_id, e.by) for e in heard] == [(concern_id, cs.teacher2.username)]
    assert ("read", str(cs.teacher2.id), cs.teacher2.username) in audit_rows(cs, concern_id)
    with cs.session(Role.DSL) as session:
        [alert] = reading.break_glass_alerts(session)
        assert alert.reason == "Sam is in my lesson now and is distressed"
        reading.acknowledge_break_glass(session, alert.id)
    with cs.session(Role.DSL) as session:
        assert reading.break_glass_alerts(session) == []
    # Still no standing access: the next read needs glass broken again.
    assert not can_read(cs, cs.teacher2, concern_id)


def test_the_subject_of_an_allegation_cannot_break_glass_into_it(cs: ConcernSchool) -> None:
    concern_id = record(cs, cs.teacher2, kind="staff_allegation", about=[cs[Role.TEACHER].username])
    with pytest.raises(NotFound) as refused, cs.session(Role.TEACHER) as session:
        reading.break_glass(session, concern_id, "I want to see what was said about me")
    assert "about you" not in str(refused.value)  # its existence is not confirmed
    with cs.inst.db.session() as session:
        assert session.scalars(select(BreakGlassRead)).all() == []


# -- attachments --------------------------------------------------------------------


def test_an_image_is_refused_for_youth_produced_sexual_imagery_with_the_reason(
    cs: ConcernSchool,
) -> None:
    concern_id = record(cs, kind="youth_produced_sexual_imagery")
    with pytest.raises(InvalidInput) as refused, cs.session(Role.TEACHER) as session:
        attachments.add_attachment(session, cs.inst.attachments, concern_id, "photo.png", PNG)
    message = str(refused.value)
    assert "is an image" in message and "description" in message
    assert "youth_produced_sexual_imagery" in message
    assert list(cs.inst.attachments.ids()) == []
    # A document is still accepted (a letter from the police, say).
    with cs.session(Role.TEACHER) as session:
        attachments.add_attachment(session, cs.inst.attachments, concern_id, "letter.pdf", PDF)


def test_attachments_are_checked_sealed_and_read_back_by_readers_only(cs: ConcernSchool) -> None:
    concern_id = record(cs, kind="online_bullying")
    with cs.session(Role.TEACHER) as session:
        row = attachments.add_attachment(
            session, cs.inst.attachments, concern_id, "screenshot.png", PNG
        )
        pdf = attachments.add_attachment(session, cs.inst.attachments, concern_id, "a.pdf", PDF)
        assert (row.content_type, row.size) == ("image/png", len(PNG))
        ids = (row.id, pdf.id)
    for path in (cs.inst.data_dir / "attachments").iterdir():
        assert MARKER.encode() not in path.read_bytes()
    with cs.session(Role.DSL) as session:
        found = attachments.read_attachment(session, cs.inst.attachments, concern_id, ids[1])
        assert found.content == PDF
    with pytest.raises(NotFound), cs.session(cs.teacher2) as session:
        attachments.read_attachment(session, cs.inst.attachments, concern_id, ids[0])
    with pytest.raises(InvalidInput, match="not a type"), cs.session(Role.TEACHER) as session:
        attachments.add_attachment(session, cs.inst.attachments, concern_id, "x.exe", b"MZ\x90")
    too_big = b"%PDF-" + b"0" * attachments.MAX_ATTACHMENT_BYTES
    with pytest.raises(InvalidInput, match="largest"), cs.session(Role.TEACHER) as session:
        attachments.add_attachment(session, cs.inst.attachments, concern_id, "big.pdf", too_big)
    with cs.inst.db.session() as session:
        assert len(session.scalars(select(ConcernAttachment)).all()) == 2
