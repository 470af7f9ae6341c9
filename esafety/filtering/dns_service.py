"""The DNS filter as ``esafety serve`` runs it: who is asking, the engine, and the server.

The DNS filter asks :class:`DnsBridge` about every name, on the serving loop, so the
bridge never touches the database (ARCHITECTURE "Hot path"). It answers from two things
read beforehand, each swapped whole by assigning one reference:

* :class:`WhoIsWhere`, a snapshot of sign-ins and subnet mappings (issue 4 §6), read again
  every few seconds, or at once after :meth:`DnsService.changed` (a sign-in was recorded);
* the :class:`EngineHolder`'s engine, built from the stored lists and the school's own
  entries, and built again when they change (polled; compiled in a thread so the loop
  keeps answering while a large list compiles).

Every database read and every compile runs in a worker thread; a failed refresh keeps the
last good snapshot or engine and logs one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.audit import Actor
from esafety.config import DnsSettings, upstream_address
from esafety.db import utcnow
from esafety.directory.model import Person, School
from esafety.errors import ConfigError
from esafety.filtering import asking
from esafety.filtering.decision import UNKNOWN_DEVICE, Asker, Decision, EngineHolder, FilterEngine
from esafety.filtering.dns import (
    BlockSettings,
    DnsHandler,
    DnsServer,
    DnsVerdict,
    Forwarder,
    ServerSettings,
    UpstreamSettings,
)
from esafety.filtering.log import DecisionLog, LogEntry
from esafety.filtering.model import ClientSignIn, SubnetMapping
from esafety.filtering.policy import Action
from esafety.filtering.service import build_engine, list_lists
from esafety.filtering.store import ListStore
from esafety.installation import Installation

__all__ = [
    "DnsBridge",
    "DnsService",
    "WhoIsWhere",
    "block_settings",
    "read_who_is_where",
    "verdict_of",
]

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Client addresses remembered per snapshot once their subnet has been looked up.
_MAX_SEEN = 65_536


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


def read_who_is_where(session: Session, now: datetime | None = None) -> WhoIsWhere:
    """The snapshot for the session's school: every current sign-in and subnet mapping."""
    at = now or utcnow()
    rows = session.scalars(
        select(ClientSignIn)
        .where(ClientSignIn.expires_at > at, ClientSignIn.signed_in_at <= at)
        .order_by(ClientSignIn.signed_in_at.desc(), ClientSignIn.id.desc())
    )
    people: dict[int, tuple[Asker, str] | None] = {}
    signed_in: dict[str, tuple[Asker, float]] = {}
    usernames: dict[str, str] = {}
    latest: set[str] = set()
    for row in rows:
        if row.client in latest:
            continue  # an older sign-in at the same address
        latest.add(row.client)
        if row.person_id not in people:
            person = session.get(Person, row.person_id)
            people[row.person_id] = (
                (asking.asker_for_person(session, person)[0], person.username)
                if person is not None and person.left_on is None
                else None
            )
        found = people[row.person_id]
        if found is not None:  # someone who has left falls back to the subnet, as who_is_at
            signed_in[row.client] = (found[0], row.expires_at.timestamp())
            usernames[row.client] = found[1]
    subnets = tuple(
        (ipaddress.ip_network(row.network), asking._subnet_asker(session, row))
        for row in session.scalars(select(SubnetMapping))
    )
    return WhoIsWhere(signed_in, subnets, usernames)


def verdict_of(decision: Decision) -> DnsVerdict:
    """The engine's decision as the DNS filter answers it."""
    if decision.action is Action.BLOCK:
        return DnsVerdict("block", reason=decision.reason, nxdomain=decision.nxdomain)
    if decision.action is Action.REWRITE:
        return DnsVerdict("rewrite", decision.rewrite_to, decision.reason)
    return DnsVerdict("allow", reason=decision.reason)


_ALLOW = DnsVerdict("allow")


class DnsBridge:
    """The :class:`DnsDecider` of ``esafety serve``: snapshot + engine, no I/O per query."""

    __slots__ = ("clock", "holder", "log", "where")

    def __init__(
        self,
        holder: EngineHolder,
        where: WhoIsWhere | None = None,
        clock: Callable[[], float] = time.time,
        log: DecisionLog | None = None,
    ) -> None:
        self.holder = holder
        self.where = where if where is not None else WhoIsWhere()
        self.clock = clock
        self.log = log

    def decide(self, client_ip: str, qname: str, qtype: int) -> DnsVerdict:
        now = self.clock()
        where = self.where
        asker = where.asker(client_ip, now)
        decision = self.holder.engine.decide_host(asker, qname, now)
        if self.log is not None:  # a queue append: the writing happens off the loop
            self.log.record(
                LogEntry(
                    now,
                    client_ip,
                    where.username(client_ip, now),
                    qname,
                    _QUERY_TYPES.get(qtype) or str(qtype),
                    decision,
                    asker.groups,
                )
            )
        if decision.action is Action.ALLOW:
            return _ALLOW  # the common case: no object made per query
        return verdict_of(decision)


_QUERY_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT",
                28: "AAAA", 33: "SRV", 64: "SVCB", 65: "HTTPS", 255: "ANY"}  # fmt: skip


