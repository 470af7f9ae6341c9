"""The home page: what each role needs first, on one page.

A person with several roles sees the sections of each. Things that arrive in later
releases say so plainly, and are kept few.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from esafety.directory.model import (
    AccessGrant,
    Group,
    GroupMembership,
    ParentLink,
    Person,
    PersonKind,
    PupilFlag,
    School,
    TechnologyRestriction,
)
from esafety.security.roles import STAFF_ROLES, Permission, Role
from esafety.web.deps import Caller, SchoolSession, require
from esafety.web.pages import render, route_paths

__all__ = ["Item", "Section", "router", "sections_for"]

router = APIRouter()

_LEADS = frozenset({Role.DSL, Role.DEPUTY_DSL, Role.HEADTEACHER, Role.ONLINE_SAFETY_LEAD})
_GOVERNORS = frozenset({Role.GOVERNOR, Role.CHAIR_OF_GOVERNORS})


@dataclass(frozen=True)
class Item:
    text: str
    href: str | None = None


@dataclass
class Section:
    key: str
    title: str
    text: str = ""
    count: int | None = None
    count_label: str = ""
    items: list[Item] = field(default_factory=list)
    link: tuple[str, str] | None = None
    later: bool = False


@router.get("/", response_class=HTMLResponse)
def home(
    request: Request,
    caller: Caller = Depends(require(Permission.SIGNED_IN)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    sections = sections_for(caller, session, available=route_paths(request))
    person = session.get(Person, caller.person_id)
    first_name = person.first_name if person else caller.display_name
    role_labels = sorted(role.label for role in caller.roles)
    return render(
        request,
        "home.html",
        {"sections": sections, "first_name": first_name, "role_labels": role_labels},
        caller=caller,
    )


def sections_for(caller: Caller, session: Session, *, available: frozenset[str]) -> list[Section]:
    """The home page's sections for this caller, most urgent first."""
    roles = caller.roles

    def link(path: str, label: str) -> tuple[str, str] | None:
        return (path, label) if path in available else None

    sections: list[Section] = []
    notices = _notices(caller, session)
    if notices is not None:
        sections.append(notices)
    if Role.PUPIL in roles:
        sections.append(
            Section(
                "pupil",
                "Staying safe online",
                "If something online worries or upsets you, stop, and tell a trusted adult "
                "straight away. You will not be in trouble for telling.",
            )
        )
    if Role.PARENT in roles:
        sections.append(_children(caller, session))
    if roles & (STAFF_ROLES | {Role.VOLUNTEER}):
        sections.append(
            Section(
                "concern",
                "Record a concern",
                "Recording concerns in esafety arrives in a later release. Until then, "
                "tell your designated safeguarding lead straight away, as your school's "
                "policy says.",
                later=True,
            )
        )
    if caller.can(Permission.REQUEST_UNBLOCK) and "/filtering/requests/new" in available:
        sections.append(_unblocking(caller, session))
    if roles & _LEADS:
        sections.append(_safeguarding(caller, session))
    if caller.can(Permission.VIEW_FILTER_ALERTS):
        sections.append(_filter_alerts(session, link("/filtering/alerts", "See the alerts")))
    if roles & {Role.TEACHER, Role.TEACHING_ASSISTANT}:
        sections.append(_classes(caller, session, link("/people", "See people")))
    if caller.can(Permission.RESET_PUPIL_PASSWORDS) and caller.can(Permission.VIEW_DIRECTORY):
        sections.append(_signing_in(caller, link("/people", "Find them in People")))
    if caller.can(Permission.VIEW_TECHNOLOGY_RESTRICTIONS):
        sections.append(
            _no_technology(session, link("/technology-restrictions", "See the full list"))
        )
    if caller.can(Permission.VIEW_ACCESS_REGISTER):
        sections.append(_access_register(session, link("/access-register", "Open the register")))
    if roles & {Role.ADMIN, Role.OFFICE}:
        sections.append(_school_setup(caller, session, link("/people", "Manage people")))
    if roles & _GOVERNORS:
        sections.append(
            Section(
                "governors",
                "Governors' report",
                "The termly report on incidents, filtering and training arrives in a later "
                "release.",
                later=True,
            )
        )
        if caller.can(Permission.VIEW_FILTER_CHANGES):
            sections.append(
                Section(
                    "filter_changes",
                    "Filter change log",
                    "Every change to the school's web filter, who made it and why, and the "
                    "sites unblocked for lessons (002 §7.3).",
                    link=link("/filtering/changes", "Read the change log"),
                )
            )
    if not sections:
        sections.append(
            Section("welcome", "Welcome", "There is nothing for you to do here at the moment.")
        )
    return sections


def _notices(caller: Caller, session: Session) -> Section | None:
    """Unread notices (a filter exception's pre-warning, a decision), newest first."""
    from esafety.notices import unread

    rows = unread(session, caller.person_id)
    if not rows:
        return None
    return Section(
        "notices",
        "For you",
        items=[Item(row.text, row.link) for row in rows],
    )


def _unblocking(caller: Caller, session: Session) -> Section:
    from esafety.filtering.requests import request_lists

    section = Section(
        "unblock",
        "A blocked site for a lesson?",
        "Ask for it to be unblocked for your class, with the educational reason; it is "
        "blocked again by itself at the end.",
        link=("/filtering/requests/new", "Ask for a site"),
    )
    if caller.can(Permission.APPROVE_UNBLOCK):
        waiting = len(request_lists(session).waiting_for_me)
        if waiting:
            section.count, section.count_label = waiting, "requests waiting for your decision"
            section.link = ("/filtering/requests", "Decide")
    return section


