"""A plain MIS export: one row per pupil (SIMS, Arbor and others), read into a snapshot.

Headers are matched without regard to case, spaces, underscores and dots, and each field
accepts the names SIMS and Arbor use (:data:`PUPIL_COLUMNS`, :data:`CONTACT_FIELDS`;
docs/roster.md lists them all). Dates are ``DD/MM/YYYY`` or ``YYYY-MM-DD``. Contacts
(``Contact 1 Name``, ``Contact 1 Relationship``, ...) become parents linked to the pupil.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from esafety.directory.roster.cells import (
    BadValue,
    check_length,
    parse_date,
    parse_upn,
    parse_yes_no,
)
from esafety.directory.roster.columns import Sheet
from esafety.directory.roster.problems import Problems
from esafety.directory.roster.reading import CsvRow, normalise_header, parse_csv
from esafety.directory.roster.snapshot import (
    GroupType,
    Kind,
    Mode,
    RosterEnrolment,
    RosterGroup,
    RosterParentLink,
    RosterPerson,
    RosterSnapshot,
    Where,
)
from esafety.directory.years import YearGroup
from esafety.security.roles import Role

__all__ = [
    "ASSUMED_RESPONSIBILITY",
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

#: A contact's columns are ``<prefix> <n> <field>``: "Contact 1 Email", "Parent2 Phone".
CONTACT_PREFIXES = ("contact", "parent", "guardian", "carer")
CONTACT_FIELDS: dict[str, list[str]] = {
    "name": ["Name", "Full Name", ""],
    "title": ["Title"],
    "first_name": ["Forename", "First Name", "Given Name"],
    "last_name": ["Surname", "Last Name", "Family Name"],
    "relationship": [
        "Relationship",
        "Relation",
        "Relationship to Pupil",
        "Relationship to Student",
        "Relationship to Child",
    ],
    "email": ["Email", "Email Address"],
    "phone": [
        "Phone",
        "Telephone",
        "Tel",
        "Mobile",
        "Mobile Phone",
        "Home Phone",
        "Phone Number",
        "Telephone Number",
        "Main Phone",
    ],
    "parental_responsibility": [
        "Parental Responsibility",
        "Has Parental Responsibility",
        "PR",
        "Responsibility",
    ],
    "id": ["ID", "Contact ID", "Person ID"],
    "priority": ["Priority", "Contact Priority", "Order"],
}
#: With no Parental Responsibility value, these relationships are taken to hold it.
ASSUMED_RESPONSIBILITY = frozenset(
    {
        "mother",
        "father",
        "parent",
        "guardian",
        "specialguardian",
        "adoptivemother",
        "adoptivefather",
        "adoptiveparent",
        "stepmother",
        "stepfather",
    }
)
_TITLES = {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "rev", "sir", "dame", "lady", "lord"}
_CONTACT_HEADER = re.compile(rf"^({'|'.join(CONTACT_PREFIXES)})(\d+)(.*)$")


@dataclass
class _ContactColumns:
    number: int
    positions: dict[str, int]
    names: dict[str, str]


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
    reader = _MisReader(sheet, _contact_columns(table.header), delta=delta, today=today)
    for row in sheet.rows():
        reader.read_row(row)
    return reader.finish()


def _contact_columns(header: list[str]) -> list[_ContactColumns]:
    fields = {
        normalise_header(name): key for key, names in CONTACT_FIELDS.items() for name in names
    }
    contacts: dict[int, _ContactColumns] = {}
    for position, name in enumerate(header):
        match = _CONTACT_HEADER.match(normalise_header(name))
        if not match or match[3] not in fields:
            continue  # other contact columns (address, ...) are not kept
        number, key = int(match[2]), fields[match[3]]
        contact = contacts.setdefault(number, _ContactColumns(number, {}, {}))
        contact.positions.setdefault(key, position)
        contact.names.setdefault(key, name)
    return [contacts[n] for n in sorted(contacts)]


class _MisReader:
    def __init__(
        self, sheet: Sheet, contacts: list[_ContactColumns], *, delta: bool, today: date | None
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
        self.links: dict[tuple[str, str], RosterParentLink] = {}

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
        contacts_fine = self._contacts(row, sourced_id)
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

    # -- contacts -------------------------------------------------------------------

    def _contacts(self, row: CsvRow, child_id: str) -> bool:
        fine = True
        for columns in self.contacts:
            values = {key: row.values[pos] for key, pos in columns.positions.items()}
            if not any(values.values()):
                continue
            fine &= self._contact(row, child_id, columns, values)
        return fine

    def _contact(
        self, row: CsvRow, child_id: str, columns: _ContactColumns, values: dict[str, str]
    ) -> bool:
        sheet, where = self.sheet, Where(self.sheet.file, row.line)

        def bad(key: str, what: str, fix: str) -> bool:
            sheet.problems.add(
                sheet.file,
                row.line,
                columns.names.get(key, f"Contact {columns.number} {key}"),
                what,
                fix,
            )
            return False

        first, last = _split_name(values)
        if not first:
            key = "name" if "name" in columns.positions else "first_name"
            return bad(
                key,
                "missing required value",
                "give the contact's name, or leave all of this contact's columns empty",
            )
        relationship = (values.get("relationship") or "parent").lower()
        responsibility = relationship.replace(" ", "").replace("-", "") in ASSUMED_RESPONSIBILITY
        if values.get("parental_responsibility"):
            try:
                responsibility = parse_yes_no(values["parental_responsibility"])
            except BadValue as exc:
                return bad("parental_responsibility", exc.what, exc.fix)
        priority = columns.number
        if values.get("priority"):
            if not values["priority"].isdigit():
                return bad(
                    "priority",
                    f"{values['priority']!r} is not a number",
                    "write 1 for the first contact, 2 for the next",
                )
            priority = int(values["priority"])
        for key, text, kind in (
            ("name", f"{first} {last}", "name"),
            ("email", values.get("email", ""), "email"),
            ("phone", values.get("phone", ""), "phone"),
            ("relationship", relationship, "relationship"),
        ):
            try:
                check_length(text, kind)
            except BadValue as exc:
                return bad(key, exc.what, exc.fix)
        parent_id = _contact_id(values, first, last, child_id)
        if parent_id not in self.snapshot.people:
            self.snapshot.people[parent_id] = RosterPerson(
                parent_id,
                Kind.PARENT,
                Role.PARENT,
                first,
                last,
                where,
                email=values.get("email") or None,
                phone=values.get("phone") or None,
                relationship=relationship,
                provided=frozenset(k for k in ("email", "phone") if k in columns.positions),
            )
        self.links.setdefault(
            (parent_id, child_id),
            RosterParentLink(parent_id, child_id, relationship, responsibility, priority, where),
        )
        return True

    def finish(self) -> RosterSnapshot:
        snapshot = self.snapshot
        snapshot.parent_links = list(self.links.values())
        for name, years in self.years.items():
            if len(years) == 1:  # a mixed-age class has no single year group
                snapshot.groups[name].year_group = next(iter(years))
        return snapshot


def _preferred(name: str, legal: str) -> str | None:
    """A preferred name only where it differs from the legal one."""
    return name if name and name != legal else None


def _split_name(values: Mapping[str, str]) -> tuple[str, str]:
    """First and last name from Forename/Surname columns, or from one Name column:
    "Mrs Jane Smith" → Jane, Smith; "Smith, Jane" → Jane, Smith."""
    if values.get("first_name") or values.get("last_name"):
        return values.get("first_name", ""), values.get("last_name", "")
    full = values.get("name", "").strip()
    if "," in full:
        last, _, first = full.partition(",")
        return first.strip(), last.strip()
    words = full.split()
    if len(words) > 1 and words[0].lower().rstrip(".") in _TITLES:
        words = words[1:]
    if len(words) == 1:
        return words[0], ""
    return " ".join(words[:-1]), words[-1] if words else ""


def _contact_id(values: Mapping[str, str], first: str, last: str, child_id: str) -> str:
    """A contact's id: the MIS's own, else their email, else name and phone (so brothers
    and sisters share one parent), else name and child."""
    if values.get("id"):
        key = f"id:{values['id']}"
    elif values.get("email"):
        key = f"email:{values['email'].lower()}"
    elif values.get("phone"):
        key = f"name:{first.lower()} {last.lower()}:{re.sub(r'[^0-9+]', '', values['phone'])}"
    else:
        key = f"name:{first.lower()} {last.lower()}:child:{child_id}"
    sourced_id = f"contact:{key}"
    if len(sourced_id) > 120:
        sourced_id = f"contact:sha1:{hashlib.sha1(key.encode()).hexdigest()}"  # noqa: S324 - an id, not security
    return sourced_id
