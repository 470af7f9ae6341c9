"""The filter's pages for staff: what it does and for whom, and "would this site be blocked?".

``/filtering`` shows the lists, who gets which policy, the school's own block and allow
entries and the networks mapped to groups; the technician (and whoever may manage the
lists) changes the last three there, each change with a reason for the change log
(002 §7.3, 003 §7.3.1). ``/filtering/check`` asks the filter what it would decide for a
site, for a person, a policy or an unknown device, and shows the sentence a teacher reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety import audit
from esafety.directory.model import Group, Person
from esafety.directory.years import KeyStage, YearGroup
from esafety.errors import InvalidInput, NotFound
from esafety.filtering import asking, service
from esafety.filtering.categories import category_of, info
from esafety.filtering.custom_policies import all_policies
from esafety.filtering.engine_cache import engines_for
from esafety.filtering.model import (
    EntryAction,
    PolicyAssignment,
    SchoolFilterEntry,
    SubnetMapping,
    TargetKind,
)
from esafety.filtering.store import ListStore
from esafety.security.roles import Permission, Role
from esafety.web.deps import Caller, SchoolSession, installation, require
from esafety.web.pages import render

__all__ = ["router"]

router = APIRouter()

DONE = {
    "entry-added": "The entry was added; the filter uses it within a minute.",
    "entry-removed": "The entry was removed.",
    "assigned": "The policy was assigned.",
    "assignment-removed": "The assignment was removed.",
    "subnet-added": "The network was mapped.",
    "subnet-removed": "The network mapping was removed.",
}

#: How each kind of target is written on the page.
TARGET_WORDS = {
    TargetKind.PERSON: "Person",
    TargetKind.GROUP: "Class or group",
    TargetKind.YEAR: "Year group",
    TargetKind.KEY_STAGE: "Key stage",
    TargetKind.ROLE: "Role",
}


@dataclass(frozen=True)
class AssignmentRow:
    id: int
    kind: str
    target: str
    policy_id: str


def _redirect(done: str) -> RedirectResponse:
    return RedirectResponse(f"/filtering?{urlencode({'done': done})}", status_code=303)


def _target_label(session: Session, row: PolicyAssignment) -> str:
    """The target as a person reads it (ids become names)."""
    if row.target_kind is TargetKind.PERSON:
        person = session.scalars(select(Person).where(Person.id == int(row.target))).first()
        return person.display_name if person else f"person #{row.target}"
    if row.target_kind is TargetKind.GROUP:
        group = session.scalars(select(Group).where(Group.id == int(row.target))).first()
        return group.name if group else f"group #{row.target}"
    if row.target_kind is TargetKind.YEAR:
        return YearGroup(row.target).label
    if row.target_kind is TargetKind.KEY_STAGE:
        return KeyStage(row.target).label
    return Role(row.target).label


def _assignments(session: Session) -> list[AssignmentRow]:
    order = list(TargetKind)
    rows = sorted(
        session.scalars(select(PolicyAssignment)),
        key=lambda r: (order.index(r.target_kind), r.target),
    )
    return [
        AssignmentRow(r.id, TARGET_WORDS[r.target_kind], _target_label(session, r), r.policy_id)
        for r in rows
    ]


def _subnets(session: Session) -> list[tuple[SubnetMapping, str]]:
    shown = []
    for row in session.scalars(select(SubnetMapping).order_by(SubnetMapping.network)):
        if row.group_id is not None:
            group = session.scalars(select(Group).where(Group.id == row.group_id)).first()
            target = f"members of {group.name}" if group else "a removed group"
        else:
            target = f"policy {row.policy_id}"
        shown.append((row, target))
    return shown


def _overview(
    request: Request,
    caller: Caller,
    session: Session,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context: dict[str, Any] = {
        "lists": service.list_lists(session),
        "policies": all_policies(session),
        "assignments": _assignments(session),
        "entries": session.scalars(
            select(SchoolFilterEntry).order_by(SchoolFilterEntry.target)
        ).all(),
        "subnets": _subnets(session),
        "groups": session.scalars(
            select(Group).where(Group.archived_on.is_(None)).order_by(Group.name)
        ).all(),
        "target_kinds": TARGET_WORDS,
        "flash": DONE.get(request.query_params.get("done", "")),
        "flash_kind": "good",
        "error": error,
        "form": form or {},
        "can_manage": caller.can(Permission.MANAGE_FILTER_LISTS),
        "category_name": lambda text: info(category_of(text)).name,
    }
    return render(
        request, "filtering/overview.html", context, caller=caller, status_code=status_code
    )


@router.get("/filtering", response_class=HTMLResponse)
def overview_page(
    request: Request,
    caller: Caller = Depends(require(Permission.VIEW_FILTERING)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    return _overview(request, caller, session)


def _why(session: Session, reason: str) -> None:
    """Every change on this page says why: the filter change log shows it (002 §7.3)."""
    if not reason.strip():
        raise InvalidInput("give a reason: the filter change log says why (002 §7.3)")
    audit.set_reason(session, reason.strip())


def _change(
    request: Request,
    caller: Caller,
    session: Session,
    form: dict[str, str],
    done: str,
    change: Any,
) -> Response:
    """Run ``change``; on a mistake show the page again saying what to fix, nothing stored.

    ``NotFound`` (another school's row, or one already removed) is left to the error
    handler: a 404, as on every other route with an id."""
    try:
        change()
    except InvalidInput as exc:
        session.rollback()
        return _overview(request, caller, session, error=str(exc), form=form, status_code=422)
    return _redirect(done)


@router.post("/filtering/entries", response_model=None)
def add_entry(
    request: Request,
    target: str = Form(""),
    action: str = Form(""),
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.MANAGE_FILTER_LISTS)),
    session: Session = SchoolSession,
) -> Response:
    def change() -> None:
        if action not in {a.value for a in EntryAction}:
            raise InvalidInput("choose whether to block or allow the site")
        if not target.strip():
            raise InvalidInput("site: give a name such as example.com or a web address")
        _why(session, reason)
        asking.add_school_entry(session, target, action, reason)

    form = {"entry_target": target, "entry_action": action, "entry_reason": reason}
    return _change(request, caller, session, form, "entry-added", change)


@router.post("/filtering/entries/{entry_id}/remove", response_model=None)
def remove_entry(
    request: Request,
    entry_id: int,
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.MANAGE_FILTER_LISTS)),
    session: Session = SchoolSession,
) -> Response:
    return _change(
        request,
        caller,
        session,
        {},
        "entry-removed",
        lambda: asking.remove_school_entry(session, entry_id, reason),
    )


@router.post("/filtering/assignments", response_model=None)
def assign(
    request: Request,
    policy_id: str = Form(""),
    kind: str = Form(""),
    target: str = Form(""),
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.MANAGE_FILTER_LISTS)),
    session: Session = SchoolSession,
) -> Response:
    def change() -> None:
        _why(session, reason)
        if kind not in {k.value for k in TargetKind}:
            raise InvalidInput(
                "choose who the policy is for: a person, group, year, key stage or role"
            )
        if not target.strip():
            raise InvalidInput(f"{TARGET_WORDS[TargetKind(kind)].lower()}: say which one")
        asking.assign_policy(session, policy_id, kind, target)

    form = {"assign_policy": policy_id, "assign_kind": kind, "assign_target": target}
    form["assign_reason"] = reason
    return _change(request, caller, session, form, "assigned", change)


@router.post("/filtering/assignments/{assignment_id}/remove", response_model=None)
def remove_assignment(
    request: Request,
    assignment_id: int,
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.MANAGE_FILTER_LISTS)),
    session: Session = SchoolSession,
) -> Response:
    return _change(
        request,
        caller,
        session,
        {},
        "assignment-removed",
        lambda: asking.remove_assignment(session, assignment_id, reason),
    )


@router.post("/filtering/subnets", response_model=None)
def add_subnet(
    request: Request,
    network: str = Form(""),
    group: str = Form(""),
    policy_id: str = Form(""),
    note: str = Form(""),
    caller: Caller = Depends(require(Permission.MANAGE_FILTER_LISTS)),
    session: Session = SchoolSession,
) -> Response:
    def change() -> None:
        if not note.strip():
            raise InvalidInput("say what the network is, e.g. 'KS1 iPads': the change log shows it")
        audit.set_reason(session, note.strip())
        asking.add_subnet(
            session,
            network,
            group=group.strip() or None,
            policy_id=policy_id.strip() or None,
            note=note.strip(),
        )

    form = {"subnet_network": network, "subnet_group": group, "subnet_policy": policy_id}
    form["subnet_note"] = note
    return _change(request, caller, session, form, "subnet-added", change)


@router.post("/filtering/subnets/{subnet_id}/remove", response_model=None)
def remove_subnet(
    request: Request,
    subnet_id: int,
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.MANAGE_FILTER_LISTS)),
    session: Session = SchoolSession,
) -> Response:
    return _change(
        request,
        caller,
        session,
        {},
        "subnet-removed",
        lambda: asking.remove_subnet(session, subnet_id, reason),
    )


@router.get("/filtering/check", response_class=HTMLResponse)
def check_page(
    request: Request,
    site: str = "",
    person: str = "",
    policy: str = "",
    caller: Caller = Depends(require(Permission.CHECK_FILTER)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    """Would the filter block this site, for whom, and why (the CLI's ``filter check``)."""
    result = error = None
    if site.strip():
        inst = installation(request)
        # Before this route's session reads anything: on SQLite a build reads in a
        # session of its own, which would wait for this one's lock.
        engine = engines_for(inst).engine(caller.school_id)
        try:
            result = service.check(
                session,
                ListStore(inst.data_dir),
                site,
                username=person.strip() or None,
                policy_id=policy.strip() or None,
                engine=engine,
            )
        except (InvalidInput, NotFound) as exc:
            error = str(exc)
    context = {
        "site": site,
        "person": person,
        "policy": policy,
        "policies": all_policies(session),
        "result": result,
        "error": error,
    }
    return render(
        request,
        "filtering/check.html",
        context,
        caller=caller,
        status_code=422 if error else 200,
    )
