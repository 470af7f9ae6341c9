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

Ready answers (the UDP fast path, :meth:`DnsHandler.answer_udp`): a decider that also
offers per-client scopes (:class:`ScopedDecider`, such as ``esafety serve``'s bridge)
gets each synchronous UDP answer kept in its scope's ``replies``, keyed by the query
without its ID. The same query from a client with the same asker is then answered by
putting the new ID in front of the kept octets, and its decisions are logged again
through the scope. An answer is kept while its decisions are steady (the scope says until
when: a sign-in ending, a time-of-day rule's next minute, an exception starting or
ending) and, for upstream records, until their TTLs next tick down (then it is packed
again from the cache with the same decisions) or they expire; the decider drops every
kept answer when its snapshot or engine changes. So a kept answer is byte for byte what
the slow path would say now.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from esafety.errors import ConfigError
from esafety.filtering.dns.cache import CachedAnswer, CacheKey
from esafety.filtering.dns.upstream import Forwarder, UpstreamBusy
from esafety.filtering.dns.wire import (
    CLASS_IN,
    FLAG_AD,
    FLAG_CD,
    FLAG_TC,
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
    "DnsScope",
    "DnsVerdict",
    "PendingAnswer",
    "ReadyClients",
    "ScopedDecider",
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


class DnsScope(Protocol):
    """One client as a :class:`ScopedDecider` sees it for a while (see the module doc)."""

    #: Ready answers: the query without its ID → a :data:`Ready` tuple.
    replies: dict[bytes, Any]

    def decide(self, qname: str, qtype: int, now: float) -> tuple[DnsVerdict, Any]:
        """Decide (and log) like :meth:`DnsDecider.decide`; the note logs it again."""
        ...

    def repeat(self, notes: tuple[Any, ...], now: float) -> None:
        """Log the decisions behind a ready answer again, for this client, at ``now``."""
        ...

    def steady_until(self, now: float) -> float:
        """Until when (same clock as ``now``) this client's decisions cannot change."""
        ...


@runtime_checkable
class ScopedDecider(Protocol):
    """A decider that can keep ready answers per client (``esafety serve``'s bridge)."""

    clock: Callable[[], float]

    def decide(self, client_ip: str, qname: str, qtype: int) -> DnsVerdict: ...
    def scope(self, client_ip: str, now: float) -> DnsScope: ...
    def forget_ready(self) -> None:
        """Drop every scope's ready answers (the handler's bound on their number)."""
        ...


@runtime_checkable
class ReadyClients(Protocol):
    """A scoped decider's ready answers by raw client address, for the C fast path."""

    #: Where the fast path logs what it answers (a ``_ready.LogBuffer``), or None.
    ready_log: Any

    def ready_clients(self) -> dict[bytes, Any]:
        """Raw client address (4 or 16 octets) → (until, the scope's ready answers, the
        scope), as :mod:`~esafety.filtering.dns._ready` reads it; current for the engine."""
        ...

    def remember_client(self, raw: bytes, client_ip: str) -> None:
        """Offer the client's current scope to :meth:`ready_clients` under ``raw``."""
        ...


#: A ready answer: (its records kept until [cache clock], the answer without its ID, the
#: notes to log it again, whether it is a block, for a replayed upstream answer what is
#: needed to pack it again when its TTLs tick down: (query, cached answer, size limit,
#: cache key), else None; its decisions steady until [decider's clock]; for the C fast path,
#: how to count the TTLs down itself (:data:`TtlCountdown`), else None).
Ready = tuple[
    float,
    bytes,
    tuple[Any, ...],
    bool,
    "tuple[Query, CachedAnswer, int, CacheKey] | None",
    float,
    "TtlCountdown | None",
]
#: (when the upstream answer was stored, when it expires [cache clock], native-order
#: uint32 pairs: where a TTL sits in the answer without its ID, the TTL as stored). The C
#: fast path writes ``ttl - whole seconds since stored`` (0 at least) at each place, as
#: :meth:`CachedAnswer.body_at` does, until the answer expires.
TtlCountdown = tuple[float, float, bytes]
_TTL_PLACE = struct.Struct("=II")

#: Ready answers kept in all before every table is emptied (a flood of names cannot grow
#: them without bound; about 300 octets each).
MAX_READY = 200_000
_NEVER = 0.0


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
    #: Answers given from the ready table (also counted in blocked or cache_answers).
    ready_answers: int = 0
    #: Of those, answered by the C fast path (see :mod:`esafety.filtering.dns.server`).
    fast_answers: int = 0
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


def _countdown(query: Query, cached: CachedAnswer, reply: bytes) -> TtlCountdown:
    """Where the TTLs of ``cached`` sit in ``reply`` (packed by :func:`pack_answer`: header,
    the client's question, the records), for the C fast path to count them down."""
    start = 12 + len(query.question)
    places = b""
    if not int.from_bytes(reply[2:4], "big") & FLAG_TC:  # not cut short for size: records there
        places = b"".join(
            _TTL_PLACE.pack(start - 2 + offset, ttl)
            for offset, ttl in zip(cached.ttl_offsets, cached.ttls, strict=True)
        )
    return cached.stored_at, cached.stored_at + cached.lifetime, places


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
        self._scoped = decider if isinstance(decider, ScopedDecider) else None
        self._ready_count = 0
        self._fast = (
            decider
            if isinstance(decider, ReadyClients)
            and self._scoped is not None
            and self._scoped.clock is time.time
            and self.clock is time.monotonic
            else None
        )

    async def handle(self, wire: bytes, client_ip: str, tcp: bool = False) -> bytes | None:
        """The whole ladder for one message; None means send nothing."""
        result = self.answer(wire, client_ip, tcp)
        if isinstance(result, PendingAnswer):
            return await self.complete(result)
        return result

    def times(self) -> tuple[float, float]:
        """(the decider's clock, the cache's clock) now, for :meth:`answer_udp`."""
        scoped = self._scoped
        return (scoped.clock() if scoped is not None else 0.0), self.clock()

    def ready_table(self) -> tuple[dict[bytes, Any], Any] | None:
        """(clients, log buffer) for the C fast path, or None when it cannot be used."""
        fast = self._fast
        return None if fast is None else (fast.ready_clients(), fast.ready_log)

    def remember_client(self, raw: bytes, client_ip: str) -> None:
        """After a datagram answered at once: let the fast path answer this client too."""
        if self._fast is not None:
            self._fast.remember_client(raw, client_ip)

    def count_ready(self, answered: int, blocked: int) -> None:
        """Count what the fast path answered as :meth:`answer_udp` counts its own."""
        counters = self.counters
        counters.queries += answered
        counters.ready_answers += answered
        counters.fast_answers += answered
        counters.blocked += blocked
        counters.cache_answers += answered - blocked

    def answer_udp(
        self, wire: bytes, client_ip: str, now: float, mono: float
    ) -> bytes | PendingAnswer | None:
        """:meth:`answer` for a datagram, from the ready answers when it can be.

        ``now`` and ``mono`` come from :meth:`times`, read when the datagram was.
        """
        scoped = self._scoped
        if scoped is None:
            return self.answer(wire, client_ip, False)
        scope = scoped.scope(client_ip, now)
        key = wire[2:]
        ready: Ready | None = scope.replies.get(key)
        if ready is not None:
            if mono < ready[0] and now < ready[5]:
                scope.repeat(ready[2], now)
                counters = self.counters
                counters.queries += 1
                counters.ready_answers += 1
                if ready[3]:
                    counters.blocked += 1
                else:
                    counters.cache_answers += 1
                return wire[:2] + ready[1]
            again = ready[4]
            if again is not None and now < ready[5]:
                tail = self._repack(scope, key, ready, again, now, mono)
                if tail is not None:
                    return wire[:2] + tail
        return self._answer_wire(wire, client_ip, False, scope, now, mono, key)

    def answer(self, wire: bytes, client_ip: str, tcp: bool) -> bytes | PendingAnswer | None:
        """Answer now when no upstream is needed; otherwise a :class:`PendingAnswer`."""
        scoped = self._scoped
        if scoped is None:
            return self._answer_wire(wire, client_ip, tcp, None, 0.0, self.clock(), None)
        now = scoped.clock()
        scope = scoped.scope(client_ip, now)
        return self._answer_wire(wire, client_ip, tcp, scope, now, self.clock(), None)

    def _repack(
        self,
        scope: DnsScope,
        key: bytes,
        ready: Ready,
        again: tuple[Query, CachedAnswer, int, CacheKey],
        now: float,
        mono: float,
    ) -> bytes | None:
        """A ready upstream answer whose TTLs ticked down, packed again with the same
        decisions (still steady); None when the cache now holds another answer."""
        query, cached, limit, cache_key = again
        if self.forwarder.cache.get(cache_key, mono) is not cached:
            return None
        reply, tick = self._pack_cached(query, cached, limit, mono)
        tail = reply[2:]
        scope.replies[key] = (tick, tail, ready[2], False, again, ready[5], ready[6])
        scope.repeat(ready[2], now)
        counters = self.counters
        counters.queries += 1
        counters.ready_answers += 1
        counters.cache_answers += 1
        return tail

    def _answer_wire(
        self,
        wire: bytes,
        client_ip: str,
        tcp: bool,
        scope: DnsScope | None,
        now: float,
        mono: float,
        key: bytes | None,
    ) -> bytes | PendingAnswer | None:
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
        notes: list[Any] = []
        limit = MAX_MESSAGE if tcp else query.udp_limit
        try:
            result, until, blocked, cached = self._answer(
                query, client_ip, limit, scope, now, mono, notes
            )
            if key is not None and scope is not None and until > mono and type(result) is bytes:
                self._keep(
                    scope, key, query, result, until, blocked, cached, limit, now, mono, notes
                )
        except Exception as exc:  # the serving loop never dies: a fault answers SERVFAIL
            return self._fault(query, client_ip, exc)
        return result

    def _keep(
        self,
        scope: DnsScope,
        key: bytes,
        query: Query,
        reply: bytes,
        until: float,
        blocked: bool,
        cached: CachedAnswer | None,
        limit: int,
        now: float,
        mono: float,
        notes: list[Any],
    ) -> None:
        """Keep ``reply`` ready until its decisions or its records may change."""
        steady = scope.steady_until(now)  # the decider's clock; ``until`` is the cache's
        self._ready_count += 1
        if self._ready_count > MAX_READY and self._scoped is not None:
            self._scoped.forget_ready()
            self._ready_count = 1
        again = countdown = None
        if cached is not None and not blocked:
            again = (query, cached, limit, (query.qname, query.qtype, query.do))
            countdown = _countdown(query, cached, reply)
        scope.replies[key] = (until, reply[2:], tuple(notes), blocked, again, steady, countdown)

    def _decide(
        self,
        client_ip: str,
        host: str,
        qtype: int,
        scope: DnsScope | None,
        now: float,
        notes: list[Any],
    ) -> DnsVerdict:
        if scope is None:
            return self.decider.decide(client_ip, host, qtype)
        verdict, note = scope.decide(host, qtype, now)
        notes.append(note)
        return verdict

    def _answer(
        self,
        query: Query,
        client_ip: str,
        limit: int,
        scope: DnsScope | None,
        now: float,
        mono: float,
        notes: list[Any],
    ) -> tuple[bytes | PendingAnswer, float, bool, CachedAnswer | None]:
        """The answer; until when its records may be kept [cache clock] (0: not at all);
        whether it is a block; the cached upstream answer it replays, if any."""
        if query.qclass != CLASS_IN:
            self.counters.refused += 1
            refused = pack_error(query.id, query.flags, RCODE_REFUSED, query.question)
            return refused, _NEVER, False, None
        name = query.qname
        if name:  # the root (". NS" priming) names no site
            if not (query.plain and is_plain_ascii_host(name)):
                host = self._host(query)
                if host is None:
                    self.counters.refused += 1
                    refused = pack_error(query.id, query.flags, RCODE_REFUSED, query.question)
                    return refused, _NEVER, False, None
            else:
                host = name
            verdict = self._decide(client_ip, host, query.qtype, scope, now, notes)
            action = verdict.action
            if action == "block":
                self.counters.blocked += 1
                answers = self._nxdomain if verdict.nxdomain else self._block
                return answers.answer(query, limit), math.inf, True, None
            if action == "rewrite":
                if not verdict.rewrite_to:
                    raise ValueError(f"rewrite verdict for {host!r} has no target")
                key = (name, query.qtype, query.do)
                pending = PendingAnswer(query, client_ip, limit, key, verdict.rewrite_to)
                return pending, _NEVER, False, None
            if action != "allow":
                raise ValueError(f"unknown verdict action {action!r} for {host!r}")
        key = (name, query.qtype, query.do)
        cached = self.forwarder.cache.get(key, mono)
        if cached is not None:
            self.counters.cache_answers += 1
            reply, until, blocked = self._replay(
                query, client_ip, cached, limit, scope, now, mono, notes
            )
            return reply, until, blocked, cached
        return PendingAnswer(query, client_ip, limit, key, None), _NEVER, False, None

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
                scoped = self._scoped
                scope = None
                now = 0.0
                if scoped is not None:
                    now = scoped.clock()
                    scope = scoped.scope(pending.client_ip, now)
                client, limit = pending.client_ip, pending.limit
                return self._replay(query, client, answer, limit, scope, now, None, [])[0]
            return await self._rewrite(query, target, pending.limit)
        except UpstreamBusy:
            self.counters.dropped_busy += 1
            return None
        except Exception as exc:
            return self._fault(query, pending.client_ip, exc)

    def _host(self, query: Query) -> str | None:
        """The normal form of a name that is not plain lowercase ASCII, or None if it
        cannot be a host name (such names are refused, not forwarded unfiltered)."""
        if not query.plain:
            return None
        try:
            return normalise_host(query.qname)
        except InvalidHost:
            return None

    def _replay(
        self,
        query: Query,
        client_ip: str,
        answer: CachedAnswer,
        limit: int,
        scope: DnsScope | None,
        now: float,
        mono: float | None,
        notes: list[Any],
    ) -> tuple[bytes, float, bool]:
        """A cached upstream answer for this client; until when it may be kept; blocked?"""
        at = self.clock() if mono is None else mono
        # An allowed name whose answer goes through a blocked name is blocked (issue 4 §7).
        for target in answer.cname_targets:
            verdict = self._decide(client_ip, target, query.qtype, scope, now, notes)
            if verdict.action == "block":
                self.counters.blocked += 1
                # Kept while the cache keeps the answer that names the blocked target.
                return self._block.answer(query, limit), answer.stored_at + answer.lifetime, True
        reply, tick = self._pack_cached(query, answer, limit, at)
        return reply, tick, False

    def _pack_cached(
        self, query: Query, answer: CachedAnswer, limit: int, at: float
    ) -> tuple[bytes, float]:
        """The upstream answer with its TTLs as they stand at ``at``, and the moment they
        next tick down or the answer expires."""
        extra = FLAG_AD if answer.ad and query.do else 0
        body = answer.body_at(at)
        reply = pack_answer(query, answer.rcode, body, answer.an, answer.ns, limit, extra)
        stored = answer.stored_at
        return reply, min(stored + int(at - stored) + 1.0, stored + answer.lifetime)

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
