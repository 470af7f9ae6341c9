"""Where list entries live: one gzip file per list in the data directory.

A list can have millions of lines (UT1's adult folder alone has millions of names), so its
entries are never relational rows: a million-row insert would make every import slow,
bloat both databases and their backups, and gain nothing, since nobody queries single
entries — the filter compiles whole lists into an index (:mod:`esafety.filtering.index`).
The database keeps one metadata row per list (:mod:`esafety.filtering.model`), with the
SHA-256 of the stored copy; the entries, already parsed and normalised, are kept as
``DATA/lists/<key>.txt.gz``. Reading a stored copy back needs no parsing rules and cannot
meet a bad line. A trust with several filter nodes can later ship these files (or the
compiled index) over the message system and check them by their hash.

Each copy is written whole or not at all: a temporary file in the same folder, flushed
and ``fsync``-ed, then renamed over the old copy (atomic on POSIX) and the folder
``fsync``-ed. Until the rename, the last good copy stays in place, so a failed import or
download never leaves a list half-written or empty.

One line per entry, tab-separated: ``d<TAB>line<TAB>name`` (a domain), ``x`` (an AdBlock
``@@`` exception), ``u`` (a URL prefix), ``h<TAB>line<TAB>algorithm<TAB>digest`` and ``r``
(a regular expression that passed the safety check when it was imported).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from esafety.errors import InvalidInput
from esafety.filtering.lists.entries import (
    DomainEntry,
    HashAlgorithm,
    ListEntry,
    RegexEntry,
    UrlHashEntry,
    UrlPrefixEntry,
)

__all__ = ["ListStore", "StoredCopy"]

_SUFFIX = ".txt.gz"


@dataclass(frozen=True, slots=True)
class StoredCopy:
    path: Path
    entry_count: int
    sha256: str


class ListStore:
    """The stored copies of every list, in ``<data>/lists``."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "lists"

    def path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise InvalidInput(f"list store key {key!r}: expected a plain file name")
        return self.root / f"{key}{_SUFFIX}"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def write(
        self,
        key: str,
        entries: Iterable[ListEntry],
        *,
        progress: Callable[[int], None] | None = None,
        require_entries: bool = False,
    ) -> StoredCopy:
        """Store ``entries`` as the list's copy, replacing the old one only when all is written.

        An exception from ``entries`` (a parse that cannot go on) leaves the old copy, and
        so does an empty result when ``require_entries`` (a download that is an error page).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.path(key)
        handle, temporary = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=self.root)
        count = 0
        try:
            with os.fdopen(handle, "wb") as raw:
                # mtime=0: the same entries give the same bytes, so the same hash.
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as packed:
                    lines: list[str] = []
                    for entry in entries:
                        lines.append(_line(entry))
                        count += 1
                        if len(lines) >= 10_000:
                            packed.write("".join(lines).encode())
                            lines.clear()
                            if progress is not None:
                                progress(count)
                    packed.write("".join(lines).encode())
                if require_entries and count == 0:
                    raise InvalidInput(
                        "no usable entry in the new copy, so the last good copy is kept;"
                        " check that the source is still a list"
                    )
                raw.flush()
                os.fsync(raw.fileno())
            digest = _sha256(Path(temporary))
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        _fsync_folder(self.root)
        if progress is not None:
            progress(count)
        return StoredCopy(target, count, digest)

    def read(self, key: str) -> Iterator[ListEntry]:
        """The stored entries of a list, as the parsers gave them."""
        path = self.path(key)
        if not path.is_file():
            raise InvalidInput(
                f"list copy '{path.name}' is missing from {self.root}: import or update "
                "the list again"
            )
        return _entries(path)

    def remove(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()


def _line(entry: ListEntry) -> str:
    if type(entry) is DomainEntry:
        return f"{'x' if entry.exception else 'd'}\t{entry.line}\t{entry.domain}\n"
    if type(entry) is UrlPrefixEntry:
        return f"u\t{entry.line}\t{entry.url_key}\n"
    if type(entry) is UrlHashEntry:
        return f"h\t{entry.line}\t{entry.algorithm.value}\t{entry.digest}\n"
    if type(entry) is RegexEntry:
        if "\n" in entry.pattern:
            raise InvalidInput(f"line {entry.line}: a regular expression spans lines")
        return f"r\t{entry.line}\t{entry.pattern}\n"
    raise InvalidInput(f"cannot store list entry {entry!r}")


def _entries(path: Path) -> Iterator[ListEntry]:
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as handle:
        for text in handle:
            kind, line, value = text.rstrip("\n").split("\t", 2)
            number = int(line)
            if kind == "d":
                yield DomainEntry(value, number)
            elif kind == "x":
                yield DomainEntry(value, number, exception=True)
            elif kind == "u":
                yield UrlPrefixEntry(value, number)
            elif kind == "h":
                algorithm, digest = value.split("\t", 1)
                yield UrlHashEntry(HashAlgorithm(algorithm), digest, number)
            elif kind == "r":
                yield RegexEntry(value, number)
            else:
                raise InvalidInput(f"list copy '{path.name}' is damaged: unknown entry {kind!r}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_folder(folder: Path) -> None:
    # The rename is durable only once the folder's entry is on disk too.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
