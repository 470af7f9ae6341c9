"""The list store: entries round-trip through the gzip copy; a failed write keeps the old."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esafety.errors import InvalidInput
from esafety.filtering.lists.entries import (
    DomainEntry,
    HashAlgorithm,
    ListEntry,
    RegexEntry,
    UrlHashEntry,
    UrlPrefixEntry,
)
from esafety.filtering.store import ListStore

ENTRIES: list[ListEntry] = [
    DomainEntry("gambling.example", 1),
    DomainEntry("ok.gambling.example", 2, exception=True),
    UrlPrefixEntry("example.org/bad/", 3),
    UrlHashEntry(HashAlgorithm.SHA256, "ab" * 32, 4),
    RegexEntry(r"^casino[0-9]+\.example$", 5),
]


def test_entries_round_trip(tmp_path: Path) -> None:
    store = ListStore(tmp_path)
    copy = store.write("7", ENTRIES)
    assert copy.path == tmp_path / "lists" / "7.txt.gz"
    assert copy.entry_count == 5
    assert list(store.read("7")) == ENTRIES
    # The same entries give the same bytes, so filter nodes can compare hashes.
    assert store.write("8", ENTRIES).sha256 == copy.sha256


def _failing() -> Iterator[ListEntry]:
    yield DomainEntry("new.example", 1)
    raise OSError("disk full")


def test_a_failed_write_keeps_the_last_good_copy(tmp_path: Path) -> None:
    store = ListStore(tmp_path)
    store.write("1", ENTRIES)
    with pytest.raises(OSError, match="disk full"):
        store.write("1", _failing())
    assert list(store.read("1")) == ENTRIES
    assert [p.name for p in (tmp_path / "lists").iterdir()] == ["1.txt.gz"]


def test_an_empty_copy_is_refused_when_entries_are_required(tmp_path: Path) -> None:
    store = ListStore(tmp_path)
    store.write("1", ENTRIES)
    with pytest.raises(InvalidInput, match="last good copy is kept"):
        store.write("1", [], require_entries=True)
    assert len(list(store.read("1"))) == 5
    assert store.write("2", []).entry_count == 0


def test_a_missing_copy_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="import or update the list again"):
        list(ListStore(tmp_path).read("3"))


def test_keys_cannot_leave_the_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        ListStore(tmp_path).path("../x")


def test_a_million_names_stay_small(tmp_path: Path) -> None:
    store = ListStore(tmp_path)
    names = (DomainEntry(f"site{n}.example.com", n) for n in range(1, 200_001))
    seen: list[int] = []
    copy = store.write("big", names, progress=seen.append)
    assert copy.entry_count == 200_000
    assert seen[-1] == 200_000 and len(seen) > 10
    assert copy.path.stat().st_size < 2_000_000
