"""Plain domain lists: one name per line, ``#`` or ``!`` comments, ``*.example.com`` wildcards.

This is also the UT1 ``domains`` file format.
"""

from __future__ import annotations

from collections.abc import Iterator

from esafety.filtering.lists.entries import ListItem, ListProblem
from esafety.filtering.lists.lines import ListSource, numbered_lines
from esafety.filtering.lists.names import domain_item

__all__ = ["parse_domains", "strip_comment"]


def strip_comment(text: str) -> str:
    """The line without a comment: whole-line ``#``/``!``, or `` #`` after the value."""
    stripped = text.strip()
    if not stripped or stripped[0] in "#!":
        return ""
    cut = stripped.find(" #")
    tab = stripped.find("\t#")
    ends = [position for position in (cut, tab) if position >= 0]
    return stripped[: min(ends)].rstrip() if ends else stripped


def parse_domains(source: ListSource) -> Iterator[ListItem]:
    for item in numbered_lines(source):
        if isinstance(item, ListProblem):
            yield item
            continue
        number, text = item
        value = strip_comment(text)
        if not value:
            continue
        if " " in value or "\t" in value:
            yield ListProblem(number, text, "more than one value on the line (one name per line)")
            continue
        yield domain_item(value, number)
