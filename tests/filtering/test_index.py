"""The compiled index: label-boundary matching, list sets, exceptions, URLs, faults."""

from __future__ import annotations

import hashlib

import pytest

from esafety.errors import InvalidInput
from esafety.filtering.categories import Category
from esafety.filtering.index import FilterList, ListInfo, MatchKind, compile_index
from esafety.filtering.lists import DomainEntry, RegexEntry, UrlHashEntry, UrlPrefixEntry
from esafety.filtering.lists.entries import HashAlgorithm
from esafety.filtering.urls import parse_url

GAMBLING = ListInfo("gamb", "Gambling", Category.GAMBLING)
GAMES = ListInfo("games", "Games", Category.GAMES)
IWF = ListInfo("iwf", "IWF", Category.PORNOGRAPHY, illegal=True)


def domains(*names: str, exception: bool = False) -> list[DomainEntry]:
    return [DomainEntry(name, n, exception) for n, name in enumerate(names, 1)]


def test_label_boundary() -> None:
    index = compile_index([FilterList(GAMBLING, domains("example.com"))])
    assert [m.listed for m in index.match_host("example.com")] == ["example.com"]
    assert [m.listed for m in index.match_host("a.b.example.com")] == ["example.com"]
    assert index.match_host("badexample.com") == ()
    assert index.match_host("example.com.evil.net") == ()
    assert index.match_host("com") == ()


def test_every_list_naming_a_parent_is_reported_most_specific_first() -> None:
    index = compile_index(
        [
            FilterList(GAMBLING, domains("example.com", "bet.example.com")),
            FilterList(GAMES, domains("bet.example.com")),
        ]
    )
    matches = index.match_host("www.bet.example.com")
    assert [(m.listed, [i.id for i in m.lists]) for m in matches] == [
        ("bet.example.com", ["gamb", "games"]),
        ("example.com", ["gamb"]),
    ]
    assert matches[0].categories == {Category.GAMBLING, Category.GAMES}


def test_ip_address_matches_only_itself() -> None:
    index = compile_index([FilterList(GAMBLING, domains("10.0.0.1", "1"))])
    assert [m.listed for m in index.match_host("10.0.0.1")] == ["10.0.0.1"]
    assert index.match_host("192.168.0.1") == ()


def test_adblock_exception_lifts_its_own_list_for_the_name_and_below() -> None:
    entries = [*domains("example.com"), *domains("safe.example.com", exception=True)]
    index = compile_index(
        [FilterList(GAMBLING, entries), FilterList(GAMES, domains("example.com"))]
    )
    lists = [[i.id for i in m.lists] for m in index.match_host("www.safe.example.com")]
    assert lists == [["games"]]  # gambling lifted, games (another list) still matches
    assert [m.listed for m in index.match_host("other.example.com")] == ["example.com"]


def test_exceptions_never_lift_an_illegal_list() -> None:
    entries = [*domains("abuse.example"), *domains("abuse.example", exception=True)]
    index = compile_index([FilterList(IWF, entries)])
    (match,) = index.match_host("abuse.example")
    assert match.illegal


def test_url_prefix_hash_and_regex_entries() -> None:
    page = "bad.example/path/page.html"
    digest = hashlib.sha256(page.encode()).hexdigest()
    index = compile_index(
        [
            FilterList(GAMBLING, [UrlPrefixEntry("shop.example/casino", 1)]),
            FilterList(IWF, [UrlHashEntry(HashAlgorithm.SHA256, digest, 1)]),
            FilterList(GAMES, [RegexEntry(r"^games?[0-9]+\.", 1)]),
        ]
    )
    kinds = [m.kind for m in index.match_url(parse_url("https://shop.example/casino/roulette"))]
    assert kinds == [MatchKind.URL_PREFIX]
    assert index.match_url(parse_url("https://shop.example/books")) == ()
    (hit,) = index.match_url(parse_url("http://BAD.example/path/page.html#x"))
    assert hit.kind is MatchKind.URL_HASH and hit.illegal
    assert [m.kind for m in index.match_host("games12.example")] == [MatchKind.REGEX]
    # A URL-level entry cannot apply to a host alone (issue 4 §3: that waits for the proxy).
    assert index.match_host("bad.example") == ()


def test_regex_input_is_capped() -> None:
    index = compile_index([FilterList(GAMES, [RegexEntry(r"x$", 1)])])
    assert index.match_host("a" * 3000 + "x") == ()


def test_duplicate_list_ids_are_refused() -> None:
    with pytest.raises(InvalidInput, match="used twice"):
        compile_index([FilterList(GAMES, []), FilterList(GAMES, [])])


def test_fault_in_an_illegal_list_is_recorded_not_lost() -> None:
    def broken():
        yield DomainEntry("abuse.example", 1)
        raise OSError("disk read failed")

    index = compile_index([FilterList(IWF, broken())])
    assert index.illegal_fault is not None
    assert "disk read failed" in index.illegal_fault


def test_fault_in_an_ordinary_list_is_an_error() -> None:
    def broken():
        raise OSError("disk read failed")
        yield

    with pytest.raises(OSError, match="disk read failed"):
        compile_index([FilterList(GAMES, broken())])
