"""Pages of "Tell someone about a worry": the pupil's form at ``/worry`` (linked from the
block page), their private link ``/worry/{token}``, a short code typed in at
``/worry/open``, and the DSL's reply from the concern's page (issue 5 §1).

The pupil's pages need no sign-in (``Permission.PUBLIC``): a pupil may have no account.
Who is asking comes from a web sign-in, else from the device (the filter's sign-ins and
network mappings, as the block page finds it): a pupil known so may put their name on
the worry, and the words suit their age (the block page's bands). Forms carry the CSRF
token as every form does (a cookie before there is a session). A device may send
:data:`REPORTS_PER_WINDOW` worries in :data:`WINDOW` seconds, and try a few codes; the
limits live in memory, per process, like the block page's.

Nothing about a worry reaches the server's log: the access log's lines for these pages
lose the device's address and the link's token (:class:`HideWorryRequests`). The token is
in the private link's address, and nowhere else outside the pupil's own browser.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session, object_session
from starlette.concurrency import run_in_threadpool

from esafety.audit import Actor
from esafety.directory.model import Person, PersonKind
from esafety.errors import InvalidInput
from esafety.filtering import asking
from esafety.filtering.blockpage import school_for_client
from esafety.filtering.blockwords import Band, band_of
from esafety.filtering.reports import RateLimiter
from esafety.installation import Installation
from esafety.safeguarding import whisper
from esafety.safeguarding.model import Concern
from esafety.safeguarding.whisper import PupilThread, StaffView
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, installation, require
from esafety.web.pages import environment, render

__all__ = ["HideWorryRequests", "router"]

router = APIRouter()

#: A device may send this many worries in WINDOW seconds (a brake on a loop).
REPORTS_PER_WINDOW = 5
#: ... and try this many codes, and add this many messages.
CODES_PER_WINDOW = 10
ADDITIONS_PER_WINDOW = 20
WINDOW = 600.0
#: The forms are a few boxes of words; anything bigger is not from our page.
MAX_FORM_BYTES = 65_536

_CHOICES = ("yes", "no")


# -- who is asking --------------------------------------------------------------------


@dataclass(frozen=True)
class Asking:
    """The school whose device this is, the pupil at it (if known) and their words."""

    school_id: int | None
    band: Band
    #: The pupil who may put their name on it: (person id, first name).
    pupil_id: int | None = None
    first_name: str = ""


def _address(request: Request) -> str:
    text = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _as_asking(school_id: int, person: Person | None, policy_id: str | None) -> Asking:
    band = band_of(person, policy_id)
    if person is None or person.kind is not PersonKind.PUPIL or person.left_on is not None:
        return Asking(school_id, band)
    return Asking(school_id, band, person.id, person.first_name)


def who_is_asking(inst: Installation, caller: Caller | None, client: str) -> Asking:
    """A signed-in person first; else whoever the filter knows at the device."""
    if caller is not None:
        with inst.db.session(caller.actor, school_id=caller.school_id) as session:
            return _as_asking(caller.school_id, session.get(Person, caller.person_id), None)
    with inst.db.session(Actor.system("worry page")) as session:
        school_id = school_for_client(session, inst.settings.dns.school, client)
    if school_id is None:
        return Asking(None, Band.UNKNOWN)
    actor = Actor.system("worry page", school_id=school_id)
    with inst.db.session(actor, school_id=school_id) as session:
        try:
            found = asking.who_is_at(session, client)
        except InvalidInput:  # not an IP address (a test client): an unknown device
            return Asking(school_id, Band.UNKNOWN)
        return _as_asking(school_id, found.person, found.asker.policy_id)


# -- limits ---------------------------------------------------------------------------


@dataclass
class Limits:
    reports: RateLimiter
    codes: RateLimiter
    additions: RateLimiter


def _limits(request: Request) -> Limits:
    state = request.app.state
    limits: Limits | None = getattr(state, "worry_limits", None)
    if limits is None:
        limits = Limits(
            RateLimiter(REPORTS_PER_WINDOW, WINDOW),
            RateLimiter(CODES_PER_WINDOW, WINDOW),
            RateLimiter(ADDITIONS_PER_WINDOW, WINDOW),
        )
        state.worry_limits = limits
    return limits


async def small_form(request: Request) -> None:
    """Refuse a body too big for these forms before anything reads it."""
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_FORM_BYTES:
        raise HTTPException(
            413, "That was too much to send at once. Please write less, and send the rest later."
        )


async def _fields(request: Request, *names: str) -> dict[str, str]:
    form = await request.form(max_files=0, max_fields=20)
    return {name: str(value) if isinstance(value := form.get(name), str) else "" for name in names}


class HideWorryRequests(logging.Filter):
    """The access log keeps a line for these pages, without the device or the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and "worry" in str(args[2]):
            path = str(args[2])
            shown = "/static/worry.css" if path.startswith("/static/") else path.split("/")[1]
            record.args = ("-", args[1], "/" + shown.lstrip("/"), args[3], args[4])
        return True


