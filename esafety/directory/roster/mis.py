"""A plain MIS export: one row per pupil (SIMS, Arbor and others), read into a snapshot.

Headers are matched without regard to case, spaces, underscores and dots, and each field
accepts the names SIMS and Arbor use (:data:`PUPIL_COLUMNS`, :data:`CONTACT_FIELDS`;
docs/roster.md lists them all). Dates are ``DD/MM/YYYY`` or ``YYYY-MM-DD``. Contacts
(``Contact 1 Name``, ``Contact 1 Relationship``, ...) become parents linked to the pupil.
"""

from __future__ import annotations

from datetime import date

from esafety.directory.roster.cells import (
    BadValue,
    check_length,
    parse_date,
    parse_upn,
)
from esafety.directory.roster.columns import Sheet
from esafety.directory.roster.mis_contacts import (
    CONTACT_FIELDS,
    CONTACT_PREFIXES,
    Contacts,
    contact_columns,
)
from esafety.directory.roster.problems import Problems
from esafety.directory.roster.reading import CsvRow, normalise_header, parse_csv
from esafety.directory.roster.snapshot import (
    GroupType,
    Kind,
    Mode,
    RosterEnrolment,
    RosterGroup,
    RosterPerson,
    RosterSnapshot,
    Where,
)
from esafety.directory.years import YearGroup
from esafety.security.roles import Role

__all__ = [
    "CONTACT_FIELDS",
    "CONTACT_PREFIXES",
    "PUPIL_COLUMNS",
    "read_mis",
]

#: Each pupil field and the headers accepted for it, the preferred one first.
PUPIL_COLUMNS: dict[str, list[str]] = {
    "admission_number": ["Adno", "Admission Number", "Admission No", "Adm No", "Admission No."],
    "upn": ["UPN", "Unique Pupil Number"],
    "legal_last_name": ["Legal Surname", "Legal Last Name", "Surname", "Last Name", "Family Name"],
    "legal_first_name": [
        "Legal Forename",
        "Legal First Name",
        "Forename",
        "First Name",
        "Given Name",
    ],
    "preferred_last_name": ["Preferred Surname", "Preferred Last Name"],
    "preferred_first_name": [
        "Preferred Forename",
        "Preferred First Name",
        "Preferred Name",
        "Known As",
    ],
    "date_of_birth": ["DOB", "Date of Birth", "Birth Date"],
    "year": ["Year", "Year Group", "NC Year Actual", "National Curriculum Year", "Curriculum Year"],
    "registration_group": [
        "Reg",
        "Reg Group",
        "Registration Group",
        "Registration Form",
        "Reg Form",
        "Form",
        "Form Group",
        "Tutor Group",
        "Class",
    ],
    "email": ["Email", "Email Address", "Pupil Email"],
}
_PLAIN_FIRST = ("Forename", "First Name")
_PLAIN_LAST = ("Surname", "Last Name")
REQUIRED = ("legal_first_name", "legal_last_name", "date_of_birth", "year", "registration_group")


def read_mis(
    data: bytes,
    file: str,
    problems: Problems,
    *,
    delta: bool,
    allow_bom: bool = False,
    today: date | None = None,
) -> RosterSnapshot:
    """Read a one-row-per-pupil export into a snapshot of pupils, parents and reg groups."""
    table = parse_csv(data, file, problems, allow_bom=allow_bom)
    sheet = Sheet(table, problems, PUPIL_COLUMNS, required=REQUIRED)
    for part, plain in (("first", _PLAIN_FIRST), ("last", _PLAIN_LAST)):
        # Beside "Legal First Name", a plain "First Name" is the name the pupil goes by.
        if normalise_header(sheet.names[f"legal_{part}_name"]).startswith("legal"):
            sheet.take(f"preferred_{part}_name", plain)
    if table.header and not (sheet.has("admission_number") or sheet.has("upn")):
        sheet.missing_column("upn", [*PUPIL_COLUMNS["upn"], *PUPIL_COLUMNS["admission_number"]])
    contacts = Contacts(sheet, contact_columns(table.header))
    reader = _MisReader(sheet, contacts, delta=delta, today=today)
    for row in sheet.rows():
        reader.read_row(row)
    return reader.finish()


