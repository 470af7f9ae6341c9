"""The C fast path (esafety/filtering/dns/_ready.c) answers and logs exactly as Python does.

Two filters on loopback with the real clocks the fast path reads: one with the fast path,
one without (``ServerSettings(fast_path=False)``), each with its own bridge and decision
log over the same engine and snapshot. Every question is asked of both, again and again;
the answers are compared (all but the TTLs, which each filter's own cache counts down on
the real clock) and the two logs row for row.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.message
import pyarrow.parquet as pq
import pytest

from esafety.filtering.categories import Category
from esafety.filtering.decision import UNKNOWN_DEVICE, Asker, EngineHolder, FilterEngine
from esafety.filtering.dns import BlockSettings, ServerSettings
from esafety.filtering.dns.server import FAST_PATH_BUILT
from esafety.filtering.dns_bridge import DnsBridge, WhoIsWhere
from esafety.filtering.index import FilterList, ListInfo, compile_index
from esafety.filtering.lists import DomainEntry
from esafety.filtering.log import DecisionLog, LogEntry, visible_files
from esafety.filtering.policy import SchoolRules, built_in_policies

from .conftest import BLOCK_V4, BLOCK_V6, FakeUpstream, RunningFilter
from .test_ready_answers import QUESTIONS, _ip_addresses, _query

PUPIL = Asker("ks2", frozenset({"4B"}))
STAFF = Asker("staff", frozenset({"staff"}))


def _engine(extra: tuple[str, ...] = ()) -> FilterEngine:
    index = compile_index(
        [
            FilterList(
                ListInfo("gambling", "Gambling", Category.GAMBLING),
                [DomainEntry("badsite.example", 1), DomainEntry("hidden-bad.example", 2)]
                + [DomainEntry(name, 3 + n) for n, name in enumerate(extra)],
            ),
            FilterList(
                ListInfo("extremism", "Extremism", Category.EXTREMISM),
                [DomainEntry("extreme.example", 1)],
            ),
        ]
    )
    return FilterEngine(index, SchoolRules(policies=built_in_policies()))


class Filter:
    """One filter with its own bridge and decision log."""

    def __init__(
        self, tmp: Path, holder: EngineHolder, where: WhoIsWhere, port: int, fast: bool, **log: Any
    ) -> None:
        self.log = DecisionLog(tmp, **log)
        self.bridge = DnsBridge(holder, where, clock=time.time, log=self.log)
        block = BlockSettings(ipv4=BLOCK_V4, ipv6=BLOCK_V6, ttl=60)
        settings = ServerSettings(host=where_host(where), port=0, fast_path=fast)
        self.running = RunningFilter(self.bridge, port, block, time.monotonic, settings)  # type: ignore[arg-type]
        self.port = self.running.port
        self.host = settings.host

    @property
    def counters(self) -> Any:
        return self.running.handler.counters

    def ask(self, packet: bytes) -> bytes:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sock.sendto(packet, (self.host, self.port))
            return sock.recv(65535)

    def rows(self) -> list[tuple[Any, ...]]:
        """Every logged decision but its time, sorted."""
        self.log.flush()
        rows = []
        for file in visible_files(self.log.root.parent.parent):
            for row in pq.read_table(file).to_pylist():
                row.pop("time")
                rows.append(
                    tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in row.items())
                )
        return sorted(rows)

    def stop(self) -> None:
        self.running.stop()
        self.log.stop(flush=False)


def _same(first: bytes, second: bytes) -> bool:
    """The same answer but for TTLs (dnspython's records compare without them)."""
    return len(first) == len(second) and dns.message.from_wire(first) == dns.message.from_wire(
        second
    )


def where_host(where: WhoIsWhere) -> str:
    return "::1" if any(":" in client for client in where.signed_in) else "127.0.0.1"


def _signed_in(client: str, asker: Asker = PUPIL, seconds: float = 86_400) -> WhoIsWhere:
    return WhoIsWhere({client: (asker, time.time() + seconds)}, usernames={client: "bea"})


@pytest.fixture
def filters(
    upstream: FakeUpstream, tmp_path: Path
) -> Iterator[Callable[..., tuple[Filter, Filter]]]:
    started: list[Filter] = []

    def make(
        where: WhoIsWhere | None = None, holder: EngineHolder | None = None, **log: Any
    ) -> tuple[Filter, Filter]:
        where = where or _signed_in("127.0.0.1")
        holder = holder or EngineHolder(_engine())
        fast = Filter(tmp_path / "fast", holder, where, upstream.port, True, **log)
        slow = Filter(tmp_path / "slow", holder, where, upstream.port, False, **log)
        started.extend((fast, slow))
        return fast, slow

    yield make
    for running in started:
        running.stop()


def test_the_fast_path_is_built() -> None:
    # setup.py builds it with the package; without it the figures of issue 4 are not met.
    assert FAST_PATH_BUILT


def test_fast_answers_are_the_python_answers(filters) -> None:
    fast, slow = filters()
    for round_number in range(3):
        for n, (name, qtype, edns) in enumerate(QUESTIONS):
            packet = _query(name, qtype, 1000 * round_number + n, edns)
            assert _same(fast.ask(packet), slow.ask(packet)), (name, qtype, edns, round_number)
    assert fast.counters.fast_answers >= len(QUESTIONS)  # rounds 2 and 3, mostly in C
    assert slow.counters.fast_answers == 0
    # Counted alike: every question once, blocks as blocks.
    assert fast.counters.queries == slow.counters.queries == 3 * len(QUESTIONS)
    assert fast.counters.blocked == slow.counters.blocked


def test_fast_answers_are_logged_as_python_logs_them(filters) -> None:
    fast, slow = filters()
    before = time.time()
    for round_number in range(4):
        for n, (name, qtype, edns) in enumerate(QUESTIONS):
            packet = _query(name, qtype, 1000 * round_number + n, edns)
            fast.ask(packet)
            slow.ask(packet)
    assert fast.counters.fast_answers > 0
    fast_rows, slow_rows = fast.rows(), slow.rows()
    assert fast_rows == slow_rows
    assert {dict(row)["person"] for row in fast_rows} == {"bea"}
    assert {dict(row)["groups"] for row in fast_rows} == {("4B",)}
    assert "badsite.example" in {dict(row)["name"] for row in fast_rows}
    # Each row at the time it was asked, not at the flush.
    fast.log.flush()
    times = [
        t.timestamp()
        for file in visible_files(fast.log.root.parent.parent)
        for t in pq.read_table(file).column("time").to_pylist()
    ]
    assert before <= min(times) and max(times) <= time.time()


def test_alerting_blocks_from_the_fast_path_reach_the_listeners(filters) -> None:
    fast, _slow = filters()
    heard: list[LogEntry] = []
    fast.log.add_listener(heard.extend)
    for qid in range(5):
        fast.ask(_query("extreme.example", 1, qid))
        fast.ask(_query("allowed.example", 1, 100 + qid))
    assert fast.counters.fast_answers >= 6
    fast.log.flush()
    alerting = [e for e in heard if e.name == "extreme.example"]
    assert len(alerting) == 5
    assert {(e.client, e.person, e.groups, e.query_type) for e in alerting} == {
        ("127.0.0.1", "bea", frozenset({"4B"}), "A")
    }
    assert all(e.decision.alerts_dsl for e in alerting)


def test_a_new_snapshot_or_engine_changes_the_next_answer(filters) -> None:
    holder = EngineHolder(_engine())
    fast, _slow = filters(holder=holder)
    packet = _query("www.allowed.example", 1, 7)
    for _ in range(3):
        assert BLOCK_V4 not in _ip_addresses(fast.ask(packet))
    answered = fast.counters.fast_answers
    assert answered >= 1
    holder.engine = _engine(extra=("allowed.example",))  # a list update lists it
    assert BLOCK_V4 in _ip_addresses(fast.ask(packet))
    assert BLOCK_V4 in _ip_addresses(fast.ask(packet))
    # The sign-in moves to staff; the person logged changes at once.
    fast.bridge.where = WhoIsWhere(
        {"127.0.0.1": (STAFF, time.time() + 3600)}, usernames={"127.0.0.1": "mr.khan"}
    )
    for _ in range(3):
        fast.ask(_query("extreme.example", 1, 9))
    people = [dict(row)["person"] for row in fast.rows() if dict(row)["name"] == "extreme.example"]
    assert people == ["mr.khan"] * 3


def test_a_sign_in_that_ends_stops_the_fast_answers_for_that_person(filters) -> None:
    fast, _slow = filters(where=_signed_in("127.0.0.1", seconds=1.0))
    packet = _query("allowed.example", 1, 3)
    for _ in range(3):
        fast.ask(packet)
    time.sleep(1.2)
    for _ in range(2):
        fast.ask(packet)
    people = [dict(row)["person"] for row in fast.rows()]
    assert people.count("bea") == 3
    assert people.count("") == 2  # an unknown device now
    assert fast.bridge.scope("127.0.0.1", time.time()).asker == UNKNOWN_DEVICE


def test_ipv6_clients_are_answered_and_logged(filters) -> None:
    fast, slow = filters(where=_signed_in("::1"))
    for qid in range(4):
        packet = _query("badsite.example", 28, qid)
        assert _same(fast.ask(packet), slow.ask(packet))
    assert fast.counters.fast_answers >= 2
    assert {dict(row)["client"] for row in fast.rows()} == {"::1"}
    assert fast.rows() == slow.rows()


def test_a_full_log_buffer_counts_what_it_drops(filters) -> None:
    fast, _slow = filters(capacity=5, ready_capacity=5)
    for qid in range(30):
        fast.ask(_query("allowed.example", 1, qid))
    assert fast.counters.fast_answers >= 25
    assert fast.log.pending <= 10  # the queue and the fast path's buffer, 5 each
    assert fast.log.dropped >= 20
    assert fast.log.counters()["esafety_decision_log_dropped_total"] == fast.log.dropped


def test_garbage_among_ready_questions_is_handled_by_python(filters) -> None:
    fast, _slow = filters()
    packet = _query("allowed.example", 1, 1)
    expected = fast.ask(packet)  # forwarded
    assert _same(fast.ask(packet), expected)  # from the cache, and kept ready
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for garbage in (b"", b"\x00", b"\xff" * 11, b"\x12\x34" + packet[2:6], b"\x00" * 600):
            sock.sendto(garbage, ("127.0.0.1", fast.port))
    # Ready again once the garbage is dealt with (kept answers last until a TTL ticks down).
    for _ in range(3):
        assert _same(fast.ask(packet), expected)
    assert fast.counters.fast_answers >= 1
    assert fast.counters.dropped_malformed + fast.counters.formerr >= 4


def test_upstream_ttls_count_down_in_the_fast_path(filters) -> None:
    fast, slow = filters()
    packet = _query("www.allowed.example", 1, 1)  # a CNAME (TTL 120) and an A (TTL 300)
    fast.ask(packet)  # forwarded
    fast.ask(packet)  # from the cache, and kept ready
    slow.ask(packet)
    time.sleep(2.2)  # the kept octets' TTLs are two seconds stale now
    before = fast.counters.fast_answers
    later, fresh = fast.ask(packet), slow.ask(packet)
    assert fast.counters.fast_answers == before + 1  # counted down in C, not packed again
    ttls = [rrset.ttl for rrset in dns.message.from_wire(later).answer]
    assert 116 <= ttls[0] <= 118 and 296 <= ttls[1] <= 298, ttls
    assert _same(later, fresh)
