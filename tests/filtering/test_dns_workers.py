"""The DNS filter in worker processes: real processes on loopback, asked with dnspython.

Workers start, answer, take new sign-ins and new engine files, survive garbage, are
started again when they die, stop with ``DnsService.close()`` and die with their parent.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from esafety.config import DnsSettings
from esafety.errors import InvalidInput
from esafety.filtering import asking
from esafety.filtering.decision import Asker
from esafety.filtering.dns_service import DnsService
from esafety.filtering.engine_file import load_engine, save_engine
from esafety.filtering.log import query
from esafety.installation import Installation
from tests.directory.school_setup import acting, add_pupil
from tests.filtering.dns.conftest import BLOCK_V4, FakeUpstream
from tests.filtering.test_dns_service import (
    KS1,
    KS2,
    REPO,
    UNKNOWN,
    Running,
    _import,
    answers,
    school,  # noqa: F401 - a fixture
    upstream,  # noqa: F401 - a fixture
)
from tests.pg import free_port
from tests.processes import alive


def _wait_until(check, what: str, seconds: float = 60.0) -> None:
    """Poll ``check`` (a bound on waiting, not a timing assertion)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {seconds:.0f} s")
        time.sleep(0.05)


@pytest.fixture
def workers(inst: Installation, school: int, upstream: FakeUpstream) -> Iterator[Running]:  # noqa: F811
    settings = DnsSettings(
        port=0, upstreams=[f"127.0.0.1:{upstream.port}"], block_ipv4=BLOCK_V4, workers=2
    )
    started = Running(DnsService(inst, settings))
    try:
        yield started
    finally:
        pids = started.service.pids
        started.stop()
        for pid in pids:  # close() waits for them: none is left behind
            assert not alive(pid), f"DNS worker {pid} outlived DnsService.close()"


def _ask_from_every_port(running: Running, name: str, client: str) -> set[tuple[str, str]]:
    """Ask from many source ports, so SO_REUSEPORT spreads the questions over the workers."""
    seen = set()
    for _ in range(16):
        seen |= set(answers(running.ask(name, client)))
    return seen


def test_workers_answer_blocks_and_forwards(workers: Running) -> None:
    service = workers.service
    assert len(service.pids) == 2 and os.getpid() not in service.pids
    assert _ask_from_every_port(workers, "www.badsite.example", KS1) == {("A", BLOCK_V4)}
    assert _ask_from_every_port(workers, "allowed.example", KS2) == {("A", "192.0.2.10")}
    reply = workers.ask("use-application-dns.net", UNKNOWN)
    assert reply.rcode() == dns.rcode.NXDOMAIN
    tcp = dns.query.tcp(
        dns.message.make_query("www.badsite.example", "AAAA"), "127.0.0.1", port=workers.port
    )
    assert answers(tcp) == []  # blocked, and no IPv6 block address configured


def test_workers_take_new_sign_ins_and_swap_to_a_new_engine(
    workers: Running,
    inst: Installation,
    school: int,  # noqa: F811
    tmp_path: Path,
) -> None:
    with acting(inst, school) as session:
        pupil = add_pupil(session, "Cal", "Four", year="Year 4", class_name="4B")
        asking.record_sign_in(session, UNKNOWN, pupil.username, "api", timedelta(hours=1))
    workers.run(workers.service.refresh(lists=False))  # returns once every worker has it
    for _ in range(8):
        assert ("A", "216.239.38.120") in answers(workers.ask("google.co.uk", UNKNOWN))

    first = workers.service.engine_path
    _import(inst, school, tmp_path, "badsite.example", "allowed.example")
    workers.run(workers.service.refresh(lists=True))
    assert workers.service.engine_path != first
    assert first is not None and not first.exists()  # the old file is retired
    assert _ask_from_every_port(workers, "allowed.example", KS1) == {("A", BLOCK_V4)}
    assert workers.service.reloads == 1
    assert workers.service.longest_stall > 0


