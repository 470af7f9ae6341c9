"""URL-prefix lists: one URL per line (a scheme is optional, as in UT1's ``urls`` files).

A listed URL blocks itself and every URL it is a prefix of, compared as ``urls.url_key``
writes them, so a list and a lookup always agree.
"""

from __future__ import annotations

from collections.abc import Iterator

from esafety.filtering.lists.domains import one_value_per_line
from esafety.filtering.lists.entries import ListItem
from esafety.filtering.lists.lines import ListSource
from esafety.filtering.lists.names import url_prefix_item

__all__ = ["parse_urls"]


def parse_urls(source: ListSource) -> Iterator[ListItem]:
    return one_value_per_line(
        source, "URL", lambda value, number, _: url_prefix_item(value, number)
    )
