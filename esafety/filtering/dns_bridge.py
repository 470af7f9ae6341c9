"""Who is asking and what the engine says, for the DNS filter, with no I/O per query.

:class:`WhoIsWhere` is a snapshot of sign-ins and subnet mappings (issue 4 §6);
:class:`DnsBridge` is the DNS filter's decider: it finds the asker in the snapshot, asks
the :class:`~esafety.filtering.decision.FilterEngine`, and logs the decision
(:class:`~esafety.filtering.log.DecisionLog`). Nothing here reads a database, so the
worker processes of the DNS filter import it without one.

Per query the bridge does as little as it can: each client address is looked up in the
snapshot once (a :class:`ClientScope`, kept until the snapshot or the engine is replaced,
or the client's sign-in ends), and clients whose askers are equal share one table of
ready answers (``ClientScope.replies``, filled by the DNS handler) so a name asked again
is answered from it and only logged again, for as long as the engine says its decisions
are steady (:meth:`FilterEngine.steady_until`) and the sign-in lasts. The same tables,
by raw client address, are what the DNS filter's C fast path answers from
(:meth:`DnsBridge.ready_clients`).
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from esafety.filtering.decision import UNKNOWN_DEVICE, Asker, Decision, EngineHolder, FilterEngine
from esafety.filtering.dns.handler import DnsVerdict
from esafety.filtering.log import DecisionLog, LogEntry
from esafety.filtering.policy import Action

__all__ = ["ClientScope", "DnsBridge", "WhoIsWhere", "query_type_text", "verdict_of"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Client addresses remembered per snapshot once their subnet has been looked up.
_MAX_SEEN = 65_536
#: Client scopes kept per snapshot; past this they are forgotten and made again.
_MAX_SCOPES = 65_536


class WhoIsWhere:
    """Sign-ins and subnets as they stood when read: client address → :class:`Asker`.

    The latest unexpired sign-in wins, else the most specific subnet, else the client is
    an unknown device (issue 4 §6; the same order as :func:`asking.who_is_at`).
    """

    __slots__ = ("_seen", "signed_in", "subnets", "usernames")

    def __init__(
        self,
        signed_in: Mapping[str, tuple[Asker, float]] | None = None,
        subnets: tuple[tuple[Network, Asker], ...] = (),
        usernames: Mapping[str, str] | None = None,
    ) -> None:
        #: client → (asker, when the sign-in ends, seconds since the epoch)
        self.signed_in = dict(signed_in or {})
        #: client → the username signed in there, for the decision log
        self.usernames = dict(usernames or {})
        #: most specific first
        self.subnets = tuple(sorted(subnets, key=lambda item: -item[0].prefixlen))
        self._seen: dict[str, Asker] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Sent to the DNS worker processes; the look-up memo stays behind.
        return {"signed_in": self.signed_in, "subnets": self.subnets, "usernames": self.usernames}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.signed_in = state["signed_in"]
        self.subnets = state["subnets"]
        self.usernames = state["usernames"]
        self._seen = {}

    def asker(self, client_ip: str, now: float) -> Asker:
        signed = self.signed_in.get(client_ip)
        if signed is not None and now < signed[1]:
            return signed[0]
        if not self.subnets:
            if client_ip.startswith("::ffff:") and signed is None:
                return self.asker(client_ip[7:], now)
            return UNKNOWN_DEVICE
        found = self._seen.get(client_ip)
        if found is None:
            found = self._subnet(client_ip, now)
            if len(self._seen) >= _MAX_SEEN:
                self._seen.clear()
            self._seen[client_ip] = found
        return found

    def username(self, client_ip: str, now: float) -> str:
        """Who is signed in at the address now, or "" (a subnet or an unknown device)."""
        signed = self.signed_in.get(client_ip)
        return self.usernames.get(client_ip, "") if signed is not None and now < signed[1] else ""

    def changes_at(self, client_ip: str, now: float) -> float:
        """When what :meth:`asker` and :meth:`username` say of the client may next change:
        the end of a sign-in there (or at the IPv4 address it maps), else never."""
        ends = math.inf
        for address in (client_ip, client_ip[7:] if client_ip.startswith("::ffff:") else ""):
            signed = self.signed_in.get(address) if address else None
            if signed is not None and now < signed[1]:
                ends = min(ends, signed[1])
        return ends

    def _subnet(self, client_ip: str, now: float) -> Asker:
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return UNKNOWN_DEVICE
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            mapped = str(address.ipv4_mapped)
            signed = self.signed_in.get(mapped)
            if signed is not None and now < signed[1]:
                return signed[0]
            address = address.ipv4_mapped
        for network, asker in self.subnets:
            if address.version == network.version and address in network:
                return asker
        return UNKNOWN_DEVICE


def verdict_of(decision: Decision) -> DnsVerdict:
    """The engine's decision as the DNS filter answers it."""
    if decision.action is Action.BLOCK:
        return DnsVerdict("block", reason=decision.reason, nxdomain=decision.nxdomain)
    if decision.action is Action.REWRITE:
        return DnsVerdict("rewrite", decision.rewrite_to, decision.reason)
    return DnsVerdict("allow", reason=decision.reason)


