"""The DNS filter as ``esafety serve`` runs it: who is asking, the engine, and the server.

The DNS filter asks :class:`DnsBridge` about every name, on the serving loop, so the
bridge never touches the database (ARCHITECTURE "Hot path"). It answers from two things
read beforehand, each swapped whole by assigning one reference:

* :class:`WhoIsWhere`, a snapshot of sign-ins and subnet mappings (issue 4 §6), read again
  every few seconds, or at once after a sign-in (:meth:`DnsService.changed`, woken by the
  sign-in events);
* the engine, built from the stored lists, the school's own entries, policies and
  exceptions. When they change (polled, or at once on ``FilterRulesChanged``) it is
  compiled again in a separate process (a compile in a thread of this process would hold
  the GIL for seconds and stall the serving loop), written to a file, and each serving
  loop maps the file and swaps: a pause of milliseconds, measured (:attr:`longest_stall`).

The serving loop is this process's (one worker) or those of worker processes, one a CPU
(:mod:`esafety.filtering.dns_workers`). Every database read runs in a thread of this
process; a failed refresh keeps the last good snapshot or engine and logs one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import pickle
import sys
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety import metrics
from esafety.audit import Actor
from esafety.config import DnsSettings, upstream_address
from esafety.db import utcnow
from esafety.directory.model import Person, School
from esafety.errors import ConfigError
from esafety.filtering import asking
from esafety.filtering.decision import Asker, EngineHolder, FilterEngine
from esafety.filtering.dns import (
    BlockSettings,
    DnsHandler,
    DnsServer,
    Forwarder,
    ServerSettings,
    UpstreamSettings,
)
from esafety.filtering.dns_bridge import DnsBridge, WhoIsWhere, verdict_of
from esafety.filtering.dns_workers import (
    WorkerConfig,
    WorkerPool,
    counters_of,
    reserve_port,
)
from esafety.filtering.engine_file import ENGINE_SUFFIX, load_engine, save_engine
from esafety.filtering.log import DEFAULT_CAPACITY, DecisionLog, FlushListener, LogEntry
from esafety.filtering.model import ClientSignIn, SubnetMapping
from esafety.filtering.priority import yield_to_serving
from esafety.filtering.service import build_engine, list_lists, rules_fingerprint
from esafety.filtering.store import ListStore
from esafety.installation import Installation

__all__ = [
    "DnsBridge",
    "DnsService",
    "WhoIsWhere",
    "block_settings",
    "build_for_dns",
    "read_who_is_where",
    "verdict_of",
    "worker_count",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Client addresses remembered per snapshot once their subnet has been looked up.
_MAX_SEEN = 65_536


def read_who_is_where(session: Session, now: datetime | None = None) -> WhoIsWhere:
    """The snapshot for the session's school: every current sign-in and subnet mapping."""
    at = now or utcnow()
    rows = session.scalars(
        select(ClientSignIn)
        .where(ClientSignIn.expires_at > at, ClientSignIn.signed_in_at <= at)
        .order_by(ClientSignIn.signed_in_at.desc(), ClientSignIn.id.desc())
    )
    people: dict[int, tuple[Asker, str] | None] = {}
    signed_in: dict[str, tuple[Asker, float]] = {}
    usernames: dict[str, str] = {}
    latest: set[str] = set()
    for row in rows:
        if row.client in latest:
            continue  # an older sign-in at the same address
        latest.add(row.client)
        if row.person_id not in people:
            person = session.get(Person, row.person_id)
            people[row.person_id] = (
                (asking.asker_for_person(session, person)[0], person.username)
                if person is not None and person.left_on is None
                else None
            )
        found = people[row.person_id]
        if found is not None:  # someone who has left falls back to the subnet, as who_is_at
            signed_in[row.client] = (found[0], row.expires_at.timestamp())
            usernames[row.client] = found[1]
    subnets = tuple(
        (ipaddress.ip_network(row.network), asking._subnet_asker(session, row))
        for row in session.scalars(select(SubnetMapping))
    )
    return WhoIsWhere(signed_in, subnets, usernames)


