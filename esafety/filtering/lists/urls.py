"""URL-prefix lists: one URL per line (a scheme is optional, as in UT1's ``urls`` files).

A listed URL blocks itself and every URL it is a prefix of, compared as ``urls.url_key``
writes them, so a list and a lookup always agree.
"""

from __future__ import annotations

from collections.abc import Iterator

from esafety.filtering.lists.domains import strip_comment
from esafety.filtering.lists.entries import ListItem, ListProblem
from esafety.filtering.lists.lines import ListSource, numbered_lines
from esafety.filtering.lists.names import url_prefix_item

__all__ = ["parse_urls"]


def parse_urls(source: ListSource) -> Iterator[ListItem]:
    for item in numbered_lines(source):
        if isinstance(item, ListProblem):
            yield item
            continue
        number, text = item
        value = strip_comment(text)
        if not value:
            continue
        if " " in value or "\t" in value:
            yield ListProblem(number, text, "more than one value on the line (one URL per line)")
            continue
        yield url_prefix_item(value, number)
