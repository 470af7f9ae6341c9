"""The DNS filter's transport-independent handler: parse → decide → pack.

The servers (UDP, TCP) hand each message to :meth:`DnsHandler.answer` with the client's
address; it returns the reply, ``None`` (drop), or a :class:`PendingAnswer` when the reply
needs upstream (the server awaits :meth:`DnsHandler.complete` for those, so blocked names
and cached ones are answered without a task or an await). The failure ladder (ARCHITECTURE
"Hot path"): unreadable → dropped; readable header but a bad query → FORMERR (or NOTIMP,
BADVERS); a fault of ours → SERVFAIL and one log line. Nothing here raises to the server.

The decision itself belongs to the engine behind :class:`DnsDecider`, which knows nothing
of DNS (AdGuard Home's split): it gets the client's address, the normalised name and the
query type, and returns a :class:`DnsVerdict`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from esafety.errors import ConfigError
from esafety.filtering.dns.cache import CachedAnswer, CacheKey
from esafety.filtering.dns.upstream import Forwarder, UpstreamBusy
from esafety.filtering.dns.wire import (
    CLASS_IN,
    FLAG_AD,
    FLAG_CD,
    MAX_MESSAGE,
    RCODE_NOERROR,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    RCODE_SERVFAIL,
    TYPE_A,
    TYPE_AAAA,
    TYPE_SOA,
    DropPacket,
    Query,
    RejectQuery,
    encode_name,
    pack_answer,
    pack_error,
    parse_query,
)
from esafety.filtering.hostnames import InvalidHost, is_plain_ascii_host, normalise_host

__all__ = [
    "BlockSettings",
    "DnsCounters",
    "DnsDecider",
    "DnsHandler",
    "DnsVerdict",
    "PendingAnswer",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DnsVerdict:
    """What the engine decided for one name; ``reason`` goes to the log unchanged."""

    action: Literal["allow", "block", "rewrite"]
    rewrite_to: str | None = None  # CNAME target for safe search (e.g. forcesafesearch.google.com)
    reason: str = ""
    #: A block answered "no such name" whatever the block mode: the signal filter-bypass
    #: services (the use-application-dns.net canary) look for.
    nxdomain: bool = False


class DnsDecider(Protocol):
    """The decision engine as the DNS filter sees it. Called on the serving loop: it must
    not block or do I/O (ARCHITECTURE "Hot path")."""

    def decide(self, client_ip: str, qname: str, qtype: int) -> DnsVerdict: ...


@dataclass(frozen=True, slots=True)
class BlockSettings:
    """How a blocked name is answered (issue 4 §7).

    ``mode="address"``: A and AAAA questions get the block-page address (the web app shows
    the block page there); any other type (HTTPS, SVCB, MX...) an empty NOERROR, so no
    record of a blocked name ever leaves the filter. With no IPv6 address configured AAAA
    is empty too, and the browser falls back to the IPv4 block page. ``mode="nxdomain"``:
    every type gets NXDOMAIN. Either way a synthetic SOA tells caches to keep the answer
    for ``ttl`` seconds.
    """

    ipv4: str | None = None
    ipv6: str | None = None
    mode: Literal["address", "nxdomain"] = "address"
    ttl: int = 60

    def __post_init__(self) -> None:
        if self.mode not in ("address", "nxdomain"):
            raise ConfigError(f"DNS block mode {self.mode!r}: expected 'address' or 'nxdomain'")
        if self.mode == "address" and self.ipv4 is None and self.ipv6 is None:
            raise ConfigError(
                "DNS block mode 'address' needs the block-page address: set an IPv4 and/or "
                "IPv6 address, or use mode 'nxdomain'"
            )
        for value, version in ((self.ipv4, 4), (self.ipv6, 6)):
            if value is not None:
                try:
                    parsed = ipaddress.ip_address(value)
                except ValueError:
                    parsed = None
                if parsed is None or parsed.version != version:
                    raise ConfigError(
                        f"block-page address {value!r} is not an IPv{version} address"
                    )
        if not 0 <= self.ttl <= 86_400:
            raise ConfigError(f"block answer TTL {self.ttl}: expected 0 to 86400 seconds")


@dataclass(slots=True)
class DnsCounters:
    """What happened, for /metrics; nothing is dropped without being counted here."""

    queries: int = 0
    blocked: int = 0
    rewritten: int = 0
    forwarded: int = 0
    cache_answers: int = 0
    refused: int = 0
    dropped_malformed: int = 0
    formerr: int = 0
    servfail: int = 0
    dropped_busy: int = 0
    upstream_failures: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class PendingAnswer:
    """A question that needs upstream: forwarding (``rewrite_to`` None) or a rewrite."""

    __slots__ = ("client_ip", "key", "limit", "query", "rewrite_to")

    def __init__(
        self, query: Query, client_ip: str, limit: int, key: CacheKey, rewrite_to: str | None
    ) -> None:
        self.query = query
        self.client_ip = client_ip
        self.limit = limit
        self.key = key
        self.rewrite_to = rewrite_to


class _BlockAnswers:
    """The records of a block answer, packed once per setting rather than per query."""

    def __init__(self, block: BlockSettings) -> None:
        self.rcode = RCODE_NXDOMAIN if block.mode == "nxdomain" else RCODE_NOERROR
        self.a = self.aaaa = b""
        if block.mode == "address" and block.ipv4 is not None:
            self.a = _record(TYPE_A, block.ttl, ipaddress.IPv4Address(block.ipv4).packed)
        if block.mode == "address" and block.ipv6 is not None:
            self.aaaa = _record(TYPE_AAAA, block.ttl, ipaddress.IPv6Address(block.ipv6).packed)
        # RFC 2308 §3: a negative answer carries an SOA whose minimum caches use as its TTL.
        soa_rdata = (
            encode_name("blocked.esafety.invalid")
            + encode_name("hostmaster.esafety.invalid")
            + (1).to_bytes(4, "big")
            + (3600).to_bytes(4, "big")
            + (600).to_bytes(4, "big")
            + (86400).to_bytes(4, "big")
            + block.ttl.to_bytes(4, "big")
        )
        self.soa = _record(TYPE_SOA, block.ttl, soa_rdata)

    def answer(self, query: Query, limit: int) -> bytes:
        record = self.a if query.qtype == TYPE_A else self.aaaa if query.qtype == TYPE_AAAA else b""
        if record and self.rcode == RCODE_NOERROR:
            return pack_answer(query, RCODE_NOERROR, record, 1, 0, limit)
        return pack_answer(query, self.rcode, self.soa, 0, 1, limit)


def _record(rtype: int, ttl: int, rdata: bytes) -> bytes:
    """A record owned by the question's name (a pointer to offset 12)."""
    return (
        b"\xc0\x0c"
        + rtype.to_bytes(2, "big")
        + CLASS_IN.to_bytes(2, "big")
        + ttl.to_bytes(4, "big")
        + len(rdata).to_bytes(2, "big")
        + rdata
    )


