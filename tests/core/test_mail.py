"""E-mail: queued with the change it reports, sent over SMTP by the scheduler or at once by
the courier, retried while the server is down, given up loudly; off without a host."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from esafety import mail
from esafety.audit import Actor
from esafety.config import Settings, WebSettings
from esafety.db import utcnow
from esafety.errors import InvalidInput
from esafety.installation import Installation
from esafety.mail import (
    MAIL_JOB,
    MAX_ATTEMPTS,
    Courier,
    Mail,
    MailStatus,
    OutgoingMail,
    link,
    queue_mail,
)
from esafety.notices import Notice
from esafety.scheduler import ScheduledJob, run_due
from esafety.security.roles import Role
from tests.accounts import make_school
from tests.pg import free_port
from tests.smtp import smtp_server, use_smtp

HELLO = Mail(
    "dsl@oak.example",
    "A concern was recorded",
    "Open it: http://esafety.example/safeguarding/concerns/1\n",
    "<p><a href='http://esafety.example/safeguarding/concerns/1'>Open it</a></p>",
)


def _queue(inst: Installation, school_id: int, message: Mail = HELLO, **kw: object) -> int | None:
    actor = Actor.system("test", school_id=school_id)
    with inst.db.session(actor) as session:
        row = queue_mail(session, inst.settings, message, **kw)  # type: ignore[arg-type]
        return row.id if row is not None else None


def _row(inst: Installation, mail_id: int) -> OutgoingMail:
    with inst.db.session(Actor.system("test")) as session:
        row = session.get(OutgoingMail, mail_id)
        assert row is not None
        session.expunge(row)
        return row


def _job(inst: Installation, mail_id: int) -> ScheduledJob:
    row = _row(inst, mail_id)
    with inst.db.session(Actor.system("test")) as session:
        job = session.get(ScheduledJob, row.job_id)
        assert job is not None and job.kind == MAIL_JOB
        session.expunge(job)
        return job


def test_a_queued_message_goes_at_the_schedulers_next_pass(inst: Installation) -> None:
    school = make_school(inst, "oak")
    with smtp_server() as inbox:
        use_smtp(inst, inbox.port)
        mail_id = _queue(inst, school.id)
        assert mail_id is not None
        assert inbox.received == []  # queued, not sent on the caller's path
        runs = run_due(inst, utcnow())
        assert [r.ok for r in runs if r.kind == MAIL_JOB] == [True]
    (got,) = inbox.received
    assert got.recipients == ["dsl@oak.example"]
    assert got.sender == "esafety@oak.example"
    assert got.subject == "A concern was recorded"
    assert "http://esafety.example/safeguarding/concerns/1" in got.text
    assert "<a href=" in got.html
    assert got.message["Message-ID"] and got.message["Date"]
    row = _row(inst, mail_id)
    assert row.status is MailStatus.SENT and row.sent_at is not None and row.attempts == 1
    assert _job(inst, mail_id).done_at is not None


def test_the_same_key_queues_one_message(inst: Installation) -> None:
    school = make_school(inst, "oak")
    use_smtp(inst, free_port())
    first = _queue(inst, school.id, key="grave:1:dsl")
    again = _queue(inst, school.id, key="grave:1:dsl")
    assert first is not None and first == again


def test_mail_is_off_without_a_host_and_the_log_says_so_once(
    inst: Installation, caplog: pytest.LogCaptureFixture
) -> None:
    school = make_school(inst, "oak")
    assert inst.settings.smtp.host is None
    mail._said_off.clear()
    with caplog.at_level(logging.INFO, logger="esafety.mail"):
        assert _queue(inst, school.id) is None
        assert _queue(inst, school.id) is None
    said = [r for r in caplog.records if "e-mail is off" in r.getMessage()]
    assert len(said) == 1 and "[smtp] host" in said[0].getMessage()
    assert said[0].levelno == logging.INFO  # not an error: many schools run without mail
    with inst.db.session(Actor.system("test")) as session:
        assert session.scalar(select(func.count()).select_from(OutgoingMail)) == 0
        jobs = session.scalar(
            select(func.count()).select_from(ScheduledJob).where(ScheduledJob.kind == MAIL_JOB)
        )
        assert jobs == 0


def test_a_message_waits_while_the_server_is_down_and_goes_when_it_is_back(
    inst: Installation,
) -> None:
    school = make_school(inst, "oak")
    port = free_port()  # nothing listens here yet
    use_smtp(inst, port)
    mail_id = _queue(inst, school.id)
    assert mail_id is not None
    now = utcnow()
    (run,) = [r for r in run_due(inst, now) if r.kind == MAIL_JOB]
    assert not run.ok and run.error is not None
    assert f"127.0.0.1 port {port}" in run.error
    job = _job(inst, mail_id)
    assert job.done_at is None and job.attempts == 1
    assert job.last_error is not None and "mail server" in job.last_error
    assert job.run_at > now  # tried again later, not in a loop
    assert _row(inst, mail_id).status is MailStatus.QUEUED
    assert run_due(inst, now + timedelta(seconds=30)) == []  # its delay has not passed

    with smtp_server(port) as inbox:
        (again,) = [r for r in run_due(inst, job.run_at) if r.kind == MAIL_JOB]
        assert again.ok
    assert len(inbox.received) == 1
    row = _row(inst, mail_id)
    assert row.status is MailStatus.SENT and row.attempts == 2


def test_a_message_given_up_is_recorded_and_the_technicians_are_told(
    inst: Installation, caplog: pytest.LogCaptureFixture
) -> None:
    school = make_school(inst, "oak")
    port = free_port()
    use_smtp(inst, port)
    mail_id = _queue(inst, school.id)
    assert mail_id is not None
    when = utcnow()
    with caplog.at_level(logging.ERROR, logger="esafety.mail"):
        for _ in range(MAX_ATTEMPTS):
            run_due(inst, when)
            when += timedelta(hours=7)  # past the longest delay
    row = _row(inst, mail_id)
    assert row.status is MailStatus.FAILED and row.attempts == MAX_ATTEMPTS
    assert row.failed_at is not None and f"port {port}" in (row.last_error or "")
    assert _job(inst, mail_id).done_at is not None  # no more tries
    assert run_due(inst, when + timedelta(days=1)) == []
    assert any("given up" in r.getMessage() for r in caplog.records)
    with inst.db.session(Actor.system("test")) as session:
        notices = session.scalars(select(Notice)).all()
    technician = school[Role.TECHNICIAN].id
    assert [n.person_id for n in notices] == [technician]
    assert "dsl@oak.example" in notices[0].text and "[smtp]" in notices[0].text


def test_the_courier_sends_at_once_off_the_callers_thread(inst: Installation) -> None:
    school = make_school(inst, "oak")
    courier = Courier(inst)
    courier.start()
    try:
        with smtp_server() as inbox:
            use_smtp(inst, inbox.port)
            mail_id = _queue(inst, school.id)
            assert mail_id is not None
            courier.send_soon([_row(inst, mail_id).job_id])
            courier.stop()
    finally:
        courier.stop()
    assert len(inbox.received) == 1
    assert _row(inst, mail_id).status is MailStatus.SENT


def test_an_address_that_is_not_one_address_is_refused(inst: Installation) -> None:
    school = make_school(inst, "oak")
    use_smtp(inst, free_port())
    for bad in ("dsl", "dsl@localhost", "a@b.example, c@d.example", "a@b.example\r\nBcc: x@y.z"):
        with pytest.raises(InvalidInput, match="is not one address"):
            _queue(inst, school.id, Mail(bad, "s", "t"))


def test_links_use_the_public_address(settings: Settings) -> None:
    assert (
        link(settings, "/safeguarding/concerns/7")
        == "http://127.0.0.1:8080/safeguarding/concerns/7"
    )
    public = settings.model_copy(
        update={"web": WebSettings(base_url="https://esafety.oak.example/")}
    )
    assert (
        link(public, "safeguarding/concerns/7")
        == "https://esafety.oak.example/safeguarding/concerns/7"
    )
