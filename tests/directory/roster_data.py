"""Builders of roster files for the tests and the benchmark: OneRoster 1.1 CSV and MIS CSV.

Small rosters are built row by row (``OneRoster().pupil(...)``) and written to a folder;
``big_oneroster`` and ``big_mis`` make a whole school of any size, with parents.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from esafety.directory.upn import make_upn

STAMP = "2024-09-01T08:00:00Z"

ORG_COLUMNS = [
    "sourcedId",
    "status",
    "dateLastModified",
    "name",
    "type",
    "identifier",
    "parentSourcedId",
]
SESSION_COLUMNS = [
    "sourcedId",
    "status",
    "dateLastModified",
    "title",
    "type",
    "startDate",
    "endDate",
    "parentSourcedId",
    "schoolYear",
]
CLASS_COLUMNS = [
    "sourcedId",
    "status",
    "dateLastModified",
    "title",
    "grades",
    "courseSourcedId",
    "classCode",
    "classType",
    "location",
    "schoolSourcedId",
    "termSourcedIds",
    "subjects",
    "subjectCodes",
    "periods",
]
USER_COLUMNS = [
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "orgSourcedIds",
    "role",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
]
ENROLLMENT_COLUMNS = [
    "sourcedId",
    "status",
    "dateLastModified",
    "classSourcedId",
    "schoolSourcedId",
    "userSourcedId",
    "role",
    "primary",
    "beginDate",
    "endDate",
]
DEMOGRAPHIC_COLUMNS = ["sourcedId", "status", "dateLastModified", "birthDate", "sex"]

FILES = {
    "orgs": ORG_COLUMNS,
    "academicSessions": SESSION_COLUMNS,
    "classes": CLASS_COLUMNS,
    "users": USER_COLUMNS,
    "enrollments": ENROLLMENT_COLUMNS,
    "demographics": DEMOGRAPHIC_COLUMNS,
}


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=list(columns), lineterminator="\n", extrasaction="raise"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {c: row.get(c, "") for c in columns}
            | {k: v for k, v in row.items() if k not in columns}
        )
    return out.getvalue()


def upn(n: int) -> str:
    return make_upn(330, 2000 + n // 1000, 18, n % 1000)


@dataclass
class OneRoster:
    """A OneRoster 1.1 CSV roster built row by row. ``delta=True`` fills status columns."""

    delta: bool = False
    tables: dict[str, list[dict[str, str]]] = field(
        default_factory=lambda: {name: [] for name in FILES}
    )
    #: Manifest overrides: file name → bulk, delta or absent.
    modes: dict[str, str] = field(default_factory=dict)
    enrolments_made: int = 0

    def __post_init__(self) -> None:
        self.add("orgs", sourcedId="org1", name="West Park Primary", type="school")
        self.add(
            "academicSessions",
            sourcedId="y2024",
            title="2024-25",
            type="schoolYear",
            startDate="2024-09-01",
            endDate="2025-07-31",
            schoolYear="2025",
        )

    def add(self, table: str, **row: str) -> dict[str, str]:
        if self.delta:
            row.setdefault("status", "active")
            row.setdefault("dateLastModified", STAMP)
        self.tables[table].append(row)
        return row

    def homeroom(self, sourced_id: str, title: str, grade: str = "03") -> OneRoster:
        self.add(
            "classes",
            sourcedId=sourced_id,
            title=title,
            grades=grade,
            classType="homeroom",
            schoolSourcedId="org1",
            termSourcedIds="y2024",
            classCode=title,
        )
        return self

    def scheduled(
        self, sourced_id: str, title: str, grade: str = "03", code: str = ""
    ) -> OneRoster:
        self.add(
            "classes",
            sourcedId=sourced_id,
            title=title,
            grades=grade,
            classType="scheduled",
            schoolSourcedId="org1",
            termSourcedIds="y2024",
            classCode=code or title,
        )
        return self

    def user(self, sourced_id: str, role: str, given: str, family: str, **extra: str) -> OneRoster:
        self.add(
            "users",
            sourcedId=sourced_id,
            enabledUser="true",
            orgSourcedIds="org1",
            role=role,
            givenName=given,
            familyName=family,
            **extra,
        )
        return self

    def pupil(
        self,
        sourced_id: str,
        given: str,
        family: str,
        *,
        grade: str = "03",
        homeroom: str | None = None,
        born: str | None = "2016-05-04",
        upn_number: int | None = None,
        **extra: str,
    ) -> OneRoster:
        if upn_number is not None:
            extra.setdefault("userIds", f"{{UPN:{upn(upn_number)}}}")
        self.user(sourced_id, "student", given, family, grades=grade, **extra)
        if homeroom:
            self.enrol(homeroom, sourced_id, "student")
        if born:
            self.add("demographics", sourcedId=sourced_id, birthDate=born)
        return self

    def enrol(
        self,
        class_id: str,
        user_id: str,
        role: str = "student",
        sourced_id: str | None = None,
        **extra: str,
    ) -> OneRoster:
        self.enrolments_made += 1
        self.add(
            "enrollments",
            sourcedId=sourced_id or f"e{self.enrolments_made}",
            classSourcedId=class_id,
            schoolSourcedId="org1",
            userSourcedId=user_id,
            role=role,
            **extra,
        )
        return self

    def line_of(self, table: str, sourced_id: str) -> int:
        """The line of ``table``'s row with this sourcedId (the header is line 1)."""
        ids = [row.get("sourcedId") for row in self.tables[table]]
        return ids.index(sourced_id) + 2

    def row(self, table: str, sourced_id: str) -> dict[str, str]:
        return next(r for r in self.tables[table] if r.get("sourcedId") == sourced_id)

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        default = "delta" if self.delta else "bulk"
        manifest = [
            {"propertyName": "manifest.version", "value": "1.0"},
            {"propertyName": "oneroster.version", "value": "1.1"},
        ]
        for name, columns in FILES.items():
            rows = self.tables[name]
            mode = self.modes.get(
                name, default if rows or name in ("users", "classes", "enrollments") else "absent"
            )
            manifest.append({"propertyName": f"file.{name}", "value": mode})
            if mode != "absent":
                (folder / f"{name}.csv").write_text(csv_text(columns, rows), encoding="utf-8")
        for name in ("courses", "lineItems", "results", "categories", "resources"):
            manifest.append({"propertyName": f"file.{name}", "value": "absent"})
        (folder / "manifest.csv").write_text(
            csv_text(["propertyName", "value"], manifest), encoding="utf-8"
        )
        return folder


