"""OneRoster users.csv: pupils, staff and parents, their roles, usernames, UPNs and agents."""

from __future__ import annotations

import re

from esafety.directory.roster.cells import BadValue, parse_upn
from esafety.directory.roster.columns import Sheet
from esafety.directory.roster.oneroster_rows import RowReader, fields, split_list
from esafety.directory.roster.reading import CsvRow, CsvTable
from esafety.directory.roster.snapshot import Agent, Kind, RosterPerson, Where
from esafety.security.roles import Role

__all__ = ["USER_ROLES", "UserRows"]

#: OneRoster role → (esafety role, kind of person, relationship to a child).
USER_ROLES: dict[str, tuple[Role, Kind, str | None]] = {
    "student": (Role.PUPIL, Kind.PUPIL, None),
    "teacher": (Role.TEACHER, Kind.STAFF, None),
    "aide": (Role.TEACHING_ASSISTANT, Kind.STAFF, None),
    # The school office runs the MIS; never the installation's `admin` role.
    "administrator": (Role.OFFICE, Kind.STAFF, None),
    "parent": (Role.PARENT, Kind.PARENT, "parent"),
    "guardian": (Role.PARENT, Kind.PARENT, "guardian"),
    "relative": (Role.PARENT, Kind.PARENT, "relative"),
}

_USER_IDS = re.compile(r"\{\s*([^:{}]+?)\s*:\s*([^{}]*?)\s*\}")


class UserRows:
    """Reads users.csv into the snapshot's people and agents."""

    def __init__(self, rows: RowReader) -> None:
        self.rows = rows
        self.lines: dict[str, int] = {}
        self.usernames: dict[str, int] = {}
        self.upns: dict[str, int] = {}

    def read(self, table: CsvTable) -> None:
        columns = fields(
            "role",
            "username",
            "givenName",
            "familyName",
            "preferredFirstName",
            "preferredLastName",
            "identifier",
            "userIds",
            "email",
            "sms",
            "phone",
            "agentSourcedIds",
            "grades",
            "orgSourcedIds",
        )
        sheet = self.rows.sheet(table, columns, ("role", "givenName", "familyName"))
        for row in sheet.rows():
            identity = self.rows.identity(sheet, row, self.lines)
            if identity is None:
                sourced_id = sheet.get(row, "sourcedId")
                if sourced_id:
                    self.rows.snapshot.unusable.add(sourced_id)
                continue
            sourced_id, active = identity
            if not active:
                self.rows.snapshot.leaving[sourced_id] = Where(sheet.file, row.line)
                continue
            person = self._person(sheet, row, sourced_id)
            if person is None:
                self.rows.snapshot.unusable.add(sourced_id)
                continue
            self.rows.snapshot.people[sourced_id] = person
            self.rows.snapshot.link_scope.add(sourced_id)
            for position, agent in enumerate(
                split_list(sheet.get(row, "agentSourcedIds")), start=1
            ):
                self.rows.snapshot.agents.append(Agent(sourced_id, agent, position, person.where))

    def _person(self, sheet: Sheet, row: CsvRow, sourced_id: str) -> RosterPerson | None:
        role_text = sheet.required(
            row, "role", "write student, teacher, aide, administrator, parent, guardian or relative"
        )
        mapped = USER_ROLES.get((role_text or "").lower())
        if role_text and mapped is None:
            sheet.bad(
                row, "role", f"unknown role {role_text!r}", f"use one of: {', '.join(USER_ROLES)}"
            )
        first = sheet.required(row, "givenName", "give the person's first name")
        last = sheet.required(row, "familyName", "give the person's family name")
        values = {
            key: sheet.get(row, key) for key in ("preferredFirstName", "preferredLastName", "email")
        }
        values["phone"] = sheet.get(row, "phone") or sheet.get(row, "sms")
        limits = {
            "givenName": first or "",
            "familyName": last or "",
            "preferredFirstName": values["preferredFirstName"],
            "preferredLastName": values["preferredLastName"],
        }
        fine = all(self.rows.fits(sheet, row, key, text, "name") for key, text in limits.items())
        fine &= self.rows.fits(sheet, row, "email", values["email"], "email")
        fine &= self.rows.fits(sheet, row, "phone", values["phone"], "phone")
        username = self._username(sheet, row)
        self.rows.check_refs(
            sheet, row, "orgSourcedIds", self.rows.orgs, "org", "use a sourcedId from orgs.csv"
        )
        if mapped is None or first is None or last is None or not fine:
            return None
        role, kind, relationship = mapped
        person = RosterPerson(
            sourced_id,
            kind,
            role,
            first,
            last,
            Where(sheet.file, row.line),
            preferred_first_name=values["preferredFirstName"] or None,
            preferred_last_name=values["preferredLastName"] or None,
            email=values["email"] or None,
            phone=values["phone"] or None,
            username=username,
            relationship=relationship,
        )
        provided = {
            key
            for key, column in (
                ("preferred_first_name", "preferredFirstName"),
                ("preferred_last_name", "preferredLastName"),
                ("email", "email"),
            )
            if sheet.has(column)
        }
        if sheet.has("phone") or sheet.has("sms"):
            provided.add("phone")
        if kind is Kind.PUPIL:
            person.upn = self._upn(sheet, row)
            if person.upn:
                provided.add("upn")
            person.year_group, _ = self.rows.read_year(sheet, row, "grades")
        person.provided = frozenset(provided)
        return person

    def _username(self, sheet: Sheet, row: CsvRow) -> str | None:
        username = sheet.get(row, "username").lower()
        if not username:
            return None
        if any(c.isspace() for c in username) or len(username) > 120:
            sheet.bad(
                row,
                "username",
                f"username {username!r} has spaces or is over 120 characters",
                "use a sign-in name without spaces",
            )
            return None
        if username in self.usernames:
            sheet.bad(
                row,
                "username",
                f"duplicate username {username!r} (also on line {self.usernames[username]})",
                "give each person their own username, or leave it blank for esafety to choose",
            )
            return None
        self.usernames[username] = row.line
        return username

    def _upn(self, sheet: Sheet, row: CsvRow) -> str | None:
        # UK exports put the UPN in userIds as {UPN:...}, or in identifier.
        for kind, value in _USER_IDS.findall(sheet.get(row, "userIds")):
            if kind.strip().lower() == "upn" and value:
                return self._unique_upn(sheet, row, "userIds", value)
        identifier = sheet.get(row, "identifier")
        if identifier:
            try:
                parse_upn(identifier)
            except BadValue:
                return None  # an identifier that is not a UPN is some other number
            return self._unique_upn(sheet, row, "identifier", identifier)
        return None

    def _unique_upn(self, sheet: Sheet, row: CsvRow, key: str, text: str) -> str | None:
        try:
            upn = parse_upn(text)
        except BadValue as exc:
            sheet.bad_value(row, key, exc)
            return None
        if upn in self.upns:
            sheet.bad(
                row,
                key,
                f"duplicate UPN {upn} (also on line {self.upns[upn]})",
                "each pupil has their own UPN; correct it in the MIS",
            )
            return None
        self.upns[upn] = row.line
        return upn