class DnsHandler:
    """Turns a query message into its answer for one client, whatever carried it."""

    def __init__(
        self,
        decider: DnsDecider,
        block: BlockSettings,
        forwarder: Forwarder,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.decider = decider
        self.block = block
        self.forwarder = forwarder
        self.clock = clock if clock is not None else forwarder.clock
        self.counters = DnsCounters()
        self._block = _BlockAnswers(block)
        self._nxdomain = _BlockAnswers(BlockSettings(mode="nxdomain", ttl=block.ttl))

    async def handle(self, wire: bytes, client_ip: str, tcp: bool = False) -> bytes | None:
        """The whole ladder for one message; None means send nothing."""
        result = self.answer(wire, client_ip, tcp)
        if isinstance(result, PendingAnswer):
            return await self.complete(result)
        return result

    def answer(self, wire: bytes, client_ip: str, tcp: bool) -> bytes | PendingAnswer | None:
        """Answer now when no upstream is needed; otherwise a :class:`PendingAnswer`."""
        counters = self.counters
        counters.queries += 1
        try:
            query = parse_query(wire)
        except DropPacket:
            counters.dropped_malformed += 1
            return None
        except RejectQuery as rejected:
            counters.formerr += 1
            return rejected.answer
        try:
            return self._answer(query, client_ip, MAX_MESSAGE if tcp else query.udp_limit)
        except Exception as exc:  # the serving loop never dies: a fault answers SERVFAIL
            return self._fault(query, client_ip, exc)

    async def complete(self, pending: PendingAnswer) -> bytes | None:
        """The answer to a question that needed upstream; None when dropped as busy."""
        query = pending.query
        try:
            target = pending.rewrite_to
            if target is None:
                answer = await self.forwarder.resolve(
                    pending.key, query.upstream_question(), bool(query.flags & FLAG_CD)
                )
                if answer is None:
                    return self._upstream_failed(query)
                self.counters.forwarded += 1
                return self._replay(query, pending.client_ip, answer, pending.limit)
            return await self._rewrite(query, target, pending.limit)
        except UpstreamBusy:
            self.counters.dropped_busy += 1
            return None
        except Exception as exc:
            return self._fault(query, pending.client_ip, exc)

    def _answer(self, query: Query, client_ip: str, limit: int) -> bytes | PendingAnswer:
        if query.qclass != CLASS_IN:
            self.counters.refused += 1
            return pack_error(query.id, query.flags, RCODE_REFUSED, query.question)
        name = query.qname
        if name:  # the root (". NS" priming) names no site
            if not (query.plain and is_plain_ascii_host(name)):
                host = self._host(query)
                if host is None:
                    self.counters.refused += 1
                    return pack_error(query.id, query.flags, RCODE_REFUSED, query.question)
            else:
                host = name
            verdict = self.decider.decide(client_ip, host, query.qtype)
            action = verdict.action
            if action == "block":
                self.counters.blocked += 1
                answers = self._nxdomain if verdict.nxdomain else self._block
                return answers.answer(query, limit)
            if action == "rewrite":
                if not verdict.rewrite_to:
                    raise ValueError(f"rewrite verdict for {host!r} has no target")
                key = (name, query.qtype, query.do)
                return PendingAnswer(query, client_ip, limit, key, verdict.rewrite_to)
            if action != "allow":
                raise ValueError(f"unknown verdict action {action!r} for {host!r}")
        key = (name, query.qtype, query.do)
        cached = self.forwarder.cached(key)
        if cached is not None:
            self.counters.cache_answers += 1
            return self._replay(query, client_ip, cached, limit)
        return PendingAnswer(query, client_ip, limit, key, None)

    def _host(self, query: Query) -> str | None:
        """The normal form of a name that is not plain lowercase ASCII, or None if it
        cannot be a host name (such names are refused, not forwarded unfiltered)."""
        if not query.plain:
            return None
        try:
            return normalise_host(query.qname)
        except InvalidHost:
            return None

    def _replay(self, query: Query, client_ip: str, answer: CachedAnswer, limit: int) -> bytes:
        # An allowed name whose answer goes through a blocked name is blocked (issue 4 §7).
        for target in answer.cname_targets:
            if self.decider.decide(client_ip, target, query.qtype).action == "block":
                self.counters.blocked += 1
                return self._block.answer(query, limit)
        extra = FLAG_AD if answer.ad and query.do else 0
        body = answer.body_at(self.clock())
        return pack_answer(query, answer.rcode, body, answer.an, answer.ns, limit, extra)

    async def _rewrite(self, query: Query, target: str, limit: int) -> bytes | None:
        from esafety.filtering.dns.rewrite import pack_rewrite

        target_question = encode_name(target) + query.question[-4:]
        key = (target.lower().rstrip("."), query.qtype, False)
        answer = self.forwarder.cached(key)
        if answer is None:
            answer = await self.forwarder.resolve(key, target_question.lower())
        if answer is None:
            return self._upstream_failed(query)
        self.counters.rewritten += 1
        return pack_rewrite(query, target, answer, self.clock(), self.block.ttl, limit)

    def _upstream_failed(self, query: Query) -> bytes:
        self.counters.upstream_failures += 1
        self.counters.servfail += 1
        return pack_answer(query, RCODE_SERVFAIL, b"", 0, 0, MAX_MESSAGE)

    def _fault(self, query: Query, client_ip: str, exc: Exception) -> bytes:
        self.counters.servfail += 1
        log.error(
            "DNS filter fault answering %r type %d for %s: %s: %s (answered SERVFAIL)",
            query.qname,
            query.qtype,
            client_ip,
            type(exc).__name__,
            exc,
        )
        return pack_error(query.id, query.flags, RCODE_SERVFAIL, query.question)
