"""Pages for safeguarding concerns (issue 5 §1, §2, §4): record one, the list (the DSL's
desk for those who act on concerns), a concern with its procedure, and the forms that
record a step, add a note and close it.

Every read goes through :mod:`esafety.safeguarding.reading` (audited; NotFound for anyone
who may not read the concern, as in the API); every change through
:mod:`esafety.safeguarding.concerns`. A mistake shows the page again with the service's
message and what was typed (422). The concern page has a "blank the screen" key (Escape,
or the button): the record is hidden at once behind a neutral screen (STANDARDS R5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.db import utcnow
from esafety.directory.model import Person, PersonKind
from esafety.errors import InvalidInput
from esafety.safeguarding import alert_concerns, concern_view, concerns, reading
from esafety.safeguarding.access import Grounds
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.catalogue import kinds
from esafety.safeguarding.concerns import About
from esafety.safeguarding.model import Concern, ConcernPerson, EntryKind, Location, Part
from esafety.safeguarding.procedures import ProcedureState, StepOutcome, StepStatus
from esafety.safeguarding.reading import Opened
from esafety.safeguarding.school_time import caller_zone, local_time
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, require
from esafety.web.pages import render

__all__ = ["router"]

router = APIRouter()

#: Rows of "a pupil or adult of the school" on the form (blank rows are left out).
PERSON_ROWS = 3

DONE = {
    "recorded": "The concern was recorded. The DSL can read it now; you can add a note "
    "below if you remember more.",
    "step": "The step was recorded.",
    "note": "The note was added.",
    "closed": "The concern was closed.",
    "corrected": "The correction was recorded beside the original.",
    "kind": "The change of kind was recorded.",
    "date": "The change of when it happened was recorded.",
    "linked": "The person was linked, and the change recorded.",
    "unlinked": "The person was unlinked, and the change recorded.",
    "attached": "The file was attached.",
    "action": "The action was set, and its owner told.",
    "action-done": "The action was marked done.",
    "action-cancelled": "The action was cancelled.",
    "acknowledged": "The break-glass alert was acknowledged.",
}

PART_LABELS = {
    Part.HARMED: "Harmed or at risk",
    Part.HARMED_OTHERS: "Harmed others (or the concern is about them)",
    Part.WITNESS: "Witness",
    Part.OTHER: "Other",
}

LOCATION_LABELS = {
    Location.IN_SCHOOL: "In school",
    Location.AT_HOME: "At home",
    Location.ONLINE: "Online",
    Location.ELSEWHERE: "Elsewhere",
}

STATUS_LABELS = {
    StepStatus.DONE: "Done",
    StepStatus.NOT_APPLICABLE: "Does not apply",
    StepStatus.NOT_NEEDED: "Not needed",
    StepStatus.OPEN: "To do",
    StepStatus.BLOCKED: "Waiting",
}

ENTRY_LABELS = {
    EntryKind.NOTE: "Note",
    EntryKind.CORRECTION: "Correction",
    EntryKind.KIND_CHANGED: "Kind changed",
    EntryKind.DATE_CHANGED: "Date changed",
    EntryKind.PERSON_ADDED: "Person linked",
    EntryKind.PERSON_REMOVED: "Person unlinked",
}


def _flash(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


# -- record a concern ---------------------------------------------------------------


@dataclass(frozen=True)
class PersonChoice:
    username: str
    label: str


def _people_choices(session: Session) -> list[PersonChoice]:
    """Pupils, then adults of the school, still here: the form's list of names."""
    rows = session.scalars(
        select(Person)
        .where(Person.left_on.is_(None))
        .order_by(Person.legal_last_name, Person.legal_first_name, Person.id)
    ).all()
    pupils = [p for p in rows if p.kind is PersonKind.PUPIL]
    adults = [p for p in rows if p.kind is not PersonKind.PUPIL]
    choices = []
    for person in [*pupils, *adults]:
        if not person.username:
            continue
        extra = person.year_group.label if person.year_group else person.kind.value
        choices.append(PersonChoice(person.username, f"{person.display_name} ({extra})"))
    return choices


def _blank_form(zone: ZoneInfo) -> dict[str, Any]:
    now = utcnow().astimezone(zone)
    return {
        "alert": "",
        "kind": "",
        "person": [""] * PERSON_ROWS,
        "part": [""] * PERSON_ROWS,
        "outside_name": "",
        "outside_description": "",
        "outside_handle": "",
        "outside_part": "",
        "happened_day": now.date().isoformat(),
        "happened_time": "",
        "noticed_day": now.date().isoformat(),
        "noticed_time": now.strftime("%H:%M"),
        "location": "",
        "location_detail": "",
        "narrative": "",
        "action_taken": "",
        "dsl_told_in_person": False,
    }


