"""The decision log: every filter decision, kept in small daily Parquet files (issue 4 §8).

The hot path (a DNS answer, a block page) calls :meth:`DecisionLog.record`, which only
appends one tuple to a bounded queue: no I/O, no lock, no formatting. A background
*thread* (not an asyncio task: encoding Parquet and fsync would stall the serving loop,
and pyarrow releases the GIL while it writes) takes the queue at least once a second and
writes it as one small, closed file a day partition::

    DATA/logs/decisions/date=YYYY-MM-DD/part-<utc time>-<pid>-<n>.parquet

The DNS filter's log (``separate_writer=True``) has the thread convert only each distinct
value and hand the rest, repeating values for every row and encoding them, to writing
processes of its own (:mod:`esafety.filtering.log_writer`): in the thread, that work put
answers milliseconds late.

Each file is written under a dot-name ending in ``.tmp``, fsynced and then renamed, so a
reader never sees half a file and a crash loses at most the batch not yet written (a
Parquet file whose writer dies unclosed has no footer and is unreadable: hence many
small closed files, compacted later, instead of one open file a day).

A full queue never blocks and is never silent: refused entries are counted
(:attr:`DecisionLog.dropped`, for ``/metrics``) and one warning a flush says how many.

Listeners (``on_flush=`` or :meth:`DecisionLog.add_listener`) get each flushed batch in
the flushing thread, after it is written: DSL alerts (:mod:`esafety.filtering.alerts`) pick
their blocks from it there, so nothing is added to the hot path. A listener must be quick
(hand work to its own thread); one that raises is logged and counted, and the log goes on.

:func:`compact` merges a day's files into one ``compacted-*.parquet`` whose footer names
the files it replaces; readers (:func:`visible_files`) skip files a compacted file
replaces, so between writing the new file and removing the old ones a reader sees each
decision exactly once. :func:`prune` removes days older than the retention setting
(``[filtering] log_retention_days``). :func:`query` reads the files with DuckDB, with
every value passed as a parameter.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import threading
import time as clock
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from esafety.filtering.categories import catalogue
from esafety.filtering.decision import Decision
from esafety.filtering.policy import Action
from esafety.filtering.priority import yield_to_serving

try:
    from esafety.filtering.dns import _ready
except ImportError:  # built without a C compiler: the DNS filter logs through record()
    _ready = None  # type: ignore[assignment]

__all__ = [
    "DecisionLog",
    "FlushListener",
    "LogEntry",
    "LoggedDecision",
    "compact",
    "decisions_dir",
    "logged_days",
    "prune",
    "query",
    "visible_files",
]

log = logging.getLogger(__name__)

#: Footer key of a compacted file: the JSON list of file names it replaces.
REPLACES_KEY = b"esafety.replaces"
#: Entries waiting to be written before new ones are counted as dropped (about 20 MB).
DEFAULT_CAPACITY = 100_000
#: The fast path's records (24 octets each) wait in their own buffer: ten seconds at its
#: best rate, so a flush kept waiting by a busy core loses none (24 MB at most, touched
#: only as far as it fills).
DEFAULT_READY_CAPACITY = 1_000_000
#: Seconds between flushes: a crash loses at most this much (issue 4 §8: "the last second").
DEFAULT_INTERVAL = 1.0
DEFAULT_LIMIT = 100
_DAY_SECONDS = 86_400
_EPOCH = date(1970, 1, 1)
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SCHEMA = pa.schema(
    [
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("client", pa.string(), nullable=False),
        pa.field("person", pa.string(), nullable=False),  # username, or "" when unknown
        pa.field("policy", pa.string(), nullable=False),
        pa.field("groups", pa.list_(pa.string()), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("query_type", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("categories", pa.list_(pa.string()), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("list_id", pa.string()),
        pa.field("under_exception", pa.bool_(), nullable=False),
    ]
)


class LogEntry(NamedTuple):
    """One decision as the hot path knows it; turned into columns off the hot path."""

    time: float  #: seconds since the epoch (time.time())
    client: str  #: the address that asked
    person: str  #: username, or "" for an unknown device
    name: str  #: the host (or URL) asked for
    query_type: str  #: A, AAAA, HTTPS... or "URL" for a web address
    decision: Decision
    groups: frozenset[str] = frozenset()


def decisions_dir(data_dir: Path) -> Path:
    return data_dir / "logs" / "decisions"


def _day_dir(root: Path, day: date) -> Path:
    return root / f"date={day.isoformat()}"


def _utc_stamp(now: float) -> str:
    moment = datetime.fromtimestamp(now, UTC)
    return moment.strftime("%Y%m%dT%H%M%S") + f"{moment.microsecond:06d}Z"


def _write_closed(table: pa.Table, final: Path, metadata: dict[bytes, bytes] | None = None) -> None:
    """Write ``table`` to ``final`` so that it appears whole or not at all."""
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.tmp")
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    try:
        with temporary.open("wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (a crash after it must not bring the old name back)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _table(entries: Iterable[LogEntry]) -> pa.Table:
    """The entries as columns. Most entries share their decision and group set with many
    others (one allow decision a policy), so each distinct one is turned into column
    values once and pyarrow repeats them (``take``): the flushing thread holds the GIL,
    and every microsecond a row here is taken from the serving loop.
    """
    rows = entries if isinstance(entries, list) else list(entries)
    decisions: list[Decision] = []
    group_sets: list[frozenset[str]] = []
    decision_at: dict[int, int] = {}
    groups_at: dict[int, int] = {}
    which_decision: list[int] = []
    which_groups: list[int] = []
    for entry in rows:
        decision, groups = entry.decision, entry.groups
        number = decision_at.get(id(decision))
        if number is None:
            number = decision_at[id(decision)] = len(decisions)
            decisions.append(decision)
        which_decision.append(number)
        number = groups_at.get(id(groups))
        if number is None:
            number = groups_at[id(groups)] = len(group_sets)
            group_sets.append(groups)
        which_groups.append(number)
    at = _array(which_decision, pa.int32())
    columns = {name: values.take(at) for name, values in _decision_values(decisions).items()}
    columns.update(
        time=_time_column(_array([e.time for e in rows], pa.float64())),
        client=_array([e.client for e in rows], pa.string()),
        person=_array([e.person for e in rows], pa.string()),
        groups=_groups_column(group_sets, _array(which_groups, pa.int32())),
        name=_array([e.name for e in rows], pa.string()),
        query_type=_array([e.query_type for e in rows], pa.string()),
    )
    return pa.table(columns, schema=SCHEMA)


#: Values converted a call: a slice takes about a tenth of a millisecond.
_SLICE = 1024


def _array(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    """``pa.array(values, kind)`` a slice at a time. Converting a Python list holds the GIL
    for the whole call (milliseconds for a second's decisions), and the serving loop
    waits that long for it; between slices it gets its turn (issue 4: p99 latency)."""
    if len(values) <= _SLICE:
        return pa.array(values, kind)
    return pa.concat_arrays(
        [pa.array(values[at : at + _SLICE], kind) for at in range(0, len(values), _SLICE)]
    )


def _time_column(seconds: pa.Array) -> pa.Array:
    micros = pc.multiply(seconds, 1_000_000)
    # int(time * 1e6) as before: the cast truncates towards zero as int() does.
    return pc.cast(micros, pa.int64(), safe=False).cast(pa.timestamp("us", "UTC"))


def _groups_column(group_sets: Sequence[frozenset[str]], at: pa.Array) -> pa.Array:
    return _array([sorted(g) for g in group_sets], pa.list_(pa.string())).take(at)


@functools.cache
def _alerting_categories() -> pa.Array:
    """The ids of the categories whose blocks raise an alert to the DSL."""
    return pa.array([c.value for c, about in catalogue().items() if about.alerts_dsl])


def _decision_values(decisions: Sequence[Decision]) -> dict[str, pa.Array]:
    """The columns that come from the decision, one row a distinct decision."""
    categories: dict[int, list[str]] = {}
    for decision in decisions:
        if id(decision.categories) not in categories:
            categories[id(decision.categories)] = [c.value for c in decision.categories]
    return {
        "policy": _array([d.policy_id for d in decisions], pa.string()),
        "action": _array([str(d.action) for d in decisions], pa.string()),
        "categories": _array(
            [categories[id(d.categories)] for d in decisions], pa.list_(pa.string())
        ),
        "rule": _array([d.rule for d in decisions], pa.string()),
        "list_id": _array([d.list_id for d in decisions], pa.string()),
        "under_exception": _array([d.under_exception for d in decisions], pa.bool_()),
    }


class Numbered(NamedTuple):
    """Decisions as the fast path logs them, in Arrow: each row names its client scope
    and its note by number among the distinct ones, which are converted once. This is
    what crosses to the writing process (:mod:`esafety.filtering.log_writer`); repeating
    the values for every row (:meth:`table`) and encoding them is left to the writer."""

    rows: pa.Table  #: time (float64 seconds since the epoch), scope_at, note_at (int32)
    scopes: pa.Table  #: client, person, groups: one row a distinct scope
    notes: pa.Table  #: name, query_type and the decision's columns: one a distinct note

    def table(self) -> pa.Table:
        scope_at, note_at = self.rows["scope_at"], self.rows["note_at"]
        columns = {name: self.scopes[name].take(scope_at) for name in self.scopes.column_names}
        columns.update({name: self.notes[name].take(note_at) for name in self.notes.column_names})
        columns["time"] = _time_column(self.rows["time"])
        return pa.table(columns, schema=SCHEMA)


class ReadyRecords(NamedTuple):
    """What the DNS filter's C fast path logged (``_ready.LogBuffer.take()``): one row a
    decision, each naming its client scope and its note (name, query type, decision) by
    number among the distinct ones, so the columns are built once per distinct value."""

    times: pa.Array  #: float64 seconds since the epoch
    scope_at: pa.Array  #: int32, into ``scopes``
    scopes: list[Any]  #: ClientScope: .client, .person, .groups
    note_at: pa.Array  #: int32, into ``notes``
    notes: list[tuple[str, str, Decision]]

    @classmethod
    def taken(cls, chunk: tuple[bytes, bytes, list[Any], bytes, list[Any]]) -> ReadyRecords:
        times, scope_at, scopes, note_at, notes = chunk
        count = len(times) // 8

        def array(kind: pa.DataType, octets: bytes) -> pa.Array:
            return pa.Array.from_buffers(kind, count, [None, pa.py_buffer(octets)])

        return cls(
            array(pa.float64(), times),
            array(pa.int32(), scope_at),
            scopes,
            array(pa.int32(), note_at),
            notes,
        )

    def numbered(self) -> Numbered:
        """The distinct scopes and notes converted to Arrow, once each."""
        scopes, notes = self.scopes, self.notes
        return Numbered(
            pa.table({"time": self.times, "scope_at": self.scope_at, "note_at": self.note_at}),
            pa.table(
                {
                    "client": _array([s.client for s in scopes], pa.string()),
                    "person": _array([s.person for s in scopes], pa.string()),
                    "groups": _array([sorted(s.groups) for s in scopes], pa.list_(pa.string())),
                }
            ),
            pa.table(
                {
                    "name": _array([note[0] for note in notes], pa.string()),
                    "query_type": _array([note[1] for note in notes], pa.string()),
                    **_decision_values([note[2] for note in notes]),
                }
            ),
        )

    def alerting(self, numbered: Numbered) -> list[LogEntry]:
        """The rows that listeners act on (blocks in alerting categories), as entries.
        The notes are picked from ``numbered``'s columns: a Python loop over them cost the
        flushing thread (and so the serving loop) milliseconds a second."""
        notes = numbered.notes
        categories = notes["categories"].combine_chunks()
        in_alerting = pc.is_in(pc.list_flatten(categories), value_set=_alerting_categories())
        alerting = pc.unique(pc.filter(pc.list_parent_indices(categories), in_alerting))
        blocked = pc.equal(pc.take(notes["action"], alerting), str(Action.BLOCK))
        wanted = pc.cast(pc.filter(alerting, blocked), pa.int32())
        if len(wanted) == 0:
            return []
        rows = pc.indices_nonzero(pc.is_in(self.note_at, wanted))
        entries = []
        for row in rows.to_pylist():
            scope = self.scopes[self.scope_at[row].as_py()]
            name, kind, decision = self.notes[self.note_at[row].as_py()]
            when = self.times[row].as_py()
            entries.append(
                LogEntry(when, scope.client, scope.person, name, kind, decision, scope.groups)
            )
        return entries


#: What a writer did with a flush: decisions written, files written, decisions lost.
Counts = tuple[int, int, int]


def _by_day(table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    """(day number since the epoch, its rows), for each day the table's rows span."""
    micros = pc.cast(table["time"], pa.int64()).cast(pa.float64())
    days = pc.cast(pc.floor(pc.divide(micros, _DAY_SECONDS * 1e6)), pa.int64())
    bounds = pc.min_max(days).as_py()
    if bounds["min"] == bounds["max"]:
        yield bounds["min"], table
        return
    for day in sorted(pc.unique(days).to_pylist()):
        yield day, table.filter(pc.equal(days, day))


class FileWriter:
    """Writes each flush as one small closed file a day it spans, in this process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sequence = 0

    def write(self, parts: Sequence[pa.Table | Numbered]) -> Counts:
        """(decisions written, files written, decisions lost to a failed write)."""
        tables = [part.table() if isinstance(part, Numbered) else part for part in parts]
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        written = files = lost = 0
        if table.num_rows == 0:
            return written, files, lost
        stamp, pid = _utc_stamp(clock.time()), os.getpid()
        for day_number, day_table in _by_day(table):
            self._sequence += 1
            day = _EPOCH + timedelta(days=day_number)
            final = _day_dir(self.root, day) / f"part-{stamp}-{pid}-{self._sequence}.parquet"
            try:
                _write_closed(day_table, final)
            except Exception:  # disk full, permissions: count the loss, keep serving
                lost += day_table.num_rows
                log.exception(
                    "could not write %d logged decisions to %s", day_table.num_rows, final
                )
                continue
            written += day_table.num_rows
            files += 1
        return written, files, lost

    def start(self) -> None:
        """Nothing to start."""

    def close(self) -> Counts:
        """Nothing is kept open between flushes, nor owed."""
        return 0, 0, 0


class Writer(Protocol):
    """Where flushed decisions go: :class:`FileWriter`, or the writing process
    (:class:`esafety.filtering.log_writer.WritingProcesses`)."""

    def start(self) -> None: ...

    def write(self, parts: Sequence[pa.Table | Numbered]) -> Counts: ...

    def close(self) -> Counts: ...


#: Called with each flushed batch, in the flushing thread (see the module text).
FlushListener = Callable[[Sequence[LogEntry]], None]


class DecisionLog:
    """Batches decisions off the hot path into small closed Parquet files.

    ``start()`` runs the flushing thread; ``stop()`` ends it with a last flush (a crash is
    a stop without one). One log a process: file names carry the process id, so several
    DNS workers share a data directory without clashing.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        capacity: int = DEFAULT_CAPACITY,
        ready_capacity: int = DEFAULT_READY_CAPACITY,
        interval: float = DEFAULT_INTERVAL,
        on_flush: FlushListener | None = None,
        separate_writer: bool = False,
    ) -> None:
        if capacity < 1 or ready_capacity < 1 or interval <= 0:
            raise ValueError("capacities must be at least 1 and interval above 0")
        #: Given every flushed batch (DSL alerts); see :meth:`add_listener`.
        self.listeners: list[FlushListener] = [on_flush] if on_flush is not None else []
        #: Times a listener raised.
        self.listener_errors = 0
        self.root = decisions_dir(data_dir)
        self.capacity = capacity
        self.interval = interval
        # A deque without maxlen: append and popleft are atomic, so record() needs no
        # lock; the length check makes it bounded and lets refused entries be counted
        # (maxlen would drop the oldest silently).
        self._queue: deque[LogEntry] = deque()
        #: The DNS filter's C fast path logs its answers here (see :class:`ReadyRecords`),
        #: bounded by ``ready_capacity``.
        self.ready_buffer = _ready.LogBuffer(ready_capacity) if _ready is not None else None
        self._dropped = 0
        #: Entries written to files, and files written.
        self.written = 0
        self.files = 0
        self._reported_dropped = 0
        self._writer: Writer = FileWriter(self.root)
        if separate_writer:
            from esafety.filtering.log_writer import WritingProcesses

            self._writer = WritingProcesses(self.root)
        self._flushing = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the hot path -------------------------------------------------------------------

    def record(self, entry: LogEntry) -> None:
        """Queue one decision; never blocks, never raises for a full queue."""
        queue = self._queue
        if len(queue) >= self.capacity:
            self._dropped += 1
            return
        queue.append(entry)

    # -- off the hot path ---------------------------------------------------------------

    @property
    def pending(self) -> int:
        ready = self.ready_buffer
        return len(self._queue) + (ready.pending if ready is not None else 0)

    @property
    def dropped(self) -> int:
        """Entries refused because a queue was full, or lost because a write failed."""
        ready = self.ready_buffer
        return self._dropped + (ready.dropped if ready is not None else 0)

    def counters(self) -> dict[str, int]:
        """For ``/metrics`` (Prometheus names)."""
        return {
            "esafety_decision_log_written_total": self.written,
            "esafety_decision_log_dropped_total": self.dropped,
            "esafety_decision_log_files_total": self.files,
            "esafety_decision_log_pending": self.pending,
            "esafety_decision_log_listener_errors_total": self.listener_errors,
        }

    def add_listener(self, listener: FlushListener) -> Callable[[], None]:
        """Give ``listener`` every batch flushed from now on; returns its removal."""
        self.listeners.append(listener)

        def remove() -> None:
            if listener in self.listeners:
                self.listeners.remove(listener)

        return remove

    def flush(self) -> int:
        """Write what is queued now (one file a day it touches); returns entries written.

        Then each listener gets the batch (written or not: the decisions were made): every
        entry queued by :meth:`record`, and of the fast path's records those in alerting
        categories (all any listener looks at; turning every one into an entry would cost
        the serving loop the time the fast path saves)."""
        batch, written = self._write_queued()
        if batch:
            self._tell_listeners(batch)
        return written

    def _tell_listeners(self, batch: list[LogEntry]) -> None:
        for listener in tuple(self.listeners):
            try:
                listener(batch)
            except Exception:  # a listener's fault must not stop the log
                self.listener_errors += 1
                log.exception("decision log listener %r failed", listener)

    def _write_queued(self) -> tuple[list[LogEntry], int]:
        with self._flushing:
            queue = self._queue
            batch = [queue.popleft() for _ in range(len(queue))]
            taken = self.ready_buffer.take() if self.ready_buffer is not None else None
            parts: list[pa.Table | Numbered] = [_table(batch)] if batch else []
            if taken is not None:
                ready = ReadyRecords.taken(taken)
                numbered = ready.numbered()
                parts.append(numbered)
                batch.extend(ready.alerting(numbered))
            written = 0
            if parts:
                written = self._count(self._writer.write(parts))
            self._report_drops()
            return batch, written

    def _count(self, counts: Counts) -> int:
        """Add a writer's (written, files, lost); returns those written."""
        written, files, lost = counts
        self.written += written
        self.files += files
        self._dropped += lost
        return written

    def _report_drops(self) -> None:
        dropped = self.dropped
        if dropped > self._reported_dropped:
            log.warning(
                "decision log: %d decisions were not logged since the last flush "
                "(%d in all): the queue of %d was full or a write failed",
                dropped - self._reported_dropped,
                dropped,
                self.capacity,
            )
            self._reported_dropped = dropped

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._writer.start()
        self._thread = threading.Thread(target=self._run, name="esafety-decision-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        yield_to_serving()  # the serving loop first (esafety.filtering.priority)
        deadline = clock.monotonic() + self.interval
        while not self._stopping.wait(max(0.0, deadline - clock.monotonic())):
            # Fixed rate, not fixed delay: a slow write does not stretch the interval.
            deadline += self.interval
            try:
                self.flush()
            except Exception:  # the thread must outlive any one bad batch
                log.exception("decision log flush failed")

    def stop(self, *, flush: bool = True) -> None:
        """End the flushing thread; ``flush=False`` leaves the queue unwritten (a crash)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            thread.join()
        if flush:
            self.flush()
        with self._flushing:  # what the writing processes still owed an answer for
            self._count(self._writer.close())

    def __enter__(self) -> DecisionLog:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- reading ------------------------------------------------------------------------------


def _days(root: Path) -> Iterator[tuple[date, Path]]:
    if not root.is_dir():
        return
    for directory in sorted(root.iterdir()):
        key, _, value = directory.name.partition("=")
        if key != "date" or not directory.is_dir():
            continue
        try:
            yield date.fromisoformat(value), directory
        except ValueError:
            continue


def logged_days(data_dir: Path) -> list[date]:
    """Every day that has a folder of logged decisions, oldest first."""
    return [day for day, _directory in _days(decisions_dir(data_dir))]


def _replaced_by(compacted: Path) -> set[str]:
    metadata = pq.read_schema(compacted).metadata or {}
    names = json.loads(metadata.get(REPLACES_KEY, b"[]"))
    return {str(name) for name in names}


def visible_files(
    data_dir: Path, first: date | None = None, last: date | None = None
) -> list[Path]:
    """Every logged file a reader should read (days ``first``..``last``), each decision once.

    Raises FileNotFoundError if a compaction removed a file while listing; callers retry.
    """
    found: list[Path] = []
    for day, directory in _days(decisions_dir(data_dir)):
        if (first is not None and day < first) or (last is not None and day > last):
            continue
        files = sorted(directory.glob("*.parquet"))
        replaced: set[str] = set()
        for file in files:
            if file.name.startswith("compacted-"):
                replaced |= _replaced_by(file)
        found.extend(file for file in files if file.name not in replaced)
    return found


def compact(data_dir: Path, day: date) -> Path | None:
    """Merge a day's files into one; returns it (None when there is nothing to merge).

    Run it for finished days (the scheduler's job); files that arrive later for the same
    day are merged by the next run. Never changes a file in place: the new file names the
    old ones in its footer before they are removed, so readers see no gap and no double.
    """
    directory = _day_dir(decisions_dir(data_dir), day)
    if not directory.is_dir():
        return None
    files = visible_files(data_dir, day, day)
    for stale in directory.glob(".*.tmp"):  # a writer that died mid-write left these
        if clock.time() - stale.stat().st_mtime > 60:
            stale.unlink(missing_ok=True)
    if len(files) < 2:
        return None
    replaced = {file.name for file in files}
    for file in files:
        if file.name.startswith("compacted-"):
            replaced |= _replaced_by(file)
    table = pa.concat_tables(pq.read_table(file, schema=SCHEMA) for file in files)
    table = table.sort_by("time")
    final = directory / f"compacted-{_utc_stamp(clock.time())}-{os.getpid()}.parquet"
    _write_closed(table, final, {REPLACES_KEY: json.dumps(sorted(replaced)).encode()})
    for file in files:
        file.unlink(missing_ok=True)
    return final


def prune(data_dir: Path, older_than_days: int, *, today: date | None = None) -> list[date]:
    """Remove the days more than ``older_than_days`` before today (UTC); returns them."""
    if older_than_days < 1:
        raise ValueError("the log must be kept for at least one day")
    cutoff = (today or datetime.now(UTC).date()) - timedelta(days=older_than_days)
    removed: list[date] = []
    root = decisions_dir(data_dir)
    for day, directory in list(_days(root)):
        if day >= cutoff:
            continue
        # Renamed away first (one atomic step), so a reader sees the whole day or none.
        doomed = directory.with_name(f".pruned-{directory.name}-{os.getpid()}")
        os.replace(directory, doomed)
        shutil.rmtree(doomed)
        removed.append(day)
    return removed


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    time: datetime
    client: str
    person: str
    policy: str
    groups: tuple[str, ...]
    name: str
    query_type: str
    action: str
    categories: tuple[str, ...]
    rule: str
    list_id: str | None
    under_exception: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "client": self.client,
            "person": self.person,
            "policy": self.policy,
            "groups": list(self.groups),
            "name": self.name,
            "query_type": self.query_type,
            "action": self.action,
            "categories": list(self.categories),
            "rule": self.rule,
            "list": self.list_id,
            "under_exception": self.under_exception,
        }


_QUERY = """
SELECT epoch_us(time), client, person, policy, groups, name, query_type, action,
       categories, rule, list_id, under_exception
FROM read_parquet($files, hive_partitioning = true)
WHERE ($person IS NULL OR person = $person)
  AND ($group IS NULL OR policy = $group OR list_contains(groups, $group))
  AND ($action IS NULL OR action = $action)
  AND ($category IS NULL OR list_contains(categories, $category))
  AND ($start IS NULL OR time >= to_timestamp($start))
  AND ($end IS NULL OR time < to_timestamp($end))
ORDER BY time DESC
LIMIT $limit
"""


def query(
    data_dir: Path,
    *,
    person: str | None = None,
    group: str | None = None,
    action: str | None = None,
    category: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[LoggedDecision]:
    """The newest logged decisions matching every filter given (``end`` is exclusive).

    ``group`` matches the policy id or any group the person was in.
    """
    import duckdb

    first = start.astimezone(UTC).date() if start is not None else None
    last = end.astimezone(UTC).date() if end is not None else None
    parameters: dict[str, object] = {
        "person": person,
        "group": group,
        "action": action,
        "category": category,
        "start": start.timestamp() if start is not None else None,
        "end": end.timestamp() if end is not None else None,
        "limit": max(0, limit),
    }
    for attempt in range(5):
        # A compaction or prune may remove a file between listing and reading: list again.
        try:
            files = visible_files(data_dir, first, last)
            if not files:
                return []
            with contextlib.closing(duckdb.connect(":memory:")) as connection:
                rows = connection.execute(
                    _QUERY, {**parameters, "files": [str(file) for file in files]}
                ).fetchall()
            break
        except (FileNotFoundError, duckdb.IOException):
            if attempt == 4:
                raise
            clock.sleep(0.05)
    return [
        LoggedDecision(
            time=_UTC_EPOCH + timedelta(microseconds=row[0]),
            client=row[1],
            person=row[2],
            policy=row[3],
            groups=tuple(row[4]),
            name=row[5],
            query_type=row[6],
            action=row[7],
            categories=tuple(row[8]),
            rule=row[9],
            list_id=row[10],
            under_exception=row[11],
        )
        for row in rows
    ]
