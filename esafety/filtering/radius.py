"""Wi-Fi RADIUS accounting: the controller tells esafety who is on which address (issue 4 §6).

A school's Wi-Fi controller (or its RADIUS server, as an accounting proxy) sends an
Accounting-Request when a person's session starts, every so often while it lasts
(Interim-Update) and when it stops. esafety listens for them on UDP (``[radius]`` host and
port; a high port by default so no root is needed; off until a shared secret is set) and:

* Start or Interim-Update with ``User-Name`` and ``Framed-IP-Address`` (or
  ``Framed-IPv6-Address``): the person with that username is signed in at that address
  (:func:`esafety.filtering.asking.record_sign_in`, source ``radius``) until the session
  should have sent its next updates: ``Acct-Interim-Interval`` × 3, or ``Session-Timeout``,
  else ``[radius] sign_in_hours``. A later update renews it. A ``User-Name`` written as
  ``ada.l@school.org`` or ``SCHOOL\\ada.l`` is tried as ``ada.l`` first, then whole, then
  as an e-mail address.
* Stop: that person's RADIUS sign-in at that address ends now (a Stop without an address
  is matched by ``Acct-Session-Id`` to the address an earlier request gave).

Every request is checked against the shared secret (RFC 2866 §3, the Request
Authenticator); a bad one is dropped and counted, never answered. A good one is answered
with an Accounting-Response once it is recorded (RFC 2866 §4.1: an unrecorded request gets
no answer, so the controller sends it again): for a person esafety does not know too,
since there is nothing more to record (counted, and logged once per name).

Parsing and checking run on the event loop (cheap); database writes run in one worker
thread fed by a bounded queue (beyond it, requests are counted and not answered). Garbage
never stops the listener: every packet is handled inside its own ``try``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

from pyrad import packet as radius_packet
from pyrad.dictionary import Dictionary
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from esafety import metrics
from esafety.audit import Actor
from esafety.config import RadiusSettings
from esafety.db import utcnow
from esafety.directory.model import Person
from esafety.errors import ConfigError
from esafety.events import publish_on_commit
from esafety.filtering import asking
from esafety.filtering.model import ClientSignIn, SignInSource
from esafety.filtering.serving import served_school_id
from esafety.filtering.sign_ins import SignInEnded
from esafety.installation import Installation

__all__ = [
    "Accounting",
    "Outcome",
    "RadiusCounters",
    "RadiusListener",
    "apply_accounting",
    "dictionary",
    "find_person",
    "read_accounting",
    "sign_in_ttl",
    "username_candidates",
]

log = logging.getLogger(__name__)

#: A sign-in lasts at least this long, whatever the controller says.
MIN_TTL = timedelta(minutes=1)
#: Acct-Session-Id → address, for a Stop that gives no address.
_MAX_SESSIONS = 65_536
#: User-Names already logged as unknown (each is logged once).
_MAX_UNKNOWN_LOGGED = 10_000
_ACTOR = "radius accounting"


@cache
def dictionary() -> Dictionary:
    """The RADIUS attributes esafety reads (``data/radius_dictionary.txt``)."""
    text = resources.files("esafety.filtering").joinpath("data/radius_dictionary.txt")
    with resources.as_file(text) as path:
        return Dictionary(str(path))


@dataclass(slots=True)
class RadiusCounters:
    """What the listener did, for ``/metrics``: nothing is dropped without being counted."""

    requests: int = 0
    answered: int = 0
    malformed: int = 0
    bad_authenticator: int = 0
    not_accounting: int = 0
    dropped_busy: int = 0
    write_failures: int = 0
    sign_ins_started: int = 0
    sign_ins_renewed: int = 0
    sign_ins_ended: int = 0
    unknown_users: int = 0
    without_address: int = 0
    ignored: int = 0


@dataclass(frozen=True, slots=True)
class Accounting:
    """What one Accounting-Request says, in plain values."""

    status: str  # Start, Stop, Interim-Update, Accounting-On, Accounting-Off or a number
    user_name: str | None = None
    client: str | None = None
    session_id: str | None = None
    calling_station: str | None = None
    session_timeout: int | None = None
    interim_interval: int | None = None


def _first(request: Any, name: str) -> Any:
    if name not in request:
        return None
    values = request[name]
    return values[0] if values else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    return text or None


def _seconds(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def read_accounting(request: Any) -> Accounting:
    """The attributes esafety uses from a decoded ``pyrad`` AcctPacket."""
    address = _first(request, "Framed-IP-Address") or _first(request, "Framed-IPv6-Address")
    client: str | None = None
    if address is not None:
        try:
            parsed = ipaddress.ip_address(str(address))
        except ValueError:
            parsed = None
        if parsed is not None and not parsed.is_unspecified:
            mapped = getattr(parsed, "ipv4_mapped", None)
            client = str(mapped or parsed)
    status = _first(request, "Acct-Status-Type")
    return Accounting(
        status=str(status) if status is not None else "",
        user_name=_text(_first(request, "User-Name")),
        client=client,
        session_id=_text(_first(request, "Acct-Session-Id")),
        calling_station=_text(_first(request, "Calling-Station-Id")),
        session_timeout=_seconds(_first(request, "Session-Timeout")),
        interim_interval=_seconds(_first(request, "Acct-Interim-Interval")),
    )


def username_candidates(user_name: str) -> list[str]:
    """The usernames a RADIUS ``User-Name`` may stand for, most likely first:
    ``ada.l@school.org`` → ``ada.l``, then the whole value; ``SCHOOL\\ada.l`` → ``ada.l``."""
    whole = user_name.strip()
    found: list[str] = []
    if "\\" in whole:
        found.append(whole.rsplit("\\", 1)[1])
    if "@" in whole:
        found.append(whole.split("@", 1)[0].rsplit("\\", 1)[-1])
    found.append(whole)
    return [name for i, name in enumerate(found) if name and name not in found[:i]]


def find_person(session: Session, user_name: str) -> Person | None:
    """The school's person a RADIUS ``User-Name`` names (username, then e-mail), or None."""
    for candidate in username_candidates(user_name):
        person = session.scalars(
            select(Person).where(func.lower(Person.username) == candidate.lower())
        ).first()
        if person is not None:
            return person
    if "@" in user_name:
        return session.scalars(
            select(Person).where(func.lower(Person.email) == user_name.strip().lower())
        ).first()
    return None


