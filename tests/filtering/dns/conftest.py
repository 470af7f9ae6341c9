"""A real fake upstream resolver (dnslib, on loopback), a table decider, and the DNS filter
running on its own event loop in a thread so tests can query it with plain dnspython."""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from dnslib import QTYPE, RCODE, RR, DNSRecord

from esafety.filtering.dns import (
    BlockSettings,
    DnsHandler,
    DnsServer,
    DnsVerdict,
    Forwarder,
    ServerSettings,
    UpstreamSettings,
)
from esafety.filtering.dns.cache import AnswerCache

ZONE = """
allowed.example. 300 IN A 192.0.2.10
allowed.example. 300 IN AAAA 2001:db8::10
www.allowed.example. 120 IN CNAME allowed.example.
sneaky.example. 300 IN CNAME cdn.hidden.example.
cdn.hidden.example. 300 IN CNAME edge.badsite.example.
edge.badsite.example. 300 IN A 192.0.2.66
badsite.example. 300 IN A 192.0.2.66
badsite.example. 300 IN AAAA 2001:db8::66
badsite.example. 300 IN HTTPS 1 . alpn=h2
forcesafesearch.google.com. 3600 IN A 216.239.38.120
forcesafesearch.google.com. 3600 IN AAAA 2001:4860:4802:32::78
www.google.co.uk. 300 IN A 142.250.0.1
"""

BLOCK_V4 = "192.0.2.250"
BLOCK_V6 = "2001:db8::250"


@dataclass
class FakeUpstream:
    """An upstream resolver on loopback answering from ``ZONE``; counts what it is asked."""

    records: dict[str, list[RR]] = field(default_factory=dict)
    asked: list[tuple[str, str, int]] = field(default_factory=list)  # (transport, name, qtype)
    silent: set[str] = field(default_factory=set)  # names it never answers
    port: int = 0

    def add(self, zone_text: str) -> None:
        for rr in RR.fromZone(zone_text):
            self.records.setdefault(str(rr.rname).rstrip(".").lower(), []).append(rr)

    def count(self, name: str, transport: str | None = None) -> int:
        return sum(1 for t, n, _ in self.asked if n == name and transport in (None, t))

    def reply(self, data: bytes, transport: str) -> bytes | None:
        request = DNSRecord.parse(data)
        name = str(request.q.qname).rstrip(".").lower()
        self.asked.append((transport, name, request.q.qtype))
        if name in self.silent:
            return None
        reply = request.reply()
        if name not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(*RR.fromZone("example. 30 IN SOA ns.example. h.example. 1 2 3 4 30"))
        current = name
        for _ in range(10):
            rrs = self.records.get(current, [])
            cnames = [rr for rr in rrs if rr.rtype == QTYPE.CNAME]
            if cnames and request.q.qtype != QTYPE.CNAME:
                reply.add_answer(*cnames)
                current = str(cnames[0].rdata.label).rstrip(".").lower()
                continue
            reply.add_answer(*[rr for rr in rrs if rr.rtype == request.q.qtype])
            break
        wire = reply.pack()
        payload = next((rr.rclass for rr in request.ar if rr.rtype == QTYPE.OPT), 512)
        if transport == "udp" and len(wire) > payload:
            reply.rr.clear()
            reply.auth.clear()
            reply.header.tc = 1
            wire = reply.pack()
        return bytes(wire)


class UpstreamThread:
    """Serves a :class:`FakeUpstream` over UDP and TCP on one loopback port."""

    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.udp, self.tcp = _bind_pair()
        self.port = self.udp.getsockname()[1]
        fake.port = self.port
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.udp, selectors.EVENT_READ)
            selector.register(self.tcp, selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select(0.05):
                    if key.fileobj is self.udp:
                        data, addr = self.udp.recvfrom(65535)
                        answer = self.fake.reply(data, "udp")
                        if answer is not None:
                            self.udp.sendto(answer, addr)
                    else:
                        self._serve_tcp()

    def _serve_tcp(self) -> None:
        conn, _ = self.tcp.accept()
        with conn:
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                (length,) = struct.unpack("!H", _read_exactly(conn, 2))
                answer = self.fake.reply(_read_exactly(conn, length), "tcp")
                if answer is not None:
                    conn.sendall(struct.pack("!H", len(answer)) + answer)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.udp.close()
        self.tcp.close()


def _bind_pair() -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on one free loopback port.

    The kernel picks a free UDP port, but another test may already hold TCP on
    that number; then both are closed (no leaked socket) and another port tried.
    """
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(("127.0.0.1", udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(16)
        return udp, tcp
    raise OSError("no loopback port free for both UDP and TCP after 50 tries")


def _read_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


class TableDecider:
    """Blocks listed domains and their subdomains; rewrites listed names; allows the rest."""

    def __init__(self) -> None:
        self.blocked: set[str] = set()
        self.rewrites: dict[str, str] = {}
        self.asked: list[tuple[str, str, int]] = []
        self.explode = False

    def decide(self, client_ip: str, qname: str, qtype: int) -> DnsVerdict:
        self.asked.append((client_ip, qname, qtype))
        if self.explode:
            raise RuntimeError("index is broken")
        if qname in self.rewrites:
            return DnsVerdict("rewrite", self.rewrites[qname], "safe search")
        labels = qname.split(".")
        for i in range(len(labels)):
            if ".".join(labels[i:]) in self.blocked:
                return DnsVerdict("block", reason="listed")
        return DnsVerdict("allow")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RunningFilter:
    """The DNS filter on an event loop in a background thread."""

    def __init__(
        self,
        decider: TableDecider,
        upstream_port: int,
        block: BlockSettings,
        clock: FakeClock,
        server_settings: ServerSettings | None = None,
        upstream_settings: UpstreamSettings | None = None,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        upstream = upstream_settings or UpstreamSettings(
            (("127.0.0.1", upstream_port),), timeout=0.5
        )
        self.forwarder = Forwarder(upstream, AnswerCache(clock=clock), clock=clock)
        self.handler = DnsHandler(decider, block, self.forwarder)
        self.server = DnsServer(self.handler, server_settings or ServerSettings(port=0))
        self.run(self.server.start())
        self.port = self.server.port

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def stop(self) -> None:
        self.run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    fake.add(ZONE)
    thread = UpstreamThread(fake)
    try:
        yield fake
    finally:
        thread.stop()


@pytest.fixture
def decider() -> TableDecider:
    d = TableDecider()
    d.blocked.add("badsite.example")
    d.rewrites["www.google.co.uk"] = "forcesafesearch.google.com"
    return d


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_filter(
    upstream: FakeUpstream, decider: TableDecider, clock: FakeClock
) -> Iterator[Callable[..., RunningFilter]]:
    started: list[RunningFilter] = []

    def make(block: BlockSettings | None = None, **kwargs) -> RunningFilter:
        running = RunningFilter(
            decider,
            upstream.port,
            block or BlockSettings(ipv4=BLOCK_V4, ipv6=BLOCK_V6, ttl=60),
            clock,
            **kwargs,
        )
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def dns_filter(make_filter: Callable[..., RunningFilter]) -> RunningFilter:
    return make_filter()
