"""Ready answers (the UDP fast path) say byte for byte what the slow path says.

Two filters on loopback share one engine, one snapshot and one clock: one with
``esafety serve``'s bridge (ready answers kept per asker), one with the same bridge seen
through a decider without scopes (every query takes the slow path). Every question is
asked of both, again and again, and the answers compared octet for octet.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from esafety.filtering.categories import Category
from esafety.filtering.decision import Asker, EngineHolder, FilterEngine
from esafety.filtering.dns import BlockSettings, DnsVerdict
from esafety.filtering.dns.wire import encode_name
from esafety.filtering.dns_bridge import DnsBridge, WhoIsWhere
from esafety.filtering.index import FilterList, ListInfo, compile_index
from esafety.filtering.lists import DomainEntry
from esafety.filtering.policy import ApprovedException, SchoolRules, built_in_policies

from .conftest import BLOCK_V4, BLOCK_V6, FakeClock, FakeUpstream, RunningFilter

CLIENT = "127.0.0.1"
START = 1_700_000_000.0  # the bridges' clock (seconds since the epoch)
PUPIL = Asker("ks2", frozenset({"4B"}))


class WallClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class SlowOnly:
    """The same decisions without scopes: the handler cannot keep ready answers."""

    def __init__(self, bridge: DnsBridge) -> None:
        self.bridge = bridge

    def decide(self, client_ip: str, qname: str, qtype: int) -> DnsVerdict:
        return self.bridge.decide(client_ip, qname, qtype)


def _engine(exception_ends: float | None = None) -> FilterEngine:
    index = compile_index(
        [
            FilterList(
                ListInfo("gambling", "Gambling", Category.GAMBLING),
                [DomainEntry("badsite.example", 1), DomainEntry("hidden-bad.example", 2)],
            )
        ]
    )
    exceptions: tuple[ApprovedException, ...] = ()
    if exception_ends is not None:
        exceptions = (
            ApprovedException(
                7,
                "hidden-bad.example",
                frozenset({"4B"}),
                datetime.fromtimestamp(START - 3600, UTC),
                datetime.fromtimestamp(exception_ends, UTC),
            ),
        )
    return FilterEngine(index, SchoolRules(policies=built_in_policies(), exceptions=exceptions))


def _query(name: str, qtype: int, qid: int, edns: bool = False) -> bytes:
    ar = 1 if edns else 0
    wire = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, ar) + encode_name(name)
    wire += struct.pack("!HH", qtype, 1)
    if edns:
        wire += b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    return wire


def _exchange(port: int, packet: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(packet, (CLIENT, port))
        return sock.recv(65535)


@pytest.fixture
def pair(
    upstream: FakeUpstream, clock: FakeClock
) -> Iterator[Callable[..., tuple[RunningFilter, RunningFilter, DnsBridge, WallClock]]]:
    started: list[RunningFilter] = []

    def make(engine: FilterEngine) -> tuple[RunningFilter, RunningFilter, DnsBridge, WallClock]:
        wall = WallClock()
        where = WhoIsWhere({CLIENT: (PUPIL, START + 86_400)}, usernames={CLIENT: "bea"})
        bridge = DnsBridge(EngineHolder(engine), where, clock=wall)
        block = BlockSettings(ipv4=BLOCK_V4, ipv6=BLOCK_V6, ttl=60)
        fast = RunningFilter(bridge, upstream.port, block, clock)  # type: ignore[arg-type]
        slow = RunningFilter(SlowOnly(bridge), upstream.port, block, clock)  # type: ignore[arg-type]
        started.extend((fast, slow))
        return fast, slow, bridge, wall

    yield make
    for running in started:
        running.stop()


QUESTIONS = [
    (name, qtype, edns)
    for name in ("badsite.example", "www.badsite.example", "allowed.example",
                 "www.allowed.example", "sneaky.example", "use-application-dns.net",
                 "nothing-here.example")
    for qtype in (1, 28, 65)
    for edns in (False, True)
]  # fmt: skip


def test_ready_answers_are_the_slow_answers_octet_for_octet(pair, clock: FakeClock) -> None:
    fast, slow, _bridge, _wall = pair(_engine())
    for round_number in range(3):
        for n, (name, qtype, edns) in enumerate(QUESTIONS):
            packet = _query(name, qtype, 1000 * round_number + n, edns)
            expected = _exchange(slow.port, packet)
            assert _exchange(fast.port, packet) == expected, (name, qtype, edns, round_number)
        clock.now += 7  # TTLs count down: ready answers are packed again, not replayed stale
    assert fast.handler.counters.ready_answers > len(QUESTIONS)  # the fast path was taken
    assert slow.handler.counters.ready_answers == 0


def test_a_rewrite_is_never_kept_and_still_rewritten(pair) -> None:
    fast, slow, _bridge, _wall = pair(_engine())
    for qid in (1, 2, 3):
        packet = _query("www.google.co.uk", 1, qid)
        reply = _exchange(fast.port, packet)
        assert reply == _exchange(slow.port, packet)
        assert encode_name("forcesafesearch.google.com")[:-1] in reply


def test_a_ready_answer_ends_with_the_exception_that_allowed_it(pair) -> None:
    fast, slow, _bridge, wall = pair(_engine(exception_ends=START + 10))
    packet = _query("hidden-bad.example", 1, 5)
    allowed = _exchange(fast.port, packet)
    assert _exchange(fast.port, packet) == allowed  # ready
    assert BLOCK_V4 not in _ip_addresses(allowed)
    wall.now = START + 10  # the exception has ended: the ready answer is not used
    blocked = _exchange(fast.port, packet)
    assert blocked == _exchange(slow.port, packet)
    assert BLOCK_V4 in _ip_addresses(blocked)


def test_every_ready_answer_is_logged_again(pair) -> None:
    from esafety.filtering.log import LogEntry

    fast, _slow, bridge, _wall = pair(_engine())
    logged: list[LogEntry] = []

    class Log:
        def record(self, entry: LogEntry) -> None:
            logged.append(entry)

    bridge.log = Log()
    bridge.where = bridge.where  # a fresh snapshot: scopes made again with the log
    for qid in range(5):
        _exchange(fast.port, _query("sneaky.example", 1, qid))
    # Each answer logs the name asked and every name its CNAME chain went through.
    names = [(e.name, e.query_type, e.decision.action.value) for e in logged]
    assert names.count(("sneaky.example", "A", "allow")) == 5
    assert names.count(("edge.badsite.example", "A", "block")) == 5
    assert {e.person for e in logged} == {"bea"}


def _ip_addresses(reply: bytes) -> set[str]:
    import dns.message

    message = dns.message.from_wire(reply)
    return {rdata.to_text() for rrset in message.answer for rdata in rrset}
