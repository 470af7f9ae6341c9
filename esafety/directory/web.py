"""The directory's pages: people, the no-technology list, the access register, the calendar.

Every route names its permission through ``require``; the session is scoped to the
caller's school, so another school's person is simply not found (404). Forms post back,
then redirect to the page with a short message; a form with a mistake is shown again
with the message saying what to fix. The JSON API is in :mod:`esafety.directory.api`.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from esafety.directory import groups, registers, service, terms
from esafety.directory.api import router as api_router
from esafety.directory.model import GroupKind, Person, PersonKind, PupilFlagKind
from esafety.directory.years import YearGroup
from esafety.errors import InvalidInput
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, require
from esafety.web.pages import render

__all__ = ["router"]

router = APIRouter()
router.include_router(api_router)

PAGE_SIZE = 50

#: Messages shown after a form succeeds (``?done=<key>``), so a reload never re-posts.
DONE = {
    "flag-set": "The flag was recorded.",
    "flag-removed": "The flag was removed.",
    "restriction-added": "The child was added to the no-technology list.",
    "restriction-ended": "The restriction was ended.",
    "access-granted": "The access was written in the register.",
    "access-revoked": "The access was revoked.",
    "term-added": "The term was added.",
    "closure-added": "The closure was added.",
}


def _done(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


def _redirect(path: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'done': done})}", status_code=303)


def parse_day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{field}: {text!r} is not a date; write it as YYYY-MM-DD") from None


def optional_day(text: str, field: str) -> date | None:
    return parse_day(text, field) if text.strip() else None


# -- people -------------------------------------------------------------------------------


@router.get("/people", response_class=HTMLResponse)
def people_page(
    request: Request,
    q: str = "",
    kind: str = "",
    year: str = "",
    group: str = "",
    leavers: bool = False,
    page: int = 1,
    caller: Caller = Depends(require(Permission.VIEW_DIRECTORY)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    """Find people by name, username or UPN; filter by kind, year and class."""
    page = max(page, 1)
    group_id = int(group) if group.isdigit() else None
    found = service.find_people(
        session,
        text=q,
        kind=kind or None,
        year_group=year or None,
        group_id=group_id,
        include_leavers=leavers,
        limit=PAGE_SIZE + 1,
        offset=(page - 1) * PAGE_SIZE,
    )
    filters = {"q": q, "kind": kind, "year": year, "group": group, "leavers": leavers}
    query = {k: v for k, v in filters.items() if v}
    return render(
        request,
        "directory/people.html",
        {
            "people": found[:PAGE_SIZE],
            "filters": filters,
            "kinds": list(PersonKind),
            "years": [y for y in YearGroup if y.order <= YearGroup.YEAR13.order],
            "classes": groups.list_groups(session, GroupKind.CLASS),
            "page": page,
            "previous": urlencode({**query, "page": page - 1}) if page > 1 else None,
            "next": urlencode({**query, "page": page + 1}) if len(found) > PAGE_SIZE else None,
        },
        caller=caller,
    )


@router.get("/people/{person_id}", response_class=HTMLResponse)
def person_page(
    request: Request,
    person_id: int,
    caller: Caller = Depends(require(Permission.VIEW_DIRECTORY)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    return _person(request, caller, session, person_id)


def _person(
    request: Request,
    caller: Caller,
    session: Session,
    person_id: int,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    person = service.get_person(session, person_id)
    context: dict[str, Any] = {
        "person": person,
        "groups": groups.groups_of(session, person),
        "parents": service.parents_of(session, person.id),
        "children": service.children_of(session, person.id),
        "roles": sorted(person.role_ids, key=lambda r: r.label),
        "flash": _done(request),
        "error": error,
        "flags": None,
        "restriction": None,
        "access": None,
    }
    if caller.can(Permission.VIEW_PUPIL_FLAGS) and person.kind is PersonKind.PUPIL:
        context["flags"] = registers.pupil_flags(session, person.id)
        context["flag_kinds"] = list(PupilFlagKind)
    if caller.can(Permission.VIEW_TECHNOLOGY_RESTRICTIONS):
        context["restriction"] = next(
            (e for e in registers.technology_restrictions(session) if e.pupil.id == person.id),
            None,
        )
    if caller.can(Permission.VIEW_ACCESS_REGISTER):
        context["access"] = registers.access_register(session, person_id=person.id)
        context["systems"] = registers.systems_in_use(session)
    return render(request, "directory/person.html", context, caller=caller, status_code=status_code)


@router.post("/people/{person_id}/flags", response_model=None)
def set_flag(
    request: Request,
    person_id: int,
    flag: str = Form(""),
    note: str = Form(""),
    caller: Caller = Depends(require(Permission.MANAGE_PUPIL_FLAGS)),
    session: Session = SchoolSession,
) -> Response:
    try:
        registers.set_pupil_flag(session, person_id, flag, note or None)
    except InvalidInput as exc:
        session.rollback()
        return _person(request, caller, session, person_id, error=str(exc), status_code=422)
    return _redirect(f"/people/{person_id}", "flag-set")


@router.post("/people/{person_id}/flags/{flag_id}/remove", response_model=None)
def remove_flag(
    person_id: int,
    flag_id: int,
    caller: Caller = Depends(require(Permission.MANAGE_PUPIL_FLAGS)),
    session: Session = SchoolSession,
) -> Response:
    service.get_person(session, person_id)
    registers.remove_pupil_flag(session, flag_id)
    return _redirect(f"/people/{person_id}", "flag-removed")


# -- technology restrictions (000 §4.5) ---------------------------------------------------


@router.get("/technology-restrictions", response_class=HTMLResponse)
def restrictions_page(
    request: Request,
    caller: Caller = Depends(require(Permission.VIEW_TECHNOLOGY_RESTRICTIONS)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    return _restrictions(request, caller, session)


def _restrictions(
    request: Request,
    caller: Caller,
    session: Session,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context: dict[str, Any] = {
        "entries": registers.technology_restrictions(session),
        "today": service.school_today(session),
        "flash": _done(request),
        "error": error,
        "form": form or {},
        "pupils_by_class": None,
    }
    if caller.can(Permission.MANAGE_TECHNOLOGY_RESTRICTIONS):
        context["pupils_by_class"] = _pupils_by_class(session)
    return render(
        request,
        "directory/technology_restrictions.html",
        context,
        caller=caller,
        status_code=status_code,
    )


def _pupils_by_class(session: Session) -> list[tuple[str, list[Person]]]:
    by_class: dict[str, list[Person]] = {}
    for pupil in service.find_people(session, kind=PersonKind.PUPIL):
        label = pupil.registration_group.name if pupil.registration_group else "No class"
        by_class.setdefault(label, []).append(pupil)
    order = {g.name: i for i, g in enumerate(groups.list_groups(session, GroupKind.CLASS))}
    return sorted(by_class.items(), key=lambda item: order.get(item[0], len(order)))


@router.post("/technology-restrictions", response_model=None)
def add_restriction(
    request: Request,
    person_id: str = Form(""),
    reason: str = Form(""),
    review_on: str = Form(""),
    caller: Caller = Depends(require(Permission.MANAGE_TECHNOLOGY_RESTRICTIONS)),
    session: Session = SchoolSession,
) -> Response:
    form = {"person_id": person_id, "reason": reason, "review_on": review_on}
    try:
        if not person_id.isdigit():
            raise InvalidInput("pupil: choose the child from the list")
        registers.add_technology_restriction(
            session, int(person_id), reason, parse_day(review_on, "review date")
        )
    except InvalidInput as exc:
        session.rollback()
        return _restrictions(request, caller, session, error=str(exc), form=form, status_code=422)
    return _redirect("/technology-restrictions", "restriction-added")


@router.post("/technology-restrictions/{restriction_id}/end", response_model=None)
def end_restriction(
    restriction_id: int,
    caller: Caller = Depends(require(Permission.MANAGE_TECHNOLOGY_RESTRICTIONS)),
    session: Session = SchoolSession,
) -> Response:
    registers.end_technology_restriction(session, restriction_id)
    return _redirect("/technology-restrictions", "restriction-ended")


# -- the access register (003 §7.2) --------------------------------------------------------


@router.get("/access-register", response_class=HTMLResponse)
def access_page(
    request: Request,
    system: str = "",
    show: str = "current",
    caller: Caller = Depends(require(Permission.VIEW_ACCESS_REGISTER)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    return _access(request, caller, session, system=system, show=show)


def _access(
    request: Request,
    caller: Caller,
    session: Session,
    *,
    system: str = "",
    show: str = "current",
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    entries = registers.access_register(session, system=system or None, current_only=show != "all")
    return render(
        request,
        "directory/access_register.html",
        {
            "entries": entries,
            "system": system,
            "show": show,
            "systems": registers.systems_in_use(session),
            "flash": _done(request),
            "error": error,
            "form": form or {},
            "today": service.school_today(session),
        },
        caller=caller,
        status_code=status_code,
    )


@router.post("/access-register", response_model=None)
def grant_access(
    request: Request,
    username: str = Form(""),
    system: str = Form(""),
    granted_on: str = Form(""),
    note: str = Form(""),
    back: str = Form(""),
    caller: Caller = Depends(require(Permission.MANAGE_ACCESS_REGISTER)),
    session: Session = SchoolSession,
) -> Response:
    form = {"username": username, "system": system, "granted_on": granted_on, "note": note}
    try:
        person = _by_username(session, username)
        registers.grant_access(
            session,
            person.id,
            system,
            granted_on=optional_day(granted_on, "granted on"),
            note=note or None,
        )
    except InvalidInput as exc:
        session.rollback()
        return _access(request, caller, session, error=str(exc), form=form, status_code=422)
    if back == "person":
        return _redirect(f"/people/{person.id}", "access-granted")
    return _redirect("/access-register", "access-granted")


def _by_username(session: Session, username: str) -> Person:
    wanted = username.strip().lower()
    if not wanted:
        raise InvalidInput("username: give the person's username (find it on the People page)")
    for person in service.find_people(session, text=wanted, include_leavers=True, limit=20):
        if person.username == wanted:
            return person
    raise InvalidInput(f"username: nobody in this school has the username {wanted!r}")


@router.post("/access-register/{grant_id}/revoke", response_model=None)
def revoke_access(
    grant_id: int,
    back: str = Form(""),
    caller: Caller = Depends(require(Permission.MANAGE_ACCESS_REGISTER)),
    session: Session = SchoolSession,
) -> Response:
    grant = registers.revoke_access(session, grant_id)
    if back == "person":
        return _redirect(f"/people/{grant.person_id}", "access-revoked")
    return _redirect("/access-register", "access-revoked")


# -- the calendar ---------------------------------------------------------------------------


@router.get("/calendar", response_class=HTMLResponse)
def calendar_page(
    request: Request,
    caller: Caller = Depends(require(Permission.VIEW_CALENDAR)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    return _calendar(request, caller, session)


def _calendar(
    request: Request,
    caller: Caller,
    session: Session,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    calendar = terms.school_calendar(session)
    today = service.school_today(session)
    rows = [
        {
            "term": term,
            "days": calendar.school_days_between(term.starts_on, term.ends_on),
            "left": calendar.school_days_between(max(today, term.starts_on), term.ends_on),
        }
        for term in calendar.terms
    ]
    return render(
        request,
        "directory/calendar.html",
        {
            "terms": rows,
            "closures": calendar.closures,
            "today": today,
            "school_day_today": calendar.is_school_day(today),
            "timezone": calendar.timezone,
            "flash": _done(request),
            "error": error,
            "form": form or {},
        },
        caller=caller,
        status_code=status_code,
    )


@router.post("/calendar/terms", response_model=None)
def add_term(
    request: Request,
    name: str = Form(""),
    starts_on: str = Form(""),
    ends_on: str = Form(""),
    caller: Caller = Depends(require(Permission.MANAGE_CALENDAR)),
    session: Session = SchoolSession,
) -> Response:
    form = {"term_name": name, "term_starts": starts_on, "term_ends": ends_on}
    try:
        terms.add_term(
            session, name, parse_day(starts_on, "first day"), parse_day(ends_on, "last day")
        )
    except InvalidInput as exc:
        session.rollback()
        return _calendar(request, caller, session, error=str(exc), form=form, status_code=422)
    return _redirect("/calendar", "term-added")


@router.post("/calendar/closures", response_model=None)
def add_closure(
    request: Request,
    reason: str = Form(""),
    starts_on: str = Form(""),
    ends_on: str = Form(""),
    caller: Caller = Depends(require(Permission.MANAGE_CALENDAR)),
    session: Session = SchoolSession,
) -> Response:
    form = {"closure_reason": reason, "closure_starts": starts_on, "closure_ends": ends_on}
    try:
        starts = parse_day(starts_on, "first day closed")
        ends = optional_day(ends_on, "last day closed") or starts
        terms.add_closure(session, starts, ends, reason)
    except InvalidInput as exc:
        session.rollback()
        return _calendar(request, caller, session, error=str(exc), form=form, status_code=422)
    return _redirect("/calendar", "closure-added")
