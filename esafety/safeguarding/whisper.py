"""A pupil tells someone about a worry themself, with or without their name, and reads the
school's reply at a private link (issue 5 §1; SWGfL Whisper is the model).

The report becomes a concern of kind ``pupil_welfare`` in the school's record (003 §10.1,
the general procedure for a worry about a pupil; the DSL changes the kind when it is one
of §11's), so it reaches the DSL's desk as any concern does (``ConcernRecorded``). The
narrative is the pupil's words exactly; what else they said (who, whether it is happening
now) is a note beside it, as is every later message, so the record holds the whole
conversation (R2). A pupil holds no right to record concerns: the school records it for
them, as a named actor with no account ("a pupil (anonymous)", or the pupil's name), and
an anonymous report carries no device address into the audit trail.

The private link's token (192 random bits) and its short code (12 characters a child can
copy, derived from the token with the installation's secret so that the link's page can
show it again) are stored only as hashes. A wrong token, a wrong code and a link past its
expiry look the same: nothing (the pages answer 404). The pupil sees the conversation and
nothing else of the concern; a member of staff's name only when they signed their reply.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.audit import Actor
from esafety.db import Database, utcnow
from esafety.directory.model import Person, PersonKind, PersonRole, School
from esafety.directory.service import require
from esafety.errors import InvalidInput, NotFound
from esafety.notices import notify
from esafety.safeguarding import concerns
from esafety.safeguarding.concerns import About
from esafety.safeguarding.kinds import IncidentKind
from esafety.safeguarding.model import Concern, Part
from esafety.safeguarding.reading import (
    actor_name,
    concern_access,
    current_actor,
    find_concern,
    require_grounds,
)
from esafety.safeguarding.whisper_model import WorryMessage, WorryReport
from esafety.security.roles import Permission, Role

__all__ = [
    "ANONYMOUS",
    "LINK_DAYS",
    "MAX_WHO",
    "MAX_WORDS",
    "PupilMessage",
    "PupilThread",
    "Sent",
    "StaffView",
    "add_from_pupil",
    "code_for",
    "open_by_code",
    "open_by_token",
    "reply",
    "send_worry",
    "staff_view",
    "token_hash",
]

#: The link works this long after the last message (either side's).
LINK_DAYS = 90
#: A worry, an addition or a reply: a long letter, not a file.
MAX_WORDS = 5000
MAX_WHO = 300
#: Who raised it, in the school's record, when the pupil sent it without their name.
ANONYMOUS = "a pupil (anonymous)"
#: Who an anonymous worry is about, until the DSL links the pupil (if they ever know).
ANONYMOUS_PUPIL = "A pupil (anonymous)"
ANONYMOUS_WHY = (
    "A pupil of the school sent this worry without their name: who they are is not known."
)
#: The kind a worry starts as (003 §10.1); the DSL changes it when it is one of §11's.
KIND = IncidentKind.PUPIL_WELFARE
#: Letters and digits a child will not mix up (no 0/O, 1/I/L).
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 12
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")
#: The roles told at once when a pupil says they are unsafe now, or adds to a worry.
_TOLD = (Role.DSL, Role.DEPUTY_DSL)


@dataclass(frozen=True)
class Sent:
    """A worry sent: the private link's token and code are known only here, once."""

    report_id: int
    concern_id: int
    token: str
    code: str


@dataclass(frozen=True)
class PupilMessage:
    from_pupil: bool
    text: str
    written_at: datetime
    #: The member of staff's name, only when they signed their reply.
    signed_as: str | None


@dataclass(frozen=True)
class PupilThread:
    """What the pupil's private link shows: the conversation, nothing else of the concern."""

    school_id: int
    timezone: str
    happening_now: bool
    messages: tuple[PupilMessage, ...]

    @property
    def replies(self) -> tuple[PupilMessage, ...]:
        return tuple(m for m in self.messages if not m.from_pupil)


@dataclass(frozen=True)
class StaffView:
    """What the concern's readers see of the report beside the concern."""

    named: bool
    happening_now: bool
    reporter: str
    last_opened_at: datetime | None
    expires_at: datetime
    replies: int
    can_reply: bool


