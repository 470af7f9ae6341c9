"""Reading roster files: a folder, a .zip or one .csv; encoding, byte-order mark, dialect.

Every row keeps the line it started on, so a problem can be reported as ``file:line``.
Text must be UTF-8: a byte-order mark and bytes that are not UTF-8 are problems (with the
fix), and reading carries on past them so that every other problem is found in one run.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from esafety.directory.roster.problems import Problems

__all__ = ["CsvRow", "CsvTable", "normalise_header", "parse_csv", "read_source"]

#: A character that cannot be read; fields holding it are reported as "not UTF-8".
UNREADABLE = "\ufffd"
_NOT_HEADER_CHARS = re.compile(r"[\s_\-.:/()#]+")
_DELIMITERS = (",", ";", "\t", "|")
_MAX_FIELD = 1_000_000

NOT_UTF8_FIX = (
    "save the file as UTF-8 (in Excel: Save As → 'CSV UTF-8'; "
    "it looks like Windows-1252 or Latin-1 now)"
)


def normalise_header(text: str) -> str:
    """``"Legal Surname"``, ``"legal_surname"`` and ``"LegalSurname"`` all become ``legalsurname``."""
    return _NOT_HEADER_CHARS.sub("", text).lower()


@dataclass(frozen=True)
class CsvRow:
    line: int
    values: list[str]


@dataclass
class CsvTable:
    """One CSV file: its header (stripped) and its rows, each with the line it starts on."""

    file: str
    header: list[str]
    header_line: int = 1
    rows: list[CsvRow] = field(default_factory=list)
    #: Normalised header → position of its first occurrence.
    index: dict[str, int] = field(default_factory=dict)
    #: Some bytes were not UTF-8; fields holding UNREADABLE are reported by column.
    unreadable: bool = False

    def __iter__(self) -> Iterator[CsvRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def unreadable_cells(self, row: CsvRow) -> Iterator[str]:
        """The columns of ``row`` whose text was not UTF-8."""
        if not self.unreadable:
            return
        for position, value in enumerate(row.values):
            if UNREADABLE in value:
                yield self.header[position] if position < len(self.header) else "(extra value)"


def read_source(path: Path, problems: Problems) -> tuple[str, dict[str, bytes]]:
    """The CSV files of a roster: ``(kind, {lower-case file name: bytes})``.

    ``kind`` is ``"folder"``, ``"zip"`` or ``"file"``; a missing or unreadable path is
    reported as a problem and gives no files.
    """
    shown = str(path)
    if not path.exists():
        problems.add(
            shown,
            None,
            None,
            "no such file or folder",
            "give the path of the roster folder, .zip or .csv",
        )
        return "missing", {}
    if path.is_dir():
        files = {
            p.name.lower(): p.read_bytes()
            for p in sorted(path.iterdir())
            if p.is_file() and p.suffix.lower() == ".csv"
        }
        return "folder", files
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                files = {}
                for info in archive.infolist():
                    name = Path(info.filename).name
                    if not info.is_dir() and name.lower().endswith(".csv"):
                        files[name.lower()] = archive.read(info)
                return "zip", files
        except (zipfile.BadZipFile, OSError) as exc:
            problems.add(
                shown, None, None, f"cannot open the .zip ({exc})", "export the roster again"
            )
            return "zip", {}
    return "file", {path.name.lower(): path.read_bytes()}


def _decode(data: bytes, file: str, problems: Problems, *, allow_bom: bool) -> tuple[str, bool]:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        problems.add(
            file,
            1,
            None,
            "the file is UTF-16, not UTF-8",
            "save it as UTF-8 (in Excel: Save As → 'CSV UTF-8')",
        )
        return data.decode("utf-16", errors="replace"), False
    if data.startswith(codecs.BOM_UTF8):
        if not allow_bom:
            problems.add(
                file,
                1,
                None,
                "the file starts with a byte-order mark (BOM)",
                "save it as UTF-8 without a BOM, or run again with --allow-bom to accept it",
            )
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), True


def _delimiter(first_line: str) -> str:
    # Exports are comma-separated; some spreadsheets in other locales write ';' or tabs.
    counts = {d: first_line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def parse_csv(data: bytes, file: str, problems: Problems, *, allow_bom: bool) -> CsvTable:
    """Decode and split one CSV file, reporting what stops a row from being read."""
    problems.register(file)
    text, unreadable = _decode(data, file, problems, allow_bom=allow_bom)
    csv.field_size_limit(_MAX_FIELD)
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first_line))
    table = CsvTable(file=file, header=[], unreadable=unreadable)
    last_line = 0
    try:
        for values in reader:
            line, last_line = last_line + 1, reader.line_num
            if not any(v.strip() for v in values):
                continue
            if not table.header:
                table.header = [v.strip() for v in values]
                table.header_line = line
                for position, name in enumerate(table.header):
                    table.index.setdefault(normalise_header(name), position)
                if unreadable and any(UNREADABLE in v for v in values):
                    problems.add(file, line, None, "the header is not UTF-8", NOT_UTF8_FIX)
                continue
            _check_width(table, values, line, problems)
            table.rows.append(CsvRow(line, [v.strip() for v in values]))
    except csv.Error as exc:
        problems.add(
            file,
            last_line + 1,
            None,
            f"the file cannot be read as CSV ({exc})",
            "check quotes and remove any NUL characters, then export it again",
        )
    if not table.header:
        problems.add(file, 1, None, "the file is empty", "export it again with its header row")
    return table


def _check_width(table: CsvTable, values: list[str], line: int, problems: Problems) -> None:
    width = len(table.header)
    if len(values) > width and any(v.strip() for v in values[width:]):
        problems.add(
            table.file,
            line,
            None,
            f"the row has {len(values)} values but the header has {width} columns",
            "quote values that contain the separator, or remove the extra values",
        )
    elif len(values) < width:
        values.extend([""] * (width - len(values)))
