"""The concern page's forms that add to the record without changing it (STANDARDS R2):
corrections, a change of kind or of when it happened, linking and unlinking a person
(each with its reason), and attachments (upload and download).

Each form posts here and comes back to the concern page: with a message once recorded
(303), or with the service's reason and what was typed on a mistake (422). Reads and
changes go through the services (:mod:`~esafety.safeguarding.concerns`,
:mod:`~esafety.safeguarding.attachments`), which check access and audit.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from esafety.errors import InvalidInput
from esafety.safeguarding import attachments, concerns
from esafety.safeguarding.attachments import MAX_ATTACHMENT_BYTES
from esafety.safeguarding.concerns import About
from esafety.safeguarding.pages import _act, _moment
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, installation, require

__all__ = ["router"]

router = APIRouter()

BASE = "/safeguarding/concerns/{concern_id}"


@router.post(BASE + "/corrections", response_model=None)
def correct(
    request: Request,
    concern_id: int,
    field: str = Form("narrative"),
    entry: str = Form(""),
    text: str = Form(""),
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    """Correct the record (``field``) or a note (``entry``): a new entry beside it."""
    form = {"correct_field": field, "correct_entry": entry, "correct_text": text}
    form["correct_reason"] = reason

    def correction() -> object:
        entry_id = int(entry) if entry.strip().isdigit() else None
        if entry.strip() and entry_id is None:
            raise InvalidInput(f"entry {entry!r}: choose the note to correct")
        return concerns.correct(
            session, concern_id, text, reason, field=field or "narrative", entry_id=entry_id
        )

    return _act(request, caller, session, concern_id, "corrected", form, correction)


@router.post(BASE + "/kind", response_model=None)
def change_kind(
    request: Request,
    concern_id: int,
    kind: str = Form(""),
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    form = {"new_kind": kind, "kind_reason": reason}

    def change() -> object:
        if not kind.strip():
            raise InvalidInput("choose the kind the concern is now")
        return concerns.change_kind(session, concern_id, kind, reason)

    return _act(request, caller, session, concern_id, "kind", form, change)


@router.post(BASE + "/happened", response_model=None)
def change_happened_at(
    request: Request,
    concern_id: int,
    happened_day: str = Form(""),
    happened_time: str = Form(""),
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    form = {"happened_day": happened_day, "happened_time": happened_time, "date_reason": reason}

    def change() -> object:
        when = _moment(happened_day, happened_time, "when it happened", required=True)
        if when is None:  # pragma: no cover - required=True never gives None
            raise InvalidInput("give when it happened")
        return concerns.change_happened_at(session, concern_id, when, reason)

    return _act(request, caller, session, concern_id, "date", form, change)


@router.post(BASE + "/people", response_model=None)
def link_person(
    request: Request,
    concern_id: int,
    person: str = Form(""),
    part: str = Form(""),
    outside_name: str = Form(""),
    outside_description: str = Form(""),
    outside_handle: str = Form(""),
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    """Link a pupil or adult of the school, or someone outside it, with their own part."""
    form = {
        "link_person": person,
        "link_part": part,
        "link_outside_name": outside_name,
        "link_outside_description": outside_description,
        "link_outside_handle": outside_handle,
        "link_reason": reason,
    }
    about = (
        About(person=person.strip(), part=part or None)
        if person.strip()
        else About(
            name=outside_name,
            description=outside_description,
            handle=outside_handle,
            part=part or None,
        )
    )
    return _act(
        request,
        caller,
        session,
        concern_id,
        "linked",
        form,
        lambda: concerns.link_person(session, concern_id, about, reason),
    )


@router.post(BASE + "/people/unlink", response_model=None)
def unlink_person(
    request: Request,
    concern_id: int,
    link: str = Form(""),
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    """Record that a person was linked by mistake (``link``: the person's link id)."""
    form = {"unlink": link, "unlink_reason": reason}

    def unlink() -> object:
        if not link.strip().isdigit():
            raise InvalidInput("choose the person to unlink")
        return concerns.unlink_person(session, concern_id, int(link), reason)

    return _act(request, caller, session, concern_id, "unlinked", form, unlink)


@router.post(BASE + "/attachments", response_model=None)
def attach(
    request: Request,
    concern_id: int,
    file: UploadFile | None = File(default=None),
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    """Attach a screenshot or document; a refusal (type, size, an image for a kind whose
    policy forbids copying images) is shown on the concern page with its reason."""

    def add() -> object:
        if file is None or not (file.filename or "").strip():
            raise InvalidInput("choose a file to attach")
        if file.size is not None and file.size > MAX_ATTACHMENT_BYTES:
            # Refused before reading it into memory (the service says the same).
            raise InvalidInput(
                f"attachment {file.filename!r} is {file.size / 1048576:.1f} MB: the largest is "
                f"{MAX_ATTACHMENT_BYTES // 1048576} MB; attach a smaller screenshot or a PDF"
            )
        content = file.file.read()
        return attachments.add_attachment(
            session, installation(request).attachments, concern_id, file.filename or "", content
        )

    return _act(request, caller, session, concern_id, "attached", {}, add)


@router.get(BASE + "/attachments/{attachment_id}", response_class=Response)
def download(
    request: Request,
    concern_id: int,
    attachment_id: int,
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    """The attachment, for those who read the concern (the read is audited)."""
    found = attachments.read_attachment(
        session, installation(request).attachments, concern_id, attachment_id
    )
    name = found.attachment.filename
    return Response(
        found.content,
        media_type=found.attachment.content_type,
        headers={
            # Always a download, never shown inline: a file is not a page of esafety.
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
