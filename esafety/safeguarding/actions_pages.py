"""Forms for actions with owners and due dates (issue 5 §4): set one on the concern page,
mark it done (its owner, from the concerns page or the concern page) or cancel it (the
DSL, with the reason). Each is a new row (:mod:`esafety.safeguarding.actions`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from esafety.errors import InvalidInput
from esafety.safeguarding import actions
from esafety.safeguarding.pages import _act
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, require

__all__ = ["router"]

router = APIRouter()


def _action_id(value: str) -> int:
    if not value.strip().isdigit():
        raise InvalidInput("choose the action")
    return int(value)


@router.post("/safeguarding/concerns/{concern_id}/actions", response_model=None)
def add_action(
    request: Request,
    concern_id: int,
    what: str = Form(""),
    owner: str = Form(""),
    due_on: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    form = {"action_what": what, "action_owner": owner, "action_due_on": due_on}
    return _act(
        request,
        caller,
        session,
        concern_id,
        "action",
        form,
        lambda: actions.add_action(session, concern_id, what, owner, due_on),
    )


@router.post("/safeguarding/concerns/{concern_id}/actions/done", response_model=None)
def complete_on_concern(
    request: Request,
    concern_id: int,
    action: str = Form(""),
    note: str = Form(""),
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    form = {"done_action": action, "done_note": note}
    return _act(
        request,
        caller,
        session,
        concern_id,
        "action-done",
        form,
        lambda: actions.complete_action(session, _action_id(action), note, concern_id=concern_id),
    )


@router.post("/safeguarding/concerns/{concern_id}/actions/cancel", response_model=None)
def cancel(
    request: Request,
    concern_id: int,
    action: str = Form(""),
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    form = {"cancel_action": action, "cancel_reason": reason}
    return _act(
        request,
        caller,
        session,
        concern_id,
        "action-cancelled",
        form,
        lambda: actions.cancel_action(session, _action_id(action), reason, concern_id=concern_id),
    )


@router.post("/safeguarding/actions/done", response_model=None)
def complete_mine(
    action: str = Form(""),
    note: str = Form(""),
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    """Mark one's own action done from the concerns page (its owner need not read the
    concern); a refusal is shown on the error page with its reason."""
    actions.complete_action(session, _action_id(action), note)
    return RedirectResponse("/safeguarding/concerns?done=action-done#my-actions", status_code=303)
