"""Small numbers withheld from a view that must not let a child be picked out: figures
of 1 or 2 show as "fewer than 3", and where the total and the other figures would give
one away, the smallest others are withheld too ("not shown"). Pure.

Used for the governors' view of trends in concerns (issue 5 §7). It protects each table
against its own total; it cannot promise that no figure could ever be worked out by
setting several tables side by side when there are very few concerns in all.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["SMALL", "Figure", "Withheld", "protect"]

#: Figures below this are withheld ("fewer than 3").
SMALL = 3


class Withheld(StrEnum):
    #: 1 or 2: could point to a child.
    SMALL = "small"
    #: Withheld as well, so that a small figure cannot be worked out from the total.
    COMPLEMENT = "complement"


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    label: str
    #: None when withheld.
    count: int | None
    withheld: Withheld | None = None

    @property
    def text(self) -> str:
        if self.withheld is Withheld.SMALL:
            return f"fewer than {SMALL}"
        if self.withheld is Withheld.COMPLEMENT:
            return "not shown"
        return str(self.count)


def protect(counts: Sequence[tuple[str, str, int]], total: int | None) -> tuple[Figure, ...]:
    """Figures for the governors' view: 1s and 2s withheld ("fewer than 3"), and, where
    the rest and the ``total`` would give a withheld figure away, the smallest others too.

    ``total`` is the shown total the figures add up to, or None when they do not add up
    to one (year groups: a concern may involve several, or none).
    """
    small = {key for key, _, n in counts if 0 < n < SMALL}
    extra: set[str] = set()
    if total is not None and small:
        shown_others = sorted((n, key) for key, _, n in counts if n >= SMALL)
        while not _hidden_well(counts, total, small, extra) and shown_others:
            extra.add(shown_others.pop(0)[1])
    figures = []
    for key, label, n in counts:
        if key in small:
            figures.append(Figure(key, label, None, Withheld.SMALL))
        elif key in extra:
            figures.append(Figure(key, label, None, Withheld.COMPLEMENT))
        else:
            figures.append(Figure(key, label, n))
    return tuple(figures)


def _hidden_well(
    counts: Sequence[tuple[str, str, int]], total: int, small: set[str], extra: set[str]
) -> bool:
    """Whether every small figure could be 1 or 2, for all a reader can tell.

    A reader knows the total, the figures shown, that each "fewer than 3" is 1 or 2 and
    that each "not shown" is 3 or more: try every way of filling them in.
    """
    left = total - sum(n for key, _, n in counts if key not in small and key not in extra)
    keys = sorted(small)
    seen: dict[str, set[int]] = {key: set() for key in keys}
    for values in itertools.product((1, 2), repeat=len(keys)):
        rest = left - sum(values)
        if (not extra and rest == 0) or (extra and rest >= SMALL * len(extra)):
            for key, value in zip(keys, values, strict=True):
                seen[key].add(value)
    return all(len(found) == 2 for found in seen.values())
