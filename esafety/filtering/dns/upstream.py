"""Forwarding allowed questions to the school's upstream resolvers, with a cache.

Each question goes over UDP from a fresh socket (a random source port as well as a random
ID, so an off-path attacker must guess both to poison the cache), and again over TCP when
the answer comes back truncated. Resolvers are tried in the configured order, each within
its timeout. Questions already on their way upstream are not sent twice: later askers wait
for the same answer. At most ``max_in_flight`` questions are upstream at once; beyond that
a question is refused with :class:`UpstreamBusy` (the server drops it and counts it), so a
flood of random names cannot grow memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from esafety.errors import ConfigError
from esafety.filtering.dns.cache import (
    AnswerCache,
    CachedAnswer,
    CacheKey,
    UnusableAnswer,
    read_upstream_answer,
)
from esafety.filtering.dns.wire import FLAG_CD, FLAG_RD, MAX_MESSAGE, OUR_UDP_SIZE, TYPE_OPT

__all__ = ["Forwarder", "UpstreamBusy", "UpstreamSettings", "parse_resolver_address"]

_HEADER = struct.Struct("!HHHHHH")
_LENGTH = struct.Struct("!H")


class UpstreamBusy(Exception):
    """Too many questions already upstream; this one is dropped."""


def parse_resolver_address(text: str) -> tuple[str, int]:
    """``"192.0.2.1"``, ``"192.0.2.1:5353"``, ``"2001:db8::1"`` or ``"[2001:db8::1]:53"``."""
    value = text.strip()
    port = 53
    host = value
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ConfigError(
                    f"upstream resolver {text!r}: write an IPv6 address as [address]:port"
                )
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        if not port_text.isdigit():
            raise ConfigError(f"upstream resolver {text!r}: the port must be a number")
        port = int(port_text)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(
            f"upstream resolver {text!r} is not an IP address: give the resolver's address "
            "(a name would need a resolver to find it)"
        ) from None
    if not 0 < port < 65536:
        raise ConfigError(f"upstream resolver {text!r}: port {port} is not between 1 and 65535")
    return str(address), port


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """Where allowed questions go and how long to wait for them."""

    resolvers: tuple[tuple[str, int], ...]
    timeout: float = 2.0  # per resolver and transport
    max_in_flight: int = 2048
    max_ttl: int = 86_400
    negative_ttl: int = 60  # an empty answer without an SOA to say how long

    @classmethod
    def from_addresses(cls, addresses: Sequence[str], **options: float) -> UpstreamSettings:
        if not addresses:
            raise ConfigError("the DNS filter needs at least one upstream resolver address")
        resolvers = tuple(parse_resolver_address(a) for a in addresses)
        return cls(resolvers, **options)  # type: ignore[arg-type]


class Forwarder:
    """Answers from the cache, or from upstream (stored in the cache on the way back)."""

    def __init__(
        self,
        settings: UpstreamSettings,
        cache: AnswerCache | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.cache = cache if cache is not None else AnswerCache(clock=clock)
        self.clock = clock
        self._in_flight: dict[CacheKey, asyncio.Future[CachedAnswer | None]] = {}
        self.timeouts = 0
        self.failures = 0
        self.busy = 0
        self.tcp_retries = 0

    def cached(self, key: CacheKey) -> CachedAnswer | None:
        return self.cache.get(key, self.clock())

    async def resolve(
        self, key: CacheKey, question: bytes, cd: bool = False
    ) -> CachedAnswer | None:
        """The answer to ``question`` (lowercase, as in the cache key), or None if every
        resolver failed. Raises :class:`UpstreamBusy` when too much is already upstream."""
        waiting = self._in_flight.get(key)
        if waiting is not None:
            return await asyncio.shield(waiting)
        if len(self._in_flight) >= self.settings.max_in_flight:
            self.busy += 1
            raise UpstreamBusy(f"{len(self._in_flight)} questions already upstream")
        future: asyncio.Future[CachedAnswer | None] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            answer = await self._ask_resolvers(question, key[2], cd)
            if answer is not None:
                self.cache.put(key, answer, self.clock())
            future.set_result(answer)
            return answer
        except BaseException:
            future.set_result(None)
            raise
        finally:
            del self._in_flight[key]

    async def _ask_resolvers(self, question: bytes, do: bool, cd: bool) -> CachedAnswer | None:
        for resolver in self.settings.resolvers:
            query_id = secrets.randbits(16)
            wire = _query(query_id, question, do, cd)
            try:
                answer = await self._exchange_udp(resolver, wire, query_id, question)
                if answer.truncated:
                    self.tcp_retries += 1
                    answer = await self._exchange_tcp(resolver, wire, query_id, question)
                return answer
            except TimeoutError:
                self.timeouts += 1
            except (OSError, UnusableAnswer, asyncio.IncompleteReadError):
                self.failures += 1
        return None

    def _read(self, wire: bytes, query_id: int, question: bytes) -> CachedAnswer:
        return read_upstream_answer(
            wire,
            query_id,
            question,
            max_ttl=self.settings.max_ttl,
            negative_ttl=self.settings.negative_ttl,
        )

    async def _exchange_udp(
        self, resolver: tuple[str, int], wire: bytes, query_id: int, question: bytes
    ) -> CachedAnswer:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in resolver[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            # Connected: the kernel discards datagrams from anyone but the resolver.
            sock.connect(resolver)
            await loop.sock_sendall(sock, wire)
            deadline = loop.time() + self.settings.timeout
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    reply = await loop.sock_recv(sock, MAX_MESSAGE)
                try:
                    return self._read(reply, query_id, question)
                except UnusableAnswer:
                    continue  # a stray or forged datagram: keep waiting for the real one

    async def _exchange_tcp(
        self, resolver: tuple[str, int], wire: bytes, query_id: int, question: bytes
    ) -> CachedAnswer:
        async with asyncio.timeout(self.settings.timeout):
            reader, writer = await asyncio.open_connection(*resolver)
            try:
                writer.write(_LENGTH.pack(len(wire)) + wire)
                await writer.drain()
                (length,) = _LENGTH.unpack(await reader.readexactly(2))
                reply = await reader.readexactly(length)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        return self._read(reply, query_id, question)


def _query(query_id: int, question: bytes, do: bool, cd: bool) -> bytes:
    flags = FLAG_RD | (FLAG_CD if cd else 0)
    opt = b"\x00" + struct.pack("!HHIH", TYPE_OPT, OUR_UDP_SIZE, 0x8000 if do else 0, 0)
    return _HEADER.pack(query_id, flags, 1, 0, 0, 1) + question + opt
