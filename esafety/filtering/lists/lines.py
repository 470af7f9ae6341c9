"""Reading a list line by line: a file (plain or gzip) or any iterable of lines.

Lines are numbered from 1, lose their line ending (LF or CRLF) and, on line 1, a UTF-8
byte-order mark. A line that is not UTF-8 (a Windows-1252 export, say) becomes a
:class:`ListProblem` and reading goes on: one bad line never stops an import.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from esafety.errors import InvalidInput
from esafety.filtering.lists.entries import ListProblem

__all__ = ["MAX_LINE", "ListSource", "numbered_lines", "open_list_file"]

#: A list may be a path (str or Path) or lines already in memory (str or bytes).
ListSource = str | os.PathLike[str] | Iterable[str | bytes]

#: Longer lines are reported, not parsed: no real name, URL or safe pattern is this long.
MAX_LINE = 4096

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = "\ufeff"


def open_list_file(path: str | os.PathLike[str]) -> IO[bytes] | gzip.GzipFile:
    """Open a list file for reading as bytes, unpacking gzip (large UT1 files ship gzipped)."""
    try:
        with Path(path).open("rb") as probe:
            magic = probe.read(2)
        if magic == _GZIP_MAGIC:
            return gzip.open(path, "rb")
        return Path(path).open("rb")
    except OSError as error:
        raise InvalidInput(
            f"cannot read list file '{path}': {error.strerror or error}; check the path"
        ) from None


def _decode(number: int, raw: str | bytes) -> str | ListProblem:
    if isinstance(raw, bytes):
        raw = raw.rstrip(b"\r\n")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            shown = raw.decode("utf-8", "backslashreplace")
            return ListProblem(
                number,
                shown[:200],
                f"not UTF-8 text (byte 0x{raw[error.start]:02x} at column {error.start + 1});"
                " save the list as UTF-8",
            )
    else:
        text = raw.rstrip("\r\n")
    if number == 1 and text.startswith(_BOM):
        text = text[1:]
    if len(text) > MAX_LINE:
        return ListProblem(number, text[:200], f"line longer than {MAX_LINE} characters")
    return text


def _lines(source: Iterable[str | bytes]) -> Iterator[tuple[int, str] | ListProblem]:
    for number, raw in enumerate(source, start=1):
        decoded = _decode(number, raw)
        if isinstance(decoded, ListProblem):
            yield decoded
        else:
            yield number, decoded


def numbered_lines(source: ListSource) -> Iterator[tuple[int, str] | ListProblem]:
    """Yield (line number, text) for each line, or a ListProblem for a line that is not text."""
    if isinstance(source, str | os.PathLike):
        with open_list_file(source) as handle:
            yield from _lines(handle)
    else:
        yield from _lines(source)