def test_garbage_never_stops_a_worker(workers: Running) -> None:
    pids = workers.service.pids
    rng = __import__("random").Random(4)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for size in (0, 1, 11, 12, 13, 40, 300, 1500):
            for _ in range(40):
                sock.sendto(rng.randbytes(size), ("127.0.0.1", workers.port))
        # A header that claims a question, then nothing; and a response, not a query.
        sock.sendto(struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0), ("127.0.0.1", workers.port))
        sock.sendto(struct.pack("!HHHHHH", 1, 0x8100, 1, 0, 0, 0), ("127.0.0.1", workers.port))
    assert _ask_from_every_port(workers, "www.badsite.example", KS2) == {("A", BLOCK_V4)}
    assert workers.service.pids == pids
    assert all(alive(pid) for pid in pids)


def test_a_worker_that_dies_is_started_again(workers: Running) -> None:
    victim = workers.service.pids[0]
    os.kill(victim, signal.SIGKILL)
    _wait_until(
        lambda: victim not in workers.service.pids and len(workers.service.pids) == 2,
        "the killed worker's restart",
    )
    pool = workers.service.pool
    assert pool is not None
    _wait_until(lambda: all(w.writer is not None for w in pool.workers), "reconnection")
    assert _ask_from_every_port(workers, "www.badsite.example", KS1) == {("A", BLOCK_V4)}
    assert pool.restarts == 1


def _policy(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[38])


def _slice_and_niceness(pid: int, thread: str) -> tuple[int, int]:
    """A thread's time slice (ns) and niceness, from /proc."""
    sched = Path(f"/proc/{pid}/task/{thread}/sched").read_text()
    slices = [line.split()[-1] for line in sched.splitlines() if line.startswith("se.slice")]
    if not slices:
        pytest.skip("this kernel does not show time slices in /proc")
    stat = Path(f"/proc/{pid}/task/{thread}/stat").read_text()
    return int(slices[0]), int(stat.rsplit(")", 1)[1].split()[16])


def test_a_worker_answers_on_the_shortest_slice_and_its_other_threads_give_way(
    workers: Running,
) -> None:
    """The p99 of issue 4 "Figures" (esafety.filtering.priority): a question wakes the
    serving thread, which must take the core back from the log's writer at once."""
    from esafety.filtering.priority import SERVING_SLICE_NS, _set_slice

    if not _set_slice(0):
        pytest.skip("this kernel takes no time slice from sched_setattr (Linux 6.12+)")
    pid = workers.service.pids[0]
    slice_ns, niceness = _slice_and_niceness(pid, str(pid))
    assert slice_ns == SERVING_SLICE_NS

    def background() -> dict[str, int]:  # the threads that gave way: the log's writer...
        threads = (t.name for t in Path(f"/proc/{pid}/task").iterdir())
        found = {t: _slice_and_niceness(pid, t) for t in threads}
        return {t: s for t, (s, n) in found.items() if n == niceness + 10}

    # The writer sets its own priority as it starts, maybe after the worker says it listens.
    _wait_until(lambda: bool(background()), "a thread at niceness 10")
    assert all(s > SERVING_SLICE_NS for s in background().values()), (
        "a background thread's slice must be longer than the serving thread's to be cut short"
    )
    # The log's writing processes (esafety.filtering.log_writer): one in idle time, the
    # other at niceness 10 (not 19); each sets its own as it starts.
    writers = [child for child in _children(pid) if "log_writer" in _command_line(child)]
    [idle] = [child for child in writers if "--idle" in _command_line(child)]
    [busy] = [child for child in writers if child != idle]
    _wait_until(lambda: _slice_and_niceness(busy, str(busy))[1] == niceness + 10, "nice 10")
    _wait_until(lambda: _policy(idle) == 5, "SCHED_IDLE")


