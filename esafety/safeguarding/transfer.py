"""Sending a pupil's child-protection file to their new school (issue 5 §5; STANDARDS R7).

KCSIE part 2: when a pupil leaves, the DSL sends the child-protection file to the new
school's DSL separately from the main pupil file, within five school days (of the school
learning of an in-year move, or of the start of the new term), securely, and keeps a
record of what was sent, when, how, and who acknowledged receipt. This module keeps that
record: a :class:`PupilTransfer` per pupil leaving, with its due date counted on the
school's calendar, and entries for the file made, its sending, the receipt, corrections
and withdrawal (never edited: STANDARDS R2). A recurring job reminds the DSL and deputies
when a file is overdue, or when no receipt came within a few school days of sending
(:mod:`transfer_reminders`; due dates are counted by :mod:`transfer_days`).

Only the DSL and deputies see or handle transfers: the file is every concern about the
pupil, which only they read (issue 5 §3). The file itself is made by
:mod:`esafety.safeguarding.transfer_export` and received by
:mod:`esafety.safeguarding.transfer_import`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from esafety.db import utcnow
from esafety.directory.calendar import school_date, to_utc
from esafety.directory.model import Person, PersonKind
from esafety.directory.service import current_school, require
from esafety.errors import InvalidInput, NotFound, PermissionDenied
from esafety.safeguarding.reading import actor_name, current_actor
from esafety.safeguarding.transfer_days import count_school_days, receipt_days
from esafety.safeguarding.transfer_model import (
    PupilTransfer,
    TransferEntry,
    TransferEntryKind,
    TransferMethod,
)
from esafety.scheduler import JobContext, handler, schedule
from esafety.security.roles import Permission, Role

__all__ = [
    "CP_FILE_ROLES",
    "REMINDER_JOB",
    "SEND_WITHIN_DAYS",
    "TransferState",
    "TransferStatus",
    "add_entry",
    "correct_details",
    "ensure_open",
    "ensure_reminders",
    "find_transfer",
    "handles_cp_files",
    "open_transfer_of",
    "pupil_of",
    "record_receipt",
    "record_sending",
    "require_cp_role",
    "start_transfer",
    "transfer_state",
    "transfers",
    "who",
    "withdraw",
]

#: Who sends and receives child-protection files: those who read every concern about a
#: pupil by their role (issue 5 §3; KCSIE part 2 names the DSL).
CP_FILE_ROLES = frozenset({Role.DSL, Role.DEPUTY_DSL})
#: KCSIE part 2: "within 5 days for an in-year transfer or within the first 5 days of
#: the start of a new term".
SEND_WITHIN_DAYS = 5
REMINDER_JOB = "safeguarding.transfer.reminders"
#: The job looks hourly; each transfer's reminder goes at most once a day (notice key).
REMINDER_EVERY = timedelta(hours=1)
MAX_TEXT = 2000


class TransferStatus(StrEnum):
    DUE = "due"
    OVERDUE = "overdue"
    SENT = "sent"
    #: Sent, and no receipt within the school's number of school days.
    RECEIPT_OVERDUE = "receipt_overdue"
    RECEIVED = "received"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return {
            "due": "Due",
            "overdue": "Overdue: not sent",
            "sent": "Sent, awaiting receipt",
            "receipt_overdue": "Sent, no receipt yet",
            "received": "Received",
            "withdrawn": "Withdrawn",
        }[self.value]

    @property
    def needs_action(self) -> bool:
        return self in (TransferStatus.OVERDUE, TransferStatus.RECEIPT_OVERDUE)


# -- who may ------------------------------------------------------------------------


def handles_cp_files(session: Session) -> bool:
    """The actor sends and receives child-protection files (a system actor does too)."""
    actor = current_actor(session)
    if actor is None or actor.person_id is None:
        return True
    return bool({role.value for role in CP_FILE_ROLES} & set(actor.roles))


def require_cp_role(session: Session, action: str) -> None:
    require(session, Permission.ACT_ON_CONCERNS, action)
    if not handles_cp_files(session):
        raise PermissionDenied(
            f"you cannot {action}: a pupil's child-protection file is sent and received by "
            "the DSL and deputies, who read every concern about the pupil (KCSIE part 2)"
        )


def who(session: Session) -> str:
    """The actor as a name for the record: "Dana Jones (dana.jones)"."""
    actor = current_actor(session)
    if actor is not None and actor.person_id is not None:
        person = session.get(Person, actor.person_id)
        if person is not None:
            return f"{person.display_name} ({person.username})"[:200]
    return actor_name(session)


# -- starting and finding -------------------------------------------------------------


def _text(value: str | None, what: str, limit: int, *, required: bool = False) -> str | None:
    cleaned = " ".join((value or "").split())
    if not cleaned:
        if required:
            raise InvalidInput(f"{what} is empty: give {what}")
        return None
    if len(cleaned) > limit:
        raise InvalidInput(f"{what} is {len(cleaned)} characters long: keep it to {limit}")
    return cleaned


def _urn(value: str | None) -> str | None:
    cleaned = (value or "").strip()
    if cleaned and not (cleaned.isdigit() and 6 <= len(cleaned) <= 8):
        raise InvalidInput(
            f"URN {value!r}: a school's unique reference number is 6 to 8 digits "
            "(Get Information about Schools); leave it empty if you do not know it"
        )
    return cleaned or None


def _email(value: str | None) -> str | None:
    cleaned = (value or "").strip()
    if cleaned and ("@" not in cleaned or " " in cleaned or len(cleaned) > 254):
        raise InvalidInput(f"the DSL's e-mail {value!r} is not an e-mail address (name@school.org)")
    return cleaned or None


def pupil_of(session: Session, handle: str | int) -> Person:
    """A pupil of this school by id, username or UPN."""
    if isinstance(handle, int):
        found = session.scalars(select(Person).where(Person.id == handle)).all()
    else:
        wanted = handle.strip()
        found = session.scalars(
            select(Person).where(or_(Person.username == wanted, Person.upn == wanted.upper()))
        ).all()
    if len(found) != 1 or found[0].kind is not PersonKind.PUPIL:
        raise InvalidInput(
            f"pupil {handle!r}: no pupil of this school has that username or UPN; choose the "
            "pupil who is leaving"
        )
    return found[0]


def open_transfer_of(session: Session, pupil_id: int) -> PupilTransfer | None:
    """The pupil's transfer still under way (not received, not withdrawn), if any."""
    for row in session.scalars(
        select(PupilTransfer).where(PupilTransfer.pupil_id == pupil_id).order_by(PupilTransfer.id)
    ):
        if row.latest(TransferEntryKind.WITHDRAWN) is None and (
            row.latest(TransferEntryKind.RECEIVED) is None
        ):
            return row
    return None