_QUERY_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT",
                28: "AAAA", 33: "SRV", 64: "SVCB", 65: "HTTPS", 255: "ANY"}  # fmt: skip


def query_type_text(qtype: int) -> str:
    """The log's spelling of a query type: its mnemonic, or the number."""
    return _QUERY_TYPES.get(qtype) or str(qtype)


# Verdicts the handler acts on, shared: the reason travels in the decision log instead.
_ALLOW = DnsVerdict("allow")
_BLOCK = DnsVerdict("block")
_BLOCK_NXDOMAIN = DnsVerdict("block", nxdomain=True)
#: A LogEntry without calling the NamedTuple's Python-level __new__ (a third of the cost).
_entry: Callable[[tuple[Any, ...]], LogEntry] = functools.partial(tuple.__new__, LogEntry)

#: What a decision needs to be logged again: (name, query type text, decision).
Note = tuple[str, str, Decision]


class ClientScope:
    """One client as the current snapshot and engine see it, until ``until``.

    ``replies`` is shared by every client with an equal asker: the DNS handler keeps
    ready answers there (see :mod:`esafety.filtering.dns.handler`).
    """

    __slots__ = ("asker", "client", "engine", "groups", "log", "person", "replies", "until")

    def __init__(
        self,
        client: str,
        asker: Asker,
        person: str,
        until: float,
        engine: FilterEngine,
        log: DecisionLog | None,
        replies: dict[bytes, Any],
    ) -> None:
        self.client = client
        self.asker = asker
        self.groups = asker.groups
        self.person = person
        self.until = until
        self.engine = engine
        self.log = log
        self.replies = replies

    def decide(self, qname: str, qtype: int, now: float) -> tuple[DnsVerdict, Note]:
        """Decide for ``qname`` (normalised) and log it; the note logs it again later."""
        decision = self.engine.decide_host(self.asker, qname, now)
        kind = _QUERY_TYPES.get(qtype) or str(qtype)
        log = self.log
        if log is not None:  # a queue append: the writing happens off the loop
            log.record(_entry((now, self.client, self.person, qname, kind, decision, self.groups)))
        action = decision.action
        if action is Action.ALLOW:
            verdict = _ALLOW
        elif action is Action.BLOCK:
            verdict = _BLOCK_NXDOMAIN if decision.nxdomain else _BLOCK
        else:
            verdict = DnsVerdict("rewrite", decision.rewrite_to)
        return verdict, (qname, kind, decision)

    def steady_until(self, now: float) -> float:
        """Until when this client's decisions stay as they are now (its sign-in, the
        engine's times of day and exceptions)."""
        return min(self.until, self.engine.steady_until(now))

    def repeat(self, notes: tuple[Note, ...], now: float) -> None:
        """Log the decisions behind a ready answer again, as asked now by this client."""
        log = self.log
        if log is not None:
            record, client, person, groups = log.record, self.client, self.person, self.groups
            for name, kind, decision in notes:
                record(_entry((now, client, person, name, kind, decision, groups)))


