"""Domain sets: normalised names (as stable 64-bit hashes) mapped to small ints, in one buffer.

The compiled index keeps its 2 million listed domains here (issue 4: ≤ 150 MB, and a
look-up of every parent of a host for ≥ 1,000,000 decisions/s). The names themselves
are not kept, only their hashes; the name that matched is the part of the looked-up host
at the offset :meth:`DomainSet.match` returns.

The hash is stable (the same in every process, unlike ``hash()``), so a set written with
:func:`save` can be loaded with :func:`load` by the DNS worker processes, which map the
same file and share its pages. The chance that an unlisted host's parent collides with
one of 2 million listed names is about 2e6 × 5 / 2^64 ≈ 5e-13 a query.

The work is done by the C extension ``esafety.filtering._domainset`` when it is built
(``pip install -e .`` builds it); otherwise by :class:`PyDomainSet` here, which reads
and writes the same buffer format with the same hash and gives the same answers, only
slower. The format is described at the top of ``_domainset.c``.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import tempfile
from array import array
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from esafety.errors import InvalidInput

__all__ = [
    "HASH_ID",
    "NATIVE",
    "DomainSet",
    "DomainSetLike",
    "PyDomainSet",
    "hash_name",
    "load",
    "match_both",
    "py_hash_name",
    "save",
]

MAGIC = b"ESDOMSET"
VERSION = 1
#: FNV-1a 64 over the UTF-8 bytes from last to first, then MurmurHash3's fmix64.
HASH_ID = 1
HEADER = 64
_HEADER = struct.Struct("<8sIIQQQI20x")
_M64 = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
MAX_PARENTS = 128


def _finish(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _M64
    h ^= h >> 33
    return h or 1


def py_hash_name(name: str) -> int:
    """The stable 64-bit key of a normalised name (pure Python; same as the C one)."""
    h = _FNV_OFFSET
    for byte in reversed(name.encode()):
        h = ((h ^ byte) * _FNV_PRIME) & _M64
    return _finish(h)


def _checksum(data: memoryview) -> int:
    h = _FNV_OFFSET ^ len(data)
    whole = len(data) - len(data) % 8
    for word in data[:whole].cast("Q"):
        h = ((h ^ word) * _FNV_PRIME) & _M64
        h ^= h >> 29
    for byte in data[whole:]:
        h = ((h ^ byte) * _FNV_PRIME) & _M64
    return _finish(h)


def _fault(why: str) -> InvalidInput:
    return InvalidInput(f"cannot load the domain set: {why}")


class DomainSetLike(Protocol):
    """What the index needs of a domain set (the C type and :class:`PyDomainSet`)."""

    @property
    def capacity(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def value_limit(self) -> int: ...
    def __len__(self) -> int: ...
    def get(self, key: int, /) -> int | None: ...
    def match(self, host: str, /) -> tuple[tuple[int, int], ...]: ...
    def to_bytes(self) -> bytes: ...


class PyDomainSet:
    """The pure-Python domain set: same buffer, same hash, same answers as the C one."""

    __slots__ = ("_buffer", "_count", "_keys", "_mask", "_values", "value_limit")
    _count: int
    _mask: int
    value_limit: int

    def __init__(self, buffer: bytes | bytearray | memoryview | mmap.mmap) -> None:
        if sys.byteorder != "little":
            raise _fault("the format is little-endian and this machine is not")
        view = memoryview(buffer).cast("B")
        if len(view) < HEADER or bytes(view[:8]) != MAGIC:
            raise _fault(
                "it does not start with the domain-set header (not a domain-set file, "
                "or an empty or truncated one)"
            )
        _magic, version, hash_id, capacity, count, check, limit = _HEADER.unpack(view[:HEADER])
        if version != VERSION:
            raise _fault("it is written in another format version; compile the lists again")
        if hash_id != HASH_ID:
            raise _fault("it uses another name hash; compile the lists again")
        if capacity < 8 or capacity > 1 << 40 or capacity & (capacity - 1) or count >= capacity:
            raise _fault("its header gives an impossible table size")
        if len(view) != HEADER + capacity * 12:
            raise _fault("its length does not match its header (truncated or padded)")
        if _checksum(view[HEADER:]) != check:
            raise _fault("its checksum does not match (the file is damaged)")
        self._buffer = buffer
        self._keys = view[HEADER : HEADER + capacity * 8].cast("Q")
        self._values = view[HEADER + capacity * 8 :].cast("I")
        self._mask = capacity - 1
        self._count = count
        self.value_limit = limit

    @classmethod
    def from_buffer(cls, buffer: bytes | bytearray | memoryview | mmap.mmap) -> PyDomainSet:
        return cls(buffer)

    @classmethod
    def build(cls, pairs: Mapping[int, int] | Iterable[tuple[int, int]]) -> PyDomainSet:
        items = list(pairs.items() if isinstance(pairs, Mapping) else pairs)
        capacity = 8
        while capacity * 5 < len(items) * 8:
            capacity <<= 1
        keys = array("Q", bytes(8 * capacity))
        values = array("I", bytes(4 * capacity))
        mask, count, limit = capacity - 1, 0, 0
        for key, value in items:
            if not 0 < key <= _M64 or not 0 <= value < 0xFFFFFFFF:
                raise ValueError(
                    "build(): key must be a non-zero name hash and value below 2**32 - 1 "
                    f"(got key {key}, value {value})"
                )
            slot = key & mask
            while keys[slot] not in (0, key):
                slot = (slot + 1) & mask
            if keys[slot] == 0:
                keys[slot] = key
                count += 1
            values[slot] = value
            limit = max(limit, value + 1)
        body = keys.tobytes() + values.tobytes()
        check = _checksum(memoryview(body))
        header = _HEADER.pack(MAGIC, VERSION, HASH_ID, capacity, count, check, limit)
        return cls(header + body)

    @property
    def capacity(self) -> int:
        return self._mask + 1

    @property
    def nbytes(self) -> int:
        return HEADER + self.capacity * 12

    def __len__(self) -> int:
        return self._count

    def _find(self, key: int) -> int:
        keys, mask = self._keys, self._mask
        slot = key & mask
        while True:
            here = keys[slot]
            if here == key:
                return slot
            if here == 0:
                return -1
            slot = (slot + 1) & mask

    def get(self, key: int, /) -> int | None:
        slot = self._find(key) if key else -1
        return None if slot < 0 else self._values[slot]

    def match(self, host: str, /) -> tuple[tuple[int, int], ...]:
        if not isinstance(host, str):
            raise TypeError(f"a domain name must be str, not {type(host).__name__}")
        if not host:
            return ()
        if host[-1] in "0123456789]" or ":" in host:
            starts = [0]  # an IP address is looked up whole only
        else:
            starts = [0, *(n + 1 for n, ch in enumerate(host) if ch == ".")]
        if len(starts) > MAX_PARENTS:
            raise ValueError("cannot look up a host with more than 127 labels")
        found = []
        for start in starts:
            slot = self._find(py_hash_name(host[start:]))
            if slot >= 0:
                found.append((start, self._values[slot]))
        return tuple(found)

    def to_bytes(self) -> bytes:
        return bytes(self._buffer)


try:
    from esafety.filtering import _domainset
except ImportError:  # not built (a plain source checkout): the pure-Python fallback
    _domainset = None  # type: ignore[assignment]

#: True when the C extension does the work.
NATIVE = _domainset is not None


class _Factory(Protocol):
    def build(self, pairs: Mapping[int, int] | Iterable[tuple[int, int]], /) -> DomainSetLike: ...
    def from_buffer(
        self, buffer: bytes | bytearray | memoryview | mmap.mmap, /
    ) -> DomainSetLike: ...


Found = tuple[tuple[int, int], ...]


def py_match_both(
    first: DomainSetLike, second: DomainSetLike, host: str
) -> tuple[Found, Found] | None:
    """None when neither set holds a parent of ``host``, else both sets' matches."""
    a, b = first.match(host), second.match(host)
    return (a, b) if a or b else None


if _domainset is not None:
    DomainSet: _Factory = _domainset.DomainSet
    hash_name = _domainset.hash_name
    match_both: Callable[[Any, Any, str], tuple[Found, Found] | None] = _domainset.match_both
else:
    DomainSet = PyDomainSet
    hash_name = py_hash_name
    match_both = py_match_both


def from_buffer(buffer: bytes | bytearray | memoryview | mmap.mmap) -> DomainSetLike:
    """A set over ``buffer`` (from ``to_bytes()``); a damaged one raises InvalidInput."""
    try:
        return DomainSet.from_buffer(buffer)
    except ValueError as error:  # the C module's ValueError → the project's error
        raise InvalidInput(str(error)) from None


def save(domains: DomainSetLike, path: Path) -> None:
    """Write the set to ``path`` whole or not at all (a reader never sees half a file)."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(domains.to_bytes())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load(path: Path) -> DomainSetLike:
    """Map a saved set read-only: processes loading the same file share its pages."""
    with open(path, "rb") as file:
        try:
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise _fault(f"{path} is empty") from None
    return from_buffer(mapped)