def start_transfer(
    session: Session,
    pupil: str | int,
    *,
    destination_name: str,
    destination_urn: str | None = None,
    dsl_name: str | None = None,
    dsl_email: str | None = None,
    learned_on: date | None = None,
    now: datetime | None = None,
) -> PupilTransfer:
    """Record that a pupil is leaving for another school: the file is due five school
    days after the school learned of it (``learned_on``; else the pupil's last day, else
    today)."""
    require_cp_role(session, "start the transfer of a child-protection file")
    now = now or utcnow()
    person = pupil_of(session, pupil)
    name = _text(destination_name, "the new school's name", 200, required=True) or ""
    existing = open_transfer_of(session, person.id)
    if existing is not None:
        raise InvalidInput(
            f"{person.display_name} already has transfer #{existing.id} to "
            f"{existing.current('destination_name')} under way: correct its details there, "
            "or withdraw it first"
        )
    zone = current_school(session).timezone
    start = learned_on or person.left_on or school_date(now, zone)
    if start > school_date(now, zone) + timedelta(days=366):
        raise InvalidInput(f"the move on {start.isoformat()} is more than a year away")
    due = count_school_days(session, start, SEND_WITHIN_DAYS)
    actor = current_actor(session)
    row = PupilTransfer(
        school_id=int(session.info["school_id"]),
        pupil_id=person.id,
        pupil_name=person.display_name[:200],
        destination_name=name,
        destination_urn=_urn(destination_urn),
        destination_dsl_name=_text(dsl_name, "the new school's DSL's name", 200),
        destination_dsl_email=_email(dsl_email),
        learned_on=start,
        left_on=person.left_on,
        due_on=due.day,
        due_basis=due.basis,
        started_at=now,
        started_by=who(session),
        started_by_id=actor.person_id if actor else None,
    )
    session.add(row)
    session.flush()
    ensure_reminders(session, row.school_id, now)
    return row


