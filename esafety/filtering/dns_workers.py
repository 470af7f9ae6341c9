"""The DNS filter in worker processes, one a core (issue 4 §7: "uses both cores").

Python answers on one core a process, so ``esafety serve`` starts N worker processes
that each bind the DNS port with SO_REUSEPORT (the kernel spreads clients across them)
and answer with their own :class:`~esafety.filtering.dns_bridge.DnsBridge`, cache and
:class:`~esafety.filtering.log.DecisionLog` (its file names carry the process id, so the
workers' files never clash). The parent (the web app's process) keeps the database:

* it compiles the engine in a separate process (:mod:`esafety.filtering.engine_file`)
  and tells each worker the new file; a worker maps it and swaps its engine between two
  batches of datagrams, and answers how long its loop stood still (the stall);
* it reads who is where (sign-ins, subnets) and sends each worker the snapshot, every few
  seconds and at once after a sign-in. One reader for all workers rather than one each:
  the database is asked once, and a sign-in posted to the web app reaches every worker
  without waiting for a poll. Workers open no database at all;
* it passes DSL-alerting blocks from the workers' logs to its own listeners.

Parent and worker talk over a socket pair (length-prefixed pickles: both ends are this
program). A worker ends when its end of the pair closes, so it never outlives the parent
(it also asks Linux for SIGTERM when the parent dies, for a worker busy loading); the
parent restarts a worker that dies, at most once a second.

Run as ``python -m esafety.filtering.dns_workers FD`` by :class:`WorkerPool` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esafety.errors import ConfigError
from esafety.filtering.dns.handler import BlockSettings, DnsHandler
from esafety.filtering.dns.server import DnsServer, ServerSettings, bind_tcp, bind_udp
from esafety.filtering.dns.upstream import Forwarder, UpstreamSettings
from esafety.filtering.dns_bridge import WhoIsWhere
from esafety.filtering.log import DecisionLog, LogEntry
from esafety.filtering.priority import serve_promptly

__all__ = [
    "WorkerConfig",
    "WorkerPool",
    "counters_of",
    "reserve_port",
    "tune_for_serving",
]

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("!I")
#: Seconds a worker may take to start (import, map the engine, bind) before it is a fault.
START_TIMEOUT = 120.0
#: Seconds between a worker's counters reports to the parent.
COUNTERS_EVERY = 2.0
#: Seconds to wait for a worker to finish after it is told to stop, before it is killed.
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs to serve; sent to it first."""

    number: int
    server: ServerSettings
    upstream: UpstreamSettings
    block: BlockSettings
    engine: Path
    where: WhoIsWhere
    #: Where the decision log goes (None: no log); the log's own settings.
    data_dir: Path | None
    log_capacity: int
    log_level: str = "warning"
    #: Send the parent blocks in alerting categories from each flushed log batch.
    forward_alerts: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# -- the channel ----------------------------------------------------------------------------


async def _send(writer: asyncio.StreamWriter, message: tuple[Any, ...]) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_LENGTH.pack(len(data)) + data)
    await writer.drain()