_ACCESS_LOG = logging.getLogger("uvicorn.access")
if not any(isinstance(f, HideWorryRequests) for f in _ACCESS_LOG.filters):
    _ACCESS_LOG.addFilter(HideWorryRequests())


# -- the pupil's pages ----------------------------------------------------------------


def _secret(request: Request) -> bytes:
    return installation(request).settings.secret()


def _form_page(
    request: Request,
    caller: Caller | None,
    who: Asking,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {
        "who": who,
        "band": who.band.value,
        "form": form or {"what": "", "who": "", "now": "", "name": ""},
        "error": error,
        "max_words": whisper.MAX_WORDS,
        "max_who": whisper.MAX_WHO,
    }
    return render(
        request, "safeguarding/whisper.html", context, caller=caller, status_code=status_code
    )


@router.get("/worry", response_class=HTMLResponse)
async def worry_form(
    request: Request, caller: Caller | None = Depends(require(Permission.PUBLIC))
) -> HTMLResponse:
    who = await run_in_threadpool(who_is_asking, installation(request), caller, _address(request))
    return _form_page(request, caller, who)


@router.post("/worry", response_model=None)
async def send_worry(
    request: Request,
    _small: None = Depends(small_form),
    caller: Caller | None = Depends(require(Permission.PUBLIC)),
) -> Response:
    form = await _fields(request, "what", "who", "now", "name")
    client = _address(request)
    inst = installation(request)
    who = await run_in_threadpool(who_is_asking, inst, caller, client)

    def again(message: str, status: int) -> HTMLResponse:
        return _form_page(request, caller, who, form=form, error=message, status_code=status)

    if who.school_id is None:
        return again(
            "This device is not one of the school's, so the worry could not be sent. "
            "Please tell an adult you trust instead.",
            400,
        )
    if who.pupil_id is not None and form["name"] not in _CHOICES:
        return again("Please choose: put your name on it, or send it without your name.", 422)
    if not form["what"].strip():
        return again("Please write what happened in the first box.", 422)
    if not _limits(request).reports.allow(client):
        return again(
            "A lot of worries have been sent from this device in the last few minutes, so this "
            "one has not been sent yet. Please wait ten minutes and try again, or tell an adult "
            "you trust now.",
            429,
        )
    named = who.pupil_id if form["name"] == "yes" else None
    try:
        sent = await run_in_threadpool(
            lambda: whisper.send_worry(
                inst.db,
                int(who.school_id or 0),
                what=form["what"],
                who=form["who"],
                happening_now={"yes": True, "no": False}.get(form["now"]),
                pupil_id=named,
                secret=inst.settings.secret(),
            )
        )
    except InvalidInput as error:
        return again(str(error)[:1].upper() + str(error)[1:] + ".", 422)
    return RedirectResponse(f"/worry/{sent.token}?sent=1", status_code=303)


def _missing(request: Request, caller: Caller | None) -> HTMLResponse:
    # One answer for a wrong link, an old one and another school's: nothing to learn.
    return render(request, "safeguarding/whisper_missing.html", {}, caller=caller, status_code=404)


def _local(thread: PupilThread) -> Any:
    zone = ZoneInfo(thread.timezone)
    return lambda moment: moment.astimezone(zone).strftime("%A %-d %B, %H:%M")


def _thread_page(
    request: Request,
    caller: Caller | None,
    thread: PupilThread,
    *,
    token: str | None = None,
    code: str,
    error: str | None = None,
    more: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    flash = {"sent": "sent", "added": "added"}
    shown = next((v for k, v in flash.items() if request.query_params.get(k)), None)
    context = {
        "thread": thread,
        "local": _local(thread),
        "token": token,
        "link": str(request.url_for("worry_thread", token=token)) if token else None,
        "code": code,
        "flash": shown,
        "error": error,
        "more": more,
        "max_words": whisper.MAX_WORDS,
    }
    return render(
        request, "safeguarding/whisper_thread.html", context, caller=caller, status_code=status_code
    )


def _school_of(caller: Caller | None) -> int | None:
    # Someone signed in to one school never reads another school's worry (even by link).
    return caller.school_id if caller is not None else None


@router.get("/worry/{token}", response_class=HTMLResponse, name="worry_thread")
async def worry_thread(
    request: Request, token: str, caller: Caller | None = Depends(require(Permission.PUBLIC))
) -> HTMLResponse:
    inst = installation(request)
    thread = await run_in_threadpool(
        lambda: whisper.open_by_token(inst.db, token, school_id=_school_of(caller))
    )
    if thread is None:
        return _missing(request, caller)
    return _thread_page(
        request, caller, thread, token=token, code=whisper.code_for(_secret(request), token)
    )


def _too_many(request: Request, caller: Caller | None) -> HTMLResponse:
    return render(
        request,
        "safeguarding/whisper_missing.html",
        {"busy": True},
        caller=caller,
        status_code=429,
    )


@router.post("/worry/{token}", response_model=None)
async def add_to_worry(
    request: Request,
    token: str,
    _small: None = Depends(small_form),
    caller: Caller | None = Depends(require(Permission.PUBLIC)),
) -> Response:
    form = await _fields(request, "more")
    inst = installation(request)
    secret = _secret(request)
    school = _school_of(caller)
    if not form["more"].strip():
        thread = await run_in_threadpool(
            lambda: whisper.open_by_token(inst.db, token, school_id=school)
        )
        if thread is None:
            return _missing(request, caller)
        return _thread_page(
            request, caller, thread, token=token, code=whisper.code_for(secret, token),
            error="The box is empty: write what you want to tell us, then press Send.",
            status_code=422,
        )  # fmt: skip
    if not _limits(request).additions.allow(_address(request)):
        return _too_many(request, caller)
    try:
        added = await run_in_threadpool(
            lambda: whisper.add_from_pupil(
                inst.db, form["more"], secret=secret, token=token, school_id=school
            )
        )
    except InvalidInput as error:
        thread = await run_in_threadpool(
            lambda: whisper.open_by_token(inst.db, token, school_id=school)
        )
        if thread is None:
            return _missing(request, caller)
        return _thread_page(
            request, caller, thread, token=token, code=whisper.code_for(secret, token),
            error=str(error)[:1].upper() + str(error)[1:] + ".", more=form["more"],
            status_code=422,
        )  # fmt: skip
    if added is None:
        return _missing(request, caller)
    return RedirectResponse(f"/worry/{token}?added=1", status_code=303)


@router.post("/worry-code", response_model=None)
async def open_with_code(
    request: Request,
    _small: None = Depends(small_form),
    caller: Caller | None = Depends(require(Permission.PUBLIC)),
) -> Response:
    """A code typed in: the conversation, on this answer only (the code is never in a URL)."""
    form = await _fields(request, "code", "more")
    if not _limits(request).codes.allow(_address(request)):
        return _too_many(request, caller)
    inst = installation(request)
    secret = _secret(request)
    school = _school_of(caller)
    code = form["code"].strip().upper()
    error = None
    thread: PupilThread | None
    try:
        if form["more"].strip():
            thread = await run_in_threadpool(
                lambda: whisper.add_from_pupil(
                    inst.db, form["more"], secret=secret, code=code, school_id=school
                )
            )
        else:
            thread = await run_in_threadpool(
                lambda: whisper.open_by_code(inst.db, code, secret=secret, school_id=school)
            )
    except InvalidInput as problem:
        error = str(problem)[:1].upper() + str(problem)[1:] + "."
        thread = await run_in_threadpool(
            lambda: whisper.open_by_code(inst.db, code, secret=secret, school_id=school)
        )
    if thread is None:
        return _missing(request, caller)
    return _thread_page(
        request, caller, thread, code=code, error=error,
        more=form["more"] if error else "", status_code=422 if error else 200,
    )  # fmt: skip


# -- the DSL's reply ------------------------------------------------------------------


@router.post("/safeguarding/concerns/{concern_id}/pupil-reply", response_model=None)
def reply_to_pupil(
    concern_id: int,
    text: str = Form(""),
    sign: str = Form(""),
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    """The concern's reader replies to the pupil who sent it (they read it at their link)."""
    try:
        whisper.reply(session, concern_id, text, signed=sign == "yes")
    except InvalidInput:
        session.rollback()
        return RedirectResponse(
            f"/safeguarding/concerns/{concern_id}?pupil_reply=empty#pupil-reply", status_code=303
        )
    return RedirectResponse(
        f"/safeguarding/concerns/{concern_id}?pupil_reply=sent#pupil-reply", status_code=303
    )


def worry_report(concern: Concern) -> StaffView | None:
    """For the concern's page (``safeguarding/whisper_reply.html``): the pupil's report
    behind it, read in the page's own session (the concern is already open, and audited)."""
    session = object_session(concern)
    if session is None:
        return None
    return whisper.staff_view(session, concern)


environment.globals["worry_report"] = worry_report
