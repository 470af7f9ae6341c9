"""Actions with owners and due dates (issue 5 §4): the DSL sets an action on a concern for
a member of staff, who is told in esafety; it is done (when, by whom, a note) or cancelled
(why), each a new row (STANDARDS R2).

Who may do what:

- set or cancel an action: those who act on the concern (the DSL, deputies; the
  headteacher for staff allegations);
- mark it done: its owner, or those who act on the concern.

The owner need not be able to read the concern: they read their own action (what to do,
by when) and the concern's number, nothing more; the action's words are written for them.
The in-app notice carries neither the words nor a name (notices are not sealed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety import audit
from esafety.db import utcnow
from esafety.directory.calendar import school_date
from esafety.directory.model import Person, PersonKind, School
from esafety.directory.service import require
from esafety.errors import InvalidInput, NotFound
from esafety.notices import notify
from esafety.safeguarding.actions_model import ActionEnd, ConcernAction, ConcernActionEnd
from esafety.safeguarding.model import Concern
from esafety.safeguarding.reading import (
    actor_name,
    concern_access,
    current_actor,
    find_concern,
    require_grounds,
)
from esafety.security.roles import Permission

__all__ = [
    "ActionView",
    "actions_of",
    "add_action",
    "cancel_action",
    "complete_action",
    "desk_actions",
    "my_actions",
    "owner_choices",
]

MAX_WHAT = 2000
#: Where an owner finds their actions (the concerns page lists them first).
MY_ACTIONS_LINK = "/safeguarding/concerns#my-actions"


@dataclass(frozen=True)
class ActionView:
    """An action with how it ended (if it has) and where it stands today."""

    action: ConcernAction
    end: ConcernActionEnd | None
    #: Past its due date and not done or cancelled.
    overdue: bool
    due_today: bool
    #: Whether the person looking may read the concern (to link to it).
    concern_readable: bool = False
    #: Whether the person looking may mark it done / cancel it.
    can_complete: bool = False
    can_cancel: bool = False

    @property
    def is_open(self) -> bool:
        return self.end is None

    @property
    def status(self) -> str:
        return "open" if self.end is None else self.end.outcome.value


def _today(session: Session, now: datetime | None = None) -> date:
    school = session.get(School, session.info.get("school_id"))
    return school_date(now or utcnow(), school.timezone if school else "Europe/London")


def _text(value: str | None, what: str, *, limit: int = MAX_WHAT) -> str:
    cleaned = (value or "").strip()
    if not cleaned:
        raise InvalidInput(f"{what} is empty: write it in a sentence")
    if len(cleaned) > limit:
        raise InvalidInput(f"{what} is {len(cleaned)} characters long: keep it to {limit}")
    return cleaned


def owner_choices(session: Session) -> list[Person]:
    """Members of staff still at the school, by name: who may own an action."""
    return list(
        session.scalars(
            select(Person)
            .where(Person.kind == PersonKind.STAFF, Person.left_on.is_(None))
            .order_by(Person.legal_last_name, Person.legal_first_name, Person.id)
        )
    )


def _owner(session: Session, handle: str) -> Person:
    wanted = (handle or "").strip()
    if not wanted:
        raise InvalidInput("choose who owns the action: a member of staff")
    found = session.scalars(select(Person).where(Person.username == wanted)).first()
    if found is None or found.kind is not PersonKind.STAFF or found.left_on is not None:
        raise InvalidInput(
            f"owner {wanted!r}: an action is owned by a member of staff of this school who has "
            "not left; choose one from the list"
        )
    return found


def _end_of(session: Session, action_ids: Sequence[int]) -> dict[int, ConcernActionEnd]:
    if not action_ids:
        return {}
    rows = session.scalars(
        select(ConcernActionEnd).where(ConcernActionEnd.action_id.in_(action_ids))
    )
    return {row.action_id: row for row in rows}


def add_action(
    session: Session,
    concern_id: int,
    what: str,
    owner: str,
    due_on: date | str | None,
    *,
    now: datetime | None = None,
) -> ConcernAction:
    """Set an action on an open concern for a member of staff (``owner``: username), due by
    ``due_on``; the owner gets a notice."""
    require(session, Permission.ACT_ON_CONCERNS, "set an action on a concern")
    concern = find_concern(session, concern_id)
    require_grounds(session, concern, act=True)
    if not concern.is_open:
        raise InvalidInput(f"concern #{concern.id} is closed: it takes no new actions")
    words = _text(what, "what is to be done")
    person = _owner(session, owner)
    due = _due(due_on)
    today = _today(session, now)
    if due < today:
        raise InvalidInput(
            f"due date {due.isoformat()} is in the past: give the day it is to be done by "
            f"(today is {today.isoformat()})"
        )
    actor = current_actor(session)
    row = ConcernAction(
        school_id=concern.school_id,
        concern_id=concern.id,
        what=words,
        owner_id=person.id,
        owner=person.display_name,
        due_on=due,
        set_by_id=actor.person_id if actor else None,
        set_by=actor_name(session),
        set_at=now or utcnow(),
    )
    session.add(row)
    session.flush()
    if actor is None or actor.person_id != person.id:
        notify(
            session,
            [person.id],
            f"{actor_name(session)} gave you a safeguarding action (concern #{concern.id}), "
            f"due by {due:%A %d %B %Y}.",
            link=MY_ACTIONS_LINK,
            key=f"concern-action:{row.id}",
        )
    return row


def _due(value: date | str | None) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        raise InvalidInput(
            f"due date {value!r}: give the day it is to be done by, such as 2025-03-14"
        ) from None


def _action(
    session: Session, action_id: int, concern_id: int | None
) -> tuple[ConcernAction, Concern]:
    row = session.scalars(select(ConcernAction).where(ConcernAction.id == action_id)).first()
    if row is None or (concern_id is not None and row.concern_id != concern_id):
        raise NotFound(f"no action #{action_id} for you")
    return row, find_concern(session, row.concern_id)


def _end(
    session: Session,
    row: ConcernAction,
    outcome: ActionEnd,
    note: str | None,
    at: datetime | None,
    now: datetime,
) -> ConcernActionEnd:
    if _end_of(session, [row.id]):
        raise InvalidInput(
            f"action #{row.id} is already marked done or cancelled: add a note to the concern "
            "if something more happened"
        )
    actor = current_actor(session)
    end = ConcernActionEnd(
        school_id=row.school_id,
        action_id=row.id,
        outcome=outcome,
        at=at or now,
        by_id=actor.person_id if actor else None,
        by=actor_name(session),
        note=note,
        recorded_at=now,
    )
    session.add(end)
    session.flush()
    return end


def complete_action(
    session: Session,
    action_id: int,
    note: str | None = None,
    *,
    concern_id: int | None = None,
    done_at: datetime | None = None,
    now: datetime | None = None,
) -> ConcernActionEnd:
    """Record that the action was done: by its owner, or by one who acts on the concern
    (``concern_id``: the action must be one of that concern's)."""
    require(session, Permission.VIEW_CONCERNS, "mark a safeguarding action done")
    row, concern = _action(session, action_id, concern_id)
    actor = current_actor(session)
    is_owner = actor is not None and actor.person_id == row.owner_id
    if not is_owner and not concern_access(session, concern).can_act:
        raise NotFound(f"no action #{action_id} for you")
    now = now or utcnow()
    if done_at is not None and done_at > now:
        raise InvalidInput("the time the action was done is in the future")
    words = (note or "").strip() or None
    if words is not None and len(words) > MAX_WHAT:
        raise InvalidInput(f"the note is {len(words)} characters long: keep it to {MAX_WHAT}")
    return _end(session, row, ActionEnd.DONE, words, done_at, now)


def cancel_action(
    session: Session,
    action_id: int,
    reason: str,
    *,
    concern_id: int | None = None,
    now: datetime | None = None,
) -> ConcernActionEnd:
    """Record that the action is no longer to be done, and why."""
    require(session, Permission.ACT_ON_CONCERNS, "cancel an action on a concern")
    row, concern = _action(session, action_id, concern_id)
    require_grounds(session, concern, act=True)
    why = _text(reason, "the reason for cancelling the action")
    return _end(session, row, ActionEnd.CANCELLED, why, None, now or utcnow())


# -- reading ------------------------------------------------------------------------


def _views(
    session: Session,
    rows: Iterable[ConcernAction],
    *,
    now: datetime | None = None,
) -> list[ActionView]:
    rows = list(rows)
    ends = _end_of(session, [r.id for r in rows])
    today = _today(session, now)
    actor = current_actor(session)
    me = actor.person_id if actor else None
    ids = {r.concern_id for r in rows}
    concerns = {c.id: c for c in session.scalars(select(Concern).where(Concern.id.in_(ids)))}
    grants = {cid: concern_access(session, c) for cid, c in concerns.items()}
    views = []
    for row in rows:
        end = ends.get(row.id)
        # Those who act on the concern finish or cancel its actions, even once it is
        # closed (an action can outlive the concern: a check-in next term).
        acts = grants[row.concern_id].can_act
        views.append(
            ActionView(
                action=row,
                end=end,
                overdue=end is None and row.due_on < today,
                due_today=end is None and row.due_on == today,
                concern_readable=grants[row.concern_id].can_read,
                can_complete=end is None and (row.owner_id == me or acts),
                can_cancel=end is None and acts,
            )
        )
    views.sort(key=lambda v: (not v.is_open, not v.overdue, v.action.due_on, v.action.id))
    return views


def _audited(session: Session, views: list[ActionView], what: str) -> list[ActionView]:
    # The words may name a child: who read which actions is in the trail (R5).
    if views:
        audit.record(
            session,
            "list",
            "concern_action",
            after={"ids": [v.action.id for v in views], "of": what},
        )
    return views


def actions_of(
    session: Session, concern: Concern, *, now: datetime | None = None
) -> list[ActionView]:
    """The concern's actions, open and overdue first (for one who reads the concern)."""
    rows = session.scalars(
        select(ConcernAction)
        .where(ConcernAction.concern_id == concern.id)
        .order_by(ConcernAction.id)
    )
    return _audited(session, _views(session, rows, now=now), f"concern {concern.id}")


def my_actions(session: Session, *, now: datetime | None = None) -> list[ActionView]:
    """The actor's own actions still to do, overdue first."""
    require(session, Permission.VIEW_CONCERNS, "see your safeguarding actions")
    actor = current_actor(session)
    if actor is None or actor.person_id is None:
        return []
    ended = select(ConcernActionEnd.action_id)
    rows = session.scalars(
        select(ConcernAction).where(
            ConcernAction.owner_id == actor.person_id, ConcernAction.id.not_in(ended)
        )
    )
    return _audited(session, _views(session, rows, now=now), "mine")


def desk_actions(session: Session, *, now: datetime | None = None) -> list[ActionView]:
    """Open actions on the concerns the actor acts on (the DSL's desk), overdue first."""
    require(session, Permission.ACT_ON_CONCERNS, "see the actions on concerns")
    ended = select(ConcernActionEnd.action_id)
    rows = session.scalars(select(ConcernAction).where(ConcernAction.id.not_in(ended)))
    views = [v for v in _views(session, rows, now=now) if v.can_cancel]
    return _audited(session, views, "desk")
