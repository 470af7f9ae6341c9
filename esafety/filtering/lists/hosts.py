"""Hosts files: ``0.0.0.0 ads.example.com tracker.example.com  # comment``.

Only lines that point names at a blocking address (0.0.0.0, 127.0.0.1, ::, ::1) block;
a line pointing a name at a real address is a redirect, not a block, and is reported.
The machine's own names (localhost and the like) that every hosts file carries are skipped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from esafety.filtering.lists.entries import ListItem, ListProblem
from esafety.filtering.lists.lines import ListSource, numbered_lines
from esafety.filtering.lists.names import domain_item

__all__ = ["BLOCKING_ADDRESSES", "parse_hosts"]

# Not a bind: these are the sinkhole addresses blocklists point names at.
BLOCKING_ADDRESSES = frozenset(
    ipaddress.ip_address(text)
    for text in ("0.0.0.0", "127.0.0.1", "::", "::1")  # noqa: S104
)

#: Names of the machine itself, present in every hosts file (Debian's and StevenBlack's).
_OWN_NAMES = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "local",
        "broadcasthost",
        "ip6-localhost",
        "ip6-loopback",
        "ip6-localnet",
        "ip6-mcastprefix",
        "ip6-allnodes",
        "ip6-allrouters",
        "ip6-allhosts",
        "0.0.0.0",  # noqa: S104 - the line "0.0.0.0 0.0.0.0" in StevenBlack's lists
    }
)


def parse_hosts(source: ListSource) -> Iterator[ListItem]:
    for item in numbered_lines(source):
        if isinstance(item, ListProblem):
            yield item
            continue
        number, text = item
        fields = text.split("#", 1)[0].split()
        if not fields:
            continue
        try:
            address = ipaddress.ip_address(fields[0].split("%", 1)[0])
        except ValueError:
            yield ListProblem(number, text, "expected an address first, as in '0.0.0.0 name'")
            continue
        if address not in BLOCKING_ADDRESSES:
            yield ListProblem(
                number,
                text,
                f"points names at {address}, not at a blocking address (0.0.0.0, 127.0.0.1, ::)",
            )
            continue
        if len(fields) == 1:
            yield ListProblem(number, text, "an address with no name after it")
            continue
        for name in fields[1:]:
            if name.lower().rstrip(".") in _OWN_NAMES:
                continue
            yield domain_item(name, number)