def _filter_alerts(session: Session, more: tuple[str, str] | None) -> Section:
    """New alerts from the web filter (issue 4 §8): a count, so no alert is read here."""
    from esafety.filtering.alerts import new_alert_count

    count = new_alert_count(session)
    return Section(
        "filter_alerts",
        "Filter alerts",
        "Sites the filter blocked in categories that alert the DSL (extremism, self-harm, "
        "pornography...)."
        if count
        else "No new alerts from the web filter.",
        count=count,
        count_label="new alerts" if count != 1 else "new alert",
        link=more,
    )


def _children(caller: Caller, session: Session) -> Section:
    children = session.scalars(
        select(Person)
        .join(ParentLink, ParentLink.child_id == Person.id)
        .where(ParentLink.parent_id == caller.person_id, Person.left_on.is_(None))
        .order_by(Person.legal_first_name)
    ).all()
    items = [
        Item(c.display_name + (f" ({c.registration_group.name})" if c.registration_group else ""))
        for c in children
    ]
    return Section(
        "children",
        "Your children",
        "" if items else "No children are linked to your account yet; tell the school office.",
        items=items,
    )


def _safeguarding(caller: Caller, session: Session) -> Section:
    section = Section(
        "safeguarding",
        "Safeguarding overview",
        "Concerns, alerts and chronologies arrive in a later release.",
        later=True,
    )
    if caller.can(Permission.VIEW_PUPIL_FLAGS):
        # A count only: reading the flags themselves is audited, and not needed here.
        section.count = session.scalar(
            select(func.count(func.distinct(PupilFlag.person_id))).where(
                PupilFlag.removed_at.is_(None)
            )
        )
        section.count_label = "pupils with a vulnerability flag"
        section.later = False
    return section


def _classes(caller: Caller, session: Session, more: tuple[str, str] | None) -> Section:
    groups = session.scalars(
        select(Group)
        .join(GroupMembership, GroupMembership.group_id == Group.id)
        .where(
            GroupMembership.person_id == caller.person_id,
            GroupMembership.role == "teacher",
            Group.archived_on.is_(None),
        )
        .order_by(Group.name)
    ).all()
    items = []
    for group in groups:
        # Pupils are in a class by their registration group or by enrolment.
        enrolled = select(GroupMembership.person_id).where(GroupMembership.group_id == group.id)
        pupils = session.scalar(
            select(func.count())
            .select_from(Person)
            .where(
                Person.kind == PersonKind.PUPIL,
                Person.left_on.is_(None),
                or_(Person.registration_group_id == group.id, Person.id.in_(enrolled)),
            )
        )
        href = f"/people?group={group.id}" if more else None
        items.append(Item(f"{group.name}: {pupils} pupils", href))
    return Section(
        "classes",
        "Your classes",
        "" if items else "You are not linked to a class yet (classes come from the roster).",
        items=items,
        link=more,
    )


def _signing_in(caller: Caller, more: tuple[str, str] | None) -> Section:
    # Pupils and staff set their passwords at first sign-in or by a staff reset (issue 3).
    whom = "Someone" if caller.can(Permission.MANAGE_ACCOUNTS) else "A pupil"
    return Section(
        "signing_in",
        f"{whom} cannot sign in?",
        "Open their page and choose Reset password: you get a temporary password to read "
        "to them, and they choose their own when they sign in."
        + (" Unlock a locked-out account from the same page." if whom == "Someone" else ""),
        link=more,
    )


def _no_technology(session: Session, more: tuple[str, str] | None) -> Section:
    rows = session.execute(
        select(TechnologyRestriction, Person)
        .join(Person, Person.id == TechnologyRestriction.person_id)
        .where(TechnologyRestriction.ended_on.is_(None), Person.left_on.is_(None))
        .order_by(Person.legal_last_name, Person.legal_first_name)
    ).all()
    items = [
        Item(
            f"{pupil.display_name}"
            + (f" ({pupil.registration_group.name})" if pupil.registration_group else "")
            + f" · review {restriction.review_on.strftime('%d %b %Y')}"
        )
        for restriction, pupil in rows
    ]
    return Section(
        "no_technology",
        "Children who may not use technology",
        "Check this list before any lesson that uses computers, tablets or the internet."
        if items
        else "No child is on the list at the moment.",
        items=items,
        link=more,
    )


def _access_register(session: Session, more: tuple[str, str] | None) -> Section:
    active = session.scalar(
        select(func.count()).select_from(AccessGrant).where(AccessGrant.revoked_on.is_(None))
    )
    return Section(
        "access_register",
        "Access register",
        "Who has been given access to which system, Wi-Fi included (003 §7.2).",
        count=active,
        count_label="current grants",
        link=more,
    )


def _school_setup(caller: Caller, session: Session, more: tuple[str, str] | None) -> Section:
    school = session.get(School, caller.school_id)
    counts = dict(
        session.execute(
            select(Person.kind, func.count()).where(Person.left_on.is_(None)).group_by(Person.kind)
        ).all()
    )
    items = [
        Item(f"{counts.get(kind, 0)} {kind.value}s")
        for kind in (PersonKind.PUPIL, PersonKind.STAFF, PersonKind.PARENT, PersonKind.GOVERNOR)
    ]
    slug = school.slug if school else caller.school_slug
    return Section(
        "setup",
        "School set-up",
        f"Import the roster from your MIS with `esafety roster import FILE --school {slug}`. "
        "Reset a password, unlock an account or reset two-step sign-in after a lost phone "
        "from the person's page.",
        items=items,
        link=more,
    )