# -- the link's secrets ---------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def code_for(secret: bytes, token: str) -> str:
    """The short code of a link ("ABCD-EFGH-JKMN"), from the token and the secret."""
    digest = int.from_bytes(hmac.new(secret, b"worry-code\0" + token.encode(), "sha256").digest())
    letters = []
    for _ in range(CODE_LENGTH):
        digest, index = divmod(digest, len(CODE_ALPHABET))
        letters.append(CODE_ALPHABET[index])
    return "-".join("".join(letters[i : i + 4]) for i in range(0, CODE_LENGTH, 4))


def _code_hash(secret: bytes, code: str) -> str:
    cleaned = re.sub(r"[^A-Z0-9]", "", code.upper())
    return hmac.new(secret, b"worry-code-hash\0" + cleaned.encode(), "sha256").hexdigest()


# -- small checks ---------------------------------------------------------------------


def _words(value: str | None, box: str, *, required: bool, limit: int = MAX_WORDS) -> str | None:
    """The pupil's words, as they wrote them (only the blank ends trimmed)."""
    cleaned = (value or "").strip()
    if not cleaned:
        if required:
            raise InvalidInput(f"the box “{box}” is empty: please write it in your own words")
        return None
    if len(cleaned) > limit:
        raise InvalidInput(
            f"what you wrote in “{box}” is {len(cleaned):,} letters long: please keep it "
            f"under {limit:,} (you can send more afterwards, at your private link)"
        )
    return cleaned


def _pupil(session: Session, pupil_id: int) -> Person:
    person = session.get(Person, pupil_id)
    if person is None or person.kind is not PersonKind.PUPIL or person.left_on is not None:
        raise InvalidInput(
            f"person #{pupil_id} is not a pupil of this school: send the worry without a name"
        )
    return person


def _reporter(pupil: Person | None) -> str:
    if pupil is None:
        return ANONYMOUS
    return f"{pupil.display_name}, a pupil (their own report)"[:200]


def _later(report: WorryReport, now: datetime) -> None:
    report.expires_at = max(report.expires_at, now + timedelta(days=LINK_DAYS))


def _tell(session: Session, concern_id: int, text: str, key: str) -> None:
    """An in-app notice to the DSL and deputies: no names, no words of the pupil."""
    ids = session.scalars(
        select(PersonRole.person_id)
        .join(Person, Person.id == PersonRole.person_id)
        .where(PersonRole.role.in_(_TOLD), Person.left_on.is_(None))
    ).all()
    notify(session, ids, text, link=f"/safeguarding/concerns/{concern_id}", key=key)


def _opening_note(named: bool, happening_now: bool | None, who: str | None) -> str:
    lines = [
        "From the pupil's own report (“Tell someone about a worry”), sent "
        + ("with their name." if named else "without their name.")
    ]
    now_said = {True: "Yes.", False: "No.", None: "They did not say."}[happening_now]
    lines.append(f"Is it happening now, or do they feel unsafe now? {now_said}")
    if who:
        lines.append(f"Who they said it was, in their words: “{who}”")
    lines.append(
        "They did not say when it happened: the time recorded is when they sent it. "
        "They read replies at their private link: reply from this concern's page."
    )
    return "\n".join(lines)


# -- the pupil ------------------------------------------------------------------------


