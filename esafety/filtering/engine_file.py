"""A compiled :class:`FilterEngine` in one file, so other processes can load it (issue 4 §7).

The DNS filter's worker processes each need the engine, and a list reload must compile in
a process other than the ones serving (a compile in a thread of a serving process holds
the GIL for seconds). So the compiling process writes the engine here and the serving
processes load it: the domain table (tens of MB for a million names) is mapped from the
file, so every process shares the same pages; the rest (lists, policies, the school's
entries, a few kB) is pickled.

Layout: a 64-byte header (``ESENGINE``, format version, the length and SHA-256 of the
pickled part, where the domain table starts and how long it is), the pickled part, then
the domain table as :func:`domainset.save` writes it (its own header and checksum),
64-byte aligned. The file is written under a temporary name and renamed, so a reader sees
a whole engine or none. Only esafety writes these files, in its own data directory;
pickle is safe to read there for the same reason the database is.

Run as ``python -m esafety.filtering.engine_file OUT`` with the installation's pickled
:class:`~esafety.config.Settings` on standard input, it builds the engine from the
database and the stored lists and writes it to ``OUT`` (the DNS filter's reload process).
"""

from __future__ import annotations

import contextlib
import copyreg
import hashlib
import io
import mmap
import os
import pickle
import struct
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

from esafety.errors import InvalidInput
from esafety.filtering import domainset
from esafety.filtering.decision import FilterEngine
from esafety.filtering.index import CompiledIndex

__all__ = ["ENGINE_SUFFIX", "load_engine", "save_engine"]

MAGIC = b"ESENGINE"
VERSION = 1
ENGINE_SUFFIX = ".engine"
_HEADER = struct.Struct("<8sIIQQQ32s")  # magic, version, 0, pickle length, table at, length
_HEADER_SIZE = 128
_ALIGN = 64


def read_only(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    """Unpickles a read-only mapping view (pickle names this function, found by import)."""
    return MappingProxyType(mapping)


def _proxy(mapping: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return read_only, (dict(mapping),)


class _Pickler(pickle.Pickler):
    """Pickles read-only mapping views (the index's URL tables, the built-in policies)
    as what they are: pickle refuses them by default."""

    dispatch_table = copyreg.dispatch_table.copy()
    dispatch_table[MappingProxyType] = _proxy


def _parts(engine: FilterEngine) -> dict[str, Any]:
    index = engine.index
    return {
        "lists": index.lists,
        "listsets": index._listsets,
        "url_prefixes": index._url_prefixes,
        "url_hashes": index._url_hashes,
        "hash_algorithms": index._hash_algorithms,
        "regexes": index._regexes,
        "illegal_fault": index.illegal_fault,
        "rules": engine.rules,
        "gate": engine.gate,
    }


def save_engine(engine: FilterEngine, path: Path) -> None:
    """Write ``engine`` to ``path`` whole or not at all (rename over any older file)."""
    path = Path(path)
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(_parts(engine))
    pickled = buffer.getvalue()
    table = engine.index.domain_set.to_bytes()
    table_at = -(-(_HEADER_SIZE + len(pickled)) // _ALIGN) * _ALIGN
    header = _HEADER.pack(
        MAGIC, VERSION, 0, len(pickled), table_at, len(table), hashlib.sha256(pickled).digest()
    )
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(header.ljust(_HEADER_SIZE, b"\0"))
            out.write(pickled)
            out.write(b"\0" * (table_at - _HEADER_SIZE - len(pickled)))
            out.write(table)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _fault(path: Path, why: str) -> InvalidInput:
    return InvalidInput(f"cannot load the filter engine from {path}: {why}; compile it again")


def load_engine(path: Path) -> FilterEngine:
    """The engine saved at ``path``; its domain table stays mapped from the file.

    Raises InvalidInput for anything that is not a whole engine file of this version.
    """
    path = Path(path)
    with open(path, "rb") as file:
        try:
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise _fault(path, "the file is empty") from None
    if len(mapped) < _HEADER_SIZE:
        raise _fault(path, "the file is shorter than its header")
    magic, version, _zero, length, table_at, table_length, digest = _HEADER.unpack_from(mapped)
    if magic != MAGIC:
        raise _fault(path, "it is not an engine file")
    if version != VERSION:
        raise _fault(path, f"it is format version {version}, not {VERSION}")
    if _HEADER_SIZE + length > table_at or table_at + table_length != len(mapped):
        raise _fault(path, "its length does not match its header (truncated?)")
    pickled = mapped[_HEADER_SIZE : _HEADER_SIZE + length]
    if hashlib.sha256(pickled).digest() != digest:
        raise _fault(path, "its checksum does not match (the file is damaged)")
    parts = pickle.loads(pickled)  # noqa: S301 - our own file in our own data directory
    table = domainset.from_buffer(memoryview(mapped)[table_at:])
    index = CompiledIndex(
        lists=parts["lists"],
        listsets=parts["listsets"],
        domains=table,
        url_prefixes=parts["url_prefixes"],
        url_hashes=parts["url_hashes"],
        hash_algorithms=parts["hash_algorithms"],
        regexes=parts["regexes"],
        illegal_fault=parts["illegal_fault"],
    )
    return FilterEngine(index, parts["rules"], parts["gate"])


def _compile_main(out: Path) -> int:
    """The reload process: build from the database and the stored lists, write ``out``."""
    import logging

    from esafety.filtering.dns_service import build_for_dns
    from esafety.installation import Installation

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Background work: when it shares a core with a serving loop, the loop goes first.
    with contextlib.suppress(OSError):
        os.nice(10)
    settings = pickle.load(sys.stdin.buffer)  # noqa: S301 - from the parent, over a pipe
    inst = Installation(settings)
    try:
        started = time.perf_counter()
        engine = build_for_dns(inst, settings.dns.school)
        built = time.perf_counter() - started
        save_engine(engine, out)
    finally:
        inst.close()
    print(f"compiled {engine.index.domain_count} domains in {built:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m esafety.filtering.engine_file OUT < pickled-settings")
        sys.exit(2)
    # Through the module's own name: pickles must name esafety.filtering.engine_file's
    # functions, not __main__'s, or no other process could load them.
    from esafety.filtering import engine_file

    sys.exit(engine_file._compile_main(Path(sys.argv[1])))
