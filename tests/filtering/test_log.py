"""The decision log: batching, closed files, crashes, drops, compaction, retention, queries."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from esafety.filtering.categories import Category
from esafety.filtering.decision import Decision
from esafety.filtering.log import (
    DecisionLog,
    LogEntry,
    compact,
    decisions_dir,
    prune,
    query,
    visible_files,
)
from esafety.filtering.policy import Action

NOON = datetime(2025, 3, 12, 12, 0, tzinfo=UTC).timestamp()

ALLOWED = Decision(Action.ALLOW, (), "policy:ks2 default", None, "ks2", "Allowed.")
GAMBLING = Decision(
    Action.BLOCK,
    (Category.GAMBLING,),
    "bet.example",
    "ut1-gambling",
    "ks2",
    "Blocked: gambling.",
)
LESSON = Decision(
    Action.ALLOW,
    (Category.GAMES,),
    "exception #4",
    None,
    "ks1",
    "Allowed for a lesson.",
    under_exception=True,
)


def entry(
    name: str = "news.example",
    decision: Decision = ALLOWED,
    *,
    at: float = NOON,
    person: str = "ada.l",
    groups: frozenset[str] = frozenset({"5B"}),
) -> LogEntry:
    return LogEntry(at, "10.0.0.7", person, name, "A", decision, groups)


def parquet_files(data: Path) -> list[Path]:
    return sorted(decisions_dir(data).rglob("*.parquet"))


def test_record_flush_query_round_trip(tmp_path: Path) -> None:
    decisions = DecisionLog(tmp_path)
    decisions.record(entry("news.example", at=NOON))
    decisions.record(entry("bet.example", GAMBLING, at=NOON + 1))
    decisions.record(entry("games.example", LESSON, at=NOON + 2, person="", groups=frozenset()))
    assert decisions.flush() == 3

    rows = query(tmp_path)
    assert [r.name for r in rows] == ["games.example", "bet.example", "news.example"]
    blocked = rows[1]
    assert blocked.as_dict() == {
        "time": "2025-03-12T12:00:01+00:00",
        "client": "10.0.0.7",
        "person": "ada.l",
        "policy": "ks2",
        "groups": ["5B"],
        "name": "bet.example",
        "query_type": "A",
        "action": "block",
        "categories": ["gambling"],
        "rule": "bet.example",
        "list": "ut1-gambling",
        "under_exception": False,
    }
    assert rows[0].person == "" and rows[0].under_exception
    assert [p.parent.name for p in parquet_files(tmp_path)] == ["date=2025-03-12"]
    assert decisions.counters()["esafety_decision_log_written_total"] == 3


def test_every_flush_leaves_closed_readable_files_split_by_day(tmp_path: Path) -> None:
    decisions = DecisionLog(tmp_path)
    for n in range(3):
        decisions.record(entry(f"n{n}.example", at=NOON + n))
        decisions.record(entry(f"late{n}.example", at=NOON + 86_400 + n))
        decisions.flush()
        for file in parquet_files(tmp_path):  # every file has its footer: readable now
            assert pq.read_metadata(file).num_rows == 1
    assert decisions.flush() == 0  # nothing queued: no empty file
    days = sorted({p.parent.name for p in parquet_files(tmp_path)})
    assert days == ["date=2025-03-12", "date=2025-03-13"]
    assert len(parquet_files(tmp_path)) == 6
    assert not list(decisions_dir(tmp_path).rglob("*.tmp"))


def test_background_thread_flushes_within_a_second(tmp_path: Path) -> None:
    with DecisionLog(tmp_path, interval=0.1) as decisions:
        decisions.record(entry())
        deadline = time.monotonic() + 5
        while not parquet_files(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert parquet_files(tmp_path), "the thread did not flush"
        decisions.record(entry("last.example"))
    # stop() flushed the last entry
    assert {r.name for r in query(tmp_path)} == {"news.example", "last.example"}


def test_crash_loses_only_unflushed_entries(tmp_path: Path) -> None:
    decisions = DecisionLog(tmp_path, interval=60)
    decisions.start()
    decisions.record(entry("kept.example"))
    decisions.flush()
    decisions.record(entry("lost.example"))
    decisions.stop(flush=False)  # the process dies before the next flush
    # and a writer that died mid-write left a half file under its temporary name
    day = decisions_dir(tmp_path) / "date=2025-03-12"
    (day / ".part-20250312T120002000000Z-1-9.parquet.tmp").write_bytes(b"PAR1\x00\x01half")

    assert [r.name for r in query(tmp_path)] == ["kept.example"]
    # a new process carries on beside the old files
    DecisionLog(tmp_path).record(entry("ignored.example"))  # never flushed either
    again = DecisionLog(tmp_path)
    again.record(entry("next.example", at=NOON + 5))
    again.flush()
    assert [r.name for r in query(tmp_path)] == ["next.example", "kept.example"]


def test_full_queue_counts_drops_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    decisions = DecisionLog(tmp_path, capacity=3)
    for n in range(10):
        decisions.record(entry(f"n{n}.example", at=NOON + n))
    assert decisions.pending == 3
    assert decisions.dropped == 7
    with caplog.at_level(logging.WARNING, logger="esafety.filtering.log"):
        decisions.flush()
        decisions.flush()  # nothing new dropped: no second warning
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "7 decisions were not logged" in warnings[0].getMessage()
    assert decisions.counters()["esafety_decision_log_dropped_total"] == 7
    assert [r.name for r in query(tmp_path)] == ["n2.example", "n1.example", "n0.example"]


def test_a_failed_write_is_counted_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("not a directory")  # the log folder cannot be made
    decisions = DecisionLog(tmp_path)
    decisions.record(entry())
    assert decisions.flush() == 0
    assert decisions.dropped == 1


def test_compaction_merges_a_day_into_one_file(tmp_path: Path) -> None:
    decisions = DecisionLog(tmp_path)
    for n in range(4):
        decisions.record(entry(f"n{n}.example", at=NOON + n))
        decisions.flush()
    decisions.record(entry("other-day.example", at=NOON + 86_400))
    decisions.flush()
    before = [r.name for r in query(tmp_path)]

    merged = compact(tmp_path, date(2025, 3, 12))
    assert merged is not None and merged.name.startswith("compacted-")
    day_files = sorted((decisions_dir(tmp_path) / "date=2025-03-12").glob("*.parquet"))
    assert day_files == [merged]
    assert pq.read_metadata(merged).num_rows == 4
    assert [r.name for r in query(tmp_path)] == before
    assert compact(tmp_path, date(2025, 3, 12)) is None  # one file: nothing to do
    assert compact(tmp_path, date(2025, 1, 1)) is None  # no such day

    # a late file for the same day is merged into a new compacted file next time
    decisions.record(entry("late.example", at=NOON + 10))
    decisions.flush()
    again = compact(tmp_path, date(2025, 3, 12))
    assert again is not None
    assert sorted((decisions_dir(tmp_path) / "date=2025-03-12").glob("*.parquet")) == [again]
    assert len(query(tmp_path, start=datetime(2025, 3, 12, tzinfo=UTC))) == 6


def test_reader_between_compaction_steps_sees_each_decision_once(tmp_path: Path) -> None:
    """The new file is in place and the old ones not yet removed (the moment a crash or
    a concurrent reader could catch): readers still count every decision once."""
    decisions = DecisionLog(tmp_path)
    for n in range(3):
        decisions.record(entry(f"n{n}.example", at=NOON + n))
        decisions.flush()
    day = decisions_dir(tmp_path) / "date=2025-03-12"
    copies = {p: p.read_bytes() for p in day.glob("*.parquet")}
    compact(tmp_path, date(2025, 3, 12))
    for path, content in copies.items():  # put the replaced files back
        path.write_bytes(content)
    assert len(list(day.glob("*.parquet"))) == 4
    assert len(visible_files(tmp_path)) == 1
    assert sorted(r.name for r in query(tmp_path)) == ["n0.example", "n1.example", "n2.example"]


def test_prune_removes_days_past_retention(tmp_path: Path) -> None:
    decisions = DecisionLog(tmp_path)
    for days_ago in (0, 10, 400):
        decisions.record(entry(f"d{days_ago}.example", at=NOON - days_ago * 86_400))
    decisions.flush()
    removed = prune(tmp_path, 365, today=date(2025, 3, 12))
    assert removed == [date(2025, 3, 12) - timedelta(days=400)]
    assert sorted(r.name for r in query(tmp_path)) == ["d0.example", "d10.example"]
    assert prune(tmp_path, 5, today=date(2025, 3, 12)) == [date(2025, 3, 2)]
    assert [p.name for p in decisions_dir(tmp_path).iterdir()] == ["date=2025-03-12"]
    with pytest.raises(ValueError, match="at least one day"):
        prune(tmp_path, 0)


def test_query_filters(tmp_path: Path) -> None:
    decisions = DecisionLog(tmp_path)
    decisions.record(entry("news.example", at=NOON))
    decisions.record(entry("bet.example", GAMBLING, at=NOON + 60, person="bob.k"))
    decisions.record(entry("games.example", LESSON, at=NOON + 120, groups=frozenset({"1A"})))
    decisions.flush()

    def names(**filters: object) -> list[str]:
        return [r.name for r in query(tmp_path, **filters)]  # type: ignore[arg-type]

    assert names(person="bob.k") == ["bet.example"]
    assert names(person="nobody") == []
    assert names(action="block") == ["bet.example"]
    assert names(category="games") == ["games.example"]
    assert names(group="ks1") == ["games.example"]  # the policy
    assert names(group="5B") == ["bet.example", "news.example"]  # a group they were in
    assert names(start=datetime.fromtimestamp(NOON + 60, UTC)) == [
        "games.example",
        "bet.example",
    ]
    assert names(end=datetime.fromtimestamp(NOON + 60, UTC)) == ["news.example"]
    assert names(limit=1) == ["games.example"]
    assert names(start=datetime(2026, 1, 1, tzinfo=UTC)) == []
    assert query(tmp_path / "empty") == []
    # user text is a value, never SQL
    assert names(person="x' OR '1'='1") == []


# -- the command ---------------------------------------------------------------------------


@pytest.fixture
def logged(settings):
    decisions = DecisionLog(settings.data)
    decisions.record(entry("news.example", at=NOON))
    decisions.record(entry("bet.example", GAMBLING, at=NOON + 60, person="bob.k"))
    decisions.record(entry("games.example", LESSON, at=NOON + 86_400))
    decisions.flush()
    return decisions


def test_cli_json_lines_and_filters(cli, logged) -> None:
    r = cli("filter", "log", "--json")
    assert r.code == 0, r.err
    lines = [json.loads(line) for line in r.out.splitlines()]
    assert [line["name"] for line in lines] == ["games.example", "bet.example", "news.example"]

    r = cli("filter", "log", "--json", "--action", "block", "--category", "Gambling")
    assert [json.loads(line)["person"] for line in r.out.splitlines()] == ["bob.k"]

    r = cli("filter", "log", "--json", "--person", "ada.l", "--group", "ks1")
    assert [json.loads(line)["name"] for line in r.out.splitlines()] == ["games.example"]

    # a bare date as --to includes that whole day
    r = cli("filter", "log", "--json", "--from", "2025-03-12", "--to", "2025-03-12")
    assert [json.loads(line)["name"] for line in r.out.splitlines()] == [
        "bet.example",
        "news.example",
    ]
    r = cli("filter", "log", "--json", "--from", "2025-03-12T12:00:30+00:00", "--limit", "1")
    assert [json.loads(line)["name"] for line in r.out.splitlines()] == ["games.example"]


def test_cli_table(cli, logged) -> None:
    r = cli("filter", "log", "--person", "bob.k")
    assert r.code == 0, r.err
    assert "1 decisions" in r.out
    assert "bet.example" in r.out and "gambling" in r.out and "news.example" not in r.out
    r = cli("filter", "log", "--group", "ks1")
    assert "allow (exception)" in r.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "yesterday"), "--from 'yesterday' is not a date or time"),
        (("--to", "2025-13-01"), "--to '2025-13-01' is not a date or time"),
        (("--category", "gamblin"), "did you mean 'gambling'"),
        (("--action", "deny"), "use allow, block or rewrite"),
        (("--from", "2025-03-13", "--to", "2025-03-12T00:00+00:00"), "swap them"),
        (("--limit", "0"), "must be at least 1"),
    ],
)
def test_cli_bad_input(cli, args: tuple[str, ...], message: str) -> None:
    r = cli("filter", "log", *args)
    assert r.code == 2
    assert message in " ".join(r.err.split())
    assert "Traceback" not in r.err


def test_the_flushing_thread_gives_way_to_the_serving_loop(tmp_path: Path) -> None:
    import os
    import threading
    import time

    decisions = DecisionLog(tmp_path, interval=0.05)
    decisions.start()
    try:
        flusher = next(t for t in threading.enumerate() if t.name == "esafety-decision-log")
        assert flusher.native_id is not None
        expected = min(19, os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) + 10)
        deadline = time.monotonic() + 5
        while os.getpriority(os.PRIO_PROCESS, flusher.native_id) != expected:
            assert time.monotonic() < deadline, "the flushing thread kept the loop's priority"
            time.sleep(0.01)
    finally:
        decisions.stop()


def test_a_large_batch_is_converted_in_slices_and_written_whole(tmp_path: Path) -> None:
    decisions = DecisionLog(tmp_path)
    for n in range(3000):  # about three slices of conversion
        decisions.record(entry(f"site{n}.example", at=NOON + n / 1000, person=f"p{n % 7}"))
    assert decisions.flush() == 3000
    rows = [row for file in visible_files(tmp_path) for row in pq.read_table(file).to_pylist()]
    assert [row["name"] for row in rows] == [f"site{n}.example" for n in range(3000)]
    assert [row["person"] for row in rows] == [f"p{n % 7}" for n in range(3000)]
