"""The decision log's writing process: Parquet encoding off the DNS filter's interpreter.

Encoding a second's decisions as Parquet (repeating each distinct value for every row,
dictionary-encoding and compressing them, fsync) takes a DNS worker about a tenth of its
core at 80 % load. In the worker's own flushing thread that work, with the interpreter
lock it takes between the pyarrow calls, put answers milliseconds late: p99 1.8 ms
against 0.4 ms with the writing left out (issue 4 "Figures", p99 under 2 ms).

So a worker's :class:`~esafety.filtering.log.DecisionLog` hands each flush to this
process, which has an interpreter of its own and runs at niceness 10
(:func:`esafety.filtering.priority.yield_to_serving`): the serving loop, on the shortest
time slice, takes the core back from it the moment a question arrives, and at full load
it still gets about a tenth of the core, so every answer is logged. (In idle time,
``SCHED_IDLE``, it would get almost nothing at full load, and decisions would be lost.)
The flushing thread sends the distinct values once and each row's numbers
(:class:`~esafety.filtering.log.Numbered`, Arrow IPC over a pipe) and waits for the
reply, holding nothing the serving loop needs; meanwhile decisions gather in the log's
buffers, bounded and counted as ever.

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
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import pyarrow as pa

from esafety.filtering.log import FileWriter, Numbered
from esafety.filtering.priority import yield_to_serving

__all__ = ["WriterProcess", "main"]

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<cI")
_LENGTH = struct.Struct("<Q")
#: Seconds the child is given to write its last flush and end, once its input ends.
_ENDING = 30.0


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


class WriterProcess:
    """The log's side of the writing process: started on the first flush, and again on
    the next flush after it died (that flush's decisions are counted as lost)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None
        #: Times the writing process had to be started again.
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        """Start the process now, from the serving thread: it takes its niceness from the
        thread that starts it (one started again by the flushing thread, already at
        niceness 10, ends at 19 and gets less of a busy core)."""
        self._started()

    def _started(self) -> subprocess.Popen[bytes]:
        process = self.process
        if process is not None and process.poll() is None:
            return process
        if process is not None:
            self.restarts += 1
            self._reap()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "esafety.filtering.log_writer", str(self.root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        return self.process

    def write(self, parts: Sequence[pa.Table | Numbered]) -> tuple[int, int, int]:
        """Have the process write ``parts``; (written, files, lost) as FileWriter."""
        rows = sum((p.rows if isinstance(p, Numbered) else p).num_rows for p in parts)
        try:
            process = self._started()
            assert process.stdin is not None and process.stdout is not None
            for part in parts:
                tables = tuple(part) if isinstance(part, Numbered) else (part,)
                kind = b"N" if isinstance(part, Numbered) else b"T"
                process.stdin.write(_FRAME.pack(kind, len(tables)))
                for table in tables:
                    _send_table(process.stdin, table)
            process.stdin.write(_FRAME.pack(b"F", 0))
            process.stdin.flush()
            answer = process.stdout.readline().split()
            written, files, lost = (int(number) for number in answer)
        except (OSError, ValueError) as error:  # it died (ValueError: no whole answer)
            log.error("the decision log's writing process failed (%s): %d decisions lost",
                      error, rows)  # fmt: skip
            self._reap()
            return 0, 0, rows
        return written, files, lost

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

    def close(self) -> None:
        """End the process once it has written what it was given."""
        self._reap()
        self.process = None


# -- the writing process ------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """``python -m esafety.filtering.log_writer ROOT``: write flushes until input ends."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s decision-log: %(message)s")
    yield_to_serving()  # this process's threads (pyarrow's pool too) inherit it
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
