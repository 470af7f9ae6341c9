"""Garbage, hostile packets and floods: the filter answers FORMERR or drops, and goes on."""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import time

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esafety.filtering.dns import (
    BlockSettings,
    DnsHandler,
    Forwarder,
    ServerSettings,
    UpstreamSettings,
)
from esafety.filtering.dns.cache import AnswerCache, UnusableAnswer, read_upstream_answer
from esafety.filtering.dns.handler import PendingAnswer
from esafety.filtering.dns.server import bind_tcp, bind_udp
from esafety.filtering.dns.wire import (
    DropPacket,
    RejectQuery,
    encode_name,
    parse_query,
    read_name,
)

from .conftest import BLOCK_V4, RunningFilter, TableDecider

HOST = "127.0.0.1"
QUESTION = encode_name("allowed.example") + struct.pack("!HH", 1, 1)


def header(qid=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def exchange(port: int, packet: bytes, wait: float = 0.3) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        sock.sendto(packet, (HOST, port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def rcode_of(reply: bytes) -> int:
    return int(struct.unpack_from("!H", reply, 2)[0]) & 0xF


OPT_V1 = b"\x00" + struct.pack("!HHIH", 41, 1232, 0x00010000, 0)
LOOPING_OPT = b"\xc0\x21" + struct.pack("!HHIH", 41, 1232, 0, 0)  # points at itself

FORMERR_PACKETS = {
    "no question": header(qd=0),
    "two questions": header(qd=2) + QUESTION + QUESTION,
    "pointer loop in the question": header() + b"\xc0\x0c" + struct.pack("!HH", 1, 1),
    "pointer forward in the question": header() + b"\xc0\x20" + b"\x00" * 30,
    "extended label type": header() + b"\x41abc\x00" + struct.pack("!HH", 1, 1),
    "name runs off the end": header() + b"\x07allowed\x07exam",
    "type and class missing": header() + encode_name("allowed.example"),
    "name over 255 octets": header() + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01",
    "record runs off the end": header(ar=1) + QUESTION + b"\x00\x00\x29",
    "pointer loop in additional": header(ar=1) + QUESTION + LOOPING_OPT,
    "two OPT records": header(ar=2)
    + QUESTION
    + OPT_V1[:5]
    + b"\x00" * 6
    + OPT_V1[:5]
    + b"\x00" * 6,
    "OPT in the answer section": header(an=1)
    + QUESTION
    + b"\x00"
    + struct.pack("!HHIH", 41, 512, 0, 0),
}


@pytest.mark.parametrize("name", sorted(FORMERR_PACKETS))
def test_bad_query_with_readable_header_gets_formerr(dns_filter, name):
    reply = exchange(dns_filter.port, FORMERR_PACKETS[name])
    assert reply is not None
    assert struct.unpack_from("!H", reply)[0] == 0x1234
    assert rcode_of(reply) == dns.rcode.FORMERR
    assert dns_filter.handler.counters.formerr == 1


@pytest.mark.parametrize(
    "packet",
    [b"", b"\x12", b"\x12\x34\x01\x00\x00", header()[:11], header(flags=0x8180) + QUESTION],
    ids=["empty", "one octet", "five octets", "eleven octets", "a response"],
)
def test_unreadable_packets_and_responses_are_dropped(dns_filter, packet):
    assert exchange(dns_filter.port, packet) is None
    assert dns_filter.handler.counters.dropped_malformed == 1


def test_other_opcodes_get_notimp_and_edns_version_1_badvers(dns_filter):
    notify = exchange(dns_filter.port, header(flags=0x2000) + QUESTION)
    assert notify is not None
    assert rcode_of(notify) == dns.rcode.NOTIMP
    reply = exchange(dns_filter.port, header(ar=1) + QUESTION + OPT_V1)
    assert reply is not None
    message = dns.message.from_wire(reply)
    assert message.rcode() == dns.rcode.BADVERS


def test_random_garbage_never_stops_the_server(dns_filter):
    rng = random.Random(4)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(2000):
            sock.sendto(rng.randbytes(rng.randrange(0, 600)), (HOST, dns_filter.port))
    query = dns.message.make_query("allowed.example", "A")
    assert dns.query.udp(query, HOST, port=dns_filter.port, timeout=3).answer
    counters = dns_filter.handler.counters
    assert counters.servfail == 0
    assert counters.dropped_malformed + counters.formerr > 0


def test_tcp_garbage_closes_that_connection_only(dns_filter):
    with socket.create_connection((HOST, dns_filter.port), timeout=3) as sock:
        sock.sendall(b"\x00\x05hello")
        assert sock.recv(100) == b""  # hung up on
    with socket.create_connection((HOST, dns_filter.port), timeout=3) as sock:
        sock.sendall(struct.pack("!H", 3) + b"\x00\x01\x02")  # under a header: dropped
        assert sock.recv(100) == b""
    query = dns.message.make_query("allowed.example", "A")
    assert dns.query.tcp(query, HOST, port=dns_filter.port, timeout=3).answer


def test_idle_and_excess_tcp_connections_are_closed(make_filter):
    running = make_filter(
        server_settings=ServerSettings(port=0, max_tcp_connections=2, tcp_idle_timeout=0.3)
    )
    first = socket.create_connection((HOST, running.port), timeout=3)
    second = socket.create_connection((HOST, running.port), timeout=3)
    try:
        time.sleep(0.1)
        with socket.create_connection((HOST, running.port), timeout=3) as third:
            assert third.recv(10) == b""  # over the bound: closed at once
        assert first.recv(10) == b""  # idle past the timeout
        assert running.server.refused_connections == 1
    finally:
        first.close()
        second.close()


def test_flood_is_bounded_and_the_server_keeps_answering(upstream, decider, clock):
    # A small receive buffer: the kernel drops what the filter cannot take (bounded memory),
    # and the backlog a late question waits behind stays short.
    running = RunningFilter(
        decider,
        upstream.port,
        BlockSettings(ipv4=BLOCK_V4),
        clock,
        server_settings=ServerSettings(port=0, max_pending=64, udp_receive_buffer=256 << 10),
        upstream_settings=UpstreamSettings(
            (("127.0.0.1", upstream.port),), timeout=0.5, max_in_flight=32
        ),
    )
    running.forwarder.cache.max_entries = 100
    try:
        rng = random.Random(7)
        blocked = dns.message.make_query("badsite.example", "A").to_wire()
        packets = []
        for i in range(20_000):
            if i % 3 == 0:
                packets.append(blocked)
            elif i % 3 == 1:
                name = f"n{rng.randrange(10**9)}.flood.example"
                packets.append(dns.message.make_query(name, "A").to_wire())
            else:
                packets.append(rng.randbytes(40))
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
        try:
            for i, packet in enumerate(packets):
                sockets[i % 4].sendto(packet, (HOST, running.port))
        finally:
            for sock in sockets:
                sock.close()
        assert len(running.server.pending) <= 64
        query = dns.message.make_query("allowed.example", "A")
        answer = None
        for _ in range(5):  # the backlog in the kernel's buffer is answered first
            try:
                answer = dns.query.udp(query, HOST, port=running.port, timeout=1)
                break
            except dns.exception.Timeout:
                continue
        assert answer is not None
        assert answer.answer
        counters = running.handler.counters
        assert counters.blocked > 0
        assert counters.queries > 1000
        assert len(running.forwarder.cache) <= 100
        assert counters.servfail <= counters.upstream_failures  # no internal faults
    finally:
        running.stop()


def test_two_sockets_bind_one_port_with_reuse_port():
    first = bind_udp(HOST, 0, reuse_port=True)
    port = first.getsockname()[1]
    try:
        second = bind_udp(HOST, port, reuse_port=True)
        second.close()
        with pytest.raises(OSError, match="in use"):
            bind_udp(HOST, port).close()
        tcp_a = bind_tcp(HOST, port, reuse_port=True)
        tcp_b = bind_tcp(HOST, port, reuse_port=True)
        tcp_a.close()
        tcp_b.close()
    finally:
        first.close()


def test_two_servers_share_a_port_and_both_answer(upstream, decider, clock):
    probe = bind_udp(HOST, 0, reuse_port=True)
    port = probe.getsockname()[1]
    probe.close()
    shared = ServerSettings(port=port, reuse_port=True)
    block = BlockSettings(ipv4=BLOCK_V4)
    workers = [
        RunningFilter(decider, upstream.port, block, clock, server_settings=shared)
        for _ in range(2)
    ]
    try:
        query = dns.message.make_query("badsite.example", "A")
        for _ in range(64):  # a fresh source port each time: the kernel spreads them
            assert dns.query.udp(query, HOST, port=port, timeout=3).answer
        assert all(w.handler.counters.blocked > 0 for w in workers)
    finally:
        for worker in workers:
            worker.stop()


# --- the parser alone -------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=700))
def test_parser_only_ever_drops_or_rejects(packet):
    with contextlib.suppress(DropPacket, RejectQuery):
        parse_query(packet)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=12, max_size=300))
def test_handler_never_raises_on_garbage(packet):
    forwarder = Forwarder(UpstreamSettings((("127.0.0.1", 9),)), AnswerCache())
    handler = DnsHandler(TableDecider(), BlockSettings(ipv4=BLOCK_V4), forwarder)
    result = handler.answer(header() + packet, "192.0.2.1", False)
    assert result is None or isinstance(result, bytes | PendingAnswer)
    assert handler.counters.servfail == 0


def test_read_name_refuses_pointer_loops_and_forward_pointers():
    message = header() + b"\x03abc\xc0\x0c"  # a label, then a pointer back to itself
    with pytest.raises(ValueError, match="backwards"):
        read_name(message, 12)
    with pytest.raises(ValueError, match="backwards"):
        read_name(header() + b"\xc0\x0c", 12)
    name, after = read_name(header() + b"\x03abc\x00\x03www\xc0\x0c", 17)
    assert (name, after) == ("www.abc", 23)


def test_upstream_answer_with_a_looping_cname_is_unusable():
    question = QUESTION
    # The CNAME's data (at offset 45) is a pointer to itself.
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, 2) + b"\xc0\x2d"
    wire = header(flags=0x8180, an=1) + question + answer
    with pytest.raises(UnusableAnswer):
        read_upstream_answer(wire, 0x1234, question, max_ttl=86400, negative_ttl=60)
