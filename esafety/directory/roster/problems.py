"""Problems found in a roster: each one says where (file:line, column), what, and what to fix.

An import checks everything before it writes anything, so it collects every problem
rather than stopping at the first; :class:`RosterProblems` carries them all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from esafety.errors import InvalidInput

__all__ = ["Problem", "Problems", "RosterProblems"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a roster, printed as ``file:line: column: what — fix``."""

    file: str
    line: int | None
    column: str | None
    what: str
    fix: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        column = f" {self.column}:" if self.column else ""
        return f"{where}:{column} {self.what} — {self.fix}"


class Problems:
    """The problems found so far, in the order of the files and their lines."""

    def __init__(self) -> None:
        self._items: list[Problem] = []
        self._file_order: dict[str, int] = {}

    def register(self, file: str) -> None:
        """Note a file as it is read, so that its problems are listed in reading order."""
        self._file_order.setdefault(file, len(self._file_order))

    def add(self, file: str, line: int | None, column: str | None, what: str, fix: str) -> None:
        self._file_order.setdefault(file, len(self._file_order))
        self._items.append(Problem(file, line, column, what, fix))

    def sorted(self) -> list[Problem]:
        return sorted(self._items, key=lambda p: (self._file_order[p.file], p.line or 0))

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.sorted())


class RosterProblems(InvalidInput):
    """A roster has problems; nothing was imported. ``problems`` holds every one."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        heading = f"{count} problem{'s' if count != 1 else ''} in {source}; nothing was imported:"
        super().__init__("\n".join([heading, *(str(p) for p in self.problems)]))
