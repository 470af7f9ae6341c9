"""The DSL's desk, live (issue 5 §4): the event stream over real HTTP (uvicorn on loopback).

Each listener gets the grave concerns *they* may act on, as the reading rules say, and
never what was seen or said; a concern recorded in another process (no event on this
process's bus) still arrives, through the database; the stream ends with the session, and
an open stream never holds up the server's shutdown."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select

from esafety.audit import Actor, AuditEntry
from esafety.db import utcnow
from esafety.safeguarding import concerns
from esafety.safeguarding.concerns import About
from esafety.safeguarding.live import STREAM, DeskTiming
from esafety.security.model import WebSession
from esafety.security.roles import Role
from esafety.web.app import create_app
from esafety.web.deps import SESSION_COOKIE
from tests.accounts import Member, session_and_csrf
from tests.pg import free_port
from tests.safeguarding.concern_people import MARKER, ConcernSchool, concern_school, record

FAST = DeskTiming(poll_s=0.3, tick_s=0.1, heartbeat_s=0.4, session_s=0.4)
GROOMING = "Online sexual abuse, exploitation or grooming"


@dataclass
class Server:
    url: str
    uvicorn: uvicorn.Server
    thread: threading.Thread


@dataclass
class Listener:
    """One open stream, read on a thread of its own."""

    status: int = 0
    raw: list[str] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)

    @property
    def concerns(self) -> list[dict[str, Any]]:
        return [data for name, data in self.events if name == "concern" and isinstance(data, dict)]

    def wait_for(self, check: Callable[[], bool], seconds: float = 10) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(0.05)
        return check()


@pytest.fixture
def cs(inst) -> ConcernSchool:
    return concern_school(inst)


@pytest.fixture
def server(inst) -> Iterator[Server]:
    app = create_app(inst)
    app.state.desk_timing = FAST
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    app.state.server = running  # as esafety serve does: streams end when it stops
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running.started, "uvicorn did not start"
    try:
        yield Server(f"http://127.0.0.1:{port}", running, thread)
    finally:
        running.should_exit = True
        thread.join(10)


def listen(server: Server, cs: ConcernSchool, who: Member | Role, **headers: str) -> Listener:
    member = cs[who] if isinstance(who, Role) else who
    cookie, _ = session_and_csrf(cs.inst, member)
    listener = Listener()

    def read() -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(30.0)) as client,
                client.stream(
                    "GET",
                    server.url + STREAM + headers.pop("query", ""),
                    headers={"accept": "text/event-stream", **headers},
                    cookies={SESSION_COOKIE: cookie},
                ) as response,
            ):
                listener.status = response.status_code
                listener.opened.set()
                name, data = "message", ""
                for line in response.iter_lines():
                    listener.raw.append(line)
                    if line.startswith("event:"):
                        name = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        data = line.split(":", 1)[1].strip()
                    elif line == "" and data:
                        parsed: dict[str, Any] | str = (
                            json.loads(data) if data.startswith("{") else data
                        )
                        listener.events.append((name, parsed))
                        name, data = "message", ""
        except httpx.HTTPError:
            pass
        finally:
            listener.opened.set()
            listener.closed.set()

    threading.Thread(target=read, daemon=True).start()
    assert listener.opened.wait(10)
    # The stream has started once its first lines (the retry advice) are in.
    assert listener.status != 200 or listener.wait_for(lambda: bool(listener.raw))
    return listener


def test_a_grave_concern_reaches_each_reader_and_no_one_else(
    cs: ConcernSchool, server: Server
) -> None:
    dsl = listen(server, cs, Role.DSL)
    deputy = listen(server, cs, Role.DEPUTY_DSL)
    head = listen(server, cs, Role.HEADTEACHER)
    teacher = listen(server, cs, Role.TEACHER)
    assert (dsl.status, deputy.status, head.status) == (200, 200, 200)
    assert teacher.status == 403  # a teacher has no desk, and no stream

    grave = record(cs, kind="online_sexual_abuse")
    assert dsl.wait_for(lambda: bool(dsl.concerns)), dsl.raw
    assert deputy.wait_for(lambda: bool(deputy.concerns))
    (item,) = dsl.concerns
    assert item["id"] == grave and item["title"] == GROOMING and item["grave"] is True
    assert item["url"] == f"/safeguarding/concerns/{grave}"
    assert item["raised_by"] and item["remaining"] > 0

    allegation = record(cs, cs.teacher2, kind="staff_allegation", about=[cs[Role.TEACHER].username])
    record(cs, kind="online_bullying")  # not grave: stays for the next reload of the desk
    assert head.wait_for(lambda: bool(head.concerns))
    time.sleep(FAST.poll_s * 3)  # every stream has looked at every concern by now
    assert [c["id"] for c in head.concerns] == [allegation]  # not the grooming concern
    assert [c["id"] for c in dsl.concerns] == [grave]  # the DSL does not read the allegation
    assert [c["id"] for c in deputy.concerns] == [grave]
    for listener in (dsl, deputy, head):
        text = "\n".join(listener.raw)
        assert MARKER not in text and "a game's chat" not in text
        assert any(line == ": keep-alive" for line in listener.raw)  # heartbeats

    with cs.inst.db.session(Actor.system("test")) as session:
        pushed = {
            (e.actor, tuple(e.after["ids"]))
            for e in session.scalars(select(AuditEntry).where(AuditEntry.action == "list"))
            if e.after is not None and e.after.get("via") == "the desk's live stream"
        }
    assert pushed >= {
        (cs[Role.DSL].username, (grave,)),
        (cs[Role.HEADTEACHER].username, (allegation,)),
    }


def test_a_concern_from_another_process_arrives_through_the_database(
    cs: ConcernSchool, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsl = listen(server, cs, Role.DSL)
    # Recorded elsewhere: nothing is published on this process's bus.
    monkeypatch.setattr(concerns, "publish_on_commit", lambda *_args: None)
    grave = record(cs, kind="radicalisation")
    assert dsl.wait_for(lambda: bool(dsl.concerns))
    assert [c["id"] for c in dsl.concerns] == [grave]


def test_a_reconnecting_browser_resumes_where_it_left_off(
    cs: ConcernSchool, server: Server
) -> None:
    before = record(cs, kind="online_bullying")
    missed = record(cs, kind="youth_produced_sexual_imagery")
    # Recorded while the browser was away: it comes back with the last id it saw.
    dsl = listen(server, cs, Role.DSL, **{"last-event-id": str(before)})
    assert dsl.wait_for(lambda: bool(dsl.concerns))
    assert [c["id"] for c in dsl.concerns] == [missed]
    # A page opened after it knows it already: nothing is sent twice.
    fresh = listen(server, cs, Role.DSL, query=f"?since={missed}")
    time.sleep(FAST.poll_s * 3)
    assert fresh.concerns == []


def test_the_stream_ends_with_the_session(cs: ConcernSchool, server: Server) -> None:
    dsl = listen(server, cs, Role.DSL)
    with cs.inst.db.session(Actor.system("test")) as session:
        for ws in session.scalars(select(WebSession)):
            ws.ended_at = utcnow()  # signed out (in another tab)
    assert dsl.closed.wait(5)
    assert ("end", "signed-out") in dsl.events


def test_an_about_the_dsl_concern_never_reaches_the_dsl(cs: ConcernSchool, server: Server) -> None:
    dsl = listen(server, cs, Role.DSL)
    deputy = listen(server, cs, Role.DEPUTY_DSL)
    about_dsl = record(
        cs,
        kind="sexual_violence_harassment",
        about=[cs[Role.PUPIL].username, About(person=cs[Role.DSL].username, part="harmed_others")],
    )
    assert deputy.wait_for(lambda: bool(deputy.concerns))
    time.sleep(FAST.poll_s * 3)
    assert [c["id"] for c in deputy.concerns] == [about_dsl]
    assert dsl.concerns == []


def test_the_server_stops_at_once_with_streams_open(cs: ConcernSchool, server: Server) -> None:
    streams = [listen(server, cs, Role.DSL), listen(server, cs, Role.DEPUTY_DSL)]
    started = time.monotonic()
    server.uvicorn.should_exit = True
    server.thread.join(10)
    assert not server.thread.is_alive()
    assert time.monotonic() - started < 4
    assert all(s.closed.wait(5) for s in streams)


def test_the_stream_answers_only_an_event_source(cs: ConcernSchool, inst) -> None:
    with TestClient(create_app(inst)) as client:
        cookie, _ = session_and_csrf(inst, cs[Role.DSL])
        client.cookies.set(SESSION_COOKIE, cookie)
        answer = client.get(STREAM)
    assert answer.status_code == 406
    assert "EventSource" in answer.text
