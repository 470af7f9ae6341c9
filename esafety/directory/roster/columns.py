"""A CSV table read through the columns a format knows: finds them by any accepted name,
reports missing ones, and reports a bad value by line and column."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from esafety.directory.roster.cells import BadValue
from esafety.directory.roster.problems import Problems
from esafety.directory.roster.reading import NOT_UTF8_FIX, CsvRow, CsvTable, normalise_header

__all__ = ["Sheet"]


class Sheet:
    """``fields`` maps each field to the header names accepted for it, best first."""

    def __init__(
        self,
        table: CsvTable,
        problems: Problems,
        fields: Mapping[str, Sequence[str]],
        *,
        required: Sequence[str] = (),
    ) -> None:
        self.table = table
        self.file = table.file
        self.problems = problems
        self.names: dict[str, str] = {}
        self._positions: dict[str, int] = {}
        for key, accepted in fields.items():
            for name in accepted:
                position = table.index.get(normalise_header(name))
                if position is not None:
                    self._positions[key] = position
                    self.names[key] = table.header[position]
                    break
            else:
                self.names[key] = accepted[0]
        if table.header:
            for key in required:
                if key not in self._positions:
                    self.missing_column(key, fields[key])

    def take(self, key: str, accepted: Sequence[str]) -> None:
        """Read ``key`` from the first of ``accepted`` present, unless it is found already."""
        if key in self._positions:
            return
        for name in accepted:
            position = self.table.index.get(normalise_header(name))
            if position is not None:
                self._positions[key] = position
                self.names[key] = self.table.header[position]
                return

    def missing_column(self, key: str, accepted: Sequence[str]) -> None:
        others = f" (also accepted: {', '.join(accepted[1:])})" if len(accepted) > 1 else ""
        self.problems.add(
            self.file,
            self.table.header_line,
            accepted[0],
            "missing column",
            f"add a column headed '{accepted[0]}'{others}",
        )

    def has(self, key: str) -> bool:
        return key in self._positions

    def rows(self) -> Iterator[CsvRow]:
        """Every row, having reported the values that were not UTF-8."""
        for row in self.table.rows:
            for column in self.table.unreadable_cells(row):
                self.problems.add(
                    self.file, row.line, column, "the text is not UTF-8", NOT_UTF8_FIX
                )
            yield row

    def get(self, row: CsvRow, key: str) -> str:
        position = self._positions.get(key)
        return "" if position is None else row.values[position]

    def bad(self, row: CsvRow, key: str, what: str, fix: str) -> None:
        self.problems.add(self.file, row.line, self.names.get(key, key), what, fix)

    def bad_value(self, row: CsvRow, key: str, error: BadValue) -> None:
        self.bad(row, key, error.what, error.fix)

    def required(self, row: CsvRow, key: str, fix: str = "fill it in") -> str | None:
        """The value, or None having reported that it is missing."""
        value = self.get(row, key)
        if not value and self.has(key):
            self.bad(row, key, "missing required value", fix)
            return None
        return value or None