def transfers(session: Session) -> list[PupilTransfer]:
    """The school's transfers, newest first; none for those who do not handle them."""
    if not handles_cp_files(session):
        return []
    return list(
        session.scalars(
            select(PupilTransfer).order_by(PupilTransfer.started_at.desc(), PupilTransfer.id.desc())
        )
    )


def find_transfer(session: Session, transfer_id: int) -> PupilTransfer:
    """One transfer, for the DSL and deputies; NotFound for everyone else (as concerns)."""
    row = None
    if handles_cp_files(session):
        row = session.scalars(select(PupilTransfer).where(PupilTransfer.id == transfer_id)).first()
    if row is None:
        raise NotFound(f"no transfer #{transfer_id} that you can see")
    return row


# -- where it stands ------------------------------------------------------------------


@dataclass(frozen=True)
class TransferState:
    status: TransferStatus
    due_on: date
    due_basis: str
    exported: TransferEntry | None
    sent: TransferEntry | None
    received: TransferEntry | None
    withdrawn: TransferEntry | None
    #: The last school day for a receipt before it is chased (once sent).
    receipt_due_on: date | None = None


def transfer_state(
    session: Session, row: PupilTransfer, now: datetime, *, chase_after: int | None = None
) -> TransferState:
    today = school_date(now, current_school(session).timezone)
    sent = row.latest(TransferEntryKind.SENT)
    received = row.latest(TransferEntryKind.RECEIVED)
    withdrawn = row.latest(TransferEntryKind.WITHDRAWN)
    due_on: date = row.current("due_on")
    receipt_due = None
    if withdrawn is not None:
        status = TransferStatus.WITHDRAWN
    elif received is not None:
        status = TransferStatus.RECEIVED
    elif sent is not None and sent.at is not None:
        days = chase_after if chase_after is not None else receipt_days(session)
        sent_on = school_date(sent.at, current_school(session).timezone)
        receipt_due = count_school_days(session, sent_on, days).day
        status = TransferStatus.RECEIPT_OVERDUE if today > receipt_due else TransferStatus.SENT
    else:
        status = TransferStatus.OVERDUE if today > due_on else TransferStatus.DUE
    return TransferState(
        status=status,
        due_on=due_on,
        due_basis=row.current("due_basis"),
        exported=row.latest(TransferEntryKind.EXPORTED),
        sent=sent,
        received=received,
        withdrawn=withdrawn,
        receipt_due_on=receipt_due,
    )


# -- recording ------------------------------------------------------------------------


def add_entry(
    session: Session, row: PupilTransfer, kind: TransferEntryKind, **values: object
) -> TransferEntry:
    actor = current_actor(session)
    entry = TransferEntry(
        school_id=row.school_id,
        transfer_id=row.id,
        kind=kind,
        recorded_by=who(session),
        recorded_by_id=actor.person_id if actor else None,
        recorded_at=utcnow(),
        **values,
    )
    row.entries.append(entry)
    session.flush()
    return entry


