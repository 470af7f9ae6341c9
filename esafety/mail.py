"""E-mail: queued in the database, sent over SMTP off the request path, retried, never lost.

A slice that wants to tell someone by e-mail calls :func:`queue_mail` in its own
transaction: the message becomes an :class:`OutgoingMail` row and a ``mail.send`` job of
the scheduler (:mod:`esafety.scheduler`), so it exists only if the change it reports was
committed, survives a restart, and two processes never send it twice (the job's lease).
The scheduler's pass sends it; a :class:`Courier` (a thread of its own) sends it at once
instead of waiting for the next pass. A web request never waits for the mail server.

A failure is retried with the scheduler's growing delay (1 minute, 2, 4, ...; the job's
error shows in ``/metrics`` as ``esafety_scheduled_jobs_failing``); after
:data:`MAX_ATTEMPTS` the row is marked failed with its error, the school's IT technicians
get a notice on their home page, and the error is logged. Nothing is dropped silently.

With no ``[smtp] host`` mail is off: :func:`queue_mail` stores nothing, and says so in the
log once.
"""

from __future__ import annotations

import logging
import queue
import smtplib
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from esafety.config import Settings, SmtpSettings
from esafety.db import Base, utcnow
from esafety.directory.model import Person
from esafety.errors import ConfigError, EsafetyError, InvalidInput
from esafety.installation import Installation
from esafety.scheduler import JobContext, handler, run_now, schedule
from esafety.security.model import Account

__all__ = [
    "MAIL_JOB",
    "MAX_ATTEMPTS",
    "Courier",
    "Mail",
    "MailNotSent",
    "MailStatus",
    "OutgoingMail",
    "addresses_of",
    "link",
    "mail_is_on",
    "queue_mail",
    "send",
]

log = logging.getLogger(__name__)

MAIL_JOB = "mail.send"
#: Tries before a message is given up as failed (with the scheduler's delays, about 2 hours).
MAX_ATTEMPTS = 8
#: Seconds to wait on the mail server for each step of the conversation.
SMTP_TIMEOUT = 20.0


class MailNotSent(EsafetyError):
    """The mail server could not be reached, or refused the message."""

    status_code = 502


class MailStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class Mail:
    """One message to one address: plain text, and optionally HTML beside it."""

    to: str
    subject: str
    text: str
    html: str | None = None


class OutgoingMail(Base):
    """A message esafety sends or sent: its text, and whether and when it went."""

    __tablename__ = "outgoing_mail"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int | None] = mapped_column(
        ForeignKey("school.id", ondelete="CASCADE"), index=True
    )
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    #: Queuing again with the same key returns the first message (one e-mail per event).
    key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[MailStatus] = mapped_column(
        Enum(
            MailStatus,
            native_enum=False,
            create_constraint=False,
            length=20,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=MailStatus.QUEUED,
    )
    job_id: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]

    def as_mail(self) -> Mail:
        return Mail(self.recipient, self.subject, self.text, self.html)


# -- is mail on ---------------------------------------------------------------------

_said_off = threading.Event()
_said_no_base = threading.Event()


def mail_is_on(settings: Settings) -> bool:
    """Whether an SMTP server is set; the first time it is not, the log says so (once)."""
    if settings.smtp.host:
        return True
    if not _said_off.is_set():
        _said_off.set()
        log.info(
            "e-mail is off: no [smtp] host is set (ESAFETY_SMTP__HOST); people are told "
            "in esafety only"
        )
    return False


def link(settings: Settings, path: str) -> str:
    """The address of one of esafety's pages, for an e-mail (``[web] base_url``)."""
    base = settings.web.base_url
    if not base:
        if not _said_no_base.is_set():
            _said_no_base.set()
            log.warning(
                "[web] base_url is not set: links in e-mails use %s:%s, which people may "
                "not reach; set it to the address staff open esafety at",
                settings.web.host,
                settings.web.port,
            )
        host = settings.web.host
        host = "localhost" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - a name, not a bind
        host = f"[{host}]" if ":" in host else host
        base = f"http://{host}:{settings.web.port}"
    return base.rstrip("/") + "/" + path.lstrip("/")


def addresses_of(session: Session, person_ids: Iterable[int]) -> dict[int, str]:
    """The e-mail address of each of these people who can be written to: leavers,
    disabled accounts and people without an address are left out."""
    wanted = set(person_ids)
    if not wanted:
        return {}
    people = session.scalars(
        select(Person).where(Person.id.in_(wanted), Person.email.is_not(None))
    ).all()
    disabled = set(
        session.scalars(
            select(Account.person_id).where(
                Account.person_id.in_(wanted), Account.disabled.is_(True)
            )
        )
    )
    return {
        person.id: (person.email or "").strip()
        for person in people
        if not person.is_leaver and person.id not in disabled and (person.email or "").strip()
    }


# -- queuing ------------------------------------------------------------------------


def _check_address(address: str) -> str:
    cleaned = address.strip()
    local, at, domain = cleaned.rpartition("@")
    if not at or not local or "." not in domain or any(c in cleaned for c in "\r\n <>,"):
        raise InvalidInput(
            f"e-mail address {address!r} is not one address like name@school.example: "
            "correct it on the person's record"
        )
    return cleaned