def _new_page(
    request: Request,
    caller: Caller,
    session: Session,
    form: dict[str, Any],
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {
        "form": form,
        "kinds": kinds(),
        "parts": PART_LABELS,
        "locations": LOCATION_LABELS,
        "people": _people_choices(session),
        "error": error,
    }
    return render(request, "safeguarding/new.html", context, caller=caller, status_code=status_code)


@router.get("/safeguarding/concerns/new", response_class=HTMLResponse)
def new_concern_page(
    request: Request,
    alert: int | None = None,
    caller: Caller = Depends(require(Permission.RECORD_CONCERNS)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    """The form; ``?alert=ID`` fills it in from a filter alert (the DSL's alert list)."""
    zone = caller_zone(session, caller)
    form = _blank_form(zone)
    if alert is not None:
        form |= _from_alert(alert_concerns.draft_from_alert(session, alert, zone))
    return _new_page(request, caller, session, form)


def _from_alert(draft: alert_concerns.AlertDraft) -> dict[str, Any]:
    return {
        "alert": str(draft.alert_id),
        "kind": draft.kind.value,
        "person": _padded([draft.username] if draft.username else []),
        "happened_day": draft.happened_at.date().isoformat(),
        "happened_time": draft.happened_at.strftime("%H:%M"),
        "location": draft.location.value,
        "location_detail": draft.location_detail,
        "narrative": draft.narrative,
    }


def _moment(day: str, clock: str, what: str, *, required: bool) -> datetime | None:
    if not day.strip() and not clock.strip() and not required:
        return None
    try:
        when = time.fromisoformat(clock.strip()) if clock.strip() else None
        if when is None:
            raise ValueError(clock)
        return datetime.combine(date.fromisoformat(day.strip()), when)
    except ValueError:
        raise InvalidInput(
            f"{what}: give the date and the time (school time), such as 2025-03-12 and 13:30; "
            "if you do not know the exact time, give your best estimate and say so in the "
            "account"
        ) from None


def _padded(values: list[str]) -> list[str]:
    return (values + [""] * PERSON_ROWS)[: max(PERSON_ROWS, len(values))]


def _about(form: dict[str, Any]) -> list[About | str]:
    about: list[About | str] = []
    for person, part in zip(form["person"], form["part"], strict=False):
        if person.strip():
            about.append(About(person=person.strip(), part=part or None))
    if (
        form["outside_name"].strip()
        or form["outside_description"].strip()
        or (form["outside_handle"].strip())
    ):
        about.append(
            About(
                name=form["outside_name"],
                description=form["outside_description"],
                handle=form["outside_handle"],
                part=form["outside_part"] or None,
            )
        )
    return about


@router.post("/safeguarding/concerns/new", response_model=None)
def record_concern(
    request: Request,
    kind: str = Form(""),
    person: list[str] = Form(default=[]),
    part: list[str] = Form(default=[]),
    outside_name: str = Form(""),
    outside_description: str = Form(""),
    outside_handle: str = Form(""),
    outside_part: str = Form(""),
    happened_day: str = Form(""),
    happened_time: str = Form(""),
    noticed_day: str = Form(""),
    noticed_time: str = Form(""),
    location: str = Form(""),
    location_detail: str = Form(""),
    narrative: str = Form(""),
    action_taken: str = Form(""),
    dsl_told_in_person: str = Form(""),
    alert: str = Form(""),
    caller: Caller = Depends(require(Permission.RECORD_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    form: dict[str, Any] = {
        "alert": alert,
        "kind": kind,
        "person": _padded(person),
        "part": _padded(part),
        "outside_name": outside_name,
        "outside_description": outside_description,
        "outside_handle": outside_handle,
        "outside_part": outside_part,
        "happened_day": happened_day,
        "happened_time": happened_time,
        "noticed_day": noticed_day,
        "noticed_time": noticed_time,
        "location": location,
        "location_detail": location_detail,
        "narrative": narrative,
        "action_taken": action_taken,
        "dsl_told_in_person": bool(dsl_told_in_person),
    }
    try:
        if not kind.strip():
            raise InvalidInput("choose what kind of concern it is (the closest one will do)")
        happened = _moment(happened_day, happened_time, "when it happened", required=True)
        noticed = _moment(noticed_day, noticed_time, "when it was noticed", required=False)
        concern = concerns.record_concern(
            session,
            kind=kind,
            narrative=narrative,
            happened_at=happened or utcnow(),
            noticed_at=noticed,
            about=_about(form),
            location=location or None,
            location_detail=location_detail,
            action_taken=action_taken,
            dsl_told_in_person=bool(dsl_told_in_person),
        )
        if alert.strip().isdigit():  # recorded from a filter alert: link and acknowledge it
            alert_concerns.link_alert(session, int(alert), concern.id)
    except InvalidInput as exc:
        session.rollback()
        return _new_page(request, caller, session, form, error=str(exc), status_code=422)
    return RedirectResponse(f"/safeguarding/concerns/{concern.id}?done=recorded", status_code=303)


# -- the list, and the DSL's desk ----------------------------------------------------


@dataclass(frozen=True)
class Row:
    concern: Concern
    title: str
    grave: bool
    new: bool
    overdue: tuple[str, ...]
    remaining: int
    mine: bool


def _row(opened: Opened, caller: Caller, now: datetime) -> Row:
    concern = opened.concern
    info = kind_info(concern.current_kind)
    current = concerns.procedure_state(concern, now=now)
    return Row(
        concern=concern,
        title=info.title,
        grave=info.grave,
        new=not concern.steps,
        overdue=tuple(current.step(s).step.title for s in current.overdue),
        remaining=len(current.remaining_required),
        mine=concern.raised_by_id == caller.person_id,
    )


def _desk_order(row: Row) -> tuple[bool, bool, bool, float]:
    # New and grave first, then those with overdue steps, newest first within each.
    return (
        not (row.new or row.grave),
        not row.grave,
        not row.overdue,
        -row.concern.recorded_at.timestamp(),
    )


@router.get("/safeguarding/concerns", response_class=HTMLResponse)
def concerns_page(
    request: Request,
    status: str = "open",
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    now = utcnow()
    shown = "closed" if status == "closed" else "open"
    opened = reading.list_concerns(session)
    desk = [
        _row(o, caller, now) for o in opened if o.access.can_act and o.concern.status.value == shown
    ]
    desk.sort(key=_desk_order)
    raised = [_row(o, caller, now) for o in opened if o.concern.raised_by_id == caller.person_id]
    context = {
        "desk": desk,
        "raised": raised,
        "acts": caller.can(Permission.ACT_ON_CONCERNS),
        "shown": shown,
        "can_record": caller.can(Permission.RECORD_CONCERNS),
        "can_break_glass": caller.can(Permission.BREAK_GLASS),
        "zone": caller_zone(session, caller),
        "local": local_time,
        "flash": _flash(request),
        "flash_kind": "good",
    }
    context |= concern_view.desk_extras(
        session, acts=caller.can(Permission.ACT_ON_CONCERNS), now=now
    )
    return render(request, "safeguarding/concerns.html", context, caller=caller)


# -- one concern --------------------------------------------------------------------


@dataclass(frozen=True)
class PersonView:
    name: str
    username: str | None
    part: str
    description: str | None
    handle: str | None
    outside: bool


def _people(session: Session, linked: list[ConcernPerson]) -> list[PersonView]:
    ids = [p.person_id for p in linked if p.person_id is not None]
    found = (
        {p.id: p for p in session.scalars(select(Person).where(Person.id.in_(ids)))} if ids else {}
    )
    views = []
    for link in linked:
        person = found.get(link.person_id) if link.person_id is not None else None
        views.append(
            PersonView(
                name=person.display_name if person else (link.outside_name or "Name not known"),
                username=person.username if person else None,
                part=PART_LABELS.get(link.part, link.part.value),
                description=link.outside_description,
                handle=link.outside_handle,
                outside=person is None,
            )
        )
    return views


def _choice_label(current: ProcedureState, step_id: str, choice: str | None) -> str | None:
    if choice is None:
        return None
    decision = current.step(step_id).step.decision
    found = decision.choice(choice) if decision is not None else None
    return found.label if found is not None else choice


def _grounds(opened: Opened) -> str:
    """Why the reader may read it, in a sentence for the page."""
    granted = opened.access
    if granted.grounds is Grounds.ROLE and granted.role is not None:
        return f"You read it as {granted.role.label}."
    if granted.grounds is Grounds.RAISED:
        return "You read it because you raised it."
    return "You read it on the server's authority."


def _detail(
    request: Request,
    caller: Caller,
    session: Session,
    concern_id: int,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
    opened: Opened | None = None,
    grounds: str | None = None,
) -> HTMLResponse:
    """The concern page; ``opened`` when already opened (by breaking glass), with
    ``grounds`` saying so."""
    opened = opened or reading.open_concern(session, concern_id)
    concern = opened.concern
    now = utcnow()
    current = concerns.procedure_state(concern, now=now)
    info = kind_info(concern.current_kind)
    zone = caller_zone(session, caller)
    can_act = opened.access.can_act and concern.is_open
    context = {
        "concern": concern,
        "info": info,
        "recorded_info": kind_info(concern.kind),
        "grounds": grounds or _grounds(opened),
        # Notes, corrections and attachments: its readers (one who broke glass only reads).
        "can_write": opened.access.can_read,
        "title_of": lambda step_id: current.step(step_id).step.title,
        "can_act": can_act,
        "people": _people(session, concern.linked),
        "links": concern.linked,
        "people_choices": _people_choices(session) if can_act else [],
        "parts": PART_LABELS,
        "entries": sorted(concern.entries, key=lambda e: (e.made_at, e.id)),
        "entry_labels": ENTRY_LABELS,
        "procedure": current,
        "status_labels": STATUS_LABELS,
        "statuses": StepStatus,
        "choice_label": lambda step_id, choice: _choice_label(current, step_id, choice),
        "locations": LOCATION_LABELS,
        "zone": caller_zone(session, caller),
        "local": local_time,
        "error": error,
        "form": form or {},
        "flash": _flash(request),
        "flash_kind": "good",
    }
    context |= concern_view.page_extras(
        session,
        concern,
        current,
        labels=ENTRY_LABELS,
        local=lambda moment: local_time(moment, zone),
        zone=zone,
        can_act=can_act,
        now=now,
    )
    return render(
        request, "safeguarding/concern.html", context, caller=caller, status_code=status_code
    )


@router.get("/safeguarding/concerns/{concern_id}", response_class=HTMLResponse)
def concern_page(
    request: Request,
    concern_id: int,
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    """The concern, for those allowed to read it; 404 for everyone else (as the API)."""
    return _detail(request, caller, session, concern_id)


def _act(
    request: Request,
    caller: Caller,
    session: Session,
    concern_id: int,
    done: str,
    form: dict[str, str],
    action: Callable[[], object],
) -> Response:
    """Run ``action``; on a mistake show the concern again with the reason and the form."""
    try:
        action()
    except InvalidInput as exc:
        session.rollback()
        return _detail(
            request, caller, session, concern_id, error=str(exc), form=form, status_code=422
        )
    return RedirectResponse(f"/safeguarding/concerns/{concern_id}?done={done}", status_code=303)


@router.post("/safeguarding/concerns/{concern_id}/steps", response_model=None)
def record_step(
    request: Request,
    concern_id: int,
    step: str = Form(""),
    outcome: str = Form("done"),
    choice: str = Form(""),
    rationale: str = Form(""),
    note: str = Form(""),
    reference: str = Form(""),
    done_day: str = Form(""),
    done_time: str = Form(""),
    corrects: str = Form(""),
    correction_reason: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    """Record a step, or (``corrects``) a correction of its record beside the original."""
    form = {
        "step": step,
        "outcome": outcome,
        "choice": choice,
        "rationale": rationale,
        "note": note,
        "reference": reference,
        "done_day": done_day,
        "done_time": done_time,
        "corrects": corrects,
        "correction_reason": correction_reason,
    }
    skipped = outcome == StepOutcome.NOT_APPLICABLE.value

    def record() -> object:
        # Blank: done now. A step done earlier (a phone call this morning) gives its time.
        done_at = _moment(done_day, done_time, "when the step was done", required=False)
        return concerns.record_step(
            session,
            concern_id,
            step,
            done_at=done_at,
            outcome=outcome,
            # "Does not apply" answers no decision: a choice left ticked is not kept.
            choice=None if skipped else (choice or None),
            rationale=rationale or None,
            note=note or None,
            reference=reference or None,
            corrects=bool(corrects),
            correction_reason=correction_reason or None,
        )

    return _act(
        request, caller, session, concern_id, "corrected" if corrects else "step", form, record
    )


@router.post("/safeguarding/concerns/{concern_id}/notes", response_model=None)
def add_note(
    request: Request,
    concern_id: int,
    text: str = Form(""),
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    return _act(
        request,
        caller,
        session,
        concern_id,
        "note",
        {"note_text": text},
        lambda: concerns.add_note(session, concern_id, text),
    )


@router.post("/safeguarding/concerns/{concern_id}/close", response_model=None)
def close_concern(
    request: Request,
    concern_id: int,
    outcome: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    return _act(
        request,
        caller,
        session,
        concern_id,
        "closed",
        {"close_outcome": outcome},
        lambda: concerns.close_concern(session, concern_id, outcome=outcome or None),
    )
