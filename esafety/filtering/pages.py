"""Pages for changes to the filter: unblock requests, the change log, the school's policies.

``/filtering/requests`` lists one's own requests, those waiting for one's decision, and
(for those who oversee the filter) the current exceptions; ``/filtering/requests/new``
asks for a site (the block page links here with ``?site=HOST``); a request's page shows
it and lets the approver record the risk assessment and decide. ``/filtering/changes`` is
the filter change log governors read (002 §7.3, 003 §7.3.1), also as CSV;
``/filtering/policies`` shows what each policy does.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety import audit, notices
from esafety.db import utcnow
from esafety.directory.model import GroupMembership, School
from esafety.errors import InvalidInput
from esafety.filtering import custom_policies, requests
from esafety.filtering.categories import Category, info
from esafety.filtering.changes import ChangeKind, change_log, changes_csv
from esafety.filtering.custom_policies import describe_time_rule
from esafety.filtering.engine_cache import engines_for
from esafety.filtering.requests_model import UnblockRequest, UnblockState
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, installation, require
from esafety.web.pages import render

__all__ = ["router"]

router = APIRouter()

DONE = {
    "asked": "Your request was sent. The approver has been told; you will see their "
    "decision on your home page.",
    "approved": "Approved. The pre-warning goes to the requester, the classes' teachers "
    "and the DSL before it starts, and it ends by itself.",
    "refused": "Refused. The requester has been told why.",
    "revoked": "Revoked: the filter is back to normal.",
    "withdrawn": "The request was withdrawn.",
    "settings": "The filter settings were saved.",
}


def _zone(session: Session, caller: Caller) -> ZoneInfo:
    school = session.get(School, caller.school_id)
    return ZoneInfo(school.timezone if school is not None else "Europe/London")


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%a %d %b %Y, %H:%M") if moment else ""


def _flash(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


# -- unblock requests ---------------------------------------------------------------------


@router.get("/filtering/requests", response_class=HTMLResponse)
def requests_page(
    request: Request,
    caller: Caller = Depends(require(Permission.VIEW_UNBLOCK_REQUESTS)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    lists = requests.request_lists(session)
    context = {
        "lists": lists,
        "settings": requests.filter_settings(session),
        "zone": _zone(session, caller),
        "local": _local,
        "labels": _labels,
        "can_ask": caller.can(Permission.REQUEST_UNBLOCK),
        "can_settle": caller.can(Permission.MANAGE_FILTER_SETTINGS),
        "can_read_changes": caller.can(Permission.VIEW_FILTER_CHANGES),
        "flash": _flash(request),
        "flash_kind": "good",
    }
    return render(request, "filtering/requests.html", context, caller=caller)


def _labels(row: UnblockRequest) -> str:
    return ", ".join(str(g.get("label")) for g in row.groups)


def _group_choices(session: Session, caller: Caller) -> tuple[list[Any], list[Any]]:
    """The caller's own classes first (what a teacher asks for), then everything else."""
    choices = requests.group_choices(session)
    mine = set(
        session.scalars(
            select(GroupMembership.group_id).where(
                GroupMembership.person_id == caller.person_id,
                GroupMembership.role == "teacher",
            )
        )
    )
    own = [c for c in choices if c.kind == "group" and c.target.isdigit() and int(c.target) in mine]
    return own, [c for c in choices if c not in own]


