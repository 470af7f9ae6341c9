"""OneRoster 1.1 CSV (IMS Global): manifest, orgs, academicSessions, classes, users,
enrollments and demographics, in bulk or as a delta, read into a :class:`RosterSnapshot`.

OneRoster is American: its grades are US codes (KG, 01-13), mapped to English year groups
with ``settings.roster.grade_map``; its roles map to esafety's (``administrator`` is the
school office, never ``admin``). See docs/roster.md for the whole mapping.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import date

from esafety.directory.roster.cells import BadValue, check_length
from esafety.directory.roster.grades import GradeMap
from esafety.directory.roster.manifest import FILES, read_manifest
from esafety.directory.roster.oneroster_rows import RowReader, fields
from esafety.directory.roster.oneroster_users import USER_ROLES, UserRows
from esafety.directory.roster.problems import Problems
from esafety.directory.roster.reading import CsvTable, parse_csv
from esafety.directory.roster.snapshot import (
    GroupType,
    Kind,
    Mode,
    RosterEnrolment,
    RosterGroup,
    RosterSnapshot,
    Where,
)

__all__ = ["ENROLMENT_ROLES", "FILES", "USER_ROLES", "read_oneroster"]

#: OneRoster enrolment role → the role kept on the class membership.
ENROLMENT_ROLES = {
    "student": "pupil",
    "teacher": "teacher",
    "aide": "teaching_assistant",
    "administrator": "office",
}
CLASS_TYPES = {"homeroom": GroupType.CLASS, "scheduled": GroupType.TEACHING}


def read_oneroster(
    files: Mapping[str, bytes],
    problems: Problems,
    *,
    delta: bool,
    grades: GradeMap,
    allow_bom: bool = False,
    today: date | None = None,
) -> RosterSnapshot:
    """Read a OneRoster export (``files``: lower-case file name → bytes)."""
    mode = Mode.DELTA if delta else Mode.BULK
    modes = read_manifest(files, problems, mode, allow_bom)
    reader = _Reader(problems, mode, grades, today)
    tables: dict[str, CsvTable] = {}
    for name in FILES:
        data = files.get(f"{name.lower()}.csv")
        if data is not None and modes.get(name, "absent") != "absent":
            tables[name] = parse_csv(data, f"{name}.csv", problems, allow_bom=allow_bom)
    for name, table in tables.items():
        getattr(reader, f"read_{name.lower()}")(table)
    return reader.finish()


class _Reader(RowReader):
    """Reads each file into one snapshot, remembering what later files refer to."""

    def __init__(
        self, problems: Problems, mode: Mode, grades: GradeMap, today: date | None
    ) -> None:
        super().__init__(problems, mode, grades, today)
        self.class_codes: dict[str, str] = {}
        self.users = UserRows(self)

    def read_users(self, table: CsvTable) -> None:
        self.users.read(table)

    def read_orgs(self, table: CsvTable) -> None:
        sheet = self.sheet(table, fields("name", "type"), ("name", "type"))
        self.orgs = set()
        seen: dict[str, int] = {}
        for row in sheet.rows():
            identity = self.identity(sheet, row, seen)
            sheet.required(row, "name")
            if identity is not None:
                self.orgs.add(identity[0])

    def read_academicsessions(self, table: CsvTable) -> None:
        sheet = self.sheet(
            table, fields("title", "type", "startDate", "endDate"), ("startDate", "endDate")
        )
        self.sessions = set()
        seen: dict[str, int] = {}
        for row in sheet.rows():
            identity = self.identity(sheet, row, seen)
            if identity is None or not identity[1]:
                continue
            self.sessions.add(identity[0])
            starts, ends = (
                self.read_date(sheet, row, "startDate"),
                self.read_date(sheet, row, "endDate"),
            )
            if starts and ends and ends < starts:
                sheet.bad(
                    row,
                    "endDate",
                    f"the session ends ({ends}) before it starts ({starts})",
                    "correct the dates",
                )

    def read_classes(self, table: CsvTable) -> None:
        columns = fields(
            "title", "classType", "classCode", "grades", "schoolSourcedId", "termSourcedIds"
        )
        sheet = self.sheet(table, columns, ("title", "classType", "schoolSourcedId"))
        seen: dict[str, int] = {}
        for row in sheet.rows():
            identity = self.identity(sheet, row, seen)
            if identity is None:
                continue
            sourced_id, active = identity
            if not active:
                self.snapshot.closing[sourced_id] = Where(sheet.file, row.line)
                continue
            title = sheet.required(row, "title", "give the class a title")
            class_type = sheet.required(
                row, "classType", "write homeroom (registration group) or scheduled"
            )
            kind = CLASS_TYPES.get((class_type or "").lower())
            if class_type and kind is None:
                sheet.bad(
                    row,
                    "classType",
                    f"unknown class type {class_type!r}",
                    "write homeroom (registration group) or scheduled (timetabled class)",
                )
            year, _ = self.read_year(sheet, row, "grades")
            self.check_refs(
                sheet, row, "schoolSourcedId", self.orgs, "org", "use a sourcedId from orgs.csv"
            )
            self.check_refs(
                sheet,
                row,
                "termSourcedIds",
                self.sessions,
                "academic session",
                "use a sourcedId from academicSessions.csv",
            )
            if title is None or kind is None:
                self.snapshot.unusable.add(sourced_id)
                continue
            try:
                check_length(title, "group")
            except BadValue as exc:
                sheet.bad_value(row, "title", exc)
            self.class_codes[sourced_id] = sheet.get(row, "classCode")
            self.snapshot.groups[sourced_id] = RosterGroup(
                sourced_id, kind, title, Where(sheet.file, row.line), year
            )

    def read_enrollments(self, table: CsvTable) -> None:
        columns = fields("classSourcedId", "userSourcedId", "role", "beginDate", "endDate")
        sheet = self.sheet(table, columns, ("classSourcedId", "userSourcedId", "role"))
        seen: dict[str, int] = {}
        for row in sheet.rows():
            identity = self.identity(sheet, row, seen)
            group_id = sheet.required(
                row, "classSourcedId", "name the class (a sourcedId from classes.csv)"
            )
            person_id = sheet.required(
                row, "userSourcedId", "name the person (a sourcedId from users.csv)"
            )
            role_text = sheet.required(row, "role", "write student, teacher, aide or administrator")
            role = ENROLMENT_ROLES.get((role_text or "").lower())
            if role_text and role is None:
                sheet.bad(
                    row,
                    "role",
                    f"unknown role {role_text!r}",
                    f"use one of: {', '.join(ENROLMENT_ROLES)}",
                )
            self.read_date(sheet, row, "beginDate")
            self.read_date(sheet, row, "endDate")
            if identity is None or group_id is None or person_id is None or role is None:
                continue
            self.snapshot.enrolments.append(
                RosterEnrolment(
                    group_id, person_id, role, Where(sheet.file, row.line), active=identity[1]
                )
            )

    def read_demographics(self, table: CsvTable) -> None:
        sheet = self.sheet(table, fields("birthDate"), ("birthDate",))
        seen: dict[str, int] = {}
        for row in sheet.rows():
            identity = self.identity(sheet, row, seen)
            born = self.read_date(sheet, row, "birthDate", past=True)
            if identity is not None and identity[1] and born is not None:
                self.snapshot.birth_dates[identity[0]] = (born, Where(sheet.file, row.line))

    # -- after every file -------------------------------------------------------------

    def finish(self) -> RosterSnapshot:
        snapshot = self.snapshot
        _name_classes_apart(snapshot, self.class_codes)
        bulk = self.mode is Mode.BULK
        snapshot.states_registration = bulk
        snapshot.states_memberships = bulk
        # A pupil without grades takes the year of their registration group.
        for enrolment in snapshot.enrolments:
            group = snapshot.groups.get(enrolment.group_id)
            person = snapshot.people.get(enrolment.person_id)
            if (
                group
                and person
                and enrolment.active
                and group.kind is GroupType.CLASS
                and person.kind is Kind.PUPIL
                and person.year_group is None
            ):
                person.year_group = group.year_group
        # A year is stated only where the roster gives one: a blank never clears it.
        for person in snapshot.people.values():
            if person.year_group is not None:
                person.provided = person.provided | {"year_group"}
        return snapshot


def _name_classes_apart(snapshot: RosterSnapshot, codes: Mapping[str, str]) -> None:
    """Two classes of one kind may share a title ("Maths"); esafety's names are unique."""
    for label in (codes.get, lambda sourced_id: sourced_id):
        counts = Counter((g.kind, g.name.lower()) for g in snapshot.groups.values())
        for group in snapshot.groups.values():
            if counts[(group.kind, group.name.lower())] > 1:
                suffix = label(group.sourced_id) or group.sourced_id
                group.name = f"{group.name[: max(1, 116 - len(suffix))]} ({suffix})"[:120]
