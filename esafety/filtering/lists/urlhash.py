"""Hashed URL lists: one hex digest per line, as the IWF distributes its URL list.

The algorithm is told by the length: 32 hex digits MD5, 40 SHA-1, 64 SHA-256. Digests are
stored in lower case; what was hashed (the URL as ``urls.url_hashes`` writes it) is decided
by the list's publisher, and the matcher hashes the URL the same ways.
"""

from __future__ import annotations

import string
from collections.abc import Iterator

from esafety.filtering.lists.domains import one_value_per_line
from esafety.filtering.lists.entries import (
    HashAlgorithm,
    ListItem,
    ListProblem,
    UrlHashEntry,
)
from esafety.filtering.lists.lines import ListSource

__all__ = ["ALGORITHM_BY_LENGTH", "parse_urlhash"]

ALGORITHM_BY_LENGTH = {
    32: HashAlgorithm.MD5,
    40: HashAlgorithm.SHA1,
    64: HashAlgorithm.SHA256,
}

_HEX = frozenset(string.hexdigits)


def _digest(number: int, text: str, value: str) -> ListItem:
    if not _HEX.issuperset(value):
        bad = next(character for character in value if character not in _HEX)
        return ListProblem(number, text, f"not a hex digest (found {bad!r})")
    algorithm = ALGORITHM_BY_LENGTH.get(len(value))
    if algorithm is None:
        return ListProblem(
            number,
            text,
            f"{len(value)} hex digits: expected 32 (MD5), 40 (SHA-1) or 64 (SHA-256)",
        )
    return UrlHashEntry(algorithm, value.lower(), number)


def parse_urlhash(source: ListSource) -> Iterator[ListItem]:
    return one_value_per_line(
        source, "digest", lambda value, number, text: _digest(number, text, value)
    )