def _new_form(
    request: Request,
    caller: Caller,
    session: Session,
    form: dict[str, Any],
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    own, others = _group_choices(session, caller)
    context = {
        "form": form,
        "own_groups": own,
        "other_groups": others,
        "settings": requests.filter_settings(session),
        "error": error,
    }
    return render(
        request, "filtering/requests_new.html", context, caller=caller, status_code=status_code
    )


def _next_hour(zone: ZoneInfo) -> datetime:
    now = utcnow().astimezone(zone).replace(minute=0, second=0, microsecond=0)
    return now + timedelta(hours=1)


@router.get("/filtering/requests/new", response_class=HTMLResponse)
def new_request_page(
    request: Request,
    site: str = "",
    caller: Caller = Depends(require(Permission.REQUEST_UNBLOCK)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    start = _next_hour(_zone(session, caller))
    end = start + timedelta(hours=1)  # after 23:00 that is tomorrow
    form = {
        "site": site.strip()[:2000],
        "reason": "",
        "groups": [],
        "day": start.date().isoformat(),
        "start": start.strftime("%H:%M"),
        "end_day": end.date().isoformat(),
        "end": end.strftime("%H:%M"),
    }
    return _new_form(request, caller, session, form)


def _parse_moment(day: str, clock: str, what: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(day.strip()), time.fromisoformat(clock.strip()))
    except ValueError:
        raise InvalidInput(
            f"{what}: give a date and a time, such as 2025-03-12 and 13:30"
        ) from None


@router.post("/filtering/requests", response_model=None)
def ask(
    request: Request,
    site: str = Form(""),
    reason: str = Form(""),
    groups: list[str] = Form(default=[]),
    day: str = Form(""),
    start: str = Form(""),
    end_day: str = Form(""),
    end: str = Form(""),
    caller: Caller = Depends(require(Permission.REQUEST_UNBLOCK)),
    session: Session = SchoolSession,
) -> Response:
    form = {
        "site": site,
        "reason": reason,
        "groups": groups,
        "day": day,
        "start": start,
        "end_day": end_day or day,
        "end": end,
    }
    # Before this route's session reads anything (esafety.filtering.reports_web.report).
    engine = engines_for(installation(request)).engine(caller.school_id)
    try:
        starts = _parse_moment(day, start, "the start")
        ends = _parse_moment(end_day or day, end, "the end")
        row = requests.request_unblock(session, site, reason, groups, starts, ends, engine=engine)
    except InvalidInput as exc:
        session.rollback()
        return _new_form(request, caller, session, form, error=str(exc), status_code=422)
    return RedirectResponse(f"/filtering/requests/{row.id}?done=asked", status_code=303)


def _detail(
    request: Request,
    caller: Caller,
    session: Session,
    row: UnblockRequest,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    problem = requests.approval_problem(session, row, caller.actor)
    settings = requests.filter_settings(session)
    leads = {settings.approver_role.value, *(r.value for r in requests.FALLBACK_APPROVERS)}
    context = {
        "row": row,
        "zone": _zone(session, caller),
        "local": _local,
        "labels": _labels(row),
        "settings": settings,
        "states": UnblockState,
        "mine": row.requested_by_id == caller.person_id,
        "can_decide": row.state is UnblockState.REQUESTED
        and problem is None
        and caller.can(Permission.APPROVE_UNBLOCK),
        "why_not": problem if row.state is UnblockState.REQUESTED else None,
        "can_revoke": row.state.is_exception
        and caller.can(Permission.REQUEST_UNBLOCK)
        and (row.requested_by_id == caller.person_id or bool(leads & caller.actor.roles)),
        "can_withdraw": row.state is UnblockState.REQUESTED
        and row.requested_by_id == caller.person_id,
        "url_only": "/" in row.target,
        "warn_at": max(
            row.starts_at - timedelta(minutes=settings.warn_minutes), row.decided_at or utcnow()
        )
        if row.state is UnblockState.APPROVED and row.warned_at is None
        else None,
        "error": error,
        "form": form or {},
        "flash": _flash(request),
        "flash_kind": "good",
    }
    return render(
        request, "filtering/requests_detail.html", context, caller=caller, status_code=status_code
    )


@router.get("/filtering/requests/{request_id}", response_class=HTMLResponse)
def request_page(
    request: Request,
    request_id: int,
    caller: Caller = Depends(require(Permission.VIEW_UNBLOCK_REQUESTS)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    return _detail(request, caller, session, requests.get_request(session, request_id))


def _act(
    request: Request,
    caller: Caller,
    session: Session,
    request_id: int,
    done: str,
    form: dict[str, str],
    action: Any,
) -> Response:
    """Run ``action``; on a mistake show the request again, saying what to fix."""
    row = requests.get_request(session, request_id)  # 404 before anything else
    try:
        action()
    except InvalidInput as exc:
        session.rollback()
        row = requests.get_request(session, request_id)
        return _detail(request, caller, session, row, error=str(exc), form=form, status_code=422)
    return RedirectResponse(f"/filtering/requests/{row.id}?done={done}", status_code=303)


@router.post("/filtering/requests/{request_id}/approve", response_model=None)
def approve_request(
    request: Request,
    request_id: int,
    risk_assessment: str = Form(""),
    note: str = Form(""),
    caller: Caller = Depends(require(Permission.APPROVE_UNBLOCK)),
    session: Session = SchoolSession,
) -> Response:
    form = {"risk_assessment": risk_assessment, "note": note}
    return _act(
        request,
        caller,
        session,
        request_id,
        "approved",
        form,
        lambda: requests.approve(
            session, request_id, risk_assessment, note, settings=installation(request).settings
        ),
    )


@router.post("/filtering/requests/{request_id}/refuse", response_model=None)
def refuse_request(
    request: Request,
    request_id: int,
    risk_assessment: str = Form(""),
    note: str = Form(""),
    caller: Caller = Depends(require(Permission.APPROVE_UNBLOCK)),
    session: Session = SchoolSession,
) -> Response:
    form = {"risk_assessment": risk_assessment, "note": note}
    return _act(
        request,
        caller,
        session,
        request_id,
        "refused",
        form,
        lambda: requests.refuse(session, request_id, risk_assessment, note),
    )


@router.post("/filtering/requests/{request_id}/revoke", response_model=None)
def revoke_request(
    request: Request,
    request_id: int,
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.REQUEST_UNBLOCK)),
    session: Session = SchoolSession,
) -> Response:
    return _act(
        request,
        caller,
        session,
        request_id,
        "revoked",
        {"end_reason": reason},
        lambda: requests.revoke(session, request_id, reason),
    )


@router.post("/filtering/requests/{request_id}/withdraw", response_model=None)
def withdraw_request(
    request: Request,
    request_id: int,
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.REQUEST_UNBLOCK)),
    session: Session = SchoolSession,
) -> Response:
    return _act(
        request,
        caller,
        session,
        request_id,
        "withdrawn",
        {"end_reason": reason},
        lambda: requests.withdraw(session, request_id, reason),
    )


# -- the school's filter settings ---------------------------------------------------------


def _settings_page(
    request: Request,
    caller: Caller,
    session: Session,
    *,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    current = requests.filter_settings(session)
    context = {
        "current": current,
        "roles": sorted(requests.APPROVER_ROLES, key=lambda r: r.label),
        "form": form
        or {
            "approver_role": current.approver_role.value,
            "warn_minutes": current.warn_minutes,
            "max_days": current.max_days,
            "reason": "",
        },
        "error": error,
        "flash": _flash(request),
        "flash_kind": "good",
    }
    return render(
        request, "filtering/requests_settings.html", context, caller=caller, status_code=status_code
    )


@router.get("/filtering/unblock-settings", response_class=HTMLResponse)
def settings_page(
    request: Request,
    caller: Caller = Depends(require(Permission.MANAGE_FILTER_SETTINGS)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    return _settings_page(request, caller, session)


@router.post("/filtering/unblock-settings", response_model=None)
def save_settings(
    request: Request,
    approver_role: str = Form(""),
    warn_minutes: str = Form(""),
    max_days: str = Form(""),
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.MANAGE_FILTER_SETTINGS)),
    session: Session = SchoolSession,
) -> Response:
    form = {
        "approver_role": approver_role,
        "warn_minutes": warn_minutes,
        "max_days": max_days,
        "reason": reason,
    }
    try:
        if not warn_minutes.strip().isdigit() or not max_days.strip().isdigit():
            raise InvalidInput("give the warning in minutes and the longest exception in days")
        requests.change_settings(
            session,
            approver_role=approver_role,
            warn_minutes=int(warn_minutes),
            max_days=int(max_days),
            reason=reason,
        )
    except InvalidInput as exc:
        session.rollback()
        return _settings_page(request, caller, session, error=str(exc), form=form, status_code=422)
    return RedirectResponse("/filtering/unblock-settings?done=settings", status_code=303)


# -- the change log -----------------------------------------------------------------------


def _period(start: str, end: str, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    def day(text: str, what: str) -> date | None:
        if not text.strip():
            return None
        try:
            return date.fromisoformat(text.strip())
        except ValueError:
            raise InvalidInput(f"{what} {text!r}: give a date such as 2025-03-12") from None

    first, last = day(start, "from"), day(end, "to")
    since = datetime.combine(first, time(), zone) if first else None
    until = datetime.combine(last + timedelta(days=1), time(), zone) if last else None
    return since, until


def _changes(
    session: Session, caller: Caller, start: str, end: str, kind: str, limit: int = 500
) -> list[Any]:
    since, until = _period(start, end, _zone(session, caller))
    return change_log(session, since=since, until=until, kinds=[kind] if kind else (), limit=limit)


@router.get("/filtering/changes", response_class=HTMLResponse)
def changes_page(
    request: Request,
    start: str = "",
    end: str = "",
    kind: str = "",
    caller: Caller = Depends(require(Permission.VIEW_FILTER_CHANGES)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    error = None
    try:
        changes = _changes(session, caller, start, end, kind)
    except InvalidInput as exc:
        changes, error = [], str(exc)
    query = urlencode({k: v for k, v in {"start": start, "end": end, "kind": kind}.items() if v})
    context = {
        "changes": changes,
        "kinds": list(ChangeKind),
        "form": {"start": start, "end": end, "kind": kind},
        "zone": _zone(session, caller),
        "local": _local,
        "csv_url": "/filtering/changes.csv" + (f"?{query}" if query else ""),
        "error": error,
    }
    return render(
        request,
        "filtering/changes.html",
        context,
        caller=caller,
        status_code=422 if error else 200,
    )


@router.get("/filtering/changes.csv", response_model=None)
def changes_export(
    start: str = "",
    end: str = "",
    kind: str = "",
    caller: Caller = Depends(require(Permission.VIEW_FILTER_CHANGES)),
    session: Session = SchoolSession,
) -> Response:
    changes = _changes(session, caller, start, end, kind, limit=100_000)
    audit.record(
        session,
        "export",
        "filter_change_log",
        after={"start": start, "end": end, "kind": kind, "rows": len(changes)},
    )
    name = f"filter-changes-{utcnow():%Y%m%d}.csv"
    return Response(
        changes_csv(changes),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


# -- policies -----------------------------------------------------------------------------


def _category_names(categories: frozenset[Category]) -> list[str]:
    return sorted(info(c).name for c in categories)


@router.get("/filtering/policies", response_class=HTMLResponse)
def policies_page(
    request: Request,
    caller: Caller = Depends(require(Permission.VIEW_FILTERING)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    context = {
        "views": custom_policies.list_policies(session),
        "names": _category_names,
        "describe": describe_time_rule,
    }
    return render(request, "filtering/policies.html", context, caller=caller)


@router.get("/filtering/policies/{policy_id}", response_class=HTMLResponse)
def policy_page(
    request: Request,
    policy_id: str,
    caller: Caller = Depends(require(Permission.VIEW_FILTERING)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    view = custom_policies.get_policy(session, policy_id)
    everything = frozenset(Category)
    context = {
        "view": view,
        "names": _category_names,
        "open": _category_names(everything - view.policy.blocked),
        "describe": describe_time_rule,
        "can_manage": caller.can(Permission.MANAGE_FILTER_LISTS),
    }
    return render(request, "filtering/policies_detail.html", context, caller=caller)


# -- notices ------------------------------------------------------------------------------


@router.post("/notices/read", response_model=None)
def read_notices(
    caller: Caller = Depends(require(Permission.SIGNED_IN)),
    session: Session = SchoolSession,
) -> Response:
    notices.mark_read(session, caller.person_id)
    return RedirectResponse("/", status_code=303)
