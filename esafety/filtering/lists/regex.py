"""Regular-expression lists: one pattern per line, each checked by ``regex_safety``.

A line starting with ``#`` or ``!`` is a comment (write ``\\#`` for a pattern that starts
with ``#``). AdGuard's ``/pattern/`` form is accepted and the slashes dropped. Patterns are
kept as written; the matcher compiles them once and matches on input cut to a length.
"""

from __future__ import annotations

from collections.abc import Iterator

from esafety.filtering.lists.entries import ListItem, ListProblem, RegexEntry
from esafety.filtering.lists.lines import ListSource, numbered_lines
from esafety.filtering.lists.regex_safety import unsafe_reason

__all__ = ["parse_regex"]


def parse_regex(source: ListSource) -> Iterator[ListItem]:
    for item in numbered_lines(source):
        if isinstance(item, ListProblem):
            yield item
            continue
        number, text = item
        pattern = text.strip()
        if not pattern or pattern[0] in "#!":
            continue
        if len(pattern) > 2 and pattern[0] == "/" and pattern[-1] == "/":
            pattern = pattern[1:-1]
        reason = unsafe_reason(pattern)
        if reason is None:
            yield RegexEntry(pattern, number)
        else:
            yield ListProblem(number, text, f"regular expression refused: {reason}")
