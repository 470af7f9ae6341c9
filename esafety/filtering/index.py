"""The compiled index: every list's entries in one immutable structure for the hot path.

Memory is the constraint (issue 4 figures: 2,000,000 domains in at most 150 MB; a
Python set of the names alone takes about 200 MB). So names are not kept: each listed
domain is stored as a stable 64-bit hash of its normal form, mapped to a small "list-set"
id saying which lists name it (most names are in one list, so ids are small shared ints),
in a :mod:`~esafety.filtering.domainset` (one flat buffer, 12 bytes a slot, walked by a
small C extension). The name that matched is recovered from the host being looked up (it
is one of the host's parent domains), so a decision can still say *which* listed name
decided. The hash is the same in every process, so the domain table can be saved and
loaded by the DNS worker processes (``domainset.save``/``load``).

Lookup walks the host's parent domains (``a.b.example.com``, ``b.example.com``,
``example.com``, ``com``), so a listed name matches itself and its subdomains at a label
boundary only. AdBlock ``@@`` exceptions in a list cancel that list's match for the
excepted name and its subdomains; illegal-content lists ignore them (nothing lifts them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from esafety.errors import InvalidInput
from esafety.filtering.categories import Category
from esafety.filtering.domainset import DomainSet, DomainSetLike, hash_name
from esafety.filtering.lists.entries import (
    DomainEntry,
    ListEntry,
    RegexEntry,
    UrlHashEntry,
    UrlPrefixEntry,
)
from esafety.filtering.urls import ParsedUrl, url_hashes, url_key

__all__ = [
    "MAX_REGEX_INPUT",
    "CompiledIndex",
    "FilterList",
    "ListInfo",
    "ListSet",
    "Match",
    "MatchKind",
    "compile_index",
    "domain_matches",
    "name_key",
]

#: Regular expressions run on at most this many characters of a host or URL.
MAX_REGEX_INPUT = 2048


def name_key(name: str) -> int:
    """The key a normalised name is stored under (stable across processes)."""
    return hash_name(name)


@dataclass(frozen=True, slots=True)
class ListInfo:
    """A list as a decision names it: ``illegal`` lists are never lifted by anything."""

    id: str
    name: str
    category: Category
    illegal: bool = False


@dataclass(frozen=True, slots=True)
class FilterList:
    """A list to compile: its description and its parsed entries (consumed once)."""

    info: ListInfo
    entries: Iterable[ListEntry]


@dataclass(frozen=True, slots=True)
class ListSet:
    """The lists that name one key: ``blocking`` lists match, ``excepting`` lists lift."""

    blocking: tuple[ListInfo, ...]
    excepting: tuple[ListInfo, ...]
    categories: frozenset[Category]
    illegal: bool


class MatchKind(StrEnum):
    DOMAIN = "domain"
    URL_PREFIX = "url_prefix"
    URL_HASH = "url_hash"
    REGEX = "regex"


@dataclass(frozen=True, slots=True)
class Match:
    """One listed thing that matched: the listed name, URL prefix, digest or pattern."""

    kind: MatchKind
    listed: str
    lists: tuple[ListInfo, ...]

    @property
    def illegal(self) -> bool:
        return any(info.illegal for info in self.lists)

    @property
    def categories(self) -> frozenset[Category]:
        return frozenset(info.category for info in self.lists)


class CompiledIndex:
    """Immutable once built (by :func:`compile_index`); shared by reference, never changed."""

    __slots__ = (
        "_domains",
        "_hash_algorithms",
        "_listsets",
        "_regexes",
        "_url_hashes",
        "_url_prefixes",
        "domain_count",
        "has_regexes",
        "illegal_fault",
        "lists",
    )

    def __init__(
        self,
        lists: tuple[ListInfo, ...],
        listsets: tuple[ListSet, ...],
        domains: DomainSetLike,
        url_prefixes: Mapping[str, tuple[tuple[str, int], ...]],
        url_hashes: Mapping[str, int],
        hash_algorithms: tuple[str, ...],
        regexes: tuple[tuple[re.Pattern[str], str, int], ...],
        illegal_fault: str | None = None,
    ) -> None:
        self.lists = lists
        self._listsets = listsets
        self._domains = domains
        self._url_prefixes = url_prefixes
        self._url_hashes = url_hashes
        self._hash_algorithms = hash_algorithms
        self._regexes = regexes
        self.domain_count = len(domains)
        #: True when some list has regular expressions (run on every host).
        self.has_regexes = bool(regexes)
        #: Why an illegal-content list could not be compiled (decisions then fail closed).
        self.illegal_fault = illegal_fault

    @property
    def domain_set(self) -> DomainSetLike:
        """The domain table (to save for other processes, or to call ``match`` on)."""
        return self._domains

    def domain_hits(self, host: str) -> list[tuple[str, int]] | None:
        """``(parent name, list-set id)`` for each parent of ``host`` that a list names,
        most specific first; None when none does (the common case allocates nothing).

        ``host`` must be normalised. An IP address is looked up as itself only.
        """
        found = self._domains.match(host)
        if not found:
            return None
        return [(host[offset:], listset_id) for offset, listset_id in found]

    def key_lookup(self) -> Callable[[int], int | None]:
        """The ``get`` of the domain table (keys from :func:`name_key`)."""
        return self._domains.get

    def listset(self, listset_id: int) -> ListSet:
        return self._listsets[listset_id]

    def match_host(self, host: str) -> tuple[Match, ...]:
        """Every list naming ``host`` (or a parent), after ``@@`` exceptions; specific first."""
        hits = self.domain_hits(host)
        matches = domain_matches(self, hits) if hits else []
        if self._regexes:
            matches.extend(self.regex_matches(host))
        return tuple(matches)

    def match_url(self, url: ParsedUrl) -> tuple[Match, ...]:
        """Matches for a web address: its host, URL prefixes, URL hashes and regexes."""
        hits = self.domain_hits(url.host.name)
        matches = domain_matches(self, hits) if hits else []
        key = url_key(url)
        for prefix, listset_id in self._url_prefixes.get(url.host.url_form, ()):
            if key.startswith(prefix):
                matches.append(self._match(MatchKind.URL_PREFIX, prefix, listset_id))
        if self._url_hashes:
            for digest in sorted(url_hashes(url, self._hash_algorithms)):
                listset_id = self._url_hashes.get(digest, -1)
                if listset_id >= 0:
                    matches.append(self._match(MatchKind.URL_HASH, digest, listset_id))
        if self._regexes:
            matches.extend(self.regex_matches(key))
        return tuple(matches)

    def _match(self, kind: MatchKind, listed: str, listset_id: int) -> Match:
        return Match(kind, listed, self._listsets[listset_id].blocking)

    def regex_matches(self, text: str) -> list[Match]:
        text = text[:MAX_REGEX_INPUT]
        return [
            self._match(MatchKind.REGEX, pattern, listset_id)
            for compiled, pattern, listset_id in self._regexes
            if compiled.search(text) is not None
        ]


def domain_matches(index: CompiledIndex, hits: list[tuple[str, int]]) -> list[Match]:
    matches: list[Match] = []
    lifted: set[str] = set()
    for parent, listset_id in hits:
        listset = index.listset(listset_id)
        for info in listset.excepting:
            lifted.add(info.id)
        lists = tuple(info for info in listset.blocking if info.illegal or info.id not in lifted)
        if lists:
            matches.append(Match(MatchKind.DOMAIN, parent, lists))
    return matches


class _ListSets:
    """Interns list-membership bitmasks (2 bits a list: blocks, excepts) as small ids."""

    def __init__(self, lists: list[ListInfo]) -> None:
        self.lists = lists
        self.ids: dict[int, int] = {}
        self.sets: list[ListSet] = []

    def id_of(self, mask: int) -> int:
        found = self.ids.get(mask)
        if found is None:
            found = self.ids[mask] = len(self.sets)
            self.sets.append(self._listset(mask))
        return found

    def _listset(self, mask: int) -> ListSet:
        blocking = tuple(info for n, info in enumerate(self.lists) if mask >> (2 * n) & 1)
        excepting = tuple(
            info
            for n, info in enumerate(self.lists)
            if mask >> (2 * n + 1) & 1 and not info.illegal
        )
        return ListSet(
            blocking=blocking,
            excepting=excepting,
            categories=frozenset(info.category for info in blocking),
            illegal=any(info.illegal for info in blocking),
        )


def compile_index(lists: Iterable[FilterList]) -> CompiledIndex:
    """Compile lists into one index. Entries are taken as the list parsers gave them
    (already normalised). A list that fails to compile is an error, except that a fault
    in an illegal-content list is recorded in ``illegal_fault`` so that decisions made
    with the index fail closed rather than silently lose the list.
    """
    infos: list[ListInfo] = []
    masks: dict[int, int] = {}
    prefixes: dict[str, dict[str, int]] = {}
    digests: dict[str, int] = {}
    algorithms: set[str] = set()
    patterns: list[tuple[str, int]] = []
    illegal_fault: str | None = None
    seen: set[str] = set()
    for filter_list in lists:
        info = filter_list.info
        if info.id in seen:
            raise InvalidInput(f"cannot compile lists: list id '{info.id}' is used twice")
        seen.add(info.id)
        number = len(infos)
        infos.append(info)
        block_bit, except_bit = 1 << (2 * number), 1 << (2 * number + 1)
        get, key_of = masks.get, hash_name
        try:
            for entry in filter_list.entries:
                if type(entry) is DomainEntry:
                    key = key_of(entry.domain)
                    bit = except_bit if entry.exception else block_bit
                    masks[key] = get(key, 0) | bit
                elif type(entry) is UrlPrefixEntry:
                    host = entry.url_key.split("/", 1)[0]
                    by_host = prefixes.setdefault(host, {})
                    by_host[entry.url_key] = by_host.get(entry.url_key, 0) | block_bit
                elif type(entry) is UrlHashEntry:
                    algorithms.add(entry.algorithm.value)
                    digests[entry.digest] = digests.get(entry.digest, 0) | block_bit
                elif type(entry) is RegexEntry:
                    patterns.append((entry.pattern, block_bit))
                else:
                    raise InvalidInput(f"list '{info.id}': unexpected entry {entry!r}")
        except Exception as error:  # a fault in an illegal list must not be lost silently
            if not info.illegal:
                raise
            illegal_fault = f"illegal-content list '{info.id}' could not be compiled: {error}"
    interned = _ListSets(infos)
    for key, mask in masks.items():
        masks[key] = interned.id_of(mask)  # same size: replacing values while iterating is safe
    url_prefixes = {
        host: tuple((prefix, interned.id_of(mask)) for prefix, mask in sorted(by_host.items()))
        for host, by_host in prefixes.items()
    }
    url_digests = {digest: interned.id_of(mask) for digest, mask in digests.items()}
    regexes = tuple(
        (re.compile(pattern), pattern, interned.id_of(mask)) for pattern, mask in patterns
    )
    return CompiledIndex(
        lists=tuple(infos),
        listsets=tuple(interned.sets),
        domains=DomainSet.build(masks),
        url_prefixes=MappingProxyType(url_prefixes),
        url_hashes=MappingProxyType(url_digests),
        hash_algorithms=tuple(sorted(algorithms)),
        regexes=regexes,
        illegal_fault=illegal_fault,
    )