def sign_in_ttl(accounting: Accounting, default: timedelta) -> timedelta:
    """How long a sign-in lasts: until three interim updates have been missed, or the
    session's own timeout, whichever is sooner; else ``default``."""
    limits = []
    if accounting.interim_interval is not None:
        limits.append(timedelta(seconds=accounting.interim_interval * 3))
    if accounting.session_timeout is not None:
        limits.append(timedelta(seconds=accounting.session_timeout))
    chosen = min(limits) if limits else default
    return max(MIN_TTL, min(chosen, asking.MAX_SIGN_IN_TTL))


class Outcome(StrEnum):
    STARTED = "started"
    RENEWED = "renewed"
    ENDED = "ended"
    UNKNOWN_USER = "unknown_user"
    WITHOUT_ADDRESS = "without_address"
    IGNORED = "ignored"


def _active(session: Session, client: str, now: datetime) -> list[ClientSignIn]:
    return list(
        session.scalars(
            select(ClientSignIn).where(
                ClientSignIn.client == client,
                ClientSignIn.source == SignInSource.RADIUS,
                ClientSignIn.expires_at > now,
                ClientSignIn.signed_in_at <= now,
            )
        )
    )


def _end(session: Session, row: ClientSignIn, now: datetime) -> None:
    row.expires_at = now
    publish_on_commit(
        session,
        SignInEnded(row.school_id, row.client, row.person_id, SignInSource.RADIUS.value),
    )


def apply_accounting(
    session: Session, accounting: Accounting, *, default_ttl: timedelta, now: datetime
) -> Outcome:
    """Record what one accounting request says, in a session for the school."""
    status = accounting.status
    if status not in ("Start", "Interim-Update", "Stop"):
        return Outcome.IGNORED  # Accounting-On/Off: a controller restarting; nothing to do
    if accounting.client is None:
        return Outcome.WITHOUT_ADDRESS  # a Start sent before DHCP: the Interim brings it
    person = find_person(session, accounting.user_name) if accounting.user_name else None
    if person is None or person.left_on is not None:
        return Outcome.UNKNOWN_USER
    active = _active(session, accounting.client, now)
    if status == "Stop":
        for row in active:
            if row.person_id == person.id:
                _end(session, row, now)
        session.flush()
        return Outcome.ENDED
    ttl = sign_in_ttl(accounting, default_ttl)
    renewed = False
    for row in active:
        if row.person_id == person.id:
            row.expires_at = max(row.expires_at, now + ttl)
            renewed = True
        else:  # the address has passed to someone else (DHCP gave it out again)
            _end(session, row, now)
    session.flush()
    if renewed:
        return Outcome.RENEWED
    asking.record_sign_in(
        session, accounting.client, person.username, SignInSource.RADIUS, ttl, now=now
    )
    return Outcome.STARTED