async def _receive(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None when the other end has closed."""
    try:
        (length,) = _LENGTH.unpack(await reader.readexactly(4))
        data = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    message = pickle.loads(data)  # noqa: S301 - from our own parent or child process
    if not isinstance(message, tuple) or not message:
        raise ValueError("DNS worker channel: a message that is not a tuple")
    return message


def reserve_port(host: str, port: int) -> tuple[int, list[socket.socket]]:
    """Choose the DNS port (``port``, or a free one for 0) and hold it for the workers.

    First bound without SO_REUSEPORT, so a port another server already holds is an
    error here (with SO_REUSEPORT a second esafety would silently share it), then held
    with SO_REUSEPORT, which the workers join. The parent closes the held sockets once
    every worker listens (until then they may swallow a datagram: nobody asks yet).
    """
    for _attempt in range(20):
        udp = bind_udp(host, port)
        try:
            tcp = bind_tcp(host, udp.getsockname()[1])
        except OSError:
            udp.close()
            if port:
                raise
            continue
        chosen = udp.getsockname()[1]
        udp.close()
        tcp.close()
        try:
            held = bind_udp(host, chosen, reuse_port=True)
        except OSError:
            if port:
                raise
            continue
        try:
            # Bound but not listening: it holds the port for SO_REUSEPORT binds only.
            holder = socket.socket(held.family, socket.SOCK_STREAM)
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            holder.bind((host, chosen))
        except OSError:
            held.close()
            holder.close()
            if port:
                raise
            continue
        return chosen, [held, holder]
    raise OSError(f"found no port free for both UDP and TCP on {host}")


def counters_of(
    handler: DnsHandler, server: DnsServer, decisions: DecisionLog | None
) -> dict[str, int]:
    """One serving process's counters, by name (for ``/metrics``)."""
    counters = handler.counters
    values = {
        f.name: getattr(counters, f.name)
        for f in dataclasses.fields(counters)
        if isinstance(getattr(counters, f.name), int)
    }
    values.update(counters.extra)
    values["dropped_send"] = server.dropped_send
    values["refused_connections"] = server.refused_connections
    values["cache_entries"] = len(handler.forwarder.cache)
    if decisions is not None:
        values["log_dropped"] = decisions.dropped
        values["log_written"] = decisions.written
    return values


def tune_for_serving() -> None:
    """Keep the garbage collector and other threads off the serving loop's back.

    Everything loaded so far (modules, the web app in one-process mode, the engine's
    tables) lives as long as the process: frozen, no collection walks it again. Each
    answer logs one decision that waits up to a second in the log's queue, so with the
    default thresholds those entries are promoted and the oldest generation is collected
    again and again; every collection of it stopped the loop for milliseconds (hundreds,
    before the freeze). The youngest generation is collected every 50,000 allocations
    instead of 700, the middle one every 10 of those, and the oldest only when it has
    grown by half (``threshold2`` of 50 and CPython's 25 % rule): cyclic garbage is rare
    on the DNS path (no per-query cycles), so this costs little memory.

    Threads that run Python beside the loop (the decision log's flush, database reads)
    hand the interpreter back every half millisecond rather than every five, so a
    question waits for them that long at most; and the calling (serving) thread takes the
    core back from them as soon as a question wakes it (:func:`serve_promptly`).
    """
    gc.freeze()
    gc.set_threshold(50_000, 10, 50)
    sys.setswitchinterval(0.0005)
    serve_promptly()


# -- the parent's side ----------------------------------------------------------------------


class _Worker:
    """One worker process as the parent sees it."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.process: subprocess.Popen[bytes] | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.replies: dict[int, asyncio.Future[tuple[Any, ...]]] = {}
        self.counters: dict[str, int] = {}
        self.listening: asyncio.Future[int] | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class WorkerPool:
    """N worker processes serving the DNS filter, kept running until :meth:`close`."""

    def __init__(
        self,
        count: int,
        make_config: Callable[[int], WorkerConfig],
        on_alerts: Callable[[Sequence[LogEntry]], None] | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.count = count
        self.make_config = make_config
        self.on_alerts = on_alerts
        self.workers = [_Worker(n) for n in range(count)]
        self.restarts = 0
        #: The longest time a worker's loop stood still swapping engines, in seconds.
        self.longest_stall = 0.0
        self._sequence = 0
        self._closing = False
        self._watch: list[asyncio.Task[None]] = []

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid is not None]

    async def start(self) -> None:
        """Start every worker and wait until each listens (ConfigError if one cannot)."""
        try:
            await asyncio.gather(*(self._start(worker) for worker in self.workers))
        except BaseException:
            await self.close()
            raise
        for worker in self.workers:
            self._watch.append(asyncio.create_task(self._supervise(worker)))

    async def _start(self, worker: _Worker) -> None:
        parent_end, child_end = socket.socketpair()
        try:
            worker.process = subprocess.Popen(
                [sys.executable, "-m", "esafety.filtering.dns_workers", str(child_end.fileno())],
                pass_fds=(child_end.fileno(),),
                start_new_session=True,  # Ctrl+C reaches the parent, which stops them
                stdin=subprocess.DEVNULL,
            )
        finally:
            child_end.close()
        worker.reader, worker.writer = await asyncio.open_connection(sock=parent_end)
        loop = asyncio.get_running_loop()
        worker.listening = loop.create_future()
        worker.replies = {}
        worker.task = asyncio.create_task(self._read(worker))
        await _send(worker.writer, ("config", self.make_config(worker.number)))
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await asyncio.shield(worker.listening)
        except TimeoutError:
            raise ConfigError(
                f"DNS worker {worker.number} did not start within {START_TIMEOUT:.0f} s"
            ) from None

    async def _read(self, worker: _Worker) -> None:
        reader = worker.reader
        if reader is None:
            return
        while True:
            try:
                message = await _receive(reader)
            except (ValueError, pickle.UnpicklingError) as error:
                log.error("DNS worker %d sent something unreadable: %s", worker.number, error)
                message = None
            if message is None:
                break
            kind = message[0]
            if kind == "listening" and worker.listening is not None:
                if not worker.listening.done():
                    worker.listening.set_result(int(message[1]))
            elif kind == "failed" and worker.listening is not None:
                if not worker.listening.done():
                    worker.listening.set_exception(ConfigError(str(message[1])))
            elif kind == "done":
                future = worker.replies.pop(int(message[1]), None)
                if future is not None and not future.done():
                    future.set_result(message)
            elif kind == "counters":
                worker.counters = dict(message[1])
            elif kind == "alerts" and self.on_alerts is not None:
                try:
                    self.on_alerts(message[1])
                except Exception:  # a listener's fault must not cut the channel
                    log.exception("DNS filter: an alerts listener failed")
        # The worker is gone (or going): nobody will answer what is waiting.
        for future in worker.replies.values():
            if not future.done():
                future.set_exception(ConnectionError(f"DNS worker {worker.number} ended"))
        worker.replies.clear()
        if worker.listening is not None and not worker.listening.done():
            worker.listening.set_exception(
                ConfigError(f"DNS worker {worker.number} ended before it listened")
            )

    async def _supervise(self, worker: _Worker) -> None:
        """Start a worker again if it dies (at most once a second)."""
        while not self._closing:
            process = worker.process
            if process is None:
                return
            # Polled, not waited for in a thread: a thread a worker would be held for its life.
            while process.poll() is None and not self._closing:
                await asyncio.sleep(0.5)
            code = process.returncode
            if self._closing:
                return
            log.error("DNS worker %d (pid %d) ended with %s; starting it again", worker.number,
                      process.pid, code)  # fmt: skip
            await self._disconnect(worker)
            await asyncio.sleep(1.0)
            if self._closing:
                return
            self.restarts += 1
            try:
                await self._start(worker)
            except (ConfigError, OSError) as error:
                log.error("DNS worker %d could not start again: %s", worker.number, error)

    async def ask(self, *message: Any, timeout: float = 120.0) -> list[tuple[Any, ...]]:
        """Send ``message`` to every worker and wait for each one's answer."""
        self._sequence += 1
        number = self._sequence
        loop = asyncio.get_running_loop()
        waiting = []
        for worker in self.workers:
            if worker.writer is None or worker.writer.is_closing():
                continue
            future: asyncio.Future[tuple[Any, ...]] = loop.create_future()
            worker.replies[number] = future
            try:
                await _send(worker.writer, (*message, number))
            except (ConnectionError, RuntimeError):
                worker.replies.pop(number, None)
                continue
            waiting.append(future)
        async with asyncio.timeout(timeout):
            results = await asyncio.gather(*waiting, return_exceptions=True)
        return [r for r in results if isinstance(r, tuple)]

    async def use_engine(self, path: Path) -> float:
        """Every worker swaps to the engine in ``path``; returns the longest stall."""
        answers = await self.ask("engine", str(path))
        stall = 0.0
        for answer in answers:
            if answer[2] is not None:
                log.error("DNS worker could not load %s (still on its last engine): %s",
                          path, answer[2])  # fmt: skip
            stall = max(stall, float(answer[3]))
        self.longest_stall = max(self.longest_stall, stall)
        return stall

    async def use_where(self, where: WhoIsWhere) -> None:
        await self.ask("where", where)

    def counters(self) -> dict[str, int]:
        """The workers' counters added up (as last reported, every few seconds)."""
        total: dict[str, int] = {}
        for worker in self.workers:
            for name, value in worker.counters.items():
                total[name] = total.get(name, 0) + value
        return total

    async def _disconnect(self, worker: _Worker) -> None:
        if worker.writer is not None:
            worker.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await worker.writer.wait_closed()
            worker.writer = None
        if worker.task is not None:
            worker.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker.task
            worker.task = None

    async def close(self) -> None:
        """Tell every worker to stop (each flushes its log), wait, kill stragglers."""
        self._closing = True
        for worker in self.workers:
            if worker.writer is not None and not worker.writer.is_closing():
                with contextlib.suppress(ConnectionError, RuntimeError, OSError):
                    await _send(worker.writer, ("stop",))
        for worker in self.workers:
            process = worker.process
            if process is None:
                continue
            try:
                await asyncio.wait_for(asyncio.to_thread(process.wait), STOP_TIMEOUT)
            except TimeoutError:
                log.error("DNS worker %d did not stop within %.0f s: killed", worker.number,
                          STOP_TIMEOUT)  # fmt: skip
                process.kill()
                await asyncio.to_thread(process.wait)
            await self._disconnect(worker)
        for task in self._watch:
            task.cancel()
        await asyncio.gather(*self._watch, return_exceptions=True)
        self._watch = []


# -- the worker's side ----------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM when the parent dies (a second guard beside the socket)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class _Serving:
    """A worker's server, engine and log, driven by its parent's messages."""

    def __init__(self, config: WorkerConfig) -> None:
        from esafety.filtering.decision import EngineHolder
        from esafety.filtering.dns_bridge import DnsBridge
        from esafety.filtering.engine_file import load_engine
        from esafety.filtering.log import DecisionLog

        self.config = config
        self.log = (
            DecisionLog(config.data_dir, capacity=config.log_capacity, separate_writer=True)
            if config.data_dir is not None
            else None
        )
        self.bridge = DnsBridge(
            EngineHolder(load_engine(config.engine)), config.where, log=self.log
        )
        self.handler = DnsHandler(self.bridge, config.block, Forwarder(config.upstream))
        self.server = DnsServer(self.handler, config.server)

    def counters(self) -> dict[str, int]:
        return counters_of(self.handler, self.server, self.log)

    def swap_engine(self, path: str) -> tuple[str | None, float]:
        """Load ``path`` and use it; (error or None, seconds the loop stood still)."""
        from esafety.filtering.engine_file import load_engine

        started = time.perf_counter()
        try:
            engine = load_engine(Path(path))
        except Exception as error:  # keep the engine we have, say why
            return f"{type(error).__name__}: {error}", time.perf_counter() - started
        self.bridge.holder.engine = engine
        return None, time.perf_counter() - started


async def _worker_main(fd: int) -> int:
    control = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=control)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    first = await _receive(reader)
    if first is None or first[0] != "config":
        return 2
    config: WorkerConfig = first[1]
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper(), logging.WARNING),
        format=f"%(levelname)s dns-worker-{config.number}: %(message)s",
    )
    try:
        serving = _Serving(config)
        await serving.server.start()
    except Exception as error:
        await _send(writer, ("failed", f"{type(error).__name__}: {error}"))
        return 1
    if serving.log is not None:
        serving.log.start()
        if config.forward_alerts:
            serving.log.add_listener(_alert_forwarder(loop, writer))
    tune_for_serving()
    await _send(writer, ("listening", serving.server.port))

    async def report() -> None:
        while True:
            await asyncio.sleep(COUNTERS_EVERY)
            await _send(writer, ("counters", serving.counters()))

    async def obey() -> None:
        while True:
            message = await _receive(reader)
            if message is None or message[0] == "stop":
                return
            kind, number = message[0], message[-1]
            if kind == "engine":
                error, stall = serving.swap_engine(message[1])
                await _send(writer, ("done", number, error, stall))
            elif kind == "where":
                serving.bridge.where = message[1]
                await _send(writer, ("done", number, None, 0.0))

    tasks = [asyncio.create_task(obey()), asyncio.create_task(stopping.wait())]
    reporter = asyncio.create_task(report())
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (*tasks, reporter):
            task.cancel()
        await asyncio.gather(*tasks, reporter, return_exceptions=True)
        await serving.server.close()
        if serving.log is not None:
            await asyncio.to_thread(serving.log.stop)
        with contextlib.suppress(ConnectionError, RuntimeError, OSError):
            await _send(writer, ("counters", serving.counters()))
        writer.close()
    return 0


def _alert_forwarder(
    loop: asyncio.AbstractEventLoop, writer: asyncio.StreamWriter
) -> Callable[[Sequence[LogEntry]], None]:
    """A log listener (in the flushing thread) that sends the parent the alerting blocks."""

    def forward(batch: Sequence[LogEntry]) -> None:
        alerting = [
            entry for entry in batch if entry.decision.blocked and entry.decision.alerts_dsl
        ]
        if alerting:
            loop.call_soon_threadsafe(lambda: loop.create_task(_send(writer, ("alerts", alerting))))

    return forward


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m esafety.filtering.dns_workers FD (started by esafety serve)")
        return 2
    _die_with_parent()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_worker_main(int(argv[0])))
    return uvloop.run(_worker_main(int(argv[0])))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1:]))
