"""Counting school days for child-protection file transfers (issue 5 §5), and the
school's setting for chasing a receipt.

The due date is five school days on the school's calendar (terms, less closures such as
half term). A school that has not entered its terms gets weekdays less England's bank
holidays instead, and the record says so beside the date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.db import utcnow
from esafety.directory.service import require
from esafety.directory.terms import school_calendar
from esafety.errors import InvalidInput
from esafety.safeguarding.deadlines import is_working_day
from esafety.safeguarding.model import SafeguardingSettings
from esafety.safeguarding.reading import actor_name
from esafety.security.roles import Permission

__all__ = [
    "DEFAULT_RECEIPT_DAYS",
    "Counted",
    "count_school_days",
    "receipt_days",
    "set_receipt_days",
    "weekdays_after",
]

#: School days after sending before a missing receipt is chased (a school setting).
DEFAULT_RECEIPT_DAYS = 3


@dataclass(frozen=True)
class Counted:
    """A day counted on from another, and how it was counted (shown beside it)."""

    day: date
    basis: str


def weekdays_after(start: date, n: int) -> date:
    """The ``n``-th weekday after ``start`` that is not a bank holiday in England."""
    day, remaining = start, n
    while remaining > 0:
        day += timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    return day


def count_school_days(session: Session, start: date, n: int) -> Counted:
    """The ``n``-th school day after ``start`` on the school's calendar; without terms
    that reach that far, weekdays less England's bank holidays, and the basis says so."""
    calendar = school_calendar(session)
    if calendar.terms:
        try:
            return Counted(calendar.add_school_days(start, n), "school days on the school calendar")
        except InvalidInput:
            why = "the school calendar has no terms that far"
    else:
        why = "the school has no terms in its calendar"
    return Counted(
        weekdays_after(start, n),
        f"weekdays less bank holidays in England ({why}: add the terms for the true count)",
    )


# -- the setting ----------------------------------------------------------------------


def receipt_days(session: Session) -> int:
    row = session.scalars(select(SafeguardingSettings)).first()
    value = row.transfer_receipt_days if row is not None else None
    return value if value is not None else DEFAULT_RECEIPT_DAYS


def set_receipt_days(session: Session, days: int) -> int:
    """How many school days after sending a missing receipt is chased."""
    require(session, Permission.MANAGE_SAFEGUARDING_SETTINGS, "change the safeguarding settings")
    if not 1 <= days <= 20:
        raise InvalidInput(
            f"school days before chasing a receipt: {days}; give a number from 1 to 20"
        )
    row = session.scalars(select(SafeguardingSettings)).first()
    if row is None:
        row = SafeguardingSettings(updated_by=actor_name(session))
        session.add(row)
    row.transfer_receipt_days = days
    row.updated_at, row.updated_by = utcnow(), actor_name(session)
    session.flush()
    return days