def block_settings(dns: DnsSettings, web_host: str) -> tuple[BlockSettings, list[str]]:
    """How blocked names are answered, and warnings for the person starting the server."""
    if dns.block_mode == "nxdomain":
        return BlockSettings(mode="nxdomain", ttl=dns.block_ttl), []
    ipv4, ipv6 = dns.block_ipv4, dns.block_ipv6
    if ipv4 is None and ipv6 is None:
        try:
            web = ipaddress.ip_address(web_host.strip("[]"))
        except ValueError:
            web = None
        if web is None or web.is_unspecified:
            return BlockSettings(mode="nxdomain", ttl=dns.block_ttl), [
                f"blocked names get 'no such name': the web app listens on {web_host!r}, "
                "not one address, so set [dns] block_ipv4 to the block page's address"
            ]
        ipv4, ipv6 = (str(web), None) if web.version == 4 else (None, str(web))
    return BlockSettings(ipv4=ipv4, ipv6=ipv6, ttl=dns.block_ttl), []


def _school_id(session: Session, slug: str | None) -> int | None:
    """The school the filter serves: the one named, else the only one (None: no school yet)."""
    if slug is not None:
        school = session.scalars(select(School).where(School.slug == slug.strip())).first()
        if school is None:
            raise ConfigError(f"[dns] school {slug!r}: no school has that slug")
        return school.id
    ids = list(session.scalars(select(School.id).limit(2)))
    if len(ids) > 1:
        raise ConfigError(
            "the DNS filter serves one school and there are several: set [dns] school = SLUG"
        )
    return ids[0] if ids else None


class DnsService:
    """The DNS filter with its bridge and refresh task, started and stopped on one loop."""

    def __init__(self, inst: Installation, dns: DnsSettings, *, web_host: str = "") -> None:
        self.inst = inst
        self.dns = dns
        self.block, self.warnings = block_settings(dns, web_host or inst.settings.web.host)
        resolvers = tuple(upstream_address(item) for item in dns.upstreams)
        if not resolvers:
            self.warnings.append(
                "no upstream resolvers ([dns] upstreams): allowed names are answered "
                "SERVFAIL; blocked names still get the block answer"
            )
        self.upstream = UpstreamSettings(resolvers)
        self.store = ListStore(inst.data_dir)
        self.bridge: DnsBridge | None = None
        self.log: DecisionLog | None = None
        self.server: DnsServer | None = None
        self._fingerprint: Hashable = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self.server.port if self.server is not None else 0

    # -- reading (in a worker thread) -----------------------------------------------------

    def _session(self) -> contextlib.AbstractContextManager[Session]:
        with self.inst.db.session(Actor.system("dns filter")) as session:
            school_id = _school_id(session, self.dns.school)
        actor = Actor.system("dns filter", school_id=school_id)
        return self.inst.db.session(actor, school_id=school_id)

    def read_where(self) -> WhoIsWhere:
        with self._session() as session:
            if session.info.get("school_id") is None:
                return WhoIsWhere()
            return read_who_is_where(session)

    def _lists_fingerprint(self, session: Session) -> Hashable:
        lists = tuple(
            (row.store_key, row.sha256, row.updated_at, row.illegal, row.category)
            for row in list_lists(session)
        )
        school = session.info.get("school_id")
        entries = asking.school_entries(session) if school is not None else ()
        return school, lists, entries

    def build_if_changed(self, force: bool = False) -> FilterEngine | None:
        """A new engine when the lists or the school's entries changed since the last one."""
        with self._session() as session:
            fingerprint = self._lists_fingerprint(session)
            if not force and fingerprint == self._fingerprint:
                return None
            engine = build_engine(session, self.store)
        self._fingerprint = fingerprint
        return engine

    # -- running (on the loop) ------------------------------------------------------------

    async def start(self) -> None:
        """Read everything once, then bind and serve; raises ConfigError if it cannot."""
        engine = await asyncio.to_thread(self.build_if_changed, True)
        where = await asyncio.to_thread(self.read_where)
        if engine is None:  # build_if_changed(force=True) always builds
            raise ConfigError("the DNS filter could not build its engine")
        self.log = DecisionLog(self.inst.data_dir)
        self.log.start()
        self.bridge = DnsBridge(EngineHolder(engine), where, log=self.log)
        handler = DnsHandler(self.bridge, self.block, Forwarder(self.upstream))
        self.server = DnsServer(handler, ServerSettings(host=self.dns.host, port=self.dns.port))
        try:
            await self.server.start()
        except OSError as error:
            raise ConfigError(
                f"the DNS filter cannot listen on {self.dns.host} port {self.dns.port}: "
                f"{error.strerror or error}; choose another with --dns-port or turn it off "
                "with --no-dns"
            ) from None
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._refresh_forever())

    def changed(self) -> None:
        """Something about who is where changed (a sign-in): read it again now."""
        if self._wake is not None:
            self._wake.set()

    async def refresh(self, lists: bool = True) -> None:
        """Read who is where again and, with ``lists``, rebuild the engine if it changed."""
        bridge = self.bridge
        if bridge is None:
            return
        bridge.where = await asyncio.to_thread(self.read_where)
        if lists:
            engine = await asyncio.to_thread(self.build_if_changed)
            if engine is not None:
                bridge.holder.engine = engine
                log.info("DNS filter: lists or school entries changed; new engine in use")

    async def _refresh_forever(self) -> None:
        wake = self._wake
        if wake is None:
            return
        loop = asyncio.get_running_loop()
        lists_due = loop.time() + self.dns.lists_poll_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.dns.refresh_seconds):
                    await wake.wait()
            wake.clear()
            lists = loop.time() >= lists_due
            if lists:
                lists_due = loop.time() + self.dns.lists_poll_seconds
            try:
                await self.refresh(lists)
            except Exception as error:  # keep answering with what we have
                log.error(
                    "DNS filter refresh failed (still answering with the last good data): %s: %s",
                    type(error).__name__,
                    error,
                )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.server is not None:
            await self.server.close()
        if self.log is not None:
            await asyncio.to_thread(self.log.stop)