def send_worry(
    db: Database,
    school_id: int,
    *,
    what: str,
    secret: bytes,
    who: str | None = None,
    happening_now: bool | None = None,
    pupil_id: int | None = None,
    now: datetime | None = None,
) -> Sent:
    """Record a pupil's worry as a concern for the school's DSL, and make its private link.

    ``pupil_id`` is the pupil who chose to put their name on it (the one signed in, or at
    the device); None sends it without a name. Refused with what to fix, and nothing
    written: an empty or over-long box, a ``pupil_id`` that is not a pupil of the school.
    """
    words = _words(what, "What happened?", required=True) or ""
    who_words = _words(who, "Who was it?", required=False, limit=MAX_WHO)
    now = now or utcnow()
    pupil: Person | None = None
    if pupil_id is not None:
        with db.session(Actor.system("pupil report"), school_id=school_id) as session:
            pupil = _pupil(session, pupil_id)
    reporter = _reporter(pupil)
    # No account and no address: the school records it on the pupil's behalf, and an
    # anonymous report must not name the device it came from (issue 5 §1).
    actor = Actor(name=reporter, school_id=school_id)
    token = secrets.token_urlsafe(24)
    code = code_for(secret, token)
    with db.session(actor, school_id=school_id) as session:
        about = (
            About(person=pupil.username, part=Part.HARMED)
            if pupil is not None
            else About(name=ANONYMOUS_PUPIL, description=ANONYMOUS_WHY, part=Part.HARMED)
        )
        concern = concerns.record_concern(
            session, kind=KIND, narrative=words, happened_at=now, about=[about], now=now
        )
        concerns.add_note(
            session, concern.id, _opening_note(pupil is not None, happening_now, who_words)
        )
        report = WorryReport(
            school_id=school_id,
            concern_id=concern.id,
            token_hash=token_hash(token),
            code_hash=_code_hash(secret, code),
            named=pupil is not None,
            happening_now=bool(happening_now),
            reporter=reporter,
            created_at=now,
            expires_at=now + timedelta(days=LINK_DAYS),
        )
        session.add(report)
        session.flush()
        session.add(
            WorryMessage(
                school_id=school_id,
                report_id=report.id,
                from_pupil=True,
                text=words,
                written_by=reporter,
                written_at=now,
            )
        )
        if happening_now:
            _tell(
                session,
                concern.id,
                f"A pupil sent a worry and says it is happening now, or that they feel unsafe "
                f"now: read concern #{concern.id} straight away.",
                f"worry-now:{report.id}",
            )
        session.flush()
        return Sent(report.id, concern.id, token, code)


def _find(
    session: Session,
    *,
    token: str | None,
    code: str | None,
    secret: bytes,
    school_id: int | None,
    now: datetime,
) -> WorryReport | None:
    """The report a link or code opens now; None when wrong, expired or another school's
    (given ``school_id``: the school of one signed in)."""
    if token is not None:
        if not _TOKEN.fullmatch(token):
            return None
        wanted = WorryReport.token_hash == token_hash(token)
    elif code is not None and code.strip():
        wanted = WorryReport.code_hash == _code_hash(secret, code)
    else:
        return None
    found = session.scalars(select(WorryReport).where(wanted)).first()
    if found is None or found.expires_at <= now:
        return None
    if school_id is not None and found.school_id != school_id:
        return None
    return found


def _thread(session: Session, report: WorryReport) -> PupilThread:
    school = session.get(School, report.school_id)
    return PupilThread(
        school_id=report.school_id,
        timezone=school.timezone if school is not None else "Europe/London",
        happening_now=report.happening_now,
        messages=tuple(
            PupilMessage(m.from_pupil, m.text, m.written_at, m.signed_as) for m in report.messages
        ),
    )


def _open(
    db: Database,
    *,
    token: str | None,
    code: str | None,
    secret: bytes,
    school_id: int | None,
    now: datetime | None,
) -> PupilThread | None:
    now = now or utcnow()
    # The token names the school: no school to scope the search by before it is found.
    with db.session(Actor.system("worry link")) as session:
        report = _find(session, token=token, code=code, secret=secret, school_id=school_id, now=now)
        if report is None:
            return None
        report.last_opened_at = now
        session.flush()
        return _thread(session, report)


def open_by_token(
    db: Database, token: str, *, school_id: int | None = None, now: datetime | None = None
) -> PupilThread | None:
    """The conversation at a private link; None for a wrong or expired link (alike)."""
    return _open(db, token=token, code=None, secret=b"", school_id=school_id, now=now)