# -- the listener -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Work:
    accounting: Accounting
    reply: bytes
    address: tuple[str, int]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, listener: RadiusListener) -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.listener.received(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:  # ICMP from a gone controller
        log.debug("RADIUS socket error: %s", exc)


class RadiusListener:
    """The accounting listener ``esafety serve`` runs: start on the loop, close to stop."""

    def __init__(
        self,
        inst: Installation,
        settings: RadiusSettings,
        *,
        fallback_school: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if settings.secret is None or not settings.secret.get_secret_value():
            raise ConfigError("RADIUS accounting needs [radius] secret, the controller's secret")
        self.inst = inst
        self.settings = settings
        self.secret = settings.secret.get_secret_value().encode()
        self.school_slug = settings.school or fallback_school
        self.clock = clock
        self.counters = RadiusCounters()
        self.default_ttl = timedelta(hours=settings.sign_in_hours)
        self._queue: queue.Queue[_Work | None] = queue.Queue(maxsize=settings.queue)
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self._unknown_logged: set[str] = set()
        self._school_id: int | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._unregister: Callable[[], None] | None = None

    @property
    def port(self) -> int:
        if self._transport is None:
            return 0
        return int(self._transport.get_extra_info("sockname")[1])

    # -- starting and stopping ------------------------------------------------------------

    async def start(self) -> None:
        """Check the school setting, bind, and start the worker; ConfigError if it cannot."""
        dictionary()  # a broken dictionary should stop serve now, not the first packet
        await asyncio.to_thread(self._find_school)
        self._loop = asyncio.get_running_loop()
        try:
            transport, _ = await self._loop.create_datagram_endpoint(
                lambda: _Protocol(self), local_addr=(self.settings.host, self.settings.port)
            )
        except OSError as error:
            raise ConfigError(
                f"RADIUS accounting cannot listen on {self.settings.host} port "
                f"{self.settings.port}: {error.strerror or error}; choose another with "
                "--radius-port or [radius] port"
            ) from None
        self._transport = transport
        self._thread = threading.Thread(target=self._work, name="esafety-radius", daemon=True)
        self._thread.start()
        self._unregister = metrics.register("radius", self.samples)

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(self._stop_worker, thread)
        if self._unregister is not None:
            self._unregister()
            self._unregister = None
        self._transport = None

    def _stop_worker(self, thread: threading.Thread) -> None:
        # The queue may be full: wait for room for the sentinel rather than dropping it.
        self._queue.put(None)
        thread.join()

    # -- on the loop ----------------------------------------------------------------------

    def received(self, data: bytes, address: tuple[str, int]) -> None:
        """One datagram: decode, check the authenticator, queue it. Never raises."""
        counters = self.counters
        counters.requests += 1
        try:
            request = radius_packet.AcctPacket(dict=dictionary(), secret=self.secret, packet=data)
        except Exception:  # pyrad raises PacketError, ValueError, struct.error... for garbage
            counters.malformed += 1
            return
        if request.code != radius_packet.AccountingRequest:
            counters.not_accounting += 1
            return
        try:
            if not request.VerifyAcctRequest():
                counters.bad_authenticator += 1
                log.warning(
                    "RADIUS accounting from %s dropped: wrong shared secret (or a forged "
                    "request); check [radius] secret matches the controller's",
                    address[0],
                )
                return
            work = _Work(read_accounting(request), request.CreateReply().ReplyPacket(), address)
        except Exception:  # an attribute that does not decode
            counters.malformed += 1
            return
        try:
            self._queue.put_nowait(work)
        except queue.Full:
            counters.dropped_busy += 1  # unanswered: the controller sends it again

    def _answer(self, reply: bytes, address: tuple[str, int]) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(reply, address)
            self.counters.answered += 1

    # -- in the worker thread -------------------------------------------------------------

    def _find_school(self) -> int | None:
        if self._school_id is None:
            with self.inst.db.session(Actor.system(_ACTOR)) as session:
                self._school_id = served_school_id(session, self.school_slug, "[radius] school")
        return self._school_id

    def _work(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            try:
                outcome = self.record(work.accounting)
            except Exception as error:  # the database is away: no answer, so it comes again
                self.counters.write_failures += 1
                log.error(
                    "RADIUS accounting for %r not recorded (unanswered; the controller "
                    "will send it again): %s: %s",
                    work.accounting.user_name,
                    type(error).__name__,
                    error,
                )
                continue
            self._count(outcome, work.accounting)
            loop = self._loop
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(self._answer, work.reply, work.address)

    def record(self, accounting: Accounting) -> Outcome:
        """Record one request in the database (the worker thread's part)."""
        accounting = self._with_session_address(accounting)
        school_id = self._find_school()
        if school_id is None:
            return Outcome.UNKNOWN_USER  # no school yet, so nobody is known
        actor = Actor.system(_ACTOR, school_id=school_id)
        with self.inst.db.session(actor, school_id=school_id) as session:
            return apply_accounting(
                session, accounting, default_ttl=self.default_ttl, now=self.clock()
            )

    def _with_session_address(self, accounting: Accounting) -> Accounting:
        """Remember each session's address; give it to a Stop that left it out."""
        key = accounting.session_id
        if key is None:
            return accounting
        if accounting.client is not None:
            self._sessions[key] = accounting.client
            self._sessions.move_to_end(key)
            while len(self._sessions) > _MAX_SESSIONS:
                self._sessions.popitem(last=False)
            if accounting.status == "Stop":
                self._sessions.pop(key, None)
            return accounting
        if accounting.status == "Stop" and key in self._sessions:
            client = self._sessions.pop(key)
            return Accounting(
                accounting.status,
                accounting.user_name,
                client,
                accounting.session_id,
                accounting.calling_station,
                accounting.session_timeout,
                accounting.interim_interval,
            )
        return accounting

    def _count(self, outcome: Outcome, accounting: Accounting) -> None:
        counters = self.counters
        if outcome is Outcome.STARTED:
            counters.sign_ins_started += 1
        elif outcome is Outcome.RENEWED:
            counters.sign_ins_renewed += 1
        elif outcome is Outcome.ENDED:
            counters.sign_ins_ended += 1
        elif outcome is Outcome.WITHOUT_ADDRESS:
            counters.without_address += 1
        elif outcome is Outcome.IGNORED:
            counters.ignored += 1
        else:
            counters.unknown_users += 1
            name = accounting.user_name or ""
            if name not in self._unknown_logged and len(self._unknown_logged) < _MAX_UNKNOWN_LOGGED:
                self._unknown_logged.add(name)
                log.info(
                    "RADIUS accounting for %r (device %s): nobody in the school has that "
                    "username or e-mail address; answered, nothing recorded (said once a name)",
                    name,
                    accounting.calling_station or "unknown",
                )

    # -- /metrics -------------------------------------------------------------------------

    def samples(self) -> list[metrics.Sample]:
        helps = {
            "requests": "RADIUS datagrams received.",
            "answered": "Accounting-Responses sent.",
            "malformed": "Datagrams that were not RADIUS, dropped.",
            "bad_authenticator": "Accounting-Requests with a wrong authenticator (secret), dropped.",
            "not_accounting": "RADIUS packets other than Accounting-Request, dropped.",
            "dropped_busy": "Requests not queued because the database queue was full.",
            "write_failures": "Requests the database could not record (left unanswered).",
            "sign_ins_started": "Sign-ins recorded from Start or Interim-Update.",
            "sign_ins_renewed": "Sign-ins renewed by an update.",
            "sign_ins_ended": "Stops that ended a sign-in.",
            "unknown_users": "Requests for a User-Name nobody in the school has.",
            "without_address": "Start or Interim-Update without a Framed-IP-Address.",
            "ignored": "Accounting-On, Accounting-Off and other status types.",
        }
        values = {f.name: getattr(self.counters, f.name) for f in fields(self.counters)}
        samples = metrics.counters_of("esafety_radius", values, help_texts=helps)
        samples.append(
            metrics.Sample(
                "esafety_radius_queue_length",
                self._queue.qsize(),
                "Accounting-Requests waiting for the database.",
                "gauge",
            )
        )
        return samples