def block_settings(dns: DnsSettings, web_host: str) -> tuple[BlockSettings, list[str]]:
    """How blocked names are answered, and warnings for the person starting the server."""
    if dns.block_mode == "nxdomain":
        return BlockSettings(mode="nxdomain", ttl=dns.block_ttl), []
    ipv4, ipv6 = dns.block_ipv4, dns.block_ipv6
    if ipv4 is None and ipv6 is None:
        try:
            web = ipaddress.ip_address(web_host.strip("[]"))
        except ValueError:
            web = None
        if web is None or web.is_unspecified:
            return BlockSettings(mode="nxdomain", ttl=dns.block_ttl), [
                f"blocked names get 'no such name': the web app listens on {web_host!r}, "
                "not one address, so set [dns] block_ipv4 to the block page's address"
            ]
        ipv4, ipv6 = (str(web), None) if web.version == 4 else (None, str(web))
    return BlockSettings(ipv4=ipv4, ipv6=ipv6, ttl=dns.block_ttl), []


def _school_id(session: Session, slug: str | None) -> int | None:
    """The school the filter serves: the one named, else the only one (None: no school yet)."""
    if slug is not None:
        school = session.scalars(select(School).where(School.slug == slug.strip())).first()
        if school is None:
            raise ConfigError(f"[dns] school {slug!r}: no school has that slug")
        return school.id
    ids = list(session.scalars(select(School.id).limit(2)))
    if len(ids) > 1:
        raise ConfigError(
            "the DNS filter serves one school and there are several: set [dns] school = SLUG"
        )
    return ids[0] if ids else None


def build_for_dns(inst: Installation, school: str | None) -> FilterEngine:
    """The engine for the school the DNS filter serves (the reload process calls this)."""
    with inst.db.session(Actor.system("dns filter")) as session:
        school_id = _school_id(session, school)
    actor = Actor.system("dns filter", school_id=school_id)
    with inst.db.session(actor, school_id=school_id) as session:
        return build_engine(session, ListStore(inst.data_dir))


def worker_count(dns: DnsSettings) -> int:
    """``[dns] workers``: 0 means one a CPU this process may use, when there are several."""
    if dns.workers:
        return dns.workers
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return cpus if cpus > 1 else 1


def _same_where(a: WhoIsWhere | None, b: WhoIsWhere) -> bool:
    return (
        a is not None
        and a.signed_in == b.signed_in
        and a.subnets == b.subnets
        and a.usernames == b.usernames
    )


