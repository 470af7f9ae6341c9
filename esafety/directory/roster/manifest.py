"""OneRoster's manifest.csv: which files are in the export, and whether each is bulk or delta.

A bulk import is the whole school, so it needs users, classes and enrollments in bulk; a
manifest that says delta is refused unless the import is a delta (``--delta``), so a
partial export can never make the rest of the school leave.
"""

from __future__ import annotations

from collections.abc import Mapping

from esafety.directory.roster.columns import Sheet
from esafety.directory.roster.problems import Problems
from esafety.directory.roster.reading import parse_csv
from esafety.directory.roster.snapshot import Mode

__all__ = ["BULK_NEEDS", "FILES", "read_manifest"]

#: The files esafety reads, by their manifest name (``file.<name>``).
FILES = ("orgs", "academicSessions", "classes", "users", "enrollments", "demographics")
#: A bulk import is the whole school: it needs these in bulk.
BULK_NEEDS = ("users", "classes", "enrollments")


def read_manifest(
    files: Mapping[str, bytes], problems: Problems, mode: Mode, allow_bom: bool
) -> dict[str, str]:
    """Each file's processing mode (bulk, delta or absent), checked against ``mode``."""
    data = files.get("manifest.csv")
    if data is None:
        problems.add(
            "manifest.csv",
            None,
            None,
            "the roster has no manifest.csv",
            "export the whole OneRoster roster (the manifest says which files are bulk or delta)",
        )
        return {name: mode.value for name in FILES if f"{name.lower()}.csv" in files}
    sheet = Sheet(
        parse_csv(data, "manifest.csv", problems, allow_bom=allow_bom),
        problems,
        {"propertyName": ["propertyName"], "value": ["value"]},
        required=("propertyName", "value"),
    )
    modes: dict[str, str] = {}
    lines: dict[str, int] = {}
    for row in sheet.rows():
        prop = sheet.get(row, "propertyName")
        if not prop.lower().startswith("file."):
            continue
        name = next((n for n in FILES if n.lower() == prop[5:].lower()), None)
        if name is None:
            continue  # files esafety does not read (courses, results, ...)
        value = sheet.get(row, "value").lower()
        if value not in ("bulk", "delta", "absent"):
            sheet.bad(
                row,
                "value",
                f"unknown processing mode {value!r} for {prop}",
                "write bulk, delta or absent",
            )
            continue
        modes[name], lines[name] = value, row.line
        present = f"{name.lower()}.csv" in files
        if value != "absent" and not present:
            sheet.bad(
                row,
                "value",
                f"{prop} is {value!r} but {name}.csv is not in the roster",
                f"add {name}.csv, or set {prop} to absent",
            )
        if value == "absent" and present:
            sheet.bad(
                row,
                "value",
                f"{prop} is 'absent' but {name}.csv is in the roster",
                f"set {prop} to {mode.value}, or remove {name}.csv",
            )
        if value == "delta" and mode is Mode.BULK:
            sheet.bad(
                row,
                "value",
                f"{prop} is 'delta' but this is a bulk import",
                "run again with --delta, or export a bulk roster",
            )
    for name in FILES:
        if name not in modes and f"{name.lower()}.csv" in files:
            problems.add(
                "manifest.csv",
                None,
                None,
                f"the manifest does not say whether {name}.csv is bulk, delta or absent",
                f"add a row 'file.{name},{mode.value}'",
            )
            modes[name] = mode.value
    if mode is Mode.BULK:
        for name in BULK_NEEDS:
            if name in modes and modes[name] == "absent":
                problems.add(
                    "manifest.csv",
                    lines.get(name),
                    "value",
                    f"file.{name} is 'absent', but a bulk import is the whole school and needs {name}.csv",
                    "export a full roster, or run with --delta for a partial one",
                )
    return modes