def queue_mail(
    session: Session,
    settings: Settings,
    mail: Mail,
    *,
    key: str | None = None,
    school_id: int | None = None,
) -> OutgoingMail | None:
    """Queue ``mail`` in the caller's transaction; None when mail is off.

    With ``key``, a message already queued under it is returned instead of a second one.
    Give the row's ``job_id`` to :meth:`Courier.send_soon` after the commit to send it at once.
    """
    if not mail_is_on(settings):
        return None
    recipient = _check_address(mail.to)
    if key is not None:
        found = session.scalars(select(OutgoingMail).where(OutgoingMail.key == key)).first()
        if found is not None:
            return found
    scope = school_id if school_id is not None else session.info.get("school_id")
    row = OutgoingMail(
        school_id=scope,
        recipient=recipient,
        subject=" ".join(mail.subject.split())[:300],
        text=mail.text,
        html=mail.html,
        key=key,
        status=MailStatus.QUEUED,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    job = schedule(session, MAIL_JOB, utcnow(), {"mail": row.id}, school_id=scope)
    row.job_id = job.id
    session.flush()
    return row


# -- sending ------------------------------------------------------------------------


def message_of(sender: str, mail: Mail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(mail.text)
    if mail.html is not None:
        message.add_alternative(mail.html, subtype="html")
    return message


def send(smtp: SmtpSettings, mail: Mail, *, timeout: float = SMTP_TIMEOUT) -> None:
    """Send one message now (blocking: for jobs and threads, never a web request)."""
    if not smtp.host:
        raise ConfigError("cannot send e-mail: no [smtp] host is set (ESAFETY_SMTP__HOST)")
    message = message_of(smtp.sender, mail)
    where = f"{smtp.host} port {smtp.port}"
    try:
        client: smtplib.SMTP
        if smtp.ssl:
            client = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        with client:
            if smtp.starttls and not smtp.ssl:
                client.starttls(context=ssl.create_default_context())
            if smtp.username:
                password = smtp.password.get_secret_value() if smtp.password else ""
                client.login(smtp.username, password)
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused:
        raise MailNotSent(f"the mail server {where} refused the address {mail.to}") from None
    except smtplib.SMTPAuthenticationError:
        raise MailNotSent(
            f"the mail server {where} refused [smtp] username and password: check them"
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise MailNotSent(
            f"e-mail to {mail.to} not sent: the mail server {where} failed ({reason or type(exc).__name__})"
        ) from None


@handler(MAIL_JOB)
def _send_job(ctx: JobContext) -> None:
    row = ctx.session.get(OutgoingMail, int(ctx.payload.get("mail", 0)))
    if row is None or row.status is not MailStatus.QUEUED:
        return  # sent already (a job that ran twice), or given up
    if ctx.settings is None:
        raise ConfigError(
            "mail.send needs the installation's settings; run it through the scheduler"
        )
    row.attempts = ctx.attempt
    smtp = ctx.settings.smtp
    try:
        if not smtp.host:
            raise ConfigError("e-mail was turned off ([smtp] host) before this message went")
        send(smtp, row.as_mail())
    except MailNotSent as exc:
        if ctx.attempt < MAX_ATTEMPTS:
            raise  # the scheduler keeps the error and tries again later
        _give_up(ctx, row, str(exc))
    except ConfigError as exc:
        _give_up(ctx, row, str(exc))
    else:
        row.status, row.sent_at, row.last_error = MailStatus.SENT, ctx.now, None
        ctx.session.flush()


def _give_up(ctx: JobContext, row: OutgoingMail, error: str) -> None:
    """Record the failure where the IT technicians see it (their notices) and in the log."""
    from esafety import notices
    from esafety.directory.model import PersonRole
    from esafety.security.roles import Role

    row.status, row.failed_at, row.last_error = MailStatus.FAILED, ctx.now, error[:4000]
    log.error(
        "e-mail #%s to %s given up after %s tries: %s", row.id, row.recipient, row.attempts, error
    )
    if row.school_id is not None:
        technicians = ctx.session.scalars(
            select(PersonRole.person_id).where(PersonRole.role == Role.TECHNICIAN)
        ).all()
        notices.notify(
            ctx.session,
            technicians,
            f"An e-mail to {row.recipient} could not be sent after {row.attempts} tries: "
            f"{error}. Check the [smtp] settings and the mail server; the message was not sent.",
            key=f"mail-failed:{row.id}",
            now=ctx.now,
        )
    ctx.session.flush()


class Courier:
    """Sends queued messages at once, on a thread of its own, rather than at the
    scheduler's next pass; what fails here the scheduler retries."""

    def __init__(self, inst: Installation) -> None:
        self.inst = inst
        self._queue: queue.Queue[list[int] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="esafety-mail", daemon=True)
            self._thread.start()

    def send_soon(self, job_ids: Iterable[int | None]) -> None:
        wanted = [i for i in job_ids if i is not None]
        if wanted and self._thread is not None:
            self._queue.put(wanted)

    def stop(self, timeout: float = SMTP_TIMEOUT + 5) -> None:
        """Finish what is in hand (bounded by ``timeout``); the rest waits in its jobs."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _work(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            try:
                run_now(self.inst, batch)
            except Exception:
                # The database may be briefly away: the jobs stay due for the scheduler.
                log.exception("sending e-mail at once failed; the scheduler will try again")