def _moment(session: Session, value: datetime | None, what: str, now: datetime) -> datetime:
    if value is None:
        return now
    moment = to_utc(value, current_school(session).timezone)
    if moment > now + timedelta(minutes=5):
        raise InvalidInput(f"{what} {moment.isoformat(timespec='minutes')} is in the future")
    return moment


def ensure_open(row: PupilTransfer) -> None:
    if row.latest(TransferEntryKind.WITHDRAWN) is not None:
        raise InvalidInput(f"transfer #{row.id} was withdrawn: start a new one if the pupil moves")


def _correcting(
    row: PupilTransfer, kind: TransferEntryKind, reason: str | None
) -> dict[str, object]:
    """A second record of the same kind corrects the first, with the reason (R2)."""
    earlier = row.latest(kind)
    if earlier is None:
        return {}
    why = _text(reason, "the reason for the correction", MAX_TEXT)
    if why is None:
        raise InvalidInput(
            f"transfer #{row.id} already has a record of its {kind.value} on "
            f"{earlier.at:%d %b %Y}: to put it right, say why (the earlier record stays)"
        )
    return {"corrects_entry_id": earlier.id, "reason": why}


def record_sending(
    session: Session,
    transfer_id: int,
    *,
    method: TransferMethod | str,
    sent_at: datetime | None = None,
    items: list[str] | None = None,
    note: str | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> TransferEntry:
    """Record that the file went: how, when, by whom, and what was in it (one line per
    record). Sending by esafety file needs the file made first; its contents are the
    lines when none are given."""
    # 404 first for anyone who may not see it, as for concerns.
    row = find_transfer(session, transfer_id)
    require_cp_role(session, "record the sending of a child-protection file")
    ensure_open(row)
    now = now or utcnow()
    try:
        how = TransferMethod(str(method).strip())
    except ValueError:
        allowed = ", ".join(m.value for m in TransferMethod)
        raise InvalidInput(f"how it was sent {method!r}: choose one of {allowed}") from None
    exported = row.latest(TransferEntryKind.EXPORTED)
    if how is TransferMethod.ESAFETY_FILE and exported is None:
        raise InvalidInput(
            "sent as an esafety file: make the file first (its passphrase is shown once), "
            "then record that it was sent"
        )
    lines = [
        line for line in (_text(i, "a line of what was sent", 500) for i in items or []) if line
    ]
    if not lines and exported is not None:
        lines = list(exported.items or [])
    if not lines:
        raise InvalidInput(
            "say what was sent: one line per record (for example 'the paper child-protection "
            "file, 14 pages'), or make the esafety file"
        )
    extra = _correcting(row, TransferEntryKind.SENT, reason)
    entry = add_entry(
        session,
        row,
        TransferEntryKind.SENT,
        method=how,
        at=_moment(session, sent_at, "sent at", now),
        by_name=who(session),
        items=lines,
        bundle_id=exported.bundle_id
        if exported is not None and how is TransferMethod.ESAFETY_FILE
        else None,
        note=_text(note, "the note", MAX_TEXT),
        **extra,
    )
    return entry


def record_receipt(
    session: Session,
    transfer_id: int,
    *,
    acknowledged_by: str,
    acknowledged_at: datetime | None = None,
    note: str | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> TransferEntry:
    """Record that the new school acknowledged receipt: who there, and when."""
    # 404 first for anyone who may not see it, as for concerns.
    row = find_transfer(session, transfer_id)
    require_cp_role(session, "record the receipt of a child-protection file")
    ensure_open(row)
    now = now or utcnow()
    sent = row.latest(TransferEntryKind.SENT)
    if sent is None or sent.at is None:
        raise InvalidInput(
            f"transfer #{row.id} has not been recorded as sent: record the sending first"
        )
    name = _text(acknowledged_by, "who acknowledged receipt (their full name)", 200, required=True)
    when = _moment(session, acknowledged_at, "acknowledged at", now)
    if when < sent.at:
        raise InvalidInput(
            f"acknowledged at {when.isoformat(timespec='minutes')}, before it was sent "
            f"({sent.at.isoformat(timespec='minutes')}): check the time"
        )
    extra = _correcting(row, TransferEntryKind.RECEIVED, reason)
    return add_entry(
        session,
        row,
        TransferEntryKind.RECEIVED,
        at=when,
        by_name=name,
        note=_text(note, "the note", MAX_TEXT),
        **extra,
    )


def withdraw(session: Session, transfer_id: int, reason: str) -> TransferEntry:
    """The pupil is not moving after all (or moved abroad with no school to send to)."""
    # 404 first for anyone who may not see it, as for concerns.
    row = find_transfer(session, transfer_id)
    require_cp_role(session, "withdraw a transfer")
    ensure_open(row)
    if row.latest(TransferEntryKind.RECEIVED) is not None:
        raise InvalidInput(f"transfer #{row.id} was received by the new school: it is complete")
    why = _text(reason, "the reason for withdrawing it", MAX_TEXT, required=True)
    return add_entry(session, row, TransferEntryKind.WITHDRAWN, reason=why, at=utcnow())


#: The details a correction may put right.
CORRECTABLE = (
    "destination_name",
    "destination_urn",
    "destination_dsl_name",
    "destination_dsl_email",
    "learned_on",
)


def correct_details(
    session: Session, transfer_id: int, reason: str, **changes: str | date | None
) -> TransferEntry:
    """Put right the destination or the day the school learned of the move (the due
    date is counted again); the first details stay in the record (R2)."""
    # 404 first for anyone who may not see it, as for concerns.
    row = find_transfer(session, transfer_id)
    require_cp_role(session, "correct a transfer")
    ensure_open(row)
    unknown = set(changes) - set(CORRECTABLE)
    if unknown:
        raise InvalidInput(
            f"cannot correct {', '.join(sorted(unknown))}: only {', '.join(CORRECTABLE)}"
        )
    why = _text(reason, "the reason for the correction", MAX_TEXT, required=True)
    details: dict[str, object] = {}
    for field, value in changes.items():
        if field == "learned_on":
            if not isinstance(value, date):
                raise InvalidInput("the day the school learned of the move must be a date")
            due = count_school_days(session, value, SEND_WITHIN_DAYS)
            details |= {
                "learned_on": value.isoformat(),
                "due_on": due.day.isoformat(),
                "due_basis": due.basis,
            }
        elif field == "destination_name":
            details[field] = _text(str(value or ""), "the new school's name", 200, required=True)
        elif field == "destination_urn":
            details[field] = _urn(str(value or ""))
        elif field == "destination_dsl_email":
            details[field] = _email(str(value or ""))
        else:
            details[field] = _text(str(value or ""), "the new school's DSL's name", 200)
    changed = {k: v for k, v in details.items() if v != _stored(row, k)}
    if not changed:
        raise InvalidInput("nothing to correct: the details given are the ones recorded")
    return add_entry(session, row, TransferEntryKind.CORRECTED, details=changed, reason=why)


def _stored(row: PupilTransfer, field: str) -> object:
    value = row.current(field)
    return value.isoformat() if isinstance(value, date) else value


# -- reminders ------------------------------------------------------------------------


def ensure_reminders(session: Session, school_id: int, now: datetime) -> None:
    """Set up (once per school) the recurring job that chases late files and receipts."""
    schedule(
        session,
        REMINDER_JOB,
        now + REMINDER_EVERY,
        school_id=school_id,
        every=REMINDER_EVERY,
        key=f"{REMINDER_JOB}:{school_id}",
    )


@handler(REMINDER_JOB)
def _reminder_job(ctx: JobContext) -> None:
    # Registered here, so that any process that starts transfers can run their job.
    from esafety.safeguarding.transfer_reminders import send_reminders

    send_reminders(ctx.session, ctx.now)
