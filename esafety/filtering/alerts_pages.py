"""``/filtering/alerts``: the DSL's list of filter alerts, newest first, to acknowledge.

For the DSL, deputy DSL and online safety lead (``VIEW_FILTER_ALERTS``). Each alert is a
block in a category that alerts the DSL (issue 4 §8): who (or which unknown device),
which site, which categories, how often and when. Acknowledging records who and when.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.directory.model import Person
from esafety.errors import InvalidInput
from esafety.filtering import alerts
from esafety.filtering.alerts_model import FilterAlert
from esafety.filtering.categories import category_of, info
from esafety.safeguarding.alert_concerns import concerns_of_alerts
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, require
from esafety.web.pages import render

__all__ = ["router"]

router = APIRouter()

DONE = {"acknowledged": "The alert is acknowledged."}


@dataclass(frozen=True)
class AlertRow:
    alert: FilterAlert
    who: str
    group: str
    categories: list[str]


def _rows(session: Session, found: list[FilterAlert]) -> list[AlertRow]:
    ids = {row.person_id for row in found if row.person_id is not None}
    people = (
        {p.id: p for p in session.scalars(select(Person).where(Person.id.in_(ids)))} if ids else {}
    )
    rows = []
    for row in found:
        person = people.get(row.person_id) if row.person_id is not None else None
        if person is not None:
            who = person.display_name
            group = person.registration_group.name if person.registration_group else ""
        elif row.username:
            who, group = row.username, ""
        else:
            who, group = f"Unknown device at {row.client}", ""
        names = []
        for category in row.category_ids:
            try:
                names.append(info(category_of(category)).name)
            except InvalidInput:
                names.append(category)
        rows.append(AlertRow(row, who, group, names))
    return rows


@router.get("/filtering/alerts", response_class=HTMLResponse)
def alerts_page(
    request: Request,
    caller: Caller = Depends(require(Permission.VIEW_FILTER_ALERTS)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    found = alerts.list_alerts(session)
    context = {
        "rows": _rows(session, found),
        "new_count": sum(1 for row in found if row.acknowledged_at is None),
        "limit": alerts.PAGE_LIMIT,
        "can_acknowledge": caller.can(Permission.ACKNOWLEDGE_FILTER_ALERTS),
        # "Record a concern" from an alert; the concern it became (for its readers only).
        "can_record": caller.can(Permission.RECORD_CONCERNS),
        "concern_of": concerns_of_alerts(session, [row.id for row in found]),
        "flash": DONE.get(request.query_params.get("done", "")),
        "flash_kind": "good",
    }
    return render(request, "filtering/alerts.html", context, caller=caller)


@router.post("/filtering/alerts/{alert_id}/acknowledge", response_model=None)
def acknowledge_alert(
    alert_id: int,
    caller: Caller = Depends(require(Permission.ACKNOWLEDGE_FILTER_ALERTS)),
    session: Session = SchoolSession,
) -> Response:
    alerts.acknowledge(session, alert_id)
    return RedirectResponse("/filtering/alerts?done=acknowledged", status_code=303)
