"""The school calendar's records: terms and closures (the rules are in calendar.py)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.directory.calendar import DateSpan, SchoolCalendar
from esafety.directory.model import Closure, Term
from esafety.directory.service import clean_text, current_school, require
from esafety.errors import InvalidInput
from esafety.security.roles import Permission

__all__ = ["add_closure", "add_term", "closures", "school_calendar", "terms"]


def add_term(session: Session, name: str, starts_on: date, ends_on: date) -> Term:
    require(session, Permission.MANAGE_CALENDAR, "change the school calendar")
    name = clean_text(name, "name", 60)
    span = DateSpan(starts_on, ends_on, f"term {name!r}")
    for term in terms(session):
        if span.overlaps(DateSpan(term.starts_on, term.ends_on)):
            raise InvalidInput(
                f"term {name!r} ({starts_on.isoformat()} to {ends_on.isoformat()}) overlaps "
                f"{term.name!r} ({term.starts_on.isoformat()} to {term.ends_on.isoformat()}); "
                "terms cannot overlap"
            )
    term = Term(name=name, starts_on=starts_on, ends_on=ends_on)
    session.add(term)
    session.flush()
    return term


def add_closure(session: Session, starts_on: date, ends_on: date, reason: str) -> Closure:
    """Days inside a term when the school is closed (INSET, bank holidays, half term, snow)."""
    require(session, Permission.MANAGE_CALENDAR, "change the school calendar")
    reason = clean_text(reason, "reason", 120)
    span = DateSpan(starts_on, ends_on, f"closure {reason!r}")
    inside = any(
        t.starts_on <= span.starts_on and span.ends_on <= t.ends_on for t in terms(session)
    )
    if not inside:
        raise InvalidInput(
            f"closure {reason!r} ({starts_on.isoformat()} to {ends_on.isoformat()}) is not "
            "inside one term: closures are days in a term when the school is closed; add the "
            "term first or split the closure"
        )
    closure = Closure(starts_on=starts_on, ends_on=ends_on, reason=reason)
    session.add(closure)
    session.flush()
    return closure


def terms(session: Session) -> list[Term]:
    return list(session.scalars(select(Term).order_by(Term.starts_on)))


def closures(session: Session) -> list[Closure]:
    return list(session.scalars(select(Closure).order_by(Closure.starts_on)))


def school_calendar(session: Session) -> SchoolCalendar:
    """The school's calendar as a pure value, for counting school days."""
    return SchoolCalendar.build(
        (DateSpan(t.starts_on, t.ends_on, t.name) for t in terms(session)),
        (DateSpan(c.starts_on, c.ends_on, c.reason) for c in closures(session)),
        current_school(session).timezone,
    )
