"""The JSON API of concerns (issue 5 §9): record one, read it, add to it, act on it.

A concern is answered only to those allowed to read it (esafety.safeguarding.access);
everyone else gets 404, as for a concern that does not exist, so that its existence is not
revealed. Every read is audited. Times without a zone are the school's local time;
answers give them in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.directory.model import Person
from esafety.errors import InvalidInput
from esafety.safeguarding import attachments, concerns, reading
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.kinds import IncidentKind
from esafety.safeguarding.model import Concern, Location
from esafety.safeguarding.reading import Opened
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, installation, require

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/concerns", tags=["safeguarding"])

_KINDS = ", ".join(k.value for k in IncidentKind)
_PARTS = Literal["harmed", "harmed_others", "witness", "other"]


# -- what comes in ------------------------------------------------------------------


class PersonInConcern(BaseModel):
    """Someone the concern is about, with their own part in it."""

    person: str | None = Field(
        default=None,
        max_length=120,
        description="A pupil's or adult's username, or a pupil's UPN.",
    )
    role: _PARTS | None = Field(
        default=None,
        description="Their part: harmed, harmed_others (the one who harmed, or whom an "
        "allegation is about), witness, other. Default: harmed for a pupil; for an adult, "
        "harmed_others in staff_allegation and parent_carer_concern, other otherwise.",
    )
    name: str | None = Field(
        default=None,
        max_length=200,
        description="An adult outside the school: their full name (not initials).",
    )
    description: str | None = Field(default=None, max_length=2000)
    handle: str | None = Field(
        default=None, max_length=200, description="Their online handle or username."
    )


class Place(BaseModel):
    where: Literal["in_school", "at_home", "online", "elsewhere"]
    detail: str | None = Field(
        default=None, max_length=500, description="Which online service, room or place."
    )


class NewConcern(BaseModel):
    about: list[str | PersonInConcern] = Field(
        min_length=1,
        max_length=50,
        description="Who it is about: usernames or UPNs, or objects "
        '`{"person": ..., "role": ...}`, or outside adults `{"name", "description", "handle"}`.',
    )
    kind: str = Field(max_length=64, description=f"The kind of incident: one of {_KINDS}.")
    narrative: str = Field(
        max_length=20_000,
        description="What was seen or said, as facts, in the person's own words.",
    )
    happened_at: datetime = Field(description="ISO 8601; without a zone: the school's time.")
    noticed_at: datetime | None = Field(
        default=None, description="When it was noticed (default: now); not before happened_at."
    )
    location: Place | str | None = Field(
        default=None,
        description="in_school, at_home, online or elsewhere; or {where, detail}; or free "
        "text naming the place or online service.",
    )
    action_taken: str | None = Field(default=None, max_length=20_000)
    dsl_told_in_person: bool = False


class Reason(BaseModel):
    reason: str = Field(default="", max_length=2000, description="Why, in a sentence.")


class NoteIn(BaseModel):
    text: str = Field(default="", max_length=20_000)


class CorrectionIn(BaseModel):
    text: str = Field(default="", max_length=20_000, description="The corrected words.")
    reason: str = Field(default="", max_length=2000, description="Why it is corrected.")
    field: Literal["narrative", "action_taken", "location_detail"] = "narrative"
    entry_id: int | None = Field(default=None, description="Correct this note instead.")


class KindChange(BaseModel):
    kind: str = Field(default="", max_length=64, description=f"One of {_KINDS}.")
    reason: str = Field(default="", max_length=2000)


class StepIn(BaseModel):
    step: str = Field(default="", max_length=64, description="The step's id (see the kind).")
    outcome: Literal["done", "not_applicable"] = "done"
    choice: str | None = Field(default=None, max_length=64, description="A decision's choice.")
    rationale: str | None = Field(default=None, max_length=4000, description="Why.")
    note: str | None = Field(default=None, max_length=4000, description="What was done.")
    reference: str | None = Field(default=None, max_length=200, description="Agency's ref.")
    done_at: datetime | None = Field(default=None, description="Default: now.")
    corrects: bool = False
    correction_reason: str | None = Field(default=None, max_length=2000)


class Closing(BaseModel):
    outcome: str | None = Field(
        default=None, max_length=20_000, description="Default: the outcome step's note."
    )


# -- what goes out ------------------------------------------------------------------


class ConcernCreated(BaseModel):
    id: int
    kind: str
    grave: bool
    status: str


class PersonOut(BaseModel):
    link_id: int
    role: str
    person_id: int | None
    username: str | None
    name: str | None
    description: str | None
    handle: str | None


class EntryOut(BaseModel):
    id: int
    kind: str
    text: str | None
    reason: str | None
    field: str | None
    corrects_entry_id: int | None
    new_kind: str | None
    old_kind: str | None
    new_happened_at: datetime | None
    old_happened_at: datetime | None
    link_id: int | None
    made_by: str
    made_at: datetime


class StepOut(BaseModel):
    id: int
    step: str
    outcome: str
    choice: str | None
    rationale: str | None
    note: str | None
    reference: str | None
    done_by: str
    done_at: datetime
    corrects: bool
    correction_reason: str | None
    recorded_at: datetime


class ProcedureOut(BaseModel):
    open: list[str]
    blocked: list[str]
    remaining_required: list[str]
    overdue: list[str]
    can_close: bool
    reasons: list[str]


class AttachmentOut(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    added_by: str
    added_at: datetime


class ConcernOut(BaseModel):
    id: int
    kind: str
    kind_title: str
    recorded_kind: str
    status: str
    happened_at: datetime
    noticed_at: datetime
    recorded_at: datetime
    raised_by: str
    location: str | None
    location_detail: str | None
    narrative: str
    action_taken: str | None
    dsl_told_in_person: bool
    people: list[PersonOut]
    entries: list[EntryOut]
    steps: list[StepOut]
    procedure: ProcedureOut
    attachments: list[AttachmentOut]
    outcome: str | None
    closed_at: datetime | None
    closed_by: str | None
    grounds: str = Field(description="Why you may read it: your role, raised it, break glass.")


class ConcernSummary(BaseModel):
    id: int
    kind: str
    kind_title: str
    status: str
    happened_at: datetime
    recorded_at: datetime
    raised_by: str
    grounds: str


def _out(session: Session, opened: Opened, *, grounds: str | None = None) -> ConcernOut:
    concern = opened.concern
    ids = [p.person_id for p in concern.people if p.person_id is not None]
    usernames = (
        dict(session.execute(select(Person.id, Person.username).where(Person.id.in_(ids))).all())
        if ids
        else {}
    )
    names = (
        {p.id: p.display_name for p in session.scalars(select(Person).where(Person.id.in_(ids)))}
        if ids
        else {}
    )
    current = concern.current_kind
    state = concerns.procedure_state(concern)
    return ConcernOut(
        id=concern.id,
        kind=current.value,
        kind_title=kind_info(current).title,
        recorded_kind=concern.kind.value,
        status=concern.status.value,
        happened_at=concern.current_happened_at,
        noticed_at=concern.noticed_at,
        recorded_at=concern.recorded_at,
        raised_by=concern.raised_by,
        location=concern.location.value if concern.location else None,
        location_detail=concern.location_detail,
        narrative=concern.narrative,
        action_taken=concern.action_taken,
        dsl_told_in_person=concern.dsl_told_in_person,
        people=[
            PersonOut(
                link_id=p.id,
                role=p.part.value,
                person_id=p.person_id,
                username=usernames.get(p.person_id) if p.person_id else None,
                name=names.get(p.person_id) if p.person_id else p.outside_name,
                description=p.outside_description,
                handle=p.outside_handle,
            )
            for p in concern.linked
        ],
        entries=[
            EntryOut(
                id=e.id,
                kind=e.kind.value,
                text=e.text,
                reason=e.reason,
                field=e.field,
                corrects_entry_id=e.corrects_entry_id,
                new_kind=e.new_kind.value if e.new_kind else None,
                old_kind=e.old_kind.value if e.old_kind else None,
                new_happened_at=e.new_happened_at,
                old_happened_at=e.old_happened_at,
                link_id=e.concern_person_id,
                made_by=e.made_by,
                made_at=e.made_at,
            )
            for e in concern.entries
        ],
        steps=[
            StepOut(
                id=s.id,
                step=s.step_id,
                outcome=s.outcome.value,
                choice=s.choice,
                rationale=s.rationale,
                note=s.note,
                reference=s.reference,
                done_by=s.done_by,
                done_at=s.done_at,
                corrects=s.corrects,
                correction_reason=s.correction_reason,
                recorded_at=s.recorded_at,
            )
            for s in concern.steps
        ],
        procedure=ProcedureOut(
            open=list(state.open),
            blocked=list(state.blocked),
            remaining_required=list(state.remaining_required),
            overdue=list(state.overdue),
            can_close=state.can_close,
            reasons=list(state.reasons),
        ),
        attachments=[
            AttachmentOut(
                id=a.id,
                filename=a.filename,
                content_type=a.content_type,
                size=a.size,
                added_by=a.added_by,
                added_at=a.added_at,
            )
            for a in concern.attachments
        ],
        outcome=concern.outcome,
        closed_at=concern.closed_at,
        closed_by=concern.closed_by,
        grounds=grounds or opened.access.why,
    )


def _about(item: str | PersonInConcern) -> concerns.About | str:
    if isinstance(item, str):
        return item
    return concerns.About(
        person=item.person,
        part=item.role,
        name=item.name,
        description=item.description,
        handle=item.handle,
    )


def _place(value: Place | str | None) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, Place):
        return value.where, value.detail
    if value.strip().lower() in {loc.value for loc in Location}:
        return value.strip().lower(), None
    return None, value


def _reopen(session: Session, concern: Concern) -> ConcernOut:
    return _out(session, reading.open_concern(session, concern.id))


# -- routes -------------------------------------------------------------------------


@router.post("", status_code=201, summary="Record a concern")
def record(
    body: NewConcern,
    caller: Caller = Depends(require(Permission.RECORD_CONCERNS)),
    session: Session = SchoolSession,
) -> ConcernCreated:
    """Record a concern (issue 5 §1). Answers 201 with its id; 422 says what to fix."""
    where, detail = _place(body.location)
    concern = concerns.record_concern(
        session,
        kind=body.kind,
        narrative=body.narrative,
        happened_at=body.happened_at,
        noticed_at=body.noticed_at,
        about=[_about(item) for item in body.about],
        location=where,
        location_detail=detail,
        action_taken=body.action_taken,
        dsl_told_in_person=body.dsl_told_in_person,
    )
    info = kind_info(concern.kind)
    return ConcernCreated(
        id=concern.id, kind=info.id.value, grave=info.grave, status=concern.status.value
    )


@router.get("", summary="The concerns you may read")
def list_concerns(
    status: Literal["open", "closed"] | None = None,
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> list[ConcernSummary]:
    return [
        ConcernSummary(
            id=o.concern.id,
            kind=o.concern.current_kind.value,
            kind_title=kind_info(o.concern.current_kind).title,
            status=o.concern.status.value,
            happened_at=o.concern.current_happened_at,
            recorded_at=o.concern.recorded_at,
            raised_by=o.concern.raised_by,
            grounds=o.access.why,
        )
        for o in reading.list_concerns(session, status=status)
    ]


@router.get("/{concern_id}", summary="A concern, narrative included")
def get_concern(
    concern_id: int,
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> ConcernOut:
    """Answered to those allowed to read it; 404 to everyone else."""
    return _out(session, reading.open_concern(session, concern_id))


@router.post("/{concern_id}/break-glass", summary="Read a concern giving a reason")
def break_glass(
    concern_id: int,
    body: Reason,
    caller: Caller = Depends(require(Permission.BREAK_GLASS)),
    session: Session = SchoolSession,
) -> ConcernOut:
    """For a member of staff who may not otherwise read it: the reason is recorded and
    the DSL is alerted."""
    opened = reading.break_glass(session, concern_id, body.reason)
    grounds = None if opened.access.can_read else "break glass"
    return _out(session, opened, grounds=grounds)


@router.post("/{concern_id}/notes", status_code=201, summary="Add a note")
def add_note(
    concern_id: int,
    body: NoteIn,
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> ConcernOut:
    entry = concerns.add_note(session, concern_id, body.text)
    return _reopen(session, entry.concern)


@router.post("/{concern_id}/corrections", status_code=201, summary="Correct the record")
def correct(
    concern_id: int,
    body: CorrectionIn,
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> ConcernOut:
    """A correction is a new entry beside the original, which stays (STANDARDS R2)."""
    entry = concerns.correct(
        session, concern_id, body.text, body.reason, field=body.field, entry_id=body.entry_id
    )
    return _reopen(session, entry.concern)


@router.post("/{concern_id}/kind", summary="Record a change of kind")
def change_kind(
    concern_id: int,
    body: KindChange,
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> ConcernOut:
    entry = concerns.change_kind(session, concern_id, body.kind, body.reason)
    return _reopen(session, entry.concern)


@router.post("/{concern_id}/steps", status_code=201, summary="Record a step of the procedure")
def record_step(
    concern_id: int,
    body: StepIn,
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> ConcernOut:
    row = concerns.record_step(
        session,
        concern_id,
        body.step,
        done_at=body.done_at,
        outcome=body.outcome,
        choice=body.choice,
        rationale=body.rationale,
        note=body.note,
        reference=body.reference,
        corrects=body.corrects,
        correction_reason=body.correction_reason,
    )
    return _reopen(session, row.concern)


@router.post("/{concern_id}/close", summary="Close the concern")
def close(
    concern_id: int,
    body: Closing,
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> ConcernOut:
    """Refused (422, listing the steps) while a required step is open."""
    concern = concerns.close_concern(session, concern_id, outcome=body.outcome)
    return _reopen(session, concern)


@router.post("/{concern_id}/attachments", status_code=201, summary="Attach a file")
def attach(
    request: Request,
    concern_id: int,
    file: UploadFile | None = File(default=None, description="A screenshot or document."),
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> AttachmentOut:
    """Images are refused for the kinds whose policies forbid copying them (the answer
    says why: record a description instead)."""
    content = file.file.read() if file is not None else b""
    name = (file.filename or "") if file is not None else ""
    files = installation(request).attachments
    reading.require_grounds(session, reading.find_concern(session, concern_id), act=False)
    if file is None:
        raise InvalidInput("attach a file: send it as multipart/form-data in the field 'file'")
    row = attachments.add_attachment(session, files, concern_id, name, content)
    return AttachmentOut(
        id=row.id,
        filename=row.filename,
        content_type=row.content_type,
        size=row.size,
        added_by=row.added_by,
        added_at=row.added_at,
    )


@router.get(
    "/{concern_id}/attachments/{attachment_id}",
    summary="An attachment's content",
    response_class=Response,
)
def attachment(
    request: Request,
    concern_id: int,
    attachment_id: int,
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    found = attachments.read_attachment(
        session, installation(request).attachments, concern_id, attachment_id
    )
    return Response(
        found.content,
        media_type=found.attachment.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="attachment-{attachment_id}"',
            "Cache-Control": "no-store",
        },
    )
