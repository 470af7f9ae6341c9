"""Unblock requests: staff ask, the approver decides, the exception starts, warns and lapses.

The rules come from the seeds: a member of staff asks for a site for a lesson with an
educational reason (001 "auditable, with clear reasons"); the school's approver
(headteacher by default: 000 §5 "via head permission") records a risk assessment and
approves or refuses (002 §7.3, 003 §7.3.1); nobody approves their own request; the
requester, the groups' teachers and the DSL are warned before it starts (000 "with
pre-warning only"); and it lapses by itself at its end (000 "returned to high-level
security as soon as possible"). The exception is applied by the engine only for its
groups and only within its times (:class:`~esafety.filtering.policy.ApprovedException`),
so its start and end are exact whatever the scheduler does; the scheduled jobs change the
request's state, warn people, and tell the filters to build their engine again.

Every function takes ``now`` so that tests drive the clock; times without a zone are
the school's local time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety import audit, notices
from esafety.audit import Actor
from esafety.config import Settings
from esafety.db import utcnow
from esafety.directory.calendar import to_utc
from esafety.directory.model import Group, GroupKind, GroupMembership, Person, PersonRole, School
from esafety.directory.service import actor_of, require
from esafety.directory.years import KeyStage, YearGroup, key_stage_of
from esafety.errors import InvalidInput, NotFound, PermissionDenied
from esafety.filtering.blockwords import is_illegal
from esafety.filtering.changes import rules_changed
from esafety.filtering.decision import UNKNOWN_DEVICE, FilterEngine, decide
from esafety.filtering.hostnames import normalise_host
from esafety.filtering.policy import ApprovedException
from esafety.filtering.requests_model import SchoolFilterSettings, UnblockRequest, UnblockState
from esafety.filtering.urls import parse_url, url_key
from esafety.mail import Mail, addresses_of, link, mail_is_on, queue_mail
from esafety.scheduler import JobContext, ScheduledJob, handler, schedule
from esafety.security.roles import PERMISSIONS, Permission, Role, allowed

__all__ = [
    "APPROVER_ROLES",
    "FilterSettings",
    "GroupRef",
    "RequestLists",
    "approval_problem",
    "approve",
    "approved_exceptions",
    "change_settings",
    "exceptions_fingerprint",
    "filter_settings",
    "get_request",
    "group_choices",
    "refuse",
    "request_lists",
    "request_unblock",
    "revoke",
    "withdraw",
]

#: The roles a school may choose as its approver.
APPROVER_ROLES = PERMISSIONS[Permission.APPROVE_UNBLOCK]
#: They may approve a request made by someone who holds the approver role themself.
FALLBACK_APPROVERS = frozenset({Role.DSL, Role.HEADTEACHER})
#: A start a little in the past is "now" (the form took a minute to fill in).
START_GRACE = timedelta(minutes=5)
MIN_REASON_WORDS = 5
_ROLE_IDS = frozenset(r.value for r in Role)

WARN_JOB = "filtering.exception.warn"
START_JOB = "filtering.exception.start"
LAPSE_JOB = "filtering.exception.lapse"


# -- the school's settings ----------------------------------------------------------------


@dataclass(frozen=True)
class FilterSettings:
    approver_role: Role = Role.HEADTEACHER
    warn_minutes: int = 30
    max_days: int = 14


def filter_settings(session: Session) -> FilterSettings:
    row = session.scalars(select(SchoolFilterSettings)).first()
    if row is None:
        return FilterSettings()
    return FilterSettings(row.approver_role, row.warn_minutes, row.max_days)


def change_settings(
    session: Session,
    *,
    approver_role: Role | str,
    warn_minutes: int,
    max_days: int,
    reason: str,
) -> FilterSettings:
    """Choose who approves unblock requests, how early the warning goes, the longest one."""
    require(session, Permission.MANAGE_FILTER_SETTINGS, "change the school's filter settings")
    _school_id(session)
    try:
        role = Role(str(approver_role).strip())
    except ValueError:
        role = None
    if role not in APPROVER_ROLES:
        choices = ", ".join(sorted(r.value for r in APPROVER_ROLES))
        raise InvalidInput(f"approver {approver_role!r}: choose one of {choices}")
    if not 5 <= warn_minutes <= 24 * 60:
        raise InvalidInput(f"warning {warn_minutes} minutes before: give 5 to 1440 minutes")
    if not 1 <= max_days <= 60:
        raise InvalidInput(f"longest exception {max_days} days: give 1 to 60 days")
    why = _text(reason, "reason for the change", 2000)
    row = session.scalars(select(SchoolFilterSettings)).first()
    if row is None:
        row = SchoolFilterSettings()
        session.add(row)
    actor = actor_of(session)
    audit.set_reason(session, why)
    row.approver_role, row.warn_minutes, row.max_days = role, warn_minutes, max_days
    row.updated_at, row.updated_by = utcnow(), actor.name if actor else "system"
    session.flush()
    return filter_settings(session)


# -- who an exception is for --------------------------------------------------------------


@dataclass(frozen=True)
class GroupRef:
    """A group as policies are assigned: a class or group (by id), year, key stage, role."""

    kind: str
    target: str
    label: str

    @property
    def value(self) -> str:
        """How a form or the API names it: ``group:12``, ``year:year5``, ``key_stage:ks2``."""
        return f"{self.kind}:{self.target}"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "target": self.target, "label": self.label}


def _groups(session: Session) -> list[Group]:
    return list(
        session.scalars(
            select(Group)
            .where(
                Group.archived_on.is_(None),
                Group.kind.in_((GroupKind.CLASS, GroupKind.TEACHING, GroupKind.CUSTOM)),
            )
            .order_by(Group.name)
        )
    )


def group_choices(session: Session) -> list[GroupRef]:
    """Every class and group, every year and key stage, and staff roles, for a form."""
    groups = _groups(session)
    years = sorted(
        {p for p in session.scalars(select(Person.year_group).where(Person.left_on.is_(None))) if p}
        | {g.year_group for g in groups if g.year_group},
        key=lambda y: y.order,
    )
    stages = sorted({key_stage_of(y) for y in years}, key=lambda k: list(KeyStage).index(k))
    return [
        *(GroupRef("group", str(g.id), g.name) for g in groups),
        *(GroupRef("year", y.value, y.label) for y in years),
        *(GroupRef("key_stage", k.value, k.label) for k in stages),
        *(GroupRef("role", r.value, r.label) for r in (Role.TEACHER, Role.TEACHING_ASSISTANT)),
    ]


def resolve_group(session: Session, text: str) -> GroupRef:
    """Read ``group:12``, ``year:year5``, ``Year 5``, ``KS2``, a class name or a role."""
    cleaned = text.strip()
    kind, _, value = cleaned.partition(":")
    if value and kind in ("group", "year", "key_stage", "role"):
        return _resolve(session, kind, value.strip(), text)
    for group in _groups(session):
        if group.name.casefold() == cleaned.casefold():
            return GroupRef("group", str(group.id), group.name)
    for kind in ("year", "key_stage", "role"):
        try:
            return _resolve(session, kind, cleaned, text)
        except InvalidInput:
            continue
    raise InvalidInput(
        f"group {text!r}: name a class or group of this school, a year ('Year 5'), "
        "a key stage ('KS2') or a role ('teacher')"
    )


def _resolve(session: Session, kind: str, value: str, text: str) -> GroupRef:
    try:
        if kind == "group":
            group = next((g for g in _groups(session) if str(g.id) == value), None)
            if group is None:
                raise ValueError(value)
            return GroupRef("group", str(group.id), group.name)
        if kind == "year":
            year = YearGroup.parse(value)
            return GroupRef("year", year.value, year.label)
        if kind == "key_stage":
            stage = KeyStage(value.lower().replace(" ", ""))
            return GroupRef("key_stage", stage.value, stage.label)
        role = Role(value.lower())
        return GroupRef("role", role.value, role.label)
    except ValueError:
        raise InvalidInput(
            f"group {text!r}: this school has no such {kind.replace('_', ' ')}"
        ) from None


def _tokens(refs: Iterable[dict[str, str]], names: dict[str, str]) -> frozenset[str]:
    """What the engine matches against a person's groups (``asking.asker_for_person``):
    class and group names, year and key stage ids, role ids."""
    found = set()
    for ref in refs:
        if ref.get("kind") == "group":
            # A removed group matches nobody: its name is gone.
            found.add(names.get(ref.get("target", ""), f"removed group #{ref.get('target')}"))
        else:
            found.add(ref.get("target", ""))
    return frozenset(found)


# -- the exceptions the engine applies ----------------------------------------------------


def _current(session: Session) -> list[UnblockRequest]:
    if session.info.get("school_id") is None:
        return []
    return list(
        session.scalars(
            select(UnblockRequest)
            .where(UnblockRequest.state.in_((UnblockState.APPROVED, UnblockState.ACTIVE)))
            .order_by(UnblockRequest.id)
        )
    )


def approved_exceptions(session: Session) -> tuple[ApprovedException, ...]:
    """Approved exceptions not yet over, for the engine (it applies their times itself)."""
    rows = _current(session)
    names = {str(g.id): g.name for g in session.scalars(select(Group))} if rows else {}
    return tuple(
        ApprovedException(
            id=row.id,
            target=row.target,
            groups=_tokens(row.groups, names),
            starts=row.starts_at,
            ends=row.ends_at,
            reason=f"asked for {_labels(row)} by {row.requested_by}, approved by {row.decided_by}",
        )
        for row in rows
    )


def exceptions_fingerprint(session: Session) -> tuple[ApprovedException, ...]:
    """What changes when an exception is approved, revoked or lapses (for the DNS filter)."""
    return approved_exceptions(session)


def _labels(row: UnblockRequest) -> str:
    return ", ".join(str(g.get("label") or g.get("target")) for g in row.groups) or "nobody"


# -- asking -------------------------------------------------------------------------------


def _school_id(session: Session) -> int:
    value = session.info.get("school_id")
    if value is None:
        raise InvalidInput("unblock requests belong to a school: give --school SLUG")
    return int(value)


def _zone(session: Session) -> ZoneInfo:
    school = session.get(School, _school_id(session))
    return ZoneInfo(school.timezone if school is not None else "Europe/London")


def _text(value: str | None, what: str, limit: int) -> str:
    cleaned = " ".join((value or "").split())
    if not cleaned:
        raise InvalidInput(f"{what} is empty: write it in a sentence or two")
    if len(cleaned) > limit:
        raise InvalidInput(f"{what} is {len(cleaned)} characters long: use at most {limit}")
    return cleaned


def _sentences(value: str | None, what: str, example: str) -> str:
    """A reason in full sentences: a word or two tells the approver and governors nothing."""
    cleaned = _text(value, what, 2000)
    words = re.findall(r"[^\W\d_]{2,}", cleaned)
    if len(words) < MIN_REASON_WORDS:
        raise InvalidInput(
            f"{what} {cleaned!r} is too short: say in a full sentence {example} "
            "(001: requests are auditable, with clear reasons)"
        )
    return cleaned


def site_target(site: str) -> str:
    """A host (covering its subdomains) or, for an address with a path, a URL prefix."""
    text = site.strip()
    if not text:
        raise InvalidInput("site is empty: give its name, such as www.bbc.co.uk, or its address")
    try:
        if "/" in text or "\\" in text:
            parsed = parse_url(text)
            key, host = url_key(parsed), parsed.host.name
            return host if key in (host, f"{host}/") else key
        return normalise_host(text)
    except InvalidInput as error:
        raise InvalidInput(f"site: {error}; write a name such as www.bbc.co.uk") from None


def request_unblock(
    session: Session,
    site: str,
    reason: str,
    groups: Iterable[str],
    starts: datetime,
    ends: datetime,
    *,
    now: datetime | None = None,
    engine: FilterEngine | None = None,
) -> UnblockRequest:
    """A member of staff asks for ``site`` for ``groups`` from ``starts`` to ``ends``.

    Nothing is stored unless everything is right; each mistake is named with its fix.
    With the school's ``engine``, a site an illegal-content list names is refused: no
    approval could lift it, so the request would only mislead.
    """
    require(session, Permission.REQUEST_UNBLOCK, "ask for a site to be unblocked")
    _school_id(session)
    actor = actor_of(session)
    if actor is None or actor.person_id is None:
        raise InvalidInput("an unblock request is made by a member of staff: sign in to ask")
    at = now or utcnow()
    target = site_target(site)
    if engine is not None and is_illegal(engine, decide(engine, UNKNOWN_DEVICE, site)):
        # The list is not named (the block page does not name it either).
        raise InvalidInput(
            f"{target} is on an illegal-content list, which nothing can unblock: it cannot "
            "be requested. If you think it is listed by mistake, tell the DSL."
        )
    why = _sentences(
        reason,
        "educational reason",
        "what the pupils will use the site for, in which lesson, and why this site",
    )
    refs: dict[str, GroupRef] = {}
    for text in groups:
        if text.strip():
            ref = resolve_group(session, text)
            refs.setdefault(ref.value, ref)
    if not refs:
        raise InvalidInput("groups: choose at least one class, year group or key stage")
    begin, end = to_utc(starts, _zone(session)), to_utc(ends, _zone(session))
    settings = filter_settings(session)
    if begin < at - START_GRACE:
        raise InvalidInput(
            f"the start, {_local(begin, _zone(session))}, is in the past: choose a time from now on"
        )
    if end <= begin:
        raise InvalidInput("the end must be after the start: check the times")
    if end - begin > timedelta(days=settings.max_days):
        raise InvalidInput(
            f"an exception lasts at most {settings.max_days} days (the school's setting): "
            "ask again for the next lessons when they come"
        )
    person = session.scalars(select(Person).where(Person.id == actor.person_id)).first()
    row = UnblockRequest(
        target=target,
        site=site.strip()[:2000],
        reason=why,
        groups=[ref.as_dict() for ref in refs.values()],
        starts_at=max(begin, at),
        ends_at=end,
        state=UnblockState.REQUESTED,
        requested_by_id=actor.person_id,
        requested_by=person.display_name if person else actor.name,
        requested_at=at,
    )
    session.add(row)
    session.flush()
    notices.notify(
        session,
        _approvers(session, row),
        f"{row.requested_by} asks for {row.target} to be unblocked for {_labels(row)} "
        f"from {_local(row.starts_at, _zone(session))}: please decide.",
        link=f"/filtering/requests/{row.id}",
        key=f"unblock:{row.id}:asked",
        now=at,
    )
    return row


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%a %d %b %Y %H:%M")


# -- who may decide -----------------------------------------------------------------------


def _roles_of(session: Session, person_id: int | None) -> frozenset[str]:
    if person_id is None:
        return frozenset()
    return frozenset(
        str(r.value)
        for r in session.scalars(select(PersonRole.role).where(PersonRole.person_id == person_id))
    )


def approval_problem(session: Session, row: UnblockRequest, actor: Actor | None) -> str | None:
    """Why ``actor`` may not approve or refuse ``row``, or None if they may."""
    if actor is None or actor.person_id is None:
        return "a request is decided by a person: give --by USERNAME on the command line"
    approver = filter_settings(session).approver_role
    if actor.person_id == row.requested_by_id:
        return (
            "nobody approves their own request: another "
            f"{approver.label.lower()}, the headteacher or the DSL must decide it"
        )
    if approver.value in actor.roles:
        return None
    if approver.value in _roles_of(session, row.requested_by_id) and any(
        r.value in actor.roles for r in FALLBACK_APPROVERS
    ):
        return None  # the requester is the approver: another lead decides
    held = ", ".join(sorted(Role(r).label for r in actor.roles if r in _ROLE_IDS))
    return (
        f"unblock requests are approved by the {approver.label.lower()} (the school's "
        f"setting), and you are {held or 'not one'}"
    )


def _approvers(session: Session, row: UnblockRequest) -> list[int]:
    """Who is asked to decide: holders of the approver role but the requester."""
    approver = filter_settings(session).approver_role
    wanted = {approver}
    if approver.value in _roles_of(session, row.requested_by_id):
        wanted |= FALLBACK_APPROVERS
    return [p for p in _holders(session, wanted) if p != row.requested_by_id]


def _holders(session: Session, roles: Iterable[Role]) -> list[int]:
    return list(
        session.scalars(
            select(PersonRole.person_id)
            .join(Person, Person.id == PersonRole.person_id)
            .where(PersonRole.role.in_(list(roles)), Person.left_on.is_(None))
            .distinct()
        )
    )


def get_request(session: Session, request_id: int) -> UnblockRequest:
    """One request, if the session's person may see it (the requester, an approver, or
    someone who reads the filter change log)."""
    require(session, Permission.VIEW_UNBLOCK_REQUESTS, "see unblock requests")
    row = session.scalars(select(UnblockRequest).where(UnblockRequest.id == request_id)).first()
    if row is None:
        raise NotFound(f"no unblock request #{request_id} in this school")
    actor = actor_of(session)
    if actor is not None and actor.person_id is not None:
        mine = actor.person_id == row.requested_by_id
        overseer = allowed(actor.roles, Permission.VIEW_FILTER_CHANGES)
        if not (mine or overseer or approval_problem(session, row, actor) is None):
            raise PermissionDenied(
                f"you cannot see unblock request #{request_id}: it is another member of "
                "staff's; the approver, the DSL and governors can"
            )
    return row


# -- deciding -----------------------------------------------------------------------------


def _decidable(session: Session, request_id: int, at: datetime) -> UnblockRequest:
    row = get_request(session, request_id)
    problem = approval_problem(session, row, actor_of(session))
    if problem is not None:
        raise PermissionDenied(f"you cannot decide unblock request #{request_id}: {problem}")
    if row.state is not UnblockState.REQUESTED:
        raise InvalidInput(
            f"unblock request #{request_id} is already {row.state.label.lower()}: "
            "only a waiting request can be approved or refused"
        )
    return row


def _decider(session: Session) -> tuple[int | None, str]:
    actor = actor_of(session)
    if actor is None:
        return None, "system"
    person = session.scalars(select(Person).where(Person.id == actor.person_id)).first()
    return actor.person_id, person.display_name if person else actor.name


def approve(
    session: Session,
    request_id: int,
    risk_assessment: str,
    note: str = "",
    *,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> UnblockRequest:
    """Approve with a risk assessment; the exception starts, warns and lapses on time.

    ``settings`` (the installation's) let a warning due at once go by e-mail too."""
    require(session, Permission.APPROVE_UNBLOCK, "approve unblock requests")
    at = now or utcnow()
    row = _decidable(session, request_id, at)
    risk = _sentences(
        risk_assessment,
        "risk assessment",
        "what you checked on the site and how the lesson keeps pupils safe",
    )
    if row.ends_at <= at:
        raise InvalidInput(
            f"request #{request_id} asked for a time that is over: the teacher can ask again"
        )
    audit.set_reason(
        session, f"Risk assessment: {risk}" + (f" Note: {note.strip()}" if note.strip() else "")
    )
    row.decided_by_id, row.decided_by = _decider(session)
    row.state, row.risk_assessment = UnblockState.APPROVED, risk
    row.decision_note, row.decided_at = note.strip() or None, at
    session.flush()
    school_settings = filter_settings(session)
    warn_at = row.starts_at - timedelta(minutes=school_settings.warn_minutes)
    school_id = _school_id(session)
    if warn_at <= at:
        _warn(session, row, at, settings)  # sooner than the setting: it goes at approval
    else:
        schedule(
            session,
            WARN_JOB,
            warn_at,
            {"request": row.id},
            school_id=school_id,
            key=_key(row, "warn"),
        )
    schedule(
        session,
        START_JOB,
        max(row.starts_at, at),
        {"request": row.id},
        school_id=school_id,
        key=_key(row, "start"),
    )
    schedule(
        session,
        LAPSE_JOB,
        row.ends_at,
        {"request": row.id},
        school_id=school_id,
        key=_key(row, "lapse"),
    )
    notices.notify(
        session,
        [row.requested_by_id] if row.requested_by_id else [],
        f"Your request #{row.id} for {row.target} was approved by {row.decided_by}: "
        f"{_local(row.starts_at, _zone(session))} to {_local(row.ends_at, _zone(session))}.",
        link=f"/filtering/requests/{row.id}",
        key=f"unblock:{row.id}:decided",
        now=at,
    )
    rules_changed(session)
    return row


def refuse(
    session: Session,
    request_id: int,
    risk_assessment: str,
    reason: str,
    *,
    now: datetime | None = None,
) -> UnblockRequest:
    """Refuse with the risk assessment and a reason the requester reads."""
    require(session, Permission.APPROVE_UNBLOCK, "refuse unblock requests")
    at = now or utcnow()
    row = _decidable(session, request_id, at)
    risk = _text(risk_assessment, "risk assessment", 4000)
    why = _text(reason, "reason for refusing", 2000)
    audit.set_reason(session, f"{why} (risk assessment: {risk})")
    row.decided_by_id, row.decided_by = _decider(session)
    row.state, row.risk_assessment = UnblockState.REFUSED, risk
    row.decision_note, row.decided_at = why, at
    session.flush()
    notices.notify(
        session,
        [row.requested_by_id] if row.requested_by_id else [],
        f"Your request #{row.id} for {row.target} was refused by {row.decided_by}: {why}",
        link=f"/filtering/requests/{row.id}",
        key=f"unblock:{row.id}:decided",
        now=at,
    )
    return row


def _key(row: UnblockRequest, what: str) -> str:
    return f"unblock:{row.id}:{what}"


def _end(
    session: Session, row: UnblockRequest, state: UnblockState, reason: str, at: datetime
) -> None:
    _, by = _decider(session)
    audit.set_reason(session, reason)
    row.state, row.ended_at, row.ended_by, row.end_reason = state, at, by, reason
    for job in session.scalars(
        select(ScheduledJob).where(
            ScheduledJob.key.in_([_key(row, w) for w in ("warn", "start", "lapse")]),
            ScheduledJob.done_at.is_(None),
        )
    ):
        job.done_at = at  # nothing left for them to do
    session.flush()


def withdraw(
    session: Session, request_id: int, reason: str, *, now: datetime | None = None
) -> UnblockRequest:
    """The requester takes back a request that is still waiting."""
    require(session, Permission.REQUEST_UNBLOCK, "withdraw unblock requests")
    row = get_request(session, request_id)
    actor = actor_of(session)
    if actor is not None and actor.person_id is not None and actor.person_id != row.requested_by_id:
        raise PermissionDenied(f"only the person who asked can withdraw request #{request_id}")
    if row.state is not UnblockState.REQUESTED:
        raise InvalidInput(
            f"request #{request_id} is {row.state.label.lower()}: only a waiting request is "
            "withdrawn (revoke an approved one)"
        )
    _end(session, row, UnblockState.WITHDRAWN, _text(reason, "reason", 2000), now or utcnow())
    return row


def revoke(
    session: Session, request_id: int, reason: str, *, now: datetime | None = None
) -> UnblockRequest:
    """End an approved exception early: the filter is back to normal at once."""
    require(session, Permission.REQUEST_UNBLOCK, "revoke exceptions")
    at = now or utcnow()
    row = get_request(session, request_id)
    actor = actor_of(session)
    if actor is not None and actor.person_id is not None:
        approver = filter_settings(session).approver_role
        leads = {approver.value, *(r.value for r in FALLBACK_APPROVERS)}
        if actor.person_id != row.requested_by_id and not leads & actor.roles:
            raise PermissionDenied(
                f"you cannot revoke exception #{request_id}: the person who asked, the "
                f"{approver.label.lower()}, the headteacher or the DSL can"
            )
    if not row.state.is_exception:
        raise InvalidInput(
            f"request #{request_id} is {row.state.label.lower()}: only an approved exception "
            "is revoked"
        )
    _end(session, row, UnblockState.REVOKED, _text(reason, "reason for revoking", 2000), at)
    if actor is None or actor.person_id != row.requested_by_id:
        notices.notify(
            session,
            [row.requested_by_id] if row.requested_by_id else [],
            f"Exception #{row.id} for {row.target} was revoked by {row.ended_by}: {row.end_reason}",
            link=f"/filtering/requests/{row.id}",
            key=f"unblock:{row.id}:ended",
            now=at,
        )
    rules_changed(session)
    return row


# -- lists --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestLists:
    mine: list[UnblockRequest]
    waiting_for_me: list[UnblockRequest]
    #: Approved and not over, for those who oversee the filter (empty for others).
    current: list[UnblockRequest]
    #: Every request lately, for those who oversee the filter.
    recent: list[UnblockRequest]


def request_lists(session: Session, *, recent: int = 50) -> RequestLists:
    require(session, Permission.VIEW_UNBLOCK_REQUESTS, "see unblock requests")
    actor = actor_of(session)
    rows = list(
        session.scalars(select(UnblockRequest).order_by(UnblockRequest.id.desc()).limit(500))
    )
    person = actor.person_id if actor is not None else None
    overseer = (
        actor is None or person is None or allowed(actor.roles, Permission.VIEW_FILTER_CHANGES)
    )
    return RequestLists(
        mine=[r for r in rows if person is not None and r.requested_by_id == person],
        waiting_for_me=[
            r
            for r in rows
            if r.state is UnblockState.REQUESTED and approval_problem(session, r, actor) is None
        ],
        current=[r for r in rows if r.state.is_exception] if overseer else [],
        recent=rows[:recent] if overseer else [],
    )


# -- on time: the scheduled jobs ----------------------------------------------------------


def _teachers(session: Session, refs: Iterable[dict[str, str]]) -> set[int]:
    """The teachers of the classes an exception is for (years and key stages: their classes)."""
    group_ids: set[int] = set()
    groups = _groups(session)
    for ref in refs:
        kind, target = ref.get("kind"), ref.get("target", "")
        if kind == "group" and target.isdigit():
            group_ids.add(int(target))
        elif kind == "year":
            group_ids |= {g.id for g in groups if g.year_group and g.year_group.value == target}
        elif kind == "key_stage":
            group_ids |= {
                g.id
                for g in groups
                if (g.key_stage and g.key_stage.value == target)
                or (g.year_group and key_stage_of(g.year_group).value == target)
            }
    if not group_ids:
        return set()
    return set(
        session.scalars(
            select(GroupMembership.person_id).where(
                GroupMembership.group_id.in_(group_ids), GroupMembership.role == "teacher"
            )
        )
    )


def _warned(session: Session, row: UnblockRequest) -> set[int]:
    """Who is pre-warned (000 §5): the requester, the groups' teachers and the DSL."""
    people = {*_teachers(session, row.groups), *_holders(session, [Role.DSL])}
    if row.requested_by_id is not None:
        people.add(row.requested_by_id)
    return people


def _warning(row: UnblockRequest, zone: ZoneInfo) -> str:
    return (
        f"Filter exception #{row.id}: {row.target} will be unblocked for {_labels(row)} from "
        f"{_local(row.starts_at, zone)} to {_local(row.ends_at, zone)}, asked for by "
        f"{row.requested_by} and approved by {row.decided_by}. Supervise its use; the filter "
        "returns to normal by itself at the end."
    )


def _warn(session: Session, row: UnblockRequest, at: datetime, settings: Settings | None) -> None:
    """The pre-warning (000 §5): on the home page, and by e-mail to those with an address
    when ``settings`` are given and set an SMTP server."""
    text = _warning(row, _zone(session))
    people = _warned(session, row)
    notices.notify(
        session,
        people,
        text,
        link=f"/filtering/requests/{row.id}",
        key=f"unblock:{row.id}:warned",
        now=at,
    )
    if settings is not None and mail_is_on(settings):
        page = link(settings, f"/filtering/requests/{row.id}")
        subject = f"Filter exception #{row.id}: {row.target} unblocked for {_labels(row)}"
        for person_id, address in sorted(addresses_of(session, people).items()):
            queue_mail(
                session,
                settings,
                Mail(address, subject, f"{text}\n\nThe request and its risk assessment: {page}\n"),
                key=f"unblock:{row.id}:warned:{person_id}",
            )
    audit.set_reason(session, "000 §5: filtering is removed with pre-warning only")
    row.warned_at = at
    session.flush()


def _job_request(ctx: JobContext) -> UnblockRequest | None:
    request_id = int(ctx.payload.get("request", 0))
    return ctx.session.scalars(
        select(UnblockRequest).where(UnblockRequest.id == request_id)
    ).first()


@handler(WARN_JOB)
def _warn_job(ctx: JobContext) -> None:
    row = _job_request(ctx)
    if row is not None and row.state.is_exception and row.warned_at is None:
        _warn(ctx.session, row, ctx.now, ctx.settings)


@handler(START_JOB)
def _start_job(ctx: JobContext) -> None:
    row = _job_request(ctx)
    if row is None or row.state is not UnblockState.APPROVED or ctx.now >= row.ends_at:
        return  # revoked, or over already (the lapse job ends it)
    if row.warned_at is None:
        _warn(ctx.session, row, ctx.now, ctx.settings)  # never start without the warning
    audit.set_reason(ctx.session, "its approved time began")
    row.state, row.started_at = UnblockState.ACTIVE, ctx.now
    ctx.session.flush()
    rules_changed(ctx.session)


@handler(LAPSE_JOB)
def _lapse_job(ctx: JobContext) -> None:
    row = _job_request(ctx)
    if row is None or not row.state.is_exception:
        return
    reason = "its approved time ended: back to the normal filter (000 §5)"
    audit.set_reason(ctx.session, reason)
    row.state, row.ended_at = UnblockState.LAPSED, ctx.now
    row.ended_by, row.end_reason = "esafety, on time", reason
    notices.notify(
        ctx.session,
        [row.requested_by_id] if row.requested_by_id else [],
        f"Exception #{row.id} for {row.target} has ended; the filter is back to normal.",
        link=f"/filtering/requests/{row.id}",
        key=f"unblock:{row.id}:ended",
        now=ctx.now,
    )
    ctx.session.flush()
    rules_changed(ctx.session)
