"""Standard blocklist formats, parsed into plain entries without stopping on bad lines."""

from esafety.filtering.lists.entries import (
    DomainEntry,
    HashAlgorithm,
    ListEntry,
    ListItem,
    ListProblem,
    RegexEntry,
    UrlHashEntry,
    UrlPrefixEntry,
)
from esafety.filtering.lists.parse import ListFormat, ParsedList, list_format_of, parse_list
from esafety.filtering.lists.ut1 import UT1_CATEGORIES, ut1_category

__all__ = [
    "UT1_CATEGORIES",
    "DomainEntry",
    "HashAlgorithm",
    "ListEntry",
    "ListFormat",
    "ListItem",
    "ListProblem",
    "ParsedList",
    "RegexEntry",
    "UrlHashEntry",
    "UrlPrefixEntry",
    "list_format_of",
    "parse_list",
    "ut1_category",
]
