"""A grave concern reaches its readers by e-mail (issue 5 §4), through a real SMTP server on
loopback: who is told follows the reading rules, and the e-mail says what kind of concern
arrived and links to it, never what was seen or said, where, or anyone's name."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from esafety.audit import Actor
from esafety.directory.model import Person
from esafety.mail import OutgoingMail
from esafety.safeguarding import concerns
from esafety.safeguarding.concerns import About
from esafety.safeguarding.tell_dsl import TellDsl
from esafety.security.roles import Role
from tests.accounts import Member
from tests.safeguarding.concern_people import MARKER, ConcernSchool, concern_school, record
from tests.smtp import Inbox, smtp_server, use_smtp

GROOMING = "Online sexual abuse, exploitation or grooming"


def email_of(member: Member) -> str:
    return f"{member.username}@oak.example"


@pytest.fixture
def cs(inst) -> ConcernSchool:
    school = concern_school(inst)
    with inst.db.session(Actor.system("test", school_id=school.id)) as session:
        for person in session.scalars(select(Person)):
            person.email = f"{person.username}@oak.example"
    return school


@pytest.fixture
def inbox(cs: ConcernSchool) -> Iterator[Inbox]:
    with smtp_server() as server:
        use_smtp(cs.inst, server.port)
        yield server


@pytest.fixture
def telling(cs: ConcernSchool) -> Iterator[TellDsl]:
    tell = TellDsl(cs.inst)
    tell.start()
    try:
        yield tell
    finally:
        tell.stop()


def _told(inbox: Inbox) -> set[str]:
    return {address for got in inbox.received for address in got.recipients}


def test_a_grave_concern_is_mailed_to_the_dsl_and_deputies_at_once(
    cs: ConcernSchool, inbox: Inbox, telling: TellDsl
) -> None:
    concern_id = record(
        cs,
        kind="online_sexual_abuse",
        narrative=f"An older boy asked Jo Pupil for photos on a game. {MARKER}",
    )
    telling.stop()  # waits for the courier: the e-mails went on its thread, not the caller's
    assert _told(inbox) == {email_of(cs[Role.DSL]), email_of(cs[Role.DEPUTY_DSL])}
    for got in inbox.received:
        assert GROOMING in got.subject
        assert f"A concern of kind “{GROOMING}” was recorded at" in got.text
        assert "Oak Primary School" in got.text
        assert f"http://127.0.0.1:8080/safeguarding/concerns/{concern_id}" in got.text
        assert f"/safeguarding/concerns/{concern_id}" in got.html
        everything = got.whole
        assert MARKER not in everything and "older boy" not in everything
        assert "a game's chat" not in everything and "game" not in everything.lower()
        # No one's name: not the child's, not the raiser's (every test person is "… Tester").
        assert "Tester" not in everything and not re.search(r"\bJo\b", got.content)
        assert cs[Role.PUPIL].username not in got.content
        assert cs[Role.TEACHER].username not in got.content
    with cs.inst.db.session(Actor.system("test")) as session:
        rows = session.scalars(select(OutgoingMail)).all()
        assert {r.status.value for r in rows} == {"sent"}


def test_a_concern_that_is_not_grave_sends_nothing(
    cs: ConcernSchool, inbox: Inbox, telling: TellDsl
) -> None:
    record(cs, kind="online_bullying")
    telling.stop()
    assert inbox.received == []


def test_a_staff_allegation_goes_to_the_headteacher_alone(
    cs: ConcernSchool, inbox: Inbox, telling: TellDsl
) -> None:
    record(cs, cs.teacher2, kind="staff_allegation", about=[cs[Role.TEACHER].username])
    telling.stop()
    assert _told(inbox) == {email_of(cs[Role.HEADTEACHER])}
    (got,) = inbox.received
    assert "Concern about a member of staff" in got.subject
    assert cs[Role.TEACHER].username not in got.content and "Tester" not in got.whole


def test_an_allegation_about_the_headteacher_goes_to_the_chair_alone(
    cs: ConcernSchool, inbox: Inbox, telling: TellDsl
) -> None:
    record(
        cs,
        kind="staff_allegation",
        about=[About(person=cs[Role.HEADTEACHER].username, part="harmed_others")],
    )
    telling.stop()
    assert _told(inbox) == {email_of(cs[Role.CHAIR_OF_GOVERNORS])}


def test_people_without_an_address_and_leavers_are_left_out(
    cs: ConcernSchool, inbox: Inbox, telling: TellDsl
) -> None:
    from datetime import date

    with cs.inst.db.session(Actor.system("test", school_id=cs.id)) as session:
        session.get(Person, cs[Role.DEPUTY_DSL].id).email = None  # type: ignore[union-attr]
        session.get(Person, cs[Role.DSL].id).left_on = date(2024, 7, 19)  # type: ignore[union-attr]
    record(cs, kind="radicalisation")
    telling.stop()
    assert inbox.received == []


def test_a_change_of_kind_that_makes_a_concern_grave_is_mailed_once(
    cs: ConcernSchool, inbox: Inbox, telling: TellDsl
) -> None:
    concern_id = record(cs, kind="online_bullying")
    with cs.session(Role.DSL) as session:
        concerns.change_kind(
            session, concern_id, "youth_produced_sexual_imagery", "the messages included an image"
        )
    telling.stop()
    # The DSL changed it and is told too (the deputy must know); once each.
    assert sorted(r for got in inbox.received for r in got.recipients) == sorted(
        [email_of(cs[Role.DSL]), email_of(cs[Role.DEPUTY_DSL])]
    )
    got = inbox.received[0]
    assert "is now of kind" in got.text and "Nude or sexual images" in got.text
    assert MARKER not in got.whole


def test_without_a_mail_server_nothing_is_queued(cs: ConcernSchool, telling: TellDsl) -> None:
    assert cs.inst.settings.smtp.host is None
    record(cs, kind="online_sexual_abuse")
    telling.stop()
    with cs.inst.db.session(Actor.system("test")) as session:
        assert session.scalars(select(OutgoingMail)).all() == []
