"""The DNS filter on loopback, asked with dnspython over UDP and TCP, forwarding to a real
(fake) upstream resolver on loopback."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from esafety.filtering.dns import BlockSettings

from .conftest import BLOCK_V4, BLOCK_V6

HOST = "127.0.0.1"


def ask(
    port: int, name: str, rdtype: str = "A", tcp: bool = False, **kwargs
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kwargs)
    if tcp:
        return dns.query.tcp(query, HOST, port=port, timeout=3)
    return dns.query.udp(query, HOST, port=port, timeout=3)


def records(response: dns.message.Message) -> list[tuple[str, str, str]]:
    return sorted(
        (rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rdata.to_text())
        for rrset in response.answer
        for rdata in rrset
    )


@pytest.mark.parametrize("tcp", [False, True])
def test_allowed_name_is_forwarded_and_cached(dns_filter, upstream, tcp):
    first = ask(dns_filter.port, "allowed.example", tcp=tcp)
    assert first.rcode() == dns.rcode.NOERROR
    assert records(first) == [("allowed.example.", "A", "192.0.2.10")]
    assert first.answer[0].ttl == 300
    second = ask(dns_filter.port, "Allowed.Example", tcp=tcp)
    assert records(second) == [("Allowed.Example.", "A", "192.0.2.10")]
    assert upstream.count("allowed.example") == 1
    assert dns_filter.handler.counters.cache_answers == 1


def test_cached_ttl_counts_down_and_expires(dns_filter, upstream, clock):
    ask(dns_filter.port, "www.allowed.example")
    clock.now += 45
    answer = ask(dns_filter.port, "www.allowed.example")
    assert {rrset.ttl for rrset in answer.answer} == {120 - 45, 300 - 45}
    assert upstream.count("www.allowed.example") == 1
    clock.now += 80  # past the shortest TTL (the CNAME's 120 s)
    answer = ask(dns_filter.port, "www.allowed.example")
    assert {rrset.ttl for rrset in answer.answer} == {120, 300}
    assert upstream.count("www.allowed.example") == 2


def test_nxdomain_from_upstream_is_passed_on_and_cached(dns_filter, upstream):
    for _ in range(2):
        answer = ask(dns_filter.port, "missing.example")
        assert answer.rcode() == dns.rcode.NXDOMAIN
        assert answer.authority[0].rdtype == dns.rdatatype.SOA
    assert upstream.count("missing.example") == 1


@pytest.mark.parametrize("tcp", [False, True])
def test_blocked_name_answers_the_block_page_for_every_type(dns_filter, upstream, tcp):
    a = ask(dns_filter.port, "badsite.example", "A", tcp=tcp)
    assert records(a) == [("badsite.example.", "A", BLOCK_V4)]
    assert a.answer[0].ttl == 60
    aaaa = ask(dns_filter.port, "www.badsite.example", "AAAA", tcp=tcp)
    assert records(aaaa) == [("www.badsite.example.", "AAAA", BLOCK_V6)]
    for rdtype in ("HTTPS", "SVCB", "MX", "TXT"):
        other = ask(dns_filter.port, "badsite.example", rdtype, tcp=tcp)
        assert other.rcode() == dns.rcode.NOERROR
        assert other.answer == []
        assert other.authority[0].rdtype == dns.rdatatype.SOA
        assert other.authority[0][0].minimum == 60
    assert upstream.count("badsite.example") == 0
    assert upstream.count("www.badsite.example") == 0


def test_block_without_ipv6_address_answers_aaaa_empty(make_filter):
    running = make_filter(BlockSettings(ipv4=BLOCK_V4))
    answer = ask(running.port, "badsite.example", "AAAA")
    assert answer.rcode() == dns.rcode.NOERROR
    assert answer.answer == []


def test_nxdomain_mode_answers_nxdomain_for_every_type(make_filter, upstream):
    running = make_filter(BlockSettings(mode="nxdomain", ttl=30))
    for rdtype in ("A", "AAAA", "HTTPS"):
        answer = ask(running.port, "badsite.example", rdtype)
        assert answer.rcode() == dns.rcode.NXDOMAIN
        assert answer.answer == []
        assert answer.authority[0][0].minimum == 30
    assert upstream.count("badsite.example") == 0


@pytest.mark.parametrize("rdtype", ["A", "AAAA"])
def test_safe_search_rewrite_answers_cname_and_target_addresses(dns_filter, upstream, rdtype):
    answer = ask(dns_filter.port, "www.google.co.uk", rdtype)
    assert answer.rcode() == dns.rcode.NOERROR
    expected_address = "216.239.38.120" if rdtype == "A" else "2001:4860:4802:32::78"
    assert records(answer) == [
        ("forcesafesearch.google.com.", rdtype, expected_address),
        ("www.google.co.uk.", "CNAME", "forcesafesearch.google.com."),
    ]
    assert upstream.count("www.google.co.uk") == 0
    ask(dns_filter.port, "www.google.co.uk", rdtype)
    assert upstream.count("forcesafesearch.google.com") == 1  # the target is cached


def test_allowed_name_whose_cname_chain_reaches_a_blocked_name_is_blocked(
    dns_filter, upstream, decider
):
    for _ in range(2):  # from upstream, then from the cache
        answer = ask(dns_filter.port, "sneaky.example")
        assert records(answer) == [("sneaky.example.", "A", BLOCK_V4)]
    assert upstream.count("sneaky.example") == 1
    assert ("127.0.0.1", "edge.badsite.example", 1) in decider.asked
    # The same cached answer is allowed to a client whose policy allows the target.
    decider.blocked.discard("badsite.example")
    answer = ask(dns_filter.port, "sneaky.example")
    assert ("edge.badsite.example.", "A", "192.0.2.66") in records(answer)


def test_edns_is_echoed_with_our_size(dns_filter):
    answer = ask(dns_filter.port, "allowed.example", use_edns=0, payload=4096)
    assert answer.edns == 0
    assert answer.payload == 1232
    plain = ask(dns_filter.port, "allowed.example")
    assert plain.edns == -1


def test_large_answer_is_truncated_over_udp_and_whole_over_tcp(dns_filter, upstream):
    upstream.add("\n".join(f"big.example. 300 IN TXT {'x' * 200}{i:03d}" for i in range(30)))
    udp = ask(dns_filter.port, "big.example", "TXT", use_edns=0, payload=1232)
    assert udp.flags & dns.flags.TC
    assert udp.answer == []
    # The filter itself had to fall back to TCP upstream (the answer is over 1232 octets).
    assert upstream.count("big.example", "tcp") == 1
    tcp = ask(dns_filter.port, "big.example", "TXT", tcp=True)
    assert not tcp.flags & dns.flags.TC
    assert len(records(tcp)) == 30
    small = ask(dns_filter.port, "allowed.example", "AAAA")  # 512 octets without EDNS
    assert not small.flags & dns.flags.TC


def test_query_without_edns_is_truncated_at_512_octets(dns_filter, upstream):
    upstream.add("\n".join(f"mid.example. 300 IN TXT {'y' * 100}{i:02d}" for i in range(6)))
    answer = ask(dns_filter.port, "mid.example", "TXT")
    assert answer.flags & dns.flags.TC
    bigger = ask(dns_filter.port, "mid.example", "TXT", use_edns=0, payload=1232)
    assert not bigger.flags & dns.flags.TC
    assert len(bigger.answer[0]) == 6


def test_silent_upstream_gives_servfail_and_the_server_goes_on(make_filter, upstream):
    upstream.silent.add("slow.example")
    running = make_filter()
    answer = ask(running.port, "slow.example")
    assert answer.rcode() == dns.rcode.SERVFAIL
    assert running.forwarder.timeouts == 1
    assert ask(running.port, "allowed.example").rcode() == dns.rcode.NOERROR


def test_decider_fault_answers_servfail_with_one_log_line(dns_filter, decider, caplog):
    decider.explode = True
    answer = ask(dns_filter.port, "allowed.example")
    assert answer.rcode() == dns.rcode.SERVFAIL
    faults = [r for r in caplog.records if "DNS filter fault" in r.getMessage()]
    assert len(faults) == 1
    assert "\n" not in faults[0].getMessage()
    decider.explode = False
    assert ask(dns_filter.port, "allowed.example").rcode() == dns.rcode.NOERROR


def test_unfilterable_names_are_refused_not_forwarded(dns_filter, upstream):
    query = dns.message.make_query(dns.name.Name([b"evil.example", b"com", b""]), "A")
    answer = dns.query.udp(query, HOST, port=dns_filter.port, timeout=3)
    assert answer.rcode() == dns.rcode.REFUSED
    chaos = dns.message.make_query("version.bind", "TXT", rdclass="CH")
    answer = dns.query.udp(chaos, HOST, port=dns_filter.port, timeout=3)
    assert answer.rcode() == dns.rcode.REFUSED
    assert upstream.asked == []


def test_punycode_name_is_decided_in_normal_form(dns_filter, decider):
    decider.blocked.add("xn--bcher-kva.example")
    answer = ask(dns_filter.port, "XN--BCHER-KVA.example")
    assert records(answer) == [("XN--BCHER-KVA.example.", "A", BLOCK_V4)]


def test_several_queries_on_one_tcp_connection(dns_filter):
    import socket

    with socket.create_connection((HOST, dns_filter.port), timeout=3) as sock:
        for name in ("allowed.example", "badsite.example", "allowed.example"):
            query = dns.message.make_query(name, "A")
            dns.query.send_tcp(sock, query)
            answer, _ = dns.query.receive_tcp(sock, expiration=None)
            assert answer.id == query.id
            assert answer.answer
