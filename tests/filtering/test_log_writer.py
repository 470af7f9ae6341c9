"""The decision log's writing processes (esafety.filtering.log_writer): real child processes.

They write what the log flushes, in idle time or, when there is none, at niceness 10;
a writer that dies is started again (every decision written or counted as lost, none
silently); and none outlives its log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from esafety.filtering.log import DecisionLog, query
from esafety.filtering.log_writer import WritingProcesses
from tests.filtering.test_log import GAMBLING, NOON, entry, parquet_files
from tests.processes import alive

REPO = Path(__file__).resolve().parents[2]


_SCHED_IDLE = 5


def _writers(decisions: DecisionLog) -> WritingProcesses:
    writers = decisions._writer
    assert isinstance(writers, WritingProcesses)
    return writers


def _policy(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[38])


def _niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _wait_for_exit(pid: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds  # a bound on waiting, not a timing assertion
    while alive(pid):
        assert time.monotonic() < deadline, f"the writing process {pid} did not end"
        time.sleep(0.05)


def test_flushes_are_written_by_a_process_in_idle_time(tmp_path: Path) -> None:
    decisions = DecisionLog(tmp_path, separate_writer=True)
    for n in range(2500):
        decisions.record(entry(f"site{n}.example", at=NOON + n, person=f"p{n % 7}"))
    decisions.record(entry("bet.example", GAMBLING, at=NOON + 86_400))  # the next day
    assert decisions.flush() == 2501
    assert decisions.files == 2  # one file a day
    writer = _writers(decisions).idle.pid
    assert writer is not None and writer != os.getpid()
    assert {p.name.split("-")[2] for p in parquet_files(tmp_path)} == {str(writer)}
    assert _policy(writer) == _SCHED_IDLE

    decisions.record(entry("last.example", at=NOON + 3))
    decisions.stop()  # the last batch goes through the process too, which then ends
    _wait_for_exit(writer)
    names = {row.name for row in query(tmp_path, limit=5000)}
    assert len(names) == 2502 and {"bet.example", "last.example"} <= names


def test_when_the_idle_time_writer_gets_no_core_the_other_one_writes(tmp_path: Path) -> None:
    """At the loop's maximum rate there is no idle time: a stopped process stands for the
    idle-time writer getting no core. Nothing waits for it for long, nothing is lost."""
    # Flushed by this test only: the log's own thread would take the entries first.
    decisions = DecisionLog(tmp_path, separate_writer=True, interval=3600)
    decisions.start()  # both writers, from this (the serving) thread
    writers = _writers(decisions)
    idle, busy = writers.idle.pid, writers.busy.pid
    assert idle is not None and busy is not None
    niceness = os.getpriority(os.PRIO_PROCESS, 0) + 10
    deadline = time.monotonic() + 30  # each sets its own as it starts
    while (_policy(idle), _niceness(busy)) != (_SCHED_IDLE, niceness):
        assert time.monotonic() < deadline, "the writers did not take their priorities"
        time.sleep(0.05)
    assert _policy(busy) == 0  # SCHED_OTHER
    os.kill(idle, signal.SIGSTOP)
    try:
        decisions.record(entry("first.example"))
        assert decisions.flush() == 0  # given up waiting after PATIENCE: still owed
        decisions.record(entry("second.example"))
        assert decisions.flush() == 1  # written by the niceness-10 writer
        assert {row.name for row in query(tmp_path)} == {"second.example"}
    finally:
        os.kill(idle, signal.SIGCONT)
    decisions.record(entry("third.example"))
    decisions.stop()
    assert {row.name for row in query(tmp_path)} == {
        "first.example",
        "second.example",
        "third.example",
    }
    assert decisions.written == 3 and decisions.dropped == 0
    assert writers.restarts == 0


def test_a_writer_that_dies_is_started_again_and_nothing_is_lost_silently(
    tmp_path: Path,
) -> None:
    decisions = DecisionLog(tmp_path, separate_writer=True)
    decisions.record(entry("first.example"))
    assert decisions.flush() == 1
    first = _writers(decisions).idle.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    asked = 1
    for round_ in range(3):  # dying now or noticed dead before sending: either is counted
        for n in range(10):
            decisions.record(entry(f"r{round_}-{n}.example"))
        asked += 10
        decisions.flush()
    decisions.stop()
    assert _writers(decisions).restarts == 1
    written = len(query(tmp_path, limit=100))
    assert written >= 21  # the two flushes after the restart at least
    assert written + decisions.dropped == asked == decisions.written + decisions.dropped


def test_a_write_that_fails_is_counted_and_the_writer_goes_on(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("not a directory")  # where the day's folder must go
    decisions = DecisionLog(tmp_path, separate_writer=True)
    decisions.record(entry())
    assert decisions.flush() == 0
    assert decisions.dropped == 1
    (tmp_path / "logs").unlink()
    decisions.record(entry("later.example"))
    assert decisions.flush() == 1
    decisions.stop()
    assert [row.name for row in query(tmp_path)] == ["later.example"]


def test_the_writer_ends_when_the_process_that_logs_dies(tmp_path: Path) -> None:
    """A DNS worker killed outright: its writing process sees its input end and goes."""
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from esafety.filtering.log import DecisionLog
        from tests.filtering.test_log import entry
        decisions = DecisionLog(Path({str(tmp_path)!r}), separate_writer=True)
        decisions.record(entry())
        decisions.flush()
        print(decisions._writer.idle.pid, flush=True)
        os.kill(os.getpid(), 9)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    _wait_for_exit(int(done.stdout.strip()))
    assert [row.name for row in query(tmp_path)] == ["news.example"]
