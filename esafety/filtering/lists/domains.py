"""Plain domain lists: one name per line, ``#`` or ``!`` comments, ``*.example.com`` wildcards.

This is also the UT1 ``domains`` file format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from esafety.filtering.lists.entries import ListItem, ListProblem
from esafety.filtering.lists.lines import ListSource, numbered_lines
from esafety.filtering.lists.names import domain_item

__all__ = ["one_value_per_line", "parse_domains", "strip_comment"]


def strip_comment(text: str) -> str:
    """The line without a comment: whole-line ``#``/``!``, or `` #`` after the value."""
    stripped = text.strip()
    if not stripped or stripped[0] in "#!":
        return ""
    cut = stripped.find(" #")
    tab = stripped.find("\t#")
    ends = [position for position in (cut, tab) if position >= 0]
    return stripped[: min(ends)].rstrip() if ends else stripped


def one_value_per_line(
    source: ListSource, what: str, item: Callable[[str, int, str], ListItem]
) -> Iterator[ListItem]:
    """The lines of a one-``what``-per-line list, each value made into ``item(value, line,
    text)``; comments and blank lines skipped, two values on a line reported."""
    for line in numbered_lines(source):
        if isinstance(line, ListProblem):
            yield line
            continue
        number, text = line
        value = strip_comment(text)
        if not value:
            continue
        if " " in value or "\t" in value:
            yield ListProblem(
                number, text, f"more than one value on the line (one {what} per line)"
            )
            continue
        yield item(value, number, text)


def parse_domains(source: ListSource) -> Iterator[ListItem]:
    return one_value_per_line(source, "name", lambda value, number, _: domain_item(value, number))