def test_every_worker_logs_its_decisions(
    inst: Installation,
    school: int,  # noqa: F811
    upstream: FakeUpstream,  # noqa: F811
) -> None:
    settings = DnsSettings(
        port=0, upstreams=[f"127.0.0.1:{upstream.port}"], block_ipv4=BLOCK_V4, workers=2
    )
    started = Running(DnsService(inst, settings))
    try:
        asked = 24
        for _ in range(asked):
            started.ask("www.badsite.example", KS1)
    finally:
        started.stop()  # each worker writes its last batch as it stops
    logged = [d for d in query(inst.data_dir, limit=1000) if d.name == "www.badsite.example"]
    assert len(logged) == asked
    assert {d.person for d in logged} == {logged[0].person} and logged[0].person.startswith("ada.")
    files = {p.name.split("-")[3] for p in inst.data_dir.rglob("part-*.parquet")}
    assert len(files) >= 1  # one writer a process: file names carry the worker's pid


def test_an_engine_file_decides_as_the_engine_it_was_saved_from(
    inst: Installation,
    school: int,  # noqa: F811
    tmp_path: Path,
) -> None:
    from esafety.filtering.dns_service import build_for_dns

    engine = build_for_dns(inst, None)
    path = tmp_path / "saved.engine"
    save_engine(engine, path)
    loaded = load_engine(path)
    now = time.time()
    for who in (Asker("ks1"), Asker("ks2"), Asker(None), Asker("staff")):
        for host in ("badsite.example", "www.badsite.example", "google.co.uk", "bbc.co.uk"):
            assert loaded.decide_host(who, host, now) == engine.decide_host(who, host, now)
    damaged = bytearray(path.read_bytes())
    damaged[200] ^= 0xFF
    (tmp_path / "damaged.engine").write_bytes(bytes(damaged))
    with pytest.raises(InvalidInput, match=r"checksum|damaged"):
        load_engine(tmp_path / "damaged.engine")
    (tmp_path / "short.engine").write_bytes(path.read_bytes()[:100])
    with pytest.raises(InvalidInput, match=r"shorter|truncated"):
        load_engine(tmp_path / "short.engine")


def test_workers_die_with_their_parent(tmp_path: Path) -> None:
    """``esafety serve`` killed outright (no chance to stop them): its workers still go."""
    web_port, dns_port = free_port(), free_port()
    env = {**os.environ, "ESAFETY_DATA": str(tmp_path / "data"), "COLUMNS": "200"}
    env.pop("ESAFETY_DATABASE_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    esafety = shutil.which("esafety", path=str(Path(sys.executable).parent)) or "esafety"
    command = [esafety, "serve", "--port", str(web_port), "--dns-port", str(dns_port),
               "--dns-workers", "2"]  # fmt: skip
    parent = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        query_ = dns.message.make_query("use-application-dns.net", "A")

        def answering() -> bool:
            if parent.poll() is not None:
                pytest.fail(f"esafety serve exited with {parent.returncode}")
            try:
                dns.query.udp(query_, "127.0.0.1", port=dns_port, timeout=0.5)
            except (dns.exception.Timeout, OSError):
                return False
            return True

        _wait_until(answering, "esafety serve answering DNS", 120)
        children = _children(parent.pid)
        workers = [pid for pid in children if "dns_workers" in _command_line(pid)]
        assert len(workers) == 2, children

        def writers() -> list[int]:  # each worker's log writes in two processes (log_writer)
            grandchildren = [pid for worker in workers for pid in _children(worker)]
            return [pid for pid in grandchildren if "log_writer" in _command_line(pid)]

        # One worker answering does not mean the other has started its writers yet.
        _wait_until(lambda: len(writers()) == 4, "both workers' log writers")
        everyone = workers + writers()
    finally:
        parent.kill()
        parent.wait()
    _wait_until(lambda: not any(alive(pid) for pid in everyone), "the workers' exit", 30)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
