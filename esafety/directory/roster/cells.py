"""Reading one value of a roster: dates, yes/no, UPNs, names, ids, lengths.

Each reader returns the value or raises :class:`BadValue` with what is wrong and what to
fix; the format modules turn that into a ``file:line: column:`` problem.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from esafety.directory.upn import normalise_upn
from esafety.errors import InvalidInput

__all__ = [
    "LIMITS",
    "BadValue",
    "check_length",
    "parse_date",
    "parse_timestamp",
    "parse_upn",
    "parse_yes_no",
]

#: The longest value each stored field takes (the database's column widths).
LIMITS = {
    "sourced_id": 120,
    "name": 100,
    "username": 120,
    "email": 254,
    "phone": 40,
    "group": 120,
    "relationship": 40,
}

_UK_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_YES = {"yes", "y", "true", "t", "1"}
_NO = {"no", "n", "false", "f", "0"}


class BadValue(ValueError):
    def __init__(self, what: str, fix: str) -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix


def parse_date(text: str, *, uk: bool, today: date | None = None, past: bool = False) -> date:
    """A date written ``YYYY-MM-DD`` or, if ``uk``, ``DD/MM/YYYY``; ``past``: not after today."""
    allowed = "DD/MM/YYYY or YYYY-MM-DD" if uk else "YYYY-MM-DD"
    iso = _ISO_DATE.match(text)
    british = _UK_DATE.match(text) if uk else None
    try:
        if iso:
            value = date(int(iso[1]), int(iso[2]), int(iso[3]))
        elif british:
            value = date(int(british[3]), int(british[2]), int(british[1]))
        else:
            raise BadValue(f"{text!r} is not a date", f"write it as {allowed}")
    except ValueError as exc:
        if isinstance(exc, BadValue):
            raise
        raise BadValue(
            f"{text!r} is not a real date ({exc})", f"check the day and month; write {allowed}"
        ) from None
    if value.year < 1900:
        raise BadValue(f"{text!r} is before 1900", "check the year")
    if past and today is not None and value > today:
        raise BadValue(
            f"{text!r} is in the future", "check the year (a date of birth is in the past)"
        )
    return value


def parse_timestamp(text: str) -> datetime:
    """OneRoster's dateLastModified: ISO 8601, e.g. ``2024-09-01T08:30:00.000Z``."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise BadValue(
            f"{text!r} is not a date and time", "write it as ISO 8601, e.g. 2024-09-01T08:30:00Z"
        ) from None


def parse_yes_no(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _YES:
        return True
    if lowered in _NO:
        return False
    raise BadValue(f"{text!r} is not yes or no", "write Yes or No (or Y/N, True/False, 1/0)")


def parse_upn(text: str) -> str:
    try:
        return normalise_upn(text)
    except InvalidInput as exc:
        raise BadValue(str(exc), "correct the UPN in the MIS and export again") from None


def check_length(text: str, kind: str) -> str:
    limit = LIMITS[kind]
    if len(text) > limit:
        raise BadValue(
            f"{text[:30]!r}… is {len(text)} characters long (at most {limit})", "shorten it"
        )
    return text