class DnsService:
    """The DNS filter with its refresh task, started and stopped on one loop.

    With one worker (``[dns] workers = 1``, ``--dns-workers 1``) it answers in this
    process, on this loop; with more, in :mod:`~esafety.filtering.dns_workers` processes
    (see there) while this process reads the database for them. Either way a list reload
    compiles in a separate process and the serving loops only map the new engine file
    (:attr:`longest_stall` says for how long they stood still doing it).
    """

    def __init__(self, inst: Installation, dns: DnsSettings, *, web_host: str = "") -> None:
        self.inst = inst
        self._background: ThreadPoolExecutor | None = None
        self.dns = dns
        self.block, self.warnings = block_settings(dns, web_host or inst.settings.web.host)
        resolvers = tuple(upstream_address(item) for item in dns.upstreams)
        if not resolvers:
            self.warnings.append(
                "no upstream resolvers ([dns] upstreams): allowed names are answered "
                "SERVFAIL; blocked names still get the block answer"
            )
        self.upstream = UpstreamSettings(resolvers)
        self.store = ListStore(inst.data_dir)
        self.workers = worker_count(dns)
        #: One process: the bridge, log and server here. Several: the pool of workers.
        self.bridge: DnsBridge | None = None
        self.log: DecisionLog | None = None
        self.server: DnsServer | None = None
        self.pool: WorkerPool | None = None
        #: The longest time a serving loop stood still swapping in a new engine (seconds),
        #: how many reloads there were, and how long the last compile took.
        self.longest_stall = 0.0
        self.reloads = 0
        self.last_compile_seconds = 0.0
        self.engine_path: Path | None = None
        self._engines = inst.data_dir / "dns" / "engines"
        self._engine_number = 0
        self._where: WhoIsWhere | None = None
        self._port = 0
        self._fingerprint: Hashable = None
        self._listeners: list[FlushListener] = []
        self._wake: asyncio.Event | None = None
        self._lists_changed = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._stops: list[Callable[[], None]] = []
        self._reloading = asyncio.Lock()

    @property
    def port(self) -> int:
        if self.server is not None:
            return self.server.port
        return self._port

    @property
    def pids(self) -> list[int]:
        """The processes answering DNS (this one, or the workers)."""
        return self.pool.pids if self.pool is not None else [os.getpid()]

    # -- reading (in a worker thread) -----------------------------------------------------

    def _session(self) -> contextlib.AbstractContextManager[Session]:
        with self.inst.db.session(Actor.system("dns filter")) as session:
            school_id = _school_id(session, self.dns.school)
        actor = Actor.system("dns filter", school_id=school_id)
        return self.inst.db.session(actor, school_id=school_id)

    def read_where(self) -> WhoIsWhere:
        with self._session() as session:
            if session.info.get("school_id") is None:
                return WhoIsWhere()
            return read_who_is_where(session)

    def _lists_fingerprint(self, session: Session) -> Hashable:
        lists = tuple(
            (row.store_key, row.sha256, row.updated_at, row.illegal, row.category)
            for row in list_lists(session)
        )
        school = session.info.get("school_id")
        entries = asking.school_entries(session) if school is not None else ()
        # Custom policies and approved exceptions (approve, revoke, lapse) rebuild it too.
        return school, lists, entries, rules_fingerprint(session)

    def lists_fingerprint(self) -> Hashable:
        with self._session() as session:
            return self._lists_fingerprint(session)

    def build_if_changed(self, force: bool = False) -> FilterEngine | None:
        """A new engine when the lists or the school's entries changed since the last one
        (built here: for the first engine, before anything is served)."""
        with self._session() as session:
            fingerprint = self._lists_fingerprint(session)
            if not force and fingerprint == self._fingerprint:
                return None
            engine = build_engine(session, self.store)
        self._fingerprint = fingerprint
        return engine

    def _build_to(self, path: Path) -> None:
        engine = self.build_if_changed(force=True)
        if engine is None:  # build_if_changed(force=True) always builds
            raise ConfigError("the DNS filter could not build its engine")
        save_engine(engine, path)

    # -- compiling (in another process) ---------------------------------------------------

    def _next_engine_path(self) -> Path:
        self._engines.mkdir(parents=True, exist_ok=True)
        self._engine_number += 1
        return self._engines / f"engine-{os.getpid()}-{self._engine_number}{ENGINE_SUFFIX}"

    async def _compile(self, path: Path) -> None:
        """Build the engine in a separate process and write it to ``path``."""
        settings = self.inst.settings.model_copy(update={"dns": self.dns})
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "esafety.filtering.engine_file",
            str(path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate(pickle.dumps(settings))
        self.last_compile_seconds = time.perf_counter() - started
        if process.returncode != 0:
            path.unlink(missing_ok=True)
            lines = err.decode(errors="replace").strip().splitlines()
            raise ConfigError(
                "the DNS filter could not compile the filter lists: "
                + (lines[-1] if lines else f"the compiler exited with {process.returncode}")
            )
        log.info("DNS filter: %s", out.decode(errors="replace").strip())

    def _retire_engines(self, keep: Path | None) -> None:
        """Remove engine files no process uses any more (a mapped file stays readable to
        whoever still maps it until they let go)."""
        if not self._engines.is_dir():
            return
        for old in self._engines.glob(f"engine-{os.getpid()}-*{ENGINE_SUFFIX}"):
            if old != keep:
                old.unlink(missing_ok=True)

    # -- running (on the loop) ------------------------------------------------------------

    async def start(self) -> None:
        """Read everything once, then bind and serve; raises ConfigError if it cannot."""
        self._where = await asyncio.to_thread(self.read_where)
        if self.workers == 1:
            await self._start_here(self._where)
        else:
            await self._start_workers()
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._refresh_forever())
        self._follow(loop)

    async def _start_here(self, where: WhoIsWhere) -> None:
        engine = await asyncio.to_thread(self.build_if_changed, True)
        if engine is None:  # build_if_changed(force=True) always builds
            raise ConfigError("the DNS filter could not build its engine")
        # Parquet is encoded in another process (esafety.filtering.log_writer).
        self.log = DecisionLog(self.inst.data_dir, separate_writer=True)
        for listener in self._listeners:
            self.log.add_listener(listener)
        self.log.start()
        self.bridge = DnsBridge(EngineHolder(engine), where, log=self.log)
        handler = DnsHandler(self.bridge, self.block, Forwarder(self.upstream))
        self.server = DnsServer(handler, ServerSettings(host=self.dns.host, port=self.dns.port))
        try:
            await self.server.start()
        except OSError as error:
            await asyncio.to_thread(self.log.stop)
            self.log = None
            raise self._cannot_listen(error) from None

    def _cannot_listen(self, error: OSError) -> ConfigError:
        return ConfigError(
            f"the DNS filter cannot listen on {self.dns.host} port {self.dns.port}: "
            f"{error.strerror or error}; choose another with --dns-port or turn it off "
            "with --no-dns"
        )

    async def _start_workers(self) -> None:
        try:
            self._port, held = reserve_port(self.dns.host, self.dns.port)
        except OSError as error:
            raise self._cannot_listen(error) from None
        try:
            # The first engine is compiled here: nothing is being served yet.
            path = self._next_engine_path()
            await asyncio.to_thread(self._build_to, path)
            self.engine_path = path
            self.pool = WorkerPool(self.workers, self._worker_config, self._alerts)
            await self.pool.start()
        except BaseException:
            self.pool = None
            self._retire_engines(keep=None)
            raise
        finally:
            for sock in held:  # the workers hold the port now
                sock.close()

    def _worker_config(self, number: int) -> WorkerConfig:
        if self.engine_path is None or self._where is None:
            raise ConfigError("the DNS filter has no engine to give its workers yet")
        return WorkerConfig(
            number=number,
            server=ServerSettings(host=self.dns.host, port=self._port, reuse_port=True),
            upstream=self.upstream,
            block=self.block,
            engine=self.engine_path,
            where=self._where,
            data_dir=self.inst.data_dir,
            log_capacity=DEFAULT_CAPACITY,
            log_level=self.inst.settings.log_level,
            forward_alerts=True,
        )

    def _alerts(self, entries: Sequence[LogEntry]) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(entries)
            except Exception:  # as DecisionLog does: one listener's fault stops nothing
                log.exception("DNS filter: decision log listener %r failed", listener)

    def add_log_listener(self, listener: FlushListener) -> Callable[[], None]:
        """Give ``listener`` the DNS filter's flushed decisions (DSL alerts); returns its
        removal. With worker processes it gets the blocks in alerting categories only: the
        rest stays in the workers (sending every decision across would cost more than
        answering it)."""
        self._listeners.append(listener)
        removals = [self.log.add_listener(listener)] if self.log is not None else []

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
            for removal in removals:
                removal()

        return remove

    def _follow(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake at once for a sign-in and for changed rules (events from any thread)."""
        from esafety.events import subscribe
        from esafety.filtering.changes import FilterRulesChanged
        from esafety.filtering.sign_ins import follow_sign_ins

        def call(function: Callable[[], None]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(function)

        self._stops.append(follow_sign_ins(lambda: call(self.changed)))
        self._stops.append(subscribe(FilterRulesChanged, lambda _event: call(self.rules_changed)))
        self._stops.append(metrics.register("dns", self.samples))

    def changed(self) -> None:
        """Something about who is where changed (a sign-in): read it again now."""
        if self._wake is not None:
            self._wake.set()

    def rules_changed(self) -> None:
        """The lists or the school's rules changed: compile again now, not at the next poll."""
        self._lists_changed = True
        self.changed()

    async def refresh(self, lists: bool = True) -> None:
        """Read who is where again and, with ``lists``, rebuild the engine if it changed.

        Returns once every serving process uses what was read."""
        where = await self._in_background(self.read_where)
        if not _same_where(self._where, where):
            self._where = where
            if self.pool is not None:
                await self.pool.use_where(where)
            elif self.bridge is not None:
                self.bridge.where = where
        if lists:
            await self.reload()

    async def reload(self, force: bool = False) -> bool:
        """Compile the engine again (in another process) if the lists or the school's rules
        changed, and swap every serving loop to it; True when it did."""
        async with self._reloading:
            fingerprint = await self._in_background(self.lists_fingerprint)
            if not force and fingerprint == self._fingerprint:
                return False
            path = self._next_engine_path()
            await self._compile(path)
            self._fingerprint = fingerprint
            if self.pool is not None:
                stall = await self.pool.use_engine(path)
            elif self.bridge is not None:
                started = time.perf_counter()
                self.bridge.holder.engine = load_engine(path)  # maps it: the loop waits
                stall = time.perf_counter() - started
            else:
                return False
            self.engine_path = path
            self._retire_engines(keep=path)
            self.reloads += 1
            self.longest_stall = max(self.longest_stall, stall)
            log.info("DNS filter: lists or school rules changed; new engine in use (compiled "
                     "in %.1f s in another process; serving paused %.1f ms to swap)",
                     self.last_compile_seconds, stall * 1000)  # fmt: skip
            return True

    async def _in_background(self, read: Callable[[], _T]) -> _T:
        """A database read while serving, in a thread that gives way to the serving loop
        (:mod:`esafety.filtering.priority`)."""
        if self._background is None:
            self._background = ThreadPoolExecutor(
                1, "esafety-dns-refresh", initializer=yield_to_serving
            )
        return await asyncio.get_running_loop().run_in_executor(self._background, read)

    async def _refresh_forever(self) -> None:
        wake = self._wake
        if wake is None:
            return
        loop = asyncio.get_running_loop()
        lists_due = loop.time() + self.dns.lists_poll_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.dns.refresh_seconds):
                    await wake.wait()
            wake.clear()
            if self._closing:
                return
            lists = self._lists_changed or loop.time() >= lists_due
            if lists:
                self._lists_changed = False
                lists_due = loop.time() + self.dns.lists_poll_seconds
            try:
                await self.refresh(lists)
            except Exception as error:  # keep answering with what we have
                log.error(
                    "DNS filter refresh failed (still answering with the last good data): %s: %s",
                    type(error).__name__,
                    error,
                )

    def counters(self) -> dict[str, int]:
        """What the DNS filter counted, added up over its serving processes."""
        if self.pool is not None:
            values = self.pool.counters()
            values["worker_restarts"] = self.pool.restarts
        elif self.server is not None:
            values = counters_of(self.server.handler, self.server, self.log)
        else:
            values = {}
        values["engine_reloads"] = self.reloads
        return values

    def samples(self) -> list[metrics.Sample]:
        samples = metrics.counters_of("esafety_dns", self.counters(), gauges=("cache_entries",))
        samples.append(
            metrics.Sample(
                "esafety_dns_longest_reload_stall_seconds",
                self.longest_stall,
                "The longest time a DNS serving loop stood still swapping in a new engine.",
                "gauge",
            )
        )
        samples.append(
            metrics.Sample("esafety_dns_workers", len(self.pids), "DNS serving processes.", "gauge")
        )
        return samples

    async def close(self) -> None:
        for stop in self._stops:
            stop()
        self._stops = []
        if self._task is not None:
            # Let a refresh in progress finish rather than cancel it: cancelling would leave
            # its database read running in its thread, holding a connection past close.
            self._closing = True
            self.changed()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 120)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        if self.pool is not None:
            await self.pool.close()
        if self.server is not None:
            await self.server.close()
        if self.log is not None:
            await asyncio.to_thread(self.log.stop)
        if self._background is not None:
            self._background.shutdown(wait=True)  # idle: the refresh task has ended
            self._background = None
        self._retire_engines(keep=None)
