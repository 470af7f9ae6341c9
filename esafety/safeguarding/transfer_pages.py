"""Pages for child-protection files of pupils who move school (issue 5 §5; STANDARDS R7):
the list of transfers with where each stands, starting one, making the encrypted file
(its passphrase shown once), recording the sending and the receipt, and importing a file
another esafety made.

The routes ask for ACT_ON_CONCERNS; the services let only the DSL and deputies through
(:func:`esafety.safeguarding.transfer.require_cp_role`): anyone else holding that
permission sees an empty list, and a transfer's page answers 404 as a concern's does.
A mistake shows the page again with the service's words and what was typed (422).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.db import utcnow
from esafety.directory.model import Person, PersonKind
from esafety.errors import InvalidInput
from esafety.safeguarding import transfer
from esafety.safeguarding.school_time import caller_zone, local_time
from esafety.safeguarding.transfer_days import receipt_days
from esafety.safeguarding.transfer_export import export_file, exported_file, transfer_files
from esafety.safeguarding.transfer_import import MAX_FILE_BYTES, import_file, imports
from esafety.safeguarding.transfer_model import TransferEntryKind, TransferMethod
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, installation, require
from esafety.web.pages import render

__all__ = ["router"]

router = APIRouter()

BASE = "/safeguarding/transfers"

DONE = {
    "started": "The transfer was recorded. Make the file, or record how the file was sent.",
    "sent": "The sending was recorded.",
    "received": "The receipt was recorded: the transfer is complete.",
    "withdrawn": "The transfer was withdrawn.",
    "corrected": "The correction was recorded.",
}

ENTRY_LABELS = {
    TransferEntryKind.EXPORTED: "File made",
    TransferEntryKind.SENT: "Sent",
    TransferEntryKind.RECEIVED: "Receipt acknowledged",
    TransferEntryKind.CORRECTED: "Details corrected",
    TransferEntryKind.WITHDRAWN: "Withdrawn",
}

FIELD_LABELS = {
    "destination_name": "new school",
    "destination_urn": "URN",
    "destination_dsl_name": "DSL",
    "destination_dsl_email": "DSL's e-mail",
    "learned_on": "learned of the move",
    "due_on": "due by",
    "due_basis": "counted as",
}


def _day(text: str, what: str, *, required: bool = False) -> date | None:
    if not text.strip():
        if required:
            raise InvalidInput(f"{what}: give the date, such as 2025-03-12")
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{what} {text!r}: give the date as 2025-03-12") from None


def _moment(day: str, clock: str, what: str) -> datetime | None:
    """A school-time moment from the form; None (now) when both are empty."""
    if not day.strip() and not clock.strip():
        return None
    when = _day(day, what, required=True)
    try:
        at = time.fromisoformat(clock.strip()) if clock.strip() else time(12, 0)
    except ValueError:
        raise InvalidInput(f"{what}: give the time as 13:30") from None
    return datetime.combine(when or date.today(), at)


def _page(
    request: Request,
    caller: Caller,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    no_store: bool = False,
) -> HTMLResponse:
    response = render(request, template, context, caller=caller, status_code=status_code)
    if no_store:  # a passphrase or a receipt: not for the browser's cache
        response.headers["cache-control"] = "no-store"
    return response


# -- the list, and starting a transfer ----------------------------------------------------


def _pupils(session: Session) -> list[Person]:
    """Pupils (leavers first) for the start form."""
    rows = session.scalars(
        select(Person)
        .where(Person.kind == PersonKind.PUPIL)
        .order_by(Person.legal_last_name, Person.legal_first_name, Person.id)
    ).all()
    return sorted(rows, key=lambda p: p.left_on is None)


def _list(
    request: Request,
    caller: Caller,
    session: Session,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    now = utcnow()
    handles = transfer.handles_cp_files(session)
    rows = [
        (row, transfer.transfer_state(session, row, now)) for row in transfer.transfers(session)
    ]
    context = {
        "handles": handles,
        "rows": rows,
        "imports": imports(session),
        "pupils": _pupils(session) if handles else [],
        "form": form or {},
        "error": error,
        "zone": caller_zone(session, caller),
        "local": local_time,
        "receipt_days": receipt_days(session),
    }
    return _page(request, caller, "safeguarding/transfers.html", context, status_code=status_code)


@router.get(BASE, response_class=HTMLResponse)
def transfers_page(
    request: Request,
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    return _list(request, caller, session)


@router.post(BASE, response_model=None)
def start_transfer(
    request: Request,
    pupil: str = Form(""),
    destination_name: str = Form(""),
    destination_urn: str = Form(""),
    dsl_name: str = Form(""),
    dsl_email: str = Form(""),
    learned_on: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    form = {
        "pupil": pupil,
        "destination_name": destination_name,
        "destination_urn": destination_urn,
        "dsl_name": dsl_name,
        "dsl_email": dsl_email,
        "learned_on": learned_on,
    }
    try:
        if not pupil.strip():
            raise InvalidInput("choose the pupil who is leaving")
        if not destination_name.strip():
            raise InvalidInput("give the name of the pupil's new school")
        row = transfer.start_transfer(
            session,
            pupil,
            destination_name=destination_name,
            destination_urn=destination_urn,
            dsl_name=dsl_name,
            dsl_email=dsl_email,
            learned_on=_day(learned_on, "the day the school learned of the move"),
        )
    except InvalidInput as exc:
        session.rollback()
        return _list(request, caller, session, form=form, error=str(exc), status_code=422)
    return RedirectResponse(f"{BASE}/{row.id}?done=started", status_code=303)


# -- importing a file (before /{transfer_id}, which it would otherwise meet) ---------------


def _import_page(
    request: Request,
    caller: Caller,
    session: Session,
    *,
    error: str | None = None,
    received: Any = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {
        "handles": transfer.handles_cp_files(session),
        "error": error,
        "received": received,
        "max_mb": MAX_FILE_BYTES // 1048576,
    }
    return _page(
        request,
        caller,
        "safeguarding/transfer_import.html",
        context,
        status_code=status_code,
        no_store=received is not None,
    )


@router.get(BASE + "/import", response_class=HTMLResponse)
def import_page(
    request: Request,
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    return _import_page(request, caller, session)


@router.post(BASE + "/import", response_model=None)
def import_transfer_file(
    request: Request,
    file: UploadFile | None = File(default=None),
    passphrase: str = Form(""),
    create_pupil: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    try:
        if file is None or not (file.filename or "").strip():
            raise InvalidInput("choose the file the sending school's DSL sent you")
        if file.size is not None and file.size > MAX_FILE_BYTES:
            raise InvalidInput(
                f"the file is {file.size // 1048576} MB: a child-protection file is at most "
                f"{MAX_FILE_BYTES // 1048576} MB; check it is the right file"
            )
        if not passphrase.strip():
            raise InvalidInput("type the passphrase the sending school's DSL gave you")
        received = import_file(
            session,
            installation(request).attachments,
            file.file.read(),
            passphrase,
            create_pupil=bool(create_pupil),
        )
    except InvalidInput as exc:
        session.rollback()
        return _import_page(request, caller, session, error=str(exc), status_code=422)
    return _import_page(request, caller, session, received=received)


# -- one transfer ----------------------------------------------------------------------


def _detail(
    request: Request,
    caller: Caller,
    session: Session,
    transfer_id: int,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    exported: Any = None,
    status_code: int = 200,
) -> HTMLResponse:
    row = transfer.find_transfer(session, transfer_id)
    state = transfer.transfer_state(session, row, utcnow())
    zone = caller_zone(session, caller)
    context = {
        "row": row,
        "state": state,
        "statuses": transfer.TransferStatus,
        "entries": row.entries,
        "entry_labels": ENTRY_LABELS,
        "field_labels": FIELD_LABELS,
        "methods": list(TransferMethod),
        "open": state.status
        not in (transfer.TransferStatus.RECEIVED, transfer.TransferStatus.WITHDRAWN),
        "exported": exported,
        "error": error,
        "form": form or {},
        "flash": DONE.get(request.query_params.get("done", "")),
        "flash_kind": "good",
        "zone": zone,
        "local": local_time,
        "today": utcnow().astimezone(zone).date().isoformat(),
    }
    return _page(
        request,
        caller,
        "safeguarding/transfer.html",
        context,
        status_code=status_code,
        no_store=exported is not None,
    )


@router.get(BASE + "/{transfer_id}", response_class=HTMLResponse)
def transfer_page(
    request: Request,
    transfer_id: int,
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    return _detail(request, caller, session, transfer_id)


def _act(
    request: Request,
    caller: Caller,
    session: Session,
    transfer_id: int,
    done: str,
    form: dict[str, str],
    action: Callable[[], object],
) -> Response:
    """Run ``action`` on a transfer the caller can see (404 first, as for concerns); on a
    mistake show the transfer again with the reason and the form."""
    transfer.find_transfer(session, transfer_id)
    try:
        action()
    except InvalidInput as exc:
        session.rollback()
        return _detail(
            request, caller, session, transfer_id, error=str(exc), form=form, status_code=422
        )
    return RedirectResponse(f"{BASE}/{transfer_id}?done={done}", status_code=303)


@router.post(BASE + "/{transfer_id}/export", response_model=None)
def make_file(
    request: Request,
    transfer_id: int,
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    """Make the encrypted file: the page shows its passphrase this once."""
    transfer.find_transfer(session, transfer_id)
    inst = installation(request)
    try:
        made = export_file(session, inst.attachments, transfer_files(inst), transfer_id)
    except InvalidInput as exc:
        session.rollback()
        return _detail(request, caller, session, transfer_id, error=str(exc), status_code=422)
    return _detail(request, caller, session, transfer_id, exported=made)


@router.get(BASE + "/{transfer_id}/file", response_class=Response)
def download_file(
    request: Request,
    transfer_id: int,
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    """The newest file made for the transfer (sealed with its passphrase)."""
    name, content = exported_file(session, transfer_files(installation(request)), transfer_id)
    return Response(
        content,
        media_type="application/octet-stream",
        headers={
            "content-disposition": f'attachment; filename="{name}"',
            "cache-control": "no-store",
        },
    )


@router.post(BASE + "/{transfer_id}/sent", response_model=None)
def record_sent(
    request: Request,
    transfer_id: int,
    method: str = Form(""),
    sent_day: str = Form(""),
    sent_time: str = Form(""),
    items: str = Form(""),
    note: str = Form(""),
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    form = {
        "method": method,
        "sent_day": sent_day,
        "sent_time": sent_time,
        "items": items,
        "note": note,
        "reason": reason,
    }

    def record() -> object:
        if not method.strip():
            raise InvalidInput("choose how the file was sent")
        return transfer.record_sending(
            session,
            transfer_id,
            method=method,
            sent_at=_moment(sent_day, sent_time, "when it was sent"),
            items=[line for line in items.splitlines() if line.strip()],
            note=note,
            reason=reason,
        )

    return _act(request, caller, session, transfer_id, "sent", form, record)


@router.post(BASE + "/{transfer_id}/received", response_model=None)
def record_received(
    request: Request,
    transfer_id: int,
    acknowledged_by: str = Form(""),
    received_day: str = Form(""),
    received_time: str = Form(""),
    note: str = Form(""),
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    form = {
        "acknowledged_by": acknowledged_by,
        "received_day": received_day,
        "received_time": received_time,
        "received_note": note,
        "received_reason": reason,
    }
    return _act(
        request,
        caller,
        session,
        transfer_id,
        "received",
        form,
        lambda: transfer.record_receipt(
            session,
            transfer_id,
            acknowledged_by=acknowledged_by,
            acknowledged_at=_moment(received_day, received_time, "when receipt was acknowledged"),
            note=note,
            reason=reason,
        ),
    )


@router.post(BASE + "/{transfer_id}/withdraw", response_model=None)
def withdraw_transfer(
    request: Request,
    transfer_id: int,
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    return _act(
        request,
        caller,
        session,
        transfer_id,
        "withdrawn",
        {"withdraw_reason": reason},
        lambda: transfer.withdraw(session, transfer_id, reason),
    )


@router.post(BASE + "/{transfer_id}/correct", response_model=None)
def correct_transfer(
    request: Request,
    transfer_id: int,
    destination_name: str = Form(""),
    destination_urn: str = Form(""),
    dsl_name: str = Form(""),
    dsl_email: str = Form(""),
    learned_on: str = Form(""),
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    """Put right the details: the fields the form sends that differ from the record."""
    form = {
        "c_destination_name": destination_name,
        "c_destination_urn": destination_urn,
        "c_dsl_name": dsl_name,
        "c_dsl_email": dsl_email,
        "c_learned_on": learned_on,
        "correct_reason": reason,
    }

    def correct() -> object:
        row = transfer.find_transfer(session, transfer_id)
        given: dict[str, str | date | None] = {
            "destination_name": destination_name,
            "destination_urn": destination_urn,
            "destination_dsl_name": dsl_name,
            "destination_dsl_email": dsl_email,
        }
        changes = {k: v for k, v in given.items() if (v or None) != row.current(k)}
        day = _day(learned_on, "the day the school learned of the move")
        if day is not None and day != row.current("learned_on"):
            changes["learned_on"] = day
        return transfer.correct_details(session, transfer_id, reason, **changes)

    return _act(request, caller, session, transfer_id, "corrected", form, correct)