class _MisReader:
    def __init__(
        self, sheet: Sheet, contacts: Contacts, *, delta: bool, today: date | None
    ) -> None:
        self.sheet = sheet
        self.contacts = contacts
        self.today = today
        self.snapshot = RosterSnapshot(
            format="mis",
            mode=Mode.DELTA if delta else Mode.BULK,
            covers=frozenset({Kind.PUPIL, Kind.PARENT}),
            states_registration=True,
        )
        self.lines: dict[str, tuple[int, str]] = {}
        self.upns: dict[str, int] = {}
        self.years: dict[str, set[YearGroup]] = {}

    def read_row(self, row: CsvRow) -> None:
        sheet = self.sheet
        where = Where(sheet.file, row.line)
        sourced_id = self._identity(row)
        first = sheet.required(row, "legal_first_name", "give the pupil's legal first name")
        last = sheet.required(row, "legal_last_name", "give the pupil's legal surname")
        born = self._birth_date(row)
        year = self._year(row)
        group = sheet.get(row, "registration_group")
        fine = all(
            self._fits(row, key, "name")
            for key in (
                "legal_first_name",
                "legal_last_name",
                "preferred_first_name",
                "preferred_last_name",
            )
        )
        fine &= self._fits(row, "email", "email") & self._fits(row, "registration_group", "group")
        if sourced_id is not None and sourced_id in self.lines:
            self._repeated(row, sourced_id, group)
            return
        upn = self._upn(row)
        if sourced_id is None:
            return
        self.lines[sourced_id] = (row.line, group)
        contacts_fine = self.contacts.read(row, sourced_id)
        if first is None or last is None or year is None or not fine or not contacts_fine:
            self.snapshot.unusable.add(sourced_id)
            return
        provided = {"year_group"}
        provided |= {
            k for k in ("preferred_first_name", "preferred_last_name", "email") if sheet.has(k)
        }
        if upn:
            provided.add("upn")
        self.snapshot.people[sourced_id] = RosterPerson(
            sourced_id,
            Kind.PUPIL,
            Role.PUPIL,
            first,
            last,
            where,
            preferred_first_name=_preferred(sheet.get(row, "preferred_first_name"), first),
            preferred_last_name=_preferred(sheet.get(row, "preferred_last_name"), last),
            upn=upn,
            year_group=year,
            email=sheet.get(row, "email") or None,
            provided=frozenset(provided),
        )
        if born is not None:
            self.snapshot.birth_dates[sourced_id] = (born, where)
        self.snapshot.link_scope.add(sourced_id)
        if group:
            self.years.setdefault(group, set()).add(year)
            self.snapshot.groups.setdefault(
                group, RosterGroup(group, GroupType.CLASS, group, where)
            )
            self.snapshot.enrolments.append(RosterEnrolment(group, sourced_id, "pupil", where))

    def _identity(self, row: CsvRow) -> str | None:
        """The admission number, else the UPN: the pupil's id in the MIS."""
        sheet = self.sheet
        sourced_id = (
            sheet.get(row, "admission_number") or sheet.get(row, "upn").replace(" ", "").upper()
        )
        if not sourced_id:
            key = "admission_number" if sheet.has("admission_number") else "upn"
            sheet.bad(
                row, key, "missing required value", "give the pupil's admission number or UPN"
            )
            return None
        if not self._fits(row, "admission_number", "sourced_id"):
            return None
        return sourced_id

    def _repeated(self, row: CsvRow, sourced_id: str, group: str) -> None:
        line, first_group = self.lines[sourced_id]
        key = "admission_number" if self.sheet.get(row, "admission_number") else "upn"
        if group != first_group:
            self.sheet.bad(
                row,
                "registration_group",
                f"pupil {sourced_id} is in two registration groups: {first_group or '(none)'!r} on line {line} and {group or '(none)'!r}",
                "keep one row per pupil, with their one registration group",
            )
        else:
            self.sheet.bad(
                row,
                key,
                f"duplicate id {sourced_id!r} (also on line {line})",
                "keep one row per pupil",
            )

    def _birth_date(self, row: CsvRow) -> date | None:
        text = self.sheet.required(row, "date_of_birth", "give the date of birth as DD/MM/YYYY")
        if text is None:
            return None
        try:
            return parse_date(text, uk=True, today=self.today, past=True)
        except BadValue as exc:
            self.sheet.bad_value(row, "date_of_birth", exc)
            return None

    def _year(self, row: CsvRow) -> YearGroup | None:
        text = self.sheet.required(row, "year", "give the year group (N1, N2, R, 1 … 13)")
        if text is None:
            return None
        try:
            return YearGroup.parse(text)
        except ValueError:
            self.sheet.bad(
                row,
                "year",
                f"unknown year group {text!r}",
                "write N1, N2, R or 1 to 13 (or 'Year 3', 'Reception', 'Nursery')",
            )
            return None

    def _upn(self, row: CsvRow) -> str | None:
        text = self.sheet.get(row, "upn")
        if not text:
            return None
        try:
            upn = parse_upn(text)
        except BadValue as exc:
            self.sheet.bad_value(row, "upn", exc)
            return None
        if upn in self.upns:
            self.sheet.bad(
                row,
                "upn",
                f"duplicate UPN {upn} (also on line {self.upns[upn]})",
                "each pupil has their own UPN; keep one row per pupil",
            )
            return None
        self.upns[upn] = row.line
        return upn

    def _fits(self, row: CsvRow, key: str, kind: str) -> bool:
        try:
            check_length(self.sheet.get(row, key), kind)
        except BadValue as exc:
            self.sheet.bad_value(row, key, exc)
            return False
        return True

    def finish(self) -> RosterSnapshot:
        snapshot = self.snapshot
        for sourced_id, parent in self.contacts.people.items():
            snapshot.people.setdefault(sourced_id, parent)
        snapshot.parent_links = list(self.contacts.links.values())
        for name, years in self.years.items():
            if len(years) == 1:  # a mixed-age class has no single year group
                snapshot.groups[name].year_group = next(iter(years))
        return snapshot


def _preferred(name: str, legal: str) -> str | None:
    """A preferred name only where it differs from the legal one."""
    return name if name and name != legal else None
