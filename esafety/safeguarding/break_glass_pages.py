"""Breaking glass (issue 5 §3): a member of staff who must read a concern they may not
otherwise read gives its number and a written reason, and reads it once; the DSL is
alerted and acknowledges the alert on the desk.

Opening a concern one may not read stays a 404, the same as for one that does not exist
(:func:`esafety.safeguarding.reading.open_concern`): breaking glass is this separate page,
so that nobody reads a record by accident and every such read has its reason. The router
is included before the concern pages, so ``/safeguarding/concerns/break-glass`` is not
taken for a concern's number.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from esafety.errors import InvalidInput, NotFound
from esafety.safeguarding import reading
from esafety.safeguarding.pages import _detail
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, require
from esafety.web.pages import render

__all__ = ["router"]

router = APIRouter()

PAGE = "/safeguarding/concerns/break-glass"


def _form_page(
    request: Request,
    caller: Caller,
    form: dict[str, Any],
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {"form": form, "error": error, "min_words": reading.BREAK_GLASS_MIN_WORDS}
    return render(
        request,
        "safeguarding/break_glass.html",
        context,
        caller=caller,
        status_code=status_code,
    )


@router.get(PAGE, response_class=HTMLResponse)
def break_glass_page(
    request: Request,
    caller: Caller = Depends(require(Permission.BREAK_GLASS)),
) -> HTMLResponse:
    return _form_page(request, caller, {"concern": "", "reason": ""})


@router.post(PAGE, response_model=None)
def break_glass(
    request: Request,
    concern: str = Form(""),
    reason: str = Form(""),
    caller: Caller = Depends(require(Permission.BREAK_GLASS)),
    session: Session = SchoolSession,
) -> Response:
    """Read the concern with the reason given: shown at once, read-only; the DSL is told."""
    form = {"concern": concern, "reason": reason}
    number = concern.strip().lstrip("#")
    if not number.isdigit():
        return _form_page(
            request,
            caller,
            form,
            error="give the concern's number, such as 12 (it is on the concern's page and "
            "in the DSL's messages)",
            status_code=422,
        )
    try:
        opened = reading.break_glass(session, int(number), reason)
    except InvalidInput as exc:
        session.rollback()
        return _form_page(request, caller, form, error=str(exc), status_code=422)
    except NotFound as exc:
        # The same words as for a concern that does not exist (reading._not_found).
        return _form_page(request, caller, form, error=str(exc), status_code=404)
    if opened.access.can_read:  # they could read it anyway: no glass broken
        return RedirectResponse(f"/safeguarding/concerns/{opened.concern.id}", status_code=303)
    return _detail(
        request,
        caller,
        session,
        opened.concern.id,
        opened=opened,
        grounds="You broke glass to read it: your reason is recorded and the DSL has been "
        "told. This page is shown once; to read it again, break glass again.",
    )


@router.post(PAGE + "/acknowledge", response_model=None)
def acknowledge(
    alert: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    """The DSL has seen a break-glass alert (who read which concern, and why)."""
    if not alert.strip().isdigit():
        raise NotFound("no break-glass alert chosen: use the button beside the alert")
    reading.acknowledge_break_glass(session, int(alert))
    return RedirectResponse("/safeguarding/concerns?done=acknowledged#break-glass", status_code=303)