class DnsBridge:
    """The :class:`DnsDecider` of ``esafety serve``: snapshot + engine, no I/O per query.

    Replace the snapshot by assigning :attr:`where` and the engine by assigning
    ``holder.engine``; either drops every scope and ready answer made with the old one.
    """

    __slots__ = ("_engine", "_fast", "_replies", "_scopes", "_where", "clock", "holder", "log")

    def __init__(
        self,
        holder: EngineHolder,
        where: WhoIsWhere | None = None,
        clock: Callable[[], float] = time.time,
        log: DecisionLog | None = None,
    ) -> None:
        self.holder = holder
        self.clock = clock
        self.log = log
        self._where = where if where is not None else WhoIsWhere()
        self._engine = holder.engine
        self._scopes: dict[str, ClientScope] = {}
        self._replies: dict[Asker, dict[bytes, Any]] = {}
        #: raw client address → (until, replies, scope): see :meth:`ready_clients`.
        self._fast: dict[bytes, tuple[float, dict[bytes, Any], ClientScope]] = {}

    @property
    def where(self) -> WhoIsWhere:
        return self._where

    @where.setter
    def where(self, where: WhoIsWhere) -> None:
        self._where = where
        self._forget()

    def _forget(self) -> None:
        # New dicts rather than clear(): a scope a caller still holds keeps its own.
        self._scopes = {}
        self._replies = {}
        self._fast = {}

    @property
    def ready_log(self) -> Any:
        """Where the fast path logs its answers (the decision log takes them in bulk)."""
        return getattr(self.log, "ready_buffer", None)

    def ready_clients(self) -> dict[bytes, tuple[float, dict[bytes, Any], ClientScope]]:
        """The clients the C fast path may answer from their ready answers, by raw address
        (4 or 16 octets): each scope made for the current snapshot and engine."""
        if self.holder.engine is not self._engine:
            self._engine = self.holder.engine
            self._forget()
        return self._fast

    def remember_client(self, raw: bytes, client_ip: str) -> None:
        scope = self._scopes.get(client_ip)
        if scope is None or scope.engine is not self._engine:
            return
        fast = self._fast
        known = fast.get(raw)
        if known is not None and known[2] is scope:
            return
        if len(fast) >= _MAX_SCOPES:
            fast.clear()
        fast[raw] = (float(scope.until), scope.replies, scope)

    def scope(self, client_ip: str, now: float) -> ClientScope:
        """The client as the current snapshot and engine see it at ``now``."""
        scope = self._scopes.get(client_ip)
        if scope is not None and now < scope.until and scope.engine is self.holder.engine:
            return scope
        return self._new_scope(client_ip, now)

    def _new_scope(self, client_ip: str, now: float) -> ClientScope:
        engine = self.holder.engine
        if engine is not self._engine:
            self._engine = engine
            self._forget()
        where = self._where
        asker = where.asker(client_ip, now)
        replies = self._replies.get(asker)
        if replies is None:
            replies = self._replies[asker] = {}
        scope = ClientScope(
            client_ip,
            asker,
            where.username(client_ip, now),
            where.changes_at(client_ip, now),
            engine,
            self.log,
            replies,
        )
        if len(self._scopes) >= _MAX_SCOPES:
            self._scopes = {}
        self._scopes[client_ip] = scope
        return scope

    def forget_ready(self) -> None:
        """Drop every ready answer (scopes made since keep a fresh, empty table)."""
        for replies in self._replies.values():
            replies.clear()

    def decide(self, client_ip: str, qname: str, qtype: int) -> DnsVerdict:
        now = self.clock()
        return self.scope(client_ip, now).decide(qname, qtype, now)[0]
