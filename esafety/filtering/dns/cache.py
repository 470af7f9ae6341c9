"""Upstream answers kept for their time to live, bounded in entries and in octets.

An upstream answer is read once, when it arrives (:func:`read_upstream_answer`): its
rcode, the answer and authority sections as they came (the additional section is dropped:
it is optional for a stub, and cutting the tail keeps every compression pointer valid),
where each TTL sits, and the CNAME targets in the answer (the filter checks each one for
the asking client on every use: policies differ per person). Serving it again is a header,
the client's own question and these octets with the TTLs counted down.
"""

from __future__ import annotations

import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from esafety.filtering.dns.wire import (
    FLAG_AD,
    FLAG_QR,
    FLAG_TC,
    RCODE_NOERROR,
    RCODE_NXDOMAIN,
    TYPE_CNAME,
    TYPE_OPT,
    read_name,
    skip_name,
)

__all__ = ["AnswerCache", "CacheKey", "CachedAnswer", "UnusableAnswer", "read_upstream_answer"]

#: (lowercase name, query type, DNSSEC OK bit)
CacheKey = tuple[str, int, bool]

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
_TTL = struct.Struct("!I")


class UnusableAnswer(Exception):
    """An upstream reply that does not answer our question (or cannot be read)."""


@dataclass(slots=True)
class CachedAnswer:
    """One upstream answer, ready to be replayed to any client that asks the same question."""

    rcode: int
    ad: bool
    truncated: bool
    question: bytes  # as we asked it upstream; the body's pointers assume it is at offset 12
    body: bytes  # answer and authority records
    an: int
    ns: int
    ttl_offsets: tuple[int, ...]  # offsets of TTL fields within body
    ttls: tuple[int, ...]
    cname_targets: tuple[str, ...]
    lifetime: int  # seconds it may be kept; 0: not at all
    stored_at: float = 0.0
    _built_age: int = field(default=-1, repr=False)
    _built: bytes = field(default=b"", repr=False)

    @property
    def size(self) -> int:
        return len(self.body) + len(self.question) + 64

    def body_at(self, now: float) -> bytes:
        """The records with every TTL reduced by the whole seconds since they were stored."""
        age = int(now - self.stored_at)
        if age <= 0 or not self.ttl_offsets:
            return self.body
        if age == self._built_age:
            return self._built
        out = bytearray(self.body)
        for offset, ttl in zip(self.ttl_offsets, self.ttls, strict=True):
            _TTL.pack_into(out, offset, ttl - age if ttl > age else 0)
        self._built_age, self._built = age, bytes(out)
        return self._built

    def message_at(self, now: float, query_id: int = 0) -> bytes:
        """The whole answer as a message (for the slower paths that hand it to dnspython)."""
        flags = FLAG_QR | self.rcode | (FLAG_AD if self.ad else 0)
        header = _HEADER.pack(query_id, flags, 1, self.an, self.ns, 0)
        return header + self.question + self.body_at(now)


def read_upstream_answer(
    wire: bytes,
    query_id: int,
    question: bytes,
    *,
    max_ttl: int,
    negative_ttl: int,
) -> CachedAnswer:
    """Check that ``wire`` answers our ``question`` (sent with ``query_id``) and read it."""
    if len(wire) < 12:
        raise UnusableAnswer("shorter than a header")
    rid, flags, qd, an, ns, _ar = _HEADER.unpack_from(wire)
    if rid != query_id or not flags & FLAG_QR or qd != 1:
        raise UnusableAnswer("not an answer to our query")
    qend = 12 + len(question)
    if wire[12:qend].lower() != question.lower():
        raise UnusableAnswer("answers another question")
    rcode = flags & 0xF
    pos = qend
    offsets: list[int] = []
    ttls: list[int] = []
    targets: list[str] = []
    end = len(wire)
    try:
        for index in range(an + ns):
            pos = skip_name(wire, pos)
            if pos + 10 > end:
                raise UnusableAnswer("record runs past the end")
            rtype, _rclass, ttl, rdlength = _RR_FIXED.unpack_from(wire, pos)
            if rtype == TYPE_OPT:
                raise UnusableAnswer("OPT record outside the additional section")
            offsets.append(pos + 4 - qend)
            ttls.append(ttl if ttl <= 0x7FFFFFFF else 0)  # RFC 2181 §8: top bit set means 0
            if rtype == TYPE_CNAME and index < an:
                targets.append(read_name(wire, pos + 10)[0])
            pos += 10 + rdlength
            if pos > end:
                raise UnusableAnswer("record data runs past the end")
    except ValueError as exc:
        raise UnusableAnswer(str(exc)) from None
    if rcode in (RCODE_NOERROR, RCODE_NXDOMAIN) and not flags & FLAG_TC:
        lifetime = min(min(ttls) if ttls else negative_ttl, max_ttl)
    else:
        lifetime = 0  # SERVFAIL, REFUSED, truncated: passed on, never kept
    return CachedAnswer(
        rcode=rcode,
        ad=bool(flags & FLAG_AD),
        truncated=bool(flags & FLAG_TC),
        question=question,
        body=wire[qend:pos],
        an=an,
        ns=ns,
        ttl_offsets=tuple(offsets),
        ttls=tuple(ttls),
        cname_targets=tuple(targets),
        lifetime=lifetime,
    )


class AnswerCache:
    """Least-recently-used answers, bounded by count and by octets; expired ones vanish."""

    def __init__(
        self,
        max_entries: int = 100_000,
        max_bytes: int = 64 << 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self._entries: OrderedDict[CacheKey, CachedAnswer] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, key: CacheKey, now: float) -> CachedAnswer | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if now - entry.stored_at >= entry.lifetime:
            self._remove(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: CacheKey, entry: CachedAnswer, now: float) -> None:
        if entry.lifetime <= 0 or entry.size > self.max_bytes:
            return
        entry.stored_at = now
        if key in self._entries:
            self._remove(key)
        self._entries[key] = entry
        self._bytes += entry.size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._remove(oldest)
            self.evictions += 1

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _remove(self, key: CacheKey) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.size