def open_by_code(
    db: Database,
    code: str,
    *,
    secret: bytes,
    school_id: int | None = None,
    now: datetime | None = None,
) -> PupilThread | None:
    """The conversation for a short code typed in; None for a wrong or expired code."""
    return _open(db, token=None, code=code, secret=secret, school_id=school_id, now=now)


def add_from_pupil(
    db: Database,
    text: str,
    *,
    secret: bytes,
    token: str | None = None,
    code: str | None = None,
    school_id: int | None = None,
    now: datetime | None = None,
) -> PupilThread | None:
    """The pupil adds to their worry at their link (or with their code): a note beside
    the concern, in their words, and the DSL is told. None for a wrong or expired link."""
    words = _words(text, "Tell us more", required=True) or ""
    now = now or utcnow()
    with db.session(Actor.system("worry link")) as session:
        found = _find(session, token=token, code=code, secret=secret, school_id=school_id, now=now)
        if found is None:
            return None
        report_id, school, reporter = found.id, found.school_id, found.reporter
    with db.session(Actor(name=reporter, school_id=school), school_id=school) as session:
        report = session.get(WorryReport, report_id)
        if report is None:  # pragma: no cover - found a moment ago, and never deleted
            return None
        entry = concerns.add_note(
            session,
            report.concern_id,
            f"Added by the pupil at their private link, in their own words:\n\n{words}",
        )
        message = WorryMessage(
            school_id=school,
            report_id=report.id,
            from_pupil=True,
            text=words,
            written_by=reporter,
            written_at=now,
            concern_entry_id=entry.id,
        )
        report.messages.append(message)
        _later(report, now)
        report.last_opened_at = now
        session.flush()
        _tell(
            session,
            report.concern_id,
            f"A pupil added to the worry they sent: read concern #{report.concern_id}.",
            f"worry-more:{message.id}",
        )
        return _thread(session, report)


# -- the school -----------------------------------------------------------------------


def _report_of(session: Session, concern: Concern) -> WorryReport | None:
    return session.scalars(select(WorryReport).where(WorryReport.concern_id == concern.id)).first()


def reply(
    session: Session,
    concern_id: int,
    text: str,
    *,
    signed: bool = False,
    now: datetime | None = None,
) -> WorryMessage:
    """Reply to the pupil who sent the worry: they read it at their private link, with
    the replier's name only when ``signed``. The reply is also a note in the concern."""
    require(session, Permission.ACT_ON_CONCERNS, "reply to a pupil's worry")
    concern = find_concern(session, concern_id)
    require_grounds(session, concern, act=True)
    report = _report_of(session, concern)
    if report is None:
        raise NotFound(
            f"concern #{concern_id} did not come from a pupil's own report: there is no "
            "private link to reply to"
        )
    words = _words(text, "Reply to the pupil", required=True) or ""
    now = now or utcnow()
    actor = current_actor(session)
    person = session.get(Person, actor.person_id) if actor and actor.person_id else None
    signed_as = person.display_name if signed and person is not None else None
    how = f"signed “{signed_as}”" if signed_as else "not signed: the pupil sees no name"
    entry = concerns.add_note(
        session, concern.id, f"Reply sent to the pupil at their private link ({how}):\n\n{words}"
    )
    message = WorryMessage(
        school_id=concern.school_id,
        report_id=report.id,
        from_pupil=False,
        text=words,
        signed_as=signed_as,
        written_by=actor_name(session),
        written_by_id=person.id if person is not None else None,
        written_at=now,
        concern_entry_id=entry.id,
    )
    report.messages.append(message)
    _later(report, now)
    session.flush()
    return message


def staff_view(session: Session, concern: Concern) -> StaffView | None:
    """The report behind a concern the session's actor has already opened (None: the
    concern was not a pupil's own report)."""
    report = _report_of(session, concern)
    if report is None:
        return None
    return StaffView(
        named=report.named,
        happening_now=report.happening_now,
        reporter=report.reporter,
        last_opened_at=report.last_opened_at,
        expires_at=report.expires_at,
        replies=sum(1 for m in report.messages if not m.from_pupil),
        can_reply=concern_access(session, concern).can_act,
    )
