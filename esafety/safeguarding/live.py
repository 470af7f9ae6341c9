"""The DSL's desk, live: a grave concern shows on an open desk at once, without reloading
(issue 5 §4).

``GET /safeguarding/desk/events`` is a stream of server-sent events (``text/event-stream``)
that ``static/desk-live.js`` reads with ``EventSource`` and turns into a new row at the top
of the desk. Each event is one grave, open concern that *this* listener may act on, decided
per listener by the one set of reading rules (:mod:`esafety.safeguarding.access`): its id,
the kind's title, when it was recorded, who raised it and how many required steps are
open — what the desk's row shows, never what was seen or said. Sending it is audited like
the desk's listing.

How new concerns reach a stream: every few seconds (:attr:`DeskTiming.poll_s`) the stream
asks the database for concerns newer than the last it looked at. The database is the one
place every process writes to — the web app, a second HTTPS server, a script, a future
monitoring worker — so nothing recorded elsewhere is missed, and a reconnecting browser
resumes from ``Last-Event-ID``. In the web app's own process the event bus
(:class:`~esafety.safeguarding.concerns.ConcernRecorded`) also wakes the stream at once, so
a concern recorded through the pages or the API shows within a moment rather than at the
next poll, and a change of kind that makes a concern grave is seen too.

The stream sends a comment every :attr:`DeskTiming.heartbeat_s` so proxies keep it open;
it ends when the web session ends, is locked, goes idle past the lock time or the person's
roles change (the browser's reconnection then meets the ordinary sign-in checks, which
lock an idle session: the stream never keeps one alive), and within a second of
``esafety serve`` being asked to stop (``app.state.server.should_exit``), so an open desk
never holds up a shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from sqlalchemy import func, select

from esafety import audit
from esafety.audit import Actor
from esafety.db import utcnow
from esafety.directory.model import PersonRole, School
from esafety.events import subscribe
from esafety.installation import Installation
from esafety.safeguarding.access import access
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.concerns import ConcernRecorded, procedure_state
from esafety.safeguarding.model import Concern
from esafety.safeguarding.reading import facts_of, online_safety_kinds, reader_of
from esafety.security.accounts import live_session
from esafety.security.model import Account
from esafety.security.roles import Permission
from esafety.web.deps import SESSION_COOKIE, Caller, installation, require

__all__ = ["STREAM", "DeskItem", "DeskTiming", "new_on_desk", "router", "stopping"]

router = APIRouter()

STREAM = "/safeguarding/desk/events"
#: Concerns looked at in one poll; more wait for the next (a stream never reads a school's
#: whole history at once).
BATCH = 50
#: The browser's wait before reconnecting after the stream ends or breaks.
RETRY_MS = 5000


@dataclass(frozen=True)
class DeskTiming:
    #: How often the database is asked for new concerns (they may come from any process).
    poll_s: float = 3.0
    #: How often the stream looks whether the server is stopping.
    tick_s: float = 1.0
    #: A comment this often keeps proxies from closing a quiet stream.
    heartbeat_s: float = 15.0
    #: How often the web session is checked (ended, locked, idle, roles changed).
    session_s: float = 30.0


@dataclass(frozen=True)
class DeskItem:
    """One new row for the desk: what the row shows, nothing more (no narrative)."""

    id: int
    title: str
    grave: bool
    recorded: str
    raised_by: str
    remaining: int
    url: str


def stopping(app: FastAPI) -> bool:
    """The server is shutting down (``esafety serve`` puts its uvicorn server on app.state)."""
    server = getattr(app.state, "server", None)
    return bool(getattr(server, "should_exit", False))


def _timing(app: FastAPI) -> DeskTiming:
    timing = getattr(app.state, "desk_timing", None)
    return timing if isinstance(timing, DeskTiming) else DeskTiming()


# -- the database side (in threads) -----------------------------------------------------


def start_after(inst: Installation, caller: Caller, since: int | None) -> int:
    """The concern id to look after: what the page or the browser last saw, at most
    :data:`BATCH` behind the newest, else the newest now."""
    with inst.db.session(caller.actor, school_id=caller.school_id) as session:
        newest = int(session.scalar(select(func.max(Concern.id))) or 0)
    if since is None or since < 0:
        return newest
    return max(min(since, newest), newest - BATCH)


def new_on_desk(
    inst: Installation, caller: Caller, after: int, also: frozenset[int] = frozenset()
) -> tuple[int, list[DeskItem]]:
    """Grave, open concerns with an id above ``after`` (and those in ``also``) that the
    caller may act on; returns the new watermark and the rows. Audited as a listing."""
    with inst.db.session(caller.actor, school_id=caller.school_id) as session:
        ids = list(
            session.scalars(
                select(Concern.id).where(Concern.id > after).order_by(Concern.id).limit(BATCH)
            )
        )
        watermark = max([after, *ids])
        wanted = sorted(set(ids) | set(also))
        if not wanted:
            return watermark, []
        school = session.get(School, caller.school_id)
        zone = ZoneInfo(school.timezone if school is not None else "Europe/London")
        kinds = online_safety_kinds(session)
        reader = reader_of(session)
        now = utcnow()
        items = []
        for concern in session.scalars(select(Concern).where(Concern.id.in_(wanted))):
            info = kind_info(concern.current_kind)
            if not info.grave or not concern.is_open:
                continue
            if not access(reader, facts_of(session, concern), online_safety_kinds=kinds).can_act:
                continue
            items.append(
                DeskItem(
                    id=concern.id,
                    title=info.title,
                    grave=True,
                    recorded=concern.recorded_at.astimezone(zone).strftime("%a %d %b %Y, %H:%M"),
                    raised_by=concern.raised_by,
                    remaining=len(procedure_state(concern, now=now).remaining_required),
                    url=f"/safeguarding/concerns/{concern.id}",
                )
            )
        items.sort(key=lambda item: item.id)
        if items:
            audit.record(
                session,
                "list",
                "concern",
                after={"ids": [i.id for i in items], "via": "the desk's live stream"},
            )
        return watermark, items


def session_still_good(
    inst: Installation, cookie: str, caller: Caller, *, now: datetime | None = None
) -> bool:
    """The caller's web session is still signed in, unlocked, not idle past the lock time,
    and their roles are those the stream started with. Touches nothing: only a request
    the person makes keeps a session awake."""
    now = now or utcnow()
    idle = timedelta(minutes=inst.settings.security.idle_lock_minutes)
    with inst.db.session(Actor.system("desk stream")) as session:
        ws = live_session(session, cookie)
        if ws is None or ws.person_id != caller.person_id or ws.locked or not ws.two_step_done:
            return False
        if now >= ws.expires_at or now - ws.last_seen_at >= idle:
            return False
        account = session.get(Account, caller.person_id)
        if account is None or account.disabled:
            return False
        roles = session.scalars(
            select(PersonRole.role).where(PersonRole.person_id == caller.person_id)
        )
        return frozenset(str(r) for r in roles) == frozenset(str(r) for r in caller.roles)


# -- the stream -------------------------------------------------------------------------


def _event(item: DeskItem, watermark: int) -> str:
    data = json.dumps(asdict(item), ensure_ascii=False)
    return f"id: {watermark}\nevent: concern\ndata: {data}\n\n"


async def desk_stream(
    app: FastAPI, inst: Installation, caller: Caller, cookie: str, since: int | None
) -> AsyncIterator[str]:
    """The events for one listener, until the session ends or the server stops."""
    timing = _timing(app)
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    pending: set[int] = set()

    def mark(concern_id: int) -> None:
        pending.add(concern_id)
        wake.set()

    def woken(event: ConcernRecorded) -> None:
        # Called in the publisher's thread; the stream lives on the event loop.
        if event.school_id == caller.school_id and event.grave:
            with contextlib.suppress(RuntimeError):  # the loop has closed: the server is gone
                loop.call_soon_threadsafe(mark, event.concern_id)

    unsubscribe = subscribe(ConcernRecorded, woken)
    try:
        watermark = await asyncio.to_thread(start_after, inst, caller, since)
        sent: set[int] = set()
        yield f"retry: {RETRY_MS}\n: the DSL's desk, live\n\n"
        now = loop.time()
        next_poll, next_beat, next_check = now, now + timing.heartbeat_s, now + timing.session_s
        while not stopping(app):
            wait = max(0.0, min(timing.tick_s, next_poll - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=wait)
            now = loop.time()
            if wake.is_set() or now >= next_poll:
                wake.clear()
                also = frozenset(pending - sent)
                pending.clear()
                watermark, items = await asyncio.to_thread(
                    new_on_desk, inst, caller, watermark, also
                )
                for item in items:
                    if item.id not in sent:
                        sent.add(item.id)
                        yield _event(item, watermark)
                        next_beat = now + timing.heartbeat_s
                next_poll = now + timing.poll_s
            if now >= next_check:
                if not await asyncio.to_thread(session_still_good, inst, cookie, caller):
                    yield "event: end\ndata: signed-out\n\n"
                    return
                next_check = now + timing.session_s
            if now >= next_beat:
                yield ": keep-alive\n\n"
                next_beat = now + timing.heartbeat_s
    finally:
        unsubscribe()


@router.get(STREAM, response_model=None)
async def desk_events(
    request: Request,
    since: int | None = None,
    caller: Caller = Depends(require(Permission.ACT_ON_CONCERNS)),
) -> Response:
    """Server-sent events: grave concerns for the caller's desk as they are recorded."""
    if "text/event-stream" not in request.headers.get("accept", ""):
        return PlainTextResponse(
            "This address is the DSL's desk's live stream: the desk page opens it with "
            "EventSource (Accept: text/event-stream). Open /safeguarding/concerns instead.",
            status_code=406,
        )
    resume = request.headers.get("last-event-id", "").strip()
    if resume.isdigit():
        since = int(resume)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    stream = desk_stream(request.app, installation(request), caller, cookie, since)
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
