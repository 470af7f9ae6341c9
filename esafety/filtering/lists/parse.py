"""``parse_list``: any supported format to a stream of entries and problems, and a tally."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from esafety.errors import InvalidInput
from esafety.filtering.lists.adblock import parse_adblock
from esafety.filtering.lists.domains import parse_domains
from esafety.filtering.lists.entries import (
    DomainEntry,
    ListEntry,
    ListItem,
    ListProblem,
    RegexEntry,
    UrlHashEntry,
    UrlPrefixEntry,
)
from esafety.filtering.lists.hosts import parse_hosts
from esafety.filtering.lists.lines import ListSource
from esafety.filtering.lists.regex import parse_regex
from esafety.filtering.lists.urlhash import parse_urlhash
from esafety.filtering.lists.urls import parse_urls
from esafety.filtering.lists.ut1 import parse_ut1

__all__ = ["MAX_KEPT_PROBLEMS", "ListFormat", "ParsedList", "list_format_of", "parse_list"]


class ListFormat(StrEnum):
    HOSTS = "hosts"
    DOMAINS = "domains"
    ADBLOCK = "adblock"
    UT1 = "ut1"
    URLS = "urls"
    URLHASH = "urlhash"
    REGEX = "regex"


_PARSERS: dict[ListFormat, Callable[[ListSource], Iterator[ListItem]]] = {
    ListFormat.HOSTS: parse_hosts,
    ListFormat.DOMAINS: parse_domains,
    ListFormat.ADBLOCK: parse_adblock,
    ListFormat.URLS: parse_urls,
    ListFormat.URLHASH: parse_urlhash,
    ListFormat.REGEX: parse_regex,
}

#: A garbage file can have millions of bad lines: count them all, keep the first this many.
MAX_KEPT_PROBLEMS = 1000


def list_format_of(text: str | ListFormat) -> ListFormat:
    try:
        return ListFormat(str(text).strip().lower())
    except ValueError:
        allowed = "|".join(member.value for member in ListFormat)
        raise InvalidInput(f"unknown list format '{text}': expected one of {allowed}") from None


def parse_list(source: ListSource, format: str | ListFormat) -> Iterator[ListItem]:
    """Entries and problems, streamed in line order; bad lines never stop the parse.

    ``source`` is a path (a folder for ``ut1``) or an iterable of lines (str or bytes).
    A missing file or an unknown format is an InvalidInput at once, before any line.
    """
    kind = list_format_of(format)
    if kind is ListFormat.UT1:
        if not isinstance(source, str | os.PathLike):
            raise InvalidInput("a UT1 list is a folder: give its path")
        return parse_ut1(source)
    if isinstance(source, str | os.PathLike) and not Path(source).is_file():
        raise InvalidInput(f"cannot read list file '{source}': no such file")
    return _PARSERS[kind](source)


_KINDS: dict[type, str] = {
    UrlPrefixEntry: "url_prefix",
    UrlHashEntry: "url_hash",
    RegexEntry: "regex",
}


@dataclass
class ParsedList:
    """What an import found: entries by kind, and the problems (the first few kept).

    Use ``entries()`` to stream a parse while it tallies, or ``ParsedList.of()`` to tally
    a whole list and keep nothing else.
    """

    format: ListFormat
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[ListProblem] = field(default_factory=list)
    problem_count: int = 0

    @property
    def entry_count(self) -> int:
        return sum(self.counts.values())

    def add(self, item: ListItem) -> None:
        if isinstance(item, ListProblem):
            self.problem_count += 1
            if len(self.problems) < MAX_KEPT_PROBLEMS:
                self.problems.append(item)
        elif isinstance(item, DomainEntry):
            self.counts["exception" if item.exception else "domain"] += 1
        else:
            self.counts[_KINDS[type(item)]] += 1

    def entries(self, items: Iterable[ListItem]) -> Iterator[ListEntry]:
        """Pass entries through, tallying every item on the way."""
        for item in items:
            self.add(item)
            if not isinstance(item, ListProblem):
                yield item

    @classmethod
    def of(cls, source: ListSource, format: str | ListFormat) -> ParsedList:
        summary = cls(list_format_of(format))
        for item in parse_list(source, summary.format):
            summary.add(item)
        return summary
