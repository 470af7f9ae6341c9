"""What a list line becomes: an entry, or a problem reported by line number."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DomainEntry",
    "HashAlgorithm",
    "ListEntry",
    "ListItem",
    "ListProblem",
    "RegexEntry",
    "UrlHashEntry",
    "UrlPrefixEntry",
]


@dataclass(frozen=True, slots=True)
class DomainEntry:
    """A name that matches itself and its subdomains; ``exception`` allows instead of blocks."""

    domain: str
    line: int
    exception: bool = False


@dataclass(frozen=True, slots=True)
class UrlPrefixEntry:
    """A URL prefix, as ``urls.url_key`` writes it, so lists and lookups agree."""

    url_key: str
    line: int


class HashAlgorithm(StrEnum):
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"


@dataclass(frozen=True, slots=True)
class UrlHashEntry:
    """A hashed URL (the IWF distributes its list this way); ``digest`` is lower-case hex."""

    algorithm: HashAlgorithm
    digest: str
    line: int


@dataclass(frozen=True, slots=True)
class RegexEntry:
    """A regular expression that passed the safety checker (``lists.regex_safety``)."""

    pattern: str
    line: int


@dataclass(frozen=True, slots=True)
class ListProblem:
    """A line that was not imported, and why; parsing goes on after it."""

    line: int
    text: str
    reason: str
    #: For lists read from several files (a UT1 folder): which file the line is in.
    file: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file else f"line {self.line}"
        return f"{where}: {self.reason}: {self.text!r}"


ListEntry = DomainEntry | UrlPrefixEntry | UrlHashEntry | RegexEntry
ListItem = ListEntry | ListProblem