def small_school() -> OneRoster:
    """Two registration groups, a maths set, two teachers, an aide, an office manager,
    three pupils and their parents (one a guardian, one a grandparent)."""
    r = OneRoster()
    r.homeroom("c3b", "3B", "03").homeroom("c4c", "4C", "04").scheduled("m3", "Maths set 1", "03")
    r.user("t1", "teacher", "Tara", "Teach", username="t.teach", email="t.teach@westpark.sch.uk")
    r.user("t2", "teacher", "Tom", "Tutor")
    r.user("a1", "aide", "Anna", "Aide")
    r.user("o1", "administrator", "Olive", "Office")
    r.pupil(
        "p1", "Ada", "Lovelace", grade="03", homeroom="c3b", upn_number=1, agentSourcedIds="g1,g2"
    )
    r.pupil("p2", "Alan", "Turing", grade="03", homeroom="c3b", upn_number=2, agentSourcedIds="g3")
    r.pupil("p3", "Grace", "Hopper", grade="04", homeroom="c4c", upn_number=3, born="2015-12-09")
    r.user("g1", "parent", "Anne", "Lovelace", email="anne@example.org", agentSourcedIds="p1")
    r.user("g2", "relative", "Granny", "Byron")
    r.user("g3", "guardian", "Gus", "Guardian", agentSourcedIds="p2")
    r.enrol("c3b", "t1", "teacher").enrol("c4c", "t2", "teacher")
    r.enrol("m3", "p1").enrol("m3", "p2").enrol("m3", "t1", "teacher").enrol("m3", "a1", "aide")
    return r


