"""Reports of sites on esafety's own pages: staff report a site; the technician, the online
safety lead, the DSL and deputies read the reports, open first, and resolve them.

The block page's buttons make reports too (:mod:`esafety.filtering.blockpage`); both end
in :mod:`esafety.filtering.reports`.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.directory.model import Person
from esafety.errors import InvalidInput
from esafety.filtering import asking, reports
from esafety.filtering.blockwords import is_illegal
from esafety.filtering.categories import category_of, info
from esafety.filtering.decision import UNKNOWN_DEVICE, Decision, FilterEngine
from esafety.filtering.engine_cache import engines_for
from esafety.filtering.policy import built_in_policies
from esafety.filtering.reports_model import ReportKind, SiteReport
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, client_address, installation, require
from esafety.web.pages import render

__all__ = ["router"]

router = APIRouter()

DONE = {
    "resolved": "The report was resolved; your note is kept with it.",
    "reported": "Thank you: your report has gone to the IT technician and the DSL.",
}


def _reporters(session: Session, rows: list[SiteReport]) -> dict[int, str]:
    ids = {row.reporter_id for row in rows if row.reporter_id is not None}
    ids |= {row.resolved_by_id for row in rows if row.resolved_by_id is not None}
    if not ids:
        return {}
    people = session.scalars(select(Person).where(Person.id.in_(ids)))
    return {person.id: person.display_name for person in people}


def _category_names(row: SiteReport) -> str:
    names = []
    for text in row.categories:
        try:
            names.append(info(category_of(text)).name)
        except InvalidInput:
            names.append(text)
    return ", ".join(names)


def _policy_name(policy_id: str) -> str:
    policy = built_in_policies().get(policy_id)
    return policy.name if policy is not None else policy_id


def _list_page(
    request: Request,
    caller: Caller,
    session: Session,
    *,
    show: str,
    error: str | None = None,
    error_id: int | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    rows = reports.list_reports(session, open_only=show != "all")
    context: dict[str, Any] = {
        "rows": rows,
        "names": _reporters(session, rows),
        "show": show,
        "open_count": reports.open_count(session),
        "can_resolve": caller.can(Permission.RESOLVE_SITE_REPORTS),
        "can_check": caller.can(Permission.CHECK_FILTER),
        "category_names": _category_names,
        "actions": {"block": "Blocked", "allow": "Allowed", "rewrite": "Allowed, safe search"},
        "policy_name": _policy_name,
        "flash": DONE.get(request.query_params.get("done", "")),
        "flash_kind": "good",
        "error": error,
        "error_id": error_id,
    }
    return render(
        request, "filtering/reports.html", context, caller=caller, status_code=status_code
    )


@router.get("/filtering/reports", response_class=HTMLResponse)
def reports_page(
    request: Request,
    show: str = "open",
    caller: Caller = Depends(require(Permission.VIEW_SITE_REPORTS)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    """Reports of sites, open first; ``?show=all`` includes resolved ones."""
    return _list_page(request, caller, session, show="all" if show == "all" else "open")


@router.post("/filtering/reports/{report_id}/resolve", response_model=None)
def resolve(
    request: Request,
    report_id: int,
    outcome: str = Form(""),
    caller: Caller = Depends(require(Permission.RESOLVE_SITE_REPORTS)),
    session: Session = SchoolSession,
) -> Response:
    try:
        reports.resolve_report(session, report_id, outcome)
    except InvalidInput as error:
        session.rollback()
        return _list_page(
            request,
            caller,
            session,
            show="open",
            error=str(error),
            error_id=report_id,
            status_code=422,
        )
    return RedirectResponse(f"/filtering/reports?{urlencode({'done': 'resolved'})}", 303)


def _new_page(
    request: Request,
    caller: Caller,
    *,
    form: dict[str, str],
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {
        "form": form,
        "kinds": list(ReportKind),
        "error": error,
        "flash": DONE.get(request.query_params.get("done", "")),
        "flash_kind": "good",
        "can_read": caller.can(Permission.VIEW_SITE_REPORTS),
    }
    return render(
        request, "filtering/reports_new.html", context, caller=caller, status_code=status_code
    )


@router.get("/filtering/reports/new", response_class=HTMLResponse)
def new_report_page(
    request: Request,
    site: str = "",
    kind: str = "",
    caller: Caller = Depends(require(Permission.REPORT_SITES)),
) -> HTMLResponse:
    """Report a site that should be blocked, or one that is wrongly blocked."""
    chosen = kind if kind in {k.value for k in ReportKind} else ""
    return _new_page(request, caller, form={"site": site[:2000], "kind": chosen, "comment": ""})


def _decision_for(engine: FilterEngine, session: Session, caller: Caller, site: str) -> Decision:
    """What the filter decides for the reporter and the site now (kept with the report)."""
    person = session.get(Person, caller.person_id)
    asker = asking.asker_for_person(session, person)[0] if person is not None else UNKNOWN_DEVICE
    return engine.decide_host(asker, reports.site_of(site)[0], time.time())


@router.post("/filtering/reports", response_model=None)
def report(
    request: Request,
    site: str = Form(""),
    kind: str = Form(""),
    comment: str = Form(""),
    caller: Caller = Depends(require(Permission.REPORT_SITES)),
    session: Session = SchoolSession,
) -> Response:
    form = {"site": site, "kind": kind, "comment": comment}
    # Before this route's session reads anything: the engine reads in a session of its
    # own, which must not wait for ours (SQLite transactions take the write lock).
    engine = engines_for(installation(request)).engine(caller.school_id)
    try:
        chosen = reports.report_kind(kind) if kind else None
        if chosen is None:
            raise InvalidInput("choose whether the site should be blocked or is blocked by mistake")
        decision = _decision_for(engine, session, caller, site)
        reports.report_site(
            session,
            site,
            chosen,
            comment,
            decision=decision,
            illegal=is_illegal(engine, decision),
            client=client_address(request),
        )
    except InvalidInput as error:
        session.rollback()
        return _new_page(request, caller, form=form, error=str(error), status_code=422)
    return RedirectResponse("/filtering/reports/new?done=reported", status_code=303)
