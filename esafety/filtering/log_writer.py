"""The decision log's writing processes: Parquet encoding off the DNS filter's interpreter.

Encoding a second's decisions as Parquet (repeating each distinct value for every row,
dictionary-encoding and compressing them, fsync) takes a DNS worker about a tenth of its
core at 80 % load. In the worker's own flushing thread that work, with the interpreter
lock it takes between the pyarrow calls, put answers milliseconds late: p99 1.8 ms
against 0.4 ms with the writing left out (issue 4 "Figures", p99 under 2 ms).

So a worker's :class:`~esafety.filtering.log.DecisionLog` hands each flush to a process
with an interpreter of its own (:class:`WritingProcesses`). The flushing thread sends the
distinct values once and each row's numbers (:class:`~esafety.filtering.log.Numbered`,
Arrow IPC over a pipe) and waits for the answer, holding nothing the serving loop needs;
meanwhile decisions gather in the log's buffers, bounded and counted as ever.

Which process: one that runs in idle time (``SCHED_IDLE``, no privileges needed) is given
the core only when the serving loop does not want it, so it never makes an answer wait
(p99 at 111,768 q/s: 1.4-3.0 ms against 3.2-8.2 ms at niceness 10, alternating runs).
Near the loop's maximum rate there is no idle time, so when it has not answered for a
flush within :data:`PATIENCE` seconds, the next flushes go to a second process at
niceness 10, which the kernel still gives about a tenth of a busy core, until the first
has caught up: at any load every decision is written.

The protocol, on the child's stdin: frames of a kind octet, a table count (uint32) and
that many Arrow IPC streams, each after its length (uint64): ``T`` one finished table,
``N`` a :class:`Numbered` (rows, scopes, notes), ``F`` the end of a flush. After ``F``
the child writes (:class:`~esafety.filtering.log.FileWriter`) and answers one line on
stdout: decisions written, files written, decisions lost. End of input ends the child,
so it never outlives the process that writes to it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import pyarrow as pa

from esafety.filtering.log import Counts, FileWriter, Numbered
from esafety.filtering.priority import yield_to_serving

__all__ = ["PATIENCE", "WriterProcess", "WritingProcesses", "main"]

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<cI")
_LENGTH = struct.Struct("<Q")
#: Seconds the child is given to write its last flush and end, once its input ends.
_ENDING = 30.0
#: Seconds the idle-time writer has to answer for a flush before the next ones go to the
#: other writer (see :class:`WritingProcesses`).
PATIENCE = 2.0


def _send_table(out: IO[bytes], table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    buffer = sink.getvalue()
    out.write(_LENGTH.pack(buffer.size))
    out.write(memoryview(buffer))


def _read_exactly(source: IO[bytes], size: int) -> bytes:
    data = source.read(size)
    if data is None or len(data) != size:
        raise EOFError
    return data


def _read_table(source: IO[bytes]) -> pa.Table:
    (size,) = _LENGTH.unpack(_read_exactly(source, _LENGTH.size))
    return pa.ipc.open_stream(_read_exactly(source, size)).read_all()


_NOTHING: Counts = (0, 0, 0)


def _plus(a: Counts, b: Counts) -> Counts:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


class WriterProcess:
    """One writing process as the log sees it: started when first needed, and again
    after it died (what it had not answered for is counted as lost)."""

    def __init__(self, root: Path, *, idle: bool) -> None:
        self.root = root
        #: Runs in idle time (SCHED_IDLE), else at niceness 10 below its starter.
        self.idle = idle
        self.process: subprocess.Popen[bytes] | None = None
        #: Decisions sent and not yet answered for (the process is still writing them).
        self.owed = 0
        #: Times the writing process had to be started again.
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        """Start the process now: it takes its niceness from the calling thread, so call
        this from the serving thread (one started again by the flushing thread, already
        at niceness 10, ends at 19 and gets less of a busy core)."""
        self._started()

    def _started(self) -> subprocess.Popen[bytes]:
        process = self.process
        if process is not None and process.poll() is None:
            return process
        if process is not None:
            self.restarts += 1
            self._reap()
        command = [sys.executable, "-m", "esafety.filtering.log_writer", str(self.root)]
        self.process = subprocess.Popen(
            [*command, "--idle"] if self.idle else command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        return self.process

    def send(self, parts: Sequence[pa.Table | Numbered]) -> Counts:
        """Hand ``parts`` over (the process answers when written); (0, 0, lost) if it
        could not take them."""
        rows = sum((p.rows if isinstance(p, Numbered) else p).num_rows for p in parts)
        try:
            process = self._started()
            assert process.stdin is not None
            for part in parts:
                tables = tuple(part) if isinstance(part, Numbered) else (part,)
                kind = b"N" if isinstance(part, Numbered) else b"T"
                process.stdin.write(_FRAME.pack(kind, len(tables)))
                for table in tables:
                    _send_table(process.stdin, table)
            process.stdin.write(_FRAME.pack(b"F", 0))
            process.stdin.flush()
        except OSError as error:
            return self._failed(error, rows)
        self.owed += rows
        return _NOTHING

    def answer(self, timeout: float | None) -> Counts | None:
        """(written, files, lost) for everything sent, or None if it is still writing after
        ``timeout`` seconds (None: as long as it takes)."""
        process = self.process
        if not self.owed or process is None or process.stdout is None:
            return _NOTHING
        try:
            if timeout is not None and not select.select([process.stdout], [], [], timeout)[0]:
                return None
            written, files, lost = (int(number) for number in process.stdout.readline().split())
        except (OSError, ValueError) as error:  # it died (ValueError: no whole answer)
            return self._failed(error, self.owed)
        self.owed = 0
        return written, files, lost

    def _failed(self, error: Exception, rows: int) -> Counts:
        log.error("the decision log's writing process failed (%s): %d decisions lost",
                  error, rows)  # fmt: skip
        self.owed = 0
        self._reap()
        return 0, 0, rows

    def _reap(self) -> None:
        process = self.process
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        try:
            process.wait(timeout=_ENDING)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> Counts:
        """End the process once it has written what it was given; what it answered."""
        counts = self.answer(_ENDING) or (0, 0, self.owed)
        self._reap()
        self.process = None
        return counts


class WritingProcesses:
    """The DNS filter's log writers: one in idle time, and one at niceness 10 for when
    there is none.

    Each flush goes to the idle-time writer, which is given the core only when the
    serving loop does not want it, so it never makes an answer wait. When the loop keeps
    the core busy (near its maximum rate) that writer gets almost nothing; a flush it has
    not answered for within :data:`PATIENCE` seconds is left to it, and the next flushes
    go to the niceness-10 writer, which still gets about a tenth of a busy core, until
    the idle-time one has caught up. So at any load every decision is written.
    """

    def __init__(self, root: Path) -> None:
        self.idle = WriterProcess(root, idle=True)
        self.busy = WriterProcess(root, idle=False)

    @property
    def restarts(self) -> int:
        return self.idle.restarts + self.busy.restarts

    def start(self) -> None:
        self.idle.start()
        self.busy.start()

    def write(self, parts: Sequence[pa.Table | Numbered]) -> Counts:
        counts = _NOTHING
        if self.idle.owed:
            caught_up = self.idle.answer(0)
            if caught_up is None:  # still writing an earlier flush: the other one writes
                return _plus(self.busy.send(parts), self.busy.answer(None) or _NOTHING)
            counts = caught_up
        counts = _plus(counts, self.idle.send(parts))
        return _plus(counts, self.idle.answer(PATIENCE) or _NOTHING)

    def close(self) -> Counts:
        return _plus(self.idle.close(), self.busy.close())


# -- the writing process ------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """``python -m esafety.filtering.log_writer ROOT [--idle]``: write flushes until
    input ends."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s decision-log: %(message)s")
    yield_to_serving()  # this process's threads (pyarrow's pool too) inherit it
    if "--idle" in argv[1:]:
        with contextlib.suppress(OSError, AttributeError):  # no privileges needed
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    source, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stdout carries answers only
    writer = FileWriter(Path(argv[0]))
    parts: list[pa.Table | Numbered] = []
    while True:
        try:
            kind, count = _FRAME.unpack(_read_exactly(source, _FRAME.size))
            tables = [_read_table(source) for _ in range(count)]
        except EOFError:
            return 0  # the log ended (a part-sent flush is the crash it stands for)
        if kind == b"T":
            parts.extend(tables)
        elif kind == b"N":
            parts.append(Numbered(*tables))
        elif kind == b"F":
            written, files, lost = writer.write(parts) if parts else (0, 0, 0)
            parts = []
            answers.write(f"{written} {files} {lost}\n".encode())
            answers.flush()
        else:
            log.error("unknown frame %r from the decision log; ending", kind)
            return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