# -- MIS CSV ------------------------------------------------------------------------------

SIMS_HEADER = [
    "Adno",
    "UPN",
    "Legal Surname",
    "Legal Forename",
    "Preferred Surname",
    "Preferred Forename",
    "DOB",
    "NC Year Actual",
    "Reg Group",
    "Contact 1 Name",
    "Contact 1 Relationship",
    "Contact 1 Email",
    "Contact 1 Telephone",
    "Contact 1 Parental Responsibility",
    "Contact 2 Name",
    "Contact 2 Relationship",
    "Contact 2 Email",
    "Contact 2 Telephone",
    "Contact 2 Parental Responsibility",
]
ARBOR_HEADER = [
    "Admission Number",
    "UPN",
    "Legal First Name",
    "Legal Last Name",
    "First Name",
    "Last Name",
    "Date of Birth",
    "Year Group",
    "Registration Form",
    "Contact 1 First Name",
    "Contact 1 Last Name",
    "Contact 1 Relationship",
    "Contact 1 Email Address",
    "Contact 1 Mobile Phone",
    "Contact 1 Has Parental Responsibility",
]


def mis_text(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def sims_rows() -> list[list[str]]:
    return [
        [
            "1001",
            upn(11),
            "Lovelace",
            "Augusta",
            "",
            "Ada",
            "10/12/2016",
            "3",
            "3B",
            "Anne Lovelace",
            "Mother",
            "anne@example.org",
            "07700 900001",
            "Yes",
            "Mr George Byron",
            "Grandfather",
            "",
            "07700 900002",
            "No",
        ],
        [
            "1002",
            upn(12),
            "Turing",
            "Alan",
            "",
            "",
            "23/06/2016",
            "3",
            "3B",
            "Anne Lovelace",
            "Aunt",
            "anne@example.org",
            "07700 900001",
            "No",
            "",
            "",
            "",
            "",
            "",
        ],
        [
            "1003",
            upn(13),
            "Hopper",
            "Grace",
            "",
            "",
            "2015-12-09",
            "R",
            "RH",
            "Walter Hopper",
            "Father",
            "",
            "07700 900003",
            "",
            "",
            "",
            "",
            "",
            "",
        ],
    ]


def arbor_rows() -> list[list[str]]:
    return [
        [
            "A1",
            upn(21),
            "Mary",
            "Somerville",
            "Molly",
            "Somerville",
            "26/12/2016",
            "Year 3",
            "3S",
            "Will",
            "Somerville",
            "Father",
            "will@example.org",
            "07700 900010",
            "Yes",
        ],
        [
            "A2",
            upn(22),
            "Rosalind",
            "Franklin",
            "",
            "",
            "2017-07-25",
            "Year 2",
            "2F",
            "Muriel",
            "Franklin",
            "Mother",
            "muriel@example.org",
            "07700 900011",
            "Yes",
        ],
    ]


# -- whole schools (benchmark and large tests) ---------------------------------------------

FIRST = [
    "Ada",
    "Alan",
    "Grace",
    "Mary",
    "Isaac",
    "Rosalind",
    "Charles",
    "Dorothy",
    "Tim",
    "Katherine",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "John",
    "Radia",
    "Ken",
    "Margaret",
    "Niklaus",
    "Sophie",
    "Amira",
    "Oliver",
    "Priya",
    "Noah",
    "Zara",
    "Leo",
    "Aisha",
    "Jack",
    "Freya",
    "Mohammed",
    "Isla",
    "Harry",
    "Maya",
    "George",
    "Chloe",
    "Yusuf",
    "Evie",
    "Arthur",
    "Layla",
    "Oscar",
    "Ruby",
    "Theo",
    "Hana",
    "Finley",
    "Zoë",
    "Kai",
    "Nia",
    "Ibrahim",
    "Poppy",
    "Reuben",
]
LAST = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Somerville",
    "Newton",
    "Franklin",
    "Babbage",
    "Hodgkin",
    "Berners-Lee",
    "Johnson",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "McCarthy",
    "Perlman",
    "Thompson",
    "Hamilton",
    "Wirth",
    "Wilson",
    "Khan",
    "Patel",
    "Smith",
    "Jones",
    "O'Brien",
    "Nowak",
    "Okafor",
    "Begum",
    "Evans",
    "Hughes",
    "Ahmed",
    "Taylor",
    "Brown",
    "Davies",
    "Ali",
    "Murphy",
    "Kowalski",
    "Mensah",
    "Singh",
    "Clarke",
    "Wright",
    "Green",
    "Hall",
    "Wood",
    "Price",
    "Chen",
    "Hussain",
    "Walker",
    "Roberts",
    "Edwards",
]
YEARS = ["R", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13"]
GRADES = ["KG", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13"]


def _name(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


def big_oneroster(pupils: int, seed: int = 1, teaching_per_pupil: int = 3) -> OneRoster:
    """A school of ``pupils`` pupils in 30-pupil registration groups across 14 years, each
    with one or two parents (siblings share them), a teacher per class, and
    ``teaching_per_pupil`` timetabled classes each."""
    rng = random.Random(seed)
    r = OneRoster()
    groups = max(1, pupils // 30)
    for g in range(groups):
        grade = GRADES[g % len(GRADES)]
        r.homeroom(f"h{g}", f"{YEARS[g % len(YEARS)]}-{g}", grade)
        r.user(f"t{g}", "teacher", *_name(rng))
        r.enrol(f"h{g}", f"t{g}", "teacher")
    sets = max(1, groups * teaching_per_pupil)
    for s in range(sets):
        r.scheduled(f"s{s}", f"Set {s}", GRADES[s % len(GRADES)])
        r.enrol(f"s{s}", f"t{s % groups}", "teacher")
    parent = 0
    for p in range(pupils):
        first, last = _name(rng)
        agents = []
        if p % 3 != 1 or parent == 0:  # every third pupil is a younger sibling
            parent += 1
            r.user(f"g{parent}", "parent", _name(rng)[0], last, email=f"parent{parent}@example.org")
            if rng.random() < 0.5:
                parent += 1
                r.user(
                    f"g{parent}",
                    rng.choice(["parent", "guardian", "relative"]),
                    _name(rng)[0],
                    last,
                )
                agents.append(f"g{parent - 1}")
        agents.append(f"g{parent}")
        g = p % groups
        r.pupil(
            f"p{p}",
            first,
            last,
            grade=GRADES[g % len(GRADES)],
            homeroom=f"h{g}",
            born=f"{2006 + p % 14}-{1 + p % 12:02d}-{1 + p % 28:02d}",
            upn_number=p,
            agentSourcedIds=",".join(agents),
        )
        for k in range(teaching_per_pupil):
            r.enrol(f"s{(g * teaching_per_pupil + k) % sets}", f"p{p}")
    return r


def big_mis(pupils: int, seed: int = 1) -> str:
    """A SIMS-style export of ``pupils`` pupils with one or two contacts each."""
    rng = random.Random(seed)
    rows = []
    groups = max(1, pupils // 30)
    for p in range(pupils):
        first, last = _name(rng)
        g = p % groups
        family = p - (p % 3 == 1)  # siblings share contacts
        c1 = [
            f"{_name(rng)[0]} {last}",
            "Mother",
            f"family{family}@example.org",
            f"07700 {family:06d}",
            "Yes",
        ]
        c2 = (
            [f"{_name(rng)[0]} {last}", "Father", "", f"07800 {family:06d}", "Yes"]
            if p % 2
            else ["", "", "", "", ""]
        )
        rows.append(
            [
                str(100000 + p),
                upn(p),
                last,
                first,
                "",
                "",
                f"{1 + p % 28:02d}/{1 + p % 12:02d}/{2006 + p % 14}",
                YEARS[g % len(YEARS)],
                f"{YEARS[g % len(YEARS)]}-{g}",
                *c1,
                *c2,
            ]
        )
    return mis_text(SIMS_HEADER, rows)
