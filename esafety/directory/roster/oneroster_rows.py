"""Reading the rows every OneRoster file shares: sourcedId, status, dateLastModified,
dates, grades, references and lengths, each problem reported by line and column."""

from __future__ import annotations

from datetime import date

from esafety.directory.roster.cells import BadValue, check_length, parse_date, parse_timestamp
from esafety.directory.roster.columns import Sheet
from esafety.directory.roster.grades import GradeMap
from esafety.directory.roster.problems import Problems
from esafety.directory.roster.reading import CsvRow, CsvTable
from esafety.directory.roster.snapshot import Mode, RosterSnapshot
from esafety.directory.years import YearGroup

__all__ = ["STATUSES", "RowReader", "fields", "split_list"]

STATUSES = ("active", "tobedeleted")
_COMMON = {
    "sourcedId": ["sourcedId"],
    "status": ["status"],
    "dateLastModified": ["dateLastModified"],
}


def fields(*names: str) -> dict[str, list[str]]:
    """A file's columns: the common ones and ``names`` (OneRoster headers are exact)."""
    return {**_COMMON, **{name: [name] for name in names}}


def split_list(text: str) -> list[str]:
    """A OneRoster list value: ``"a, b,c"`` → ``["a", "b", "c"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


class RowReader:
    """What every file's reader shares: the snapshot being built and the row checks."""

    def __init__(
        self, problems: Problems, mode: Mode, grades: GradeMap, today: date | None
    ) -> None:
        self.problems = problems
        self.mode = mode
        self.grades = grades
        self.today = today
        self.snapshot = RosterSnapshot(format="oneroster", mode=mode)
        #: Ids in orgs.csv and academicSessions.csv, once read (for checking references).
        self.orgs: set[str] | None = None
        self.sessions: set[str] | None = None

    def sheet(
        self, table: CsvTable, fields: dict[str, list[str]], required: tuple[str, ...]
    ) -> Sheet:
        if self.mode is Mode.DELTA:
            required = (*required, "status", "dateLastModified")
        return Sheet(table, self.problems, fields, required=("sourcedId", *required))

    def identity(self, sheet: Sheet, row: CsvRow, seen: dict[str, int]) -> tuple[str, bool] | None:
        """The row's sourcedId and whether it is active; None if the row cannot be used."""
        sourced_id = sheet.required(row, "sourcedId", "give every row its sourcedId")
        active = self.status(sheet, row)
        if sourced_id is None:
            return None
        try:
            check_length(sourced_id, "sourced_id")
        except BadValue as exc:
            sheet.bad_value(row, "sourcedId", exc)
            return None
        if sourced_id in seen:
            sheet.bad(
                row,
                "sourcedId",
                f"duplicate id {sourced_id!r} (also on line {seen[sourced_id]})",
                "give each row its own sourcedId, or remove the repeated row",
            )
            return None
        seen[sourced_id] = row.line
        return (sourced_id, active) if active is not None else None

    def status(self, sheet: Sheet, row: CsvRow) -> bool | None:
        status = sheet.get(row, "status").lower()
        stamp = sheet.get(row, "dateLastModified")
        ok = True
        if self.mode is Mode.DELTA:
            if not status:
                sheet.bad(
                    row,
                    "status",
                    "missing required value",
                    "a delta row says active or tobedeleted",
                )
                ok = False
            if not stamp:
                sheet.bad(
                    row,
                    "dateLastModified",
                    "missing required value",
                    "a delta row says when it changed (ISO 8601)",
                )
                ok = False
        if status and status not in STATUSES:
            sheet.bad(row, "status", f"unknown status {status!r}", "write active or tobedeleted")
            ok = False
        if stamp:
            try:
                parse_timestamp(stamp)
            except BadValue as exc:
                sheet.bad_value(row, "dateLastModified", exc)
        return status != "tobedeleted" if ok else None

    def read_date(self, sheet: Sheet, row: CsvRow, key: str, *, past: bool = False) -> date | None:
        text = sheet.get(row, key)
        if not text:
            return None
        try:
            return parse_date(text, uk=False, today=self.today, past=past)
        except BadValue as exc:
            sheet.bad_value(row, key, exc)
            return None

    def read_year(self, sheet: Sheet, row: CsvRow, key: str) -> tuple[YearGroup | None, bool]:
        """The year group the grades column names, and whether every grade was known."""
        years: list[YearGroup] = []
        for grade in split_list(sheet.get(row, key)):
            year = self.grades.year_of(grade)
            if year is None:
                sheet.bad(row, key, f"unknown grade {grade!r}", self.grades.fix)
                return None, False
            years.append(year)
        # A mixed-age class has no single year group.
        return (years[0] if len(set(years)) == 1 else None), True

    def check_refs(
        self, sheet: Sheet, row: CsvRow, key: str, known: set[str] | None, what: str, fix: str
    ) -> None:
        if known is None or self.mode is Mode.DELTA:
            return  # a delta may refer to what an earlier import brought in
        for ref in split_list(sheet.get(row, key)):
            if ref not in known:
                sheet.bad(row, key, f"unknown {what} {ref!r}", fix)

    def fits(self, sheet: Sheet, row: CsvRow, key: str, text: str, kind: str) -> bool:
        try:
            check_length(text, kind)
        except BadValue as exc:
            sheet.bad_value(row, key, exc)
            return False
        return True
