"""Reading concerns: finding one, deciding who may read it, the audit of every read, and
breaking glass (issue 5 §3; STANDARDS R2, R5).

Every function acts as the session's actor. A concern the actor may not read is
:class:`NotFound` with the same words as one that does not exist, so that its existence
is not revealed. Every read, every refused read and every break-glass read is in the audit
trail, with the grounds (the role that reads it, "raised it", or the break-glass alert).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety import audit
from esafety.audit import Actor
from esafety.db import utcnow
from esafety.directory.model import PersonRole
from esafety.directory.service import require
from esafety.errors import InvalidInput, NotFound, PermissionDenied
from esafety.events import Event, publish_on_commit
from esafety.safeguarding.access import (
    Access,
    ConcernFacts,
    Linked,
    Reader,
    access,
    break_glass_problem,
)
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.kinds import IncidentKind
from esafety.safeguarding.model import BreakGlassRead, Concern, SafeguardingSettings
from esafety.security.roles import Permission

__all__ = [
    "BREAK_GLASS_MIN_WORDS",
    "ConcernBrokenInto",
    "Opened",
    "acknowledge_break_glass",
    "actor_name",
    "break_glass",
    "break_glass_alerts",
    "concern_access",
    "current_actor",
    "facts_of",
    "find_concern",
    "list_concerns",
    "online_safety_kinds",
    "open_concern",
    "reader_of",
    "require_grounds",
    "set_online_safety_kinds",
]

#: A break-glass reason is a sentence, not "x" (issue 5 §3 "a written reason").
BREAK_GLASS_MIN_WORDS = 4


@dataclass(frozen=True)
class ConcernBrokenInto(Event):
    """Someone read a concern by breaking glass: the DSL (and the concern's readers) are
    told (issue 5 §3). Carries no narrative and no child's name."""

    subject = "safeguarding.concern.break_glass"

    school_id: int
    concern_id: int
    alert_id: int
    by: str
    at: datetime


@dataclass(frozen=True)
class Opened:
    """A concern the actor may read, and on what grounds."""

    concern: Concern
    access: Access


def current_actor(session: Session) -> Actor | None:
    actor = session.info.get("actor")
    return actor if isinstance(actor, Actor) else None


def reader_of(session: Session) -> Reader:
    actor = current_actor(session)
    if actor is None:
        return Reader(None, frozenset())
    return Reader(actor.person_id, frozenset(actor.roles))


def actor_name(session: Session) -> str:
    actor = current_actor(session)
    return actor.name if actor is not None else "system:unknown"


# -- the school's setting -----------------------------------------------------------


def online_safety_kinds(session: Session) -> frozenset[str] | None:
    """The kinds the online safety lead reads; None means the catalogue's default."""
    row = session.scalars(select(SafeguardingSettings)).first()
    if row is None or row.online_safety_kinds is None:
        return None
    return frozenset(row.online_safety_kinds)


def set_online_safety_kinds(session: Session, kinds: Iterable[str], reason: str) -> frozenset[str]:
    """Choose the kinds of concern the online safety lead reads (issue 5 §3)."""
    require(
        session,
        Permission.MANAGE_SAFEGUARDING_SETTINGS,
        "choose which concerns the online safety lead reads",
    )
    chosen = frozenset(kind_info(k).id.value for k in kinds)
    if IncidentKind.STAFF_ALLEGATION.value in chosen:
        raise InvalidInput(
            "staff_allegation: allegations about staff are the headteacher's alone "
            "(KCSIE part 4); choose other kinds for the online safety lead"
        )
    if len(reason.split()) < 2:
        raise InvalidInput("say why the online safety lead's kinds are changing")
    audit.set_reason(session, reason.strip())
    row = session.scalars(select(SafeguardingSettings)).first()
    if row is None:
        row = SafeguardingSettings(updated_by=actor_name(session))
        session.add(row)
    row.online_safety_kinds = sorted(chosen)
    row.updated_at, row.updated_by = utcnow(), actor_name(session)
    session.flush()
    audit.set_reason(session, None)
    return chosen


# -- finding and deciding -----------------------------------------------------------


def _not_found(concern_id: int) -> NotFound:
    # The same words whether it does not exist or is not the actor's to read.
    return NotFound(f"no concern #{concern_id} that you can read")


def find_concern(session: Session, concern_id: int) -> Concern:
    """The concern (of the session's school), whoever may read it: for services only."""
    found = session.scalars(select(Concern).where(Concern.id == concern_id)).first()
    if found is None:
        raise _not_found(concern_id)
    return found


def facts_of(session: Session, concern: Concern) -> ConcernFacts:
    ids = [p.person_id for p in concern.linked if p.person_id is not None]
    roles: dict[int, set[str]] = {}
    if ids:
        for person_id, role in session.execute(
            select(PersonRole.person_id, PersonRole.role).where(PersonRole.person_id.in_(ids))
        ):
            roles.setdefault(person_id, set()).add(str(role))
    linked = tuple(
        Linked(p.person_id, p.part.value, frozenset(roles.get(p.person_id or -1, ())))
        for p in concern.linked
    )
    return ConcernFacts(kind_info(concern.current_kind), concern.raised_by_id, linked)


def concern_access(session: Session, concern: Concern) -> Access:
    return access(
        reader_of(session),
        facts_of(session, concern),
        online_safety_kinds=online_safety_kinds(session),
    )


def _refused(session: Session, action: str, concern_id: int, *, reason: str | None = None) -> None:
    """Audit a refused attempt and commit it now: the error that follows rolls the
    session back, and the attempt must stay in the trail (R2, R5)."""
    audit.record(session, action, "concern", concern_id, reason=reason)
    session.commit()


def open_concern(session: Session, concern_id: int) -> Opened:
    """The concern, narrative and all, for one allowed to read it; the read is audited.

    NotFound for everyone else; the refused attempt is audited and committed at once
    (with anything the session held before it).
    """
    require(session, Permission.VIEW_CONCERNS, "read concerns")
    concern = find_concern(session, concern_id)
    granted = concern_access(session, concern)
    if not granted.can_read:
        _refused(session, "read_refused", concern.id)
        raise _not_found(concern_id)
    audit.record(session, "read", "concern", concern.id, after={"grounds": granted.why})
    return Opened(concern, granted)


def list_concerns(session: Session, *, status: str | None = None) -> list[Opened]:
    """Every concern the actor may read, newest first; the listing is audited (one entry
    naming the concerns shown)."""
    require(session, Permission.VIEW_CONCERNS, "read concerns")
    query = select(Concern).order_by(Concern.recorded_at.desc(), Concern.id.desc())
    if status is not None:
        query = query.where(Concern.status == status)
    kinds = online_safety_kinds(session)
    reader = reader_of(session)
    shown = []
    for concern in session.scalars(query):
        granted = access(reader, facts_of(session, concern), online_safety_kinds=kinds)
        if granted.can_read:
            shown.append(Opened(concern, granted))
    audit.record(session, "list", "concern", after={"ids": [o.concern.id for o in shown]})
    return shown


# -- breaking glass -----------------------------------------------------------------


def break_glass(session: Session, concern_id: int, reason: str) -> Opened:
    """Read a concern one may not otherwise read, giving a written reason (issue 5 §3).

    Recorded as an alert for the DSL and the concern's readers, audited, and published
    (:class:`ConcernBrokenInto`) once committed. A person who can already read it just
    reads it.
    """
    require(session, Permission.BREAK_GLASS, "break glass to read a concern")
    concern = find_concern(session, concern_id)
    facts = facts_of(session, concern)
    reader = reader_of(session)
    granted = access(reader, facts, online_safety_kinds=online_safety_kinds(session))
    if granted.can_read:
        return open_concern(session, concern_id)
    problem = break_glass_problem(reader, facts)
    if problem is not None:
        # The same answer as for no concern at all: the subject of an allegation must not
        # learn of it by trying.
        _refused(session, "break_glass_refused", concern.id, reason=problem)
        raise _not_found(concern_id)
    why = " ".join(reason.split())
    if len(why.split()) < BREAK_GLASS_MIN_WORDS:
        raise InvalidInput(
            f"reason {reason.strip()!r}: say in a sentence why you need to read this concern "
            f"now (at least {BREAK_GLASS_MIN_WORDS} words); the DSL is told you read it"
        )
    actor = current_actor(session)
    alert = BreakGlassRead(
        concern_id=concern.id,
        person_id=reader.person_id,
        by=actor_name(session),
        reason=why,
        at=utcnow(),
    )
    session.add(alert)
    session.flush()
    audit.record(
        session,
        "read",
        "concern",
        concern.id,
        after={"grounds": "break glass", "alert": alert.id},
    )
    publish_on_commit(
        session,
        ConcernBrokenInto(
            school_id=concern.school_id,
            concern_id=concern.id,
            alert_id=alert.id,
            by=actor.name if actor else "system:unknown",
            at=alert.at,
        ),
    )
    return Opened(concern, Access(None))


def break_glass_alerts(
    session: Session, *, include_acknowledged: bool = False
) -> list[BreakGlassRead]:
    """Break-glass reads of concerns the actor reads by role, newest first."""
    require(session, Permission.ACT_ON_CONCERNS, "see break-glass alerts")
    query = select(BreakGlassRead).order_by(BreakGlassRead.at.desc(), BreakGlassRead.id.desc())
    if not include_acknowledged:
        query = query.where(BreakGlassRead.acknowledged_at.is_(None))
    found = []
    for alert in session.scalars(query):
        concern = find_concern(session, alert.concern_id)
        if concern_access(session, concern).can_act:
            found.append(alert)
    return found


def acknowledge_break_glass(session: Session, alert_id: int) -> BreakGlassRead:
    require(session, Permission.ACT_ON_CONCERNS, "acknowledge break-glass alerts")
    alert = session.scalars(select(BreakGlassRead).where(BreakGlassRead.id == alert_id)).first()
    if (
        alert is None
        or not concern_access(session, find_concern(session, alert.concern_id)).can_act
    ):
        raise NotFound(f"no break-glass alert #{alert_id} for you")
    if alert.acknowledged_at is None:
        alert.acknowledged_at, alert.acknowledged_by = utcnow(), actor_name(session)
        session.flush()
    return alert


def require_grounds(session: Session, concern: Concern, *, act: bool) -> Access:
    """The actor's access to ``concern`` for a change: NotFound when they may not read it,
    PermissionDenied when they read it but may not act on it (one who raised it)."""
    granted = concern_access(session, concern)
    if not granted.can_read:
        raise _not_found(concern.id)
    if act and not granted.can_act:
        raise PermissionDenied(
            f"concern #{concern.id}: only those who act on concerns of this kind (the DSL, "
            "deputies, or the headteacher for staff) can record steps, changes or closing; "
            "add a note instead"
        )
    return granted
