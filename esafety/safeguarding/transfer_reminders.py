"""Reminders for child-protection files (issue 5 §5; STANDARDS R7): a file not sent by
its due date, or sent with no receipt after the school's number of school days, is
brought to the DSL and deputies as an in-app notice, at most once a day per transfer.

Run by the recurring job :data:`esafety.safeguarding.transfer.REMINDER_JOB` (set up for a
school when its first transfer starts).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety import audit, notices
from esafety.directory.calendar import school_date
from esafety.directory.model import Person, PersonRole
from esafety.directory.service import current_school
from esafety.safeguarding.transfer import (
    CP_FILE_ROLES,
    TransferState,
    TransferStatus,
    transfer_state,
    transfers,
)
from esafety.safeguarding.transfer_days import receipt_days
from esafety.safeguarding.transfer_model import PupilTransfer

__all__ = ["send_reminders"]


def _leads(session: Session) -> list[int]:
    """The school's DSL and deputies still here."""
    return list(
        session.scalars(
            select(PersonRole.person_id)
            .join(Person, Person.id == PersonRole.person_id)
            .where(PersonRole.role.in_(list(CP_FILE_ROLES)), Person.left_on.is_(None))
            .distinct()
        )
    )


def _reminder_text(row: PupilTransfer, state: TransferState) -> str:
    where = row.current("destination_name")
    if state.status is TransferStatus.OVERDUE:
        return (
            f"The child-protection file of {row.pupil_name} (moving to {where}) was due to be "
            f"sent by {state.due_on:%A %d %B %Y} (five school days, KCSIE part 2) and is not "
            "recorded as sent. Send it, or record why not."
        )
    sent_on = f"{state.sent.at:%d %B %Y}" if state.sent and state.sent.at else "recently"
    return (
        f"No receipt is recorded for the child-protection file of {row.pupil_name}, sent to "
        f"{where} on {sent_on}. Ask their DSL to confirm they have it, and record the receipt."
    )


def send_reminders(session: Session, now: datetime) -> list[notices.Notice]:
    """Remind the DSL and deputies of each late file or missing receipt, at most once a
    day per transfer (the notice's key holds the school's date)."""
    rows = [r for r in transfers(session)]
    if not rows:
        return []
    leads = _leads(session)
    chase_after = receipt_days(session)
    today = school_date(now, current_school(session).timezone)
    sent: list[notices.Notice] = []
    for row in rows:
        state = transfer_state(session, row, now, chase_after=chase_after)
        if not state.status.needs_action:
            continue
        sent += notices.notify(
            session,
            leads,
            _reminder_text(row, state),
            link=f"/safeguarding/transfers/{row.id}",
            key=f"cp-transfer:{row.id}:reminded:{today.isoformat()}",
            now=now,
        )
    if sent:
        audit.record(
            session,
            "remind",
            "cp_transfer",
            after={"notices": len(sent), "people": len(leads)},
        )
    return sent
