"""Contacts in an MIS export: ``Contact 1 Name``, ``Contact 1 Relationship``, ... on each
pupil's row. Each becomes a parent (role ``parent``) linked to the pupil, with the
relationship, parental responsibility and contact order on the link."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from esafety.directory.roster.cells import BadValue, check_length, parse_yes_no
from esafety.directory.roster.columns import Sheet
from esafety.directory.roster.reading import CsvRow, normalise_header
from esafety.directory.roster.snapshot import Kind, RosterParentLink, RosterPerson, Where
from esafety.security.roles import Role

__all__ = [
    "ASSUMED_RESPONSIBILITY",
    "CONTACT_FIELDS",
    "CONTACT_PREFIXES",
    "ContactColumns",
    "Contacts",
    "contact_columns",
    "contact_id",
    "split_name",
]

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
class ContactColumns:
    """Where one contact's fields are: ``number`` is the n of ``Contact n ...``."""

    number: int
    positions: dict[str, int]
    names: dict[str, str]


def contact_columns(header: list[str]) -> list[ContactColumns]:
    fields = {
        normalise_header(name): key for key, names in CONTACT_FIELDS.items() for name in names
    }
    contacts: dict[int, ContactColumns] = {}
    for position, name in enumerate(header):
        match = _CONTACT_HEADER.match(normalise_header(name))
        if not match or match[3] not in fields:
            continue  # other contact columns (address, ...) are not kept
        number, key = int(match[2]), fields[match[3]]
        contact = contacts.setdefault(number, ContactColumns(number, {}, {}))
        contact.positions.setdefault(key, position)
        contact.names.setdefault(key, name)
    return [contacts[n] for n in sorted(contacts)]


class Contacts:
    """Reads each row's contacts into parents (shared by brothers and sisters) and links."""

    def __init__(self, sheet: Sheet, columns: list[ContactColumns]) -> None:
        self.sheet = sheet
        self.columns = columns
        self.people: dict[str, RosterPerson] = {}
        self.links: dict[tuple[str, str], RosterParentLink] = {}

    def read(self, row: CsvRow, child_id: str) -> bool:
        """Read the row's contacts of ``child_id``; False if any had a problem."""
        fine = True
        for columns in self.columns:
            values = {key: row.values[pos] for key, pos in columns.positions.items()}
            if not any(values.values()):
                continue
            fine &= self._one(row, child_id, columns, values)
        return fine

    def _one(
        self, row: CsvRow, child_id: str, columns: ContactColumns, values: dict[str, str]
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

        first, last = split_name(values)
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
        parent_id = contact_id(values, first, last, child_id)
        if parent_id not in self.people:
            self.people[parent_id] = RosterPerson(
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


def split_name(values: Mapping[str, str]) -> tuple[str, str]:
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


def contact_id(values: Mapping[str, str], first: str, last: str, child_id: str) -> str:
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
