"""The decision log's writing process (esafety.filtering.log_writer): a real child process.

It writes what the log flushes, gives way to the serving loop (niceness 10), is started again when it dies (every
decision written or counted as lost, none silently), and never outlives its log.
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
from tests.filtering.test_log import GAMBLING, NOON, entry, parquet_files

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for_exit(pid: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds  # a bound on waiting, not a timing assertion
    while _alive(pid):
        assert time.monotonic() < deadline, f"the writing process {pid} did not end"
        time.sleep(0.05)


def test_flushes_are_written_by_a_process_that_gives_way(tmp_path: Path) -> None:
    decisions = DecisionLog(tmp_path, separate_writer=True)
    for n in range(2500):
        decisions.record(entry(f"site{n}.example", at=NOON + n, person=f"p{n % 7}"))
    decisions.record(entry("bet.example", GAMBLING, at=NOON + 86_400))  # the next day
    assert decisions.flush() == 2501
    assert decisions.files == 2  # one file a day
    writer = decisions._writer.pid  # type: ignore[attr-defined]
    assert writer is not None and writer != os.getpid()
    assert {p.name.split("-")[2] for p in parquet_files(tmp_path)} == {str(writer)}
    stat = Path(f"/proc/{writer}/stat").read_text().rsplit(")", 1)[1].split()
    assert int(stat[16]) == os.getpriority(os.PRIO_PROCESS, 0) + 10  # niceness 10 below ours

    decisions.record(entry("last.example", at=NOON + 3))
    decisions.stop()  # the last batch goes through the process too, which then ends
    _wait_for_exit(writer)
    names = {row.name for row in query(tmp_path, limit=5000)}
    assert len(names) == 2502 and {"bet.example", "last.example"} <= names


def test_a_writer_that_dies_is_started_again_and_nothing_is_lost_silently(
    tmp_path: Path,
) -> None:
    decisions = DecisionLog(tmp_path, separate_writer=True)
    decisions.record(entry("first.example"))
    assert decisions.flush() == 1
    first = decisions._writer.pid  # type: ignore[attr-defined]
    assert first is not None
    os.kill(first, signal.SIGKILL)
    asked = 1
    for round_ in range(3):  # dying now or noticed dead before sending: either is counted
        for n in range(10):
            decisions.record(entry(f"r{round_}-{n}.example"))
        asked += 10
        decisions.flush()
    decisions.stop()
    assert decisions._writer.restarts == 1  # type: ignore[attr-defined]
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
        print(decisions._writer.pid, flush=True)
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
