"""A school with a year of concerns for the trends tests: several kinds, months, year
groups, places, a pupil in three concerns and one in two, a change of kind, a change of
date, an unlinked pupil, a staff allegation, one concern before the period and one in
another school."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select

from esafety.audit import Actor
from esafety.directory.model import Person
from esafety.directory.years import YearGroup
from esafety.installation import Installation
from esafety.safeguarding import concerns
from esafety.safeguarding.concerns import About
from esafety.safeguarding.model import Concern, ConcernPerson, ConcernStatus
from esafety.safeguarding.trends import Period
from esafety.security.roles import Role
from tests.accounts import Member, add_member
from tests.safeguarding.concern_people import ConcernSchool, concern_school

#: The period of the tests, and "today" during it (so year groups need no shift).
PERIOD = Period(date(2024, 9, 1), date(2025, 8, 31))
TODAY = date(2025, 6, 15)


@dataclass
class TrendSchool:
    cs: ConcernSchool
    amy: Member  # Year 5: three concerns
    ben: Member  # Year 6: two concerns (and one he was unlinked from)
    cal: Member  # Year 3: one concern, and the staff allegation
    ids: dict[str, int]

    def __getattr__(self, name: str):  # the ConcernSchool's helpers
        return getattr(self.cs, name)


def _pupil(inst: Installation, school_id: int, username: str, year: YearGroup) -> Member:
    member = add_member(inst, school_id, username, [Role.PUPIL])
    with inst.db.session(Actor.system("test", school_id=school_id)) as session:
        person = session.get(Person, member.id)
        assert person is not None
        person.year_group = year
    return member


def at(day: str, clock: str = "10:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=UTC)


def add(
    cs: ConcernSchool,
    when: datetime,
    kind: str,
    about: list[About | str],
    location: str | None = "online",
) -> int:
    with cs.session(Role.TEACHER) as session:
        return concerns.record_concern(
            session,
            kind=kind,
            narrative="What Amy said, in her own words, about the messages.",
            happened_at=when,
            about=about,
            location=location,
        ).id


def close(cs: ConcernSchool, concern_id: int) -> None:
    # Closing through the procedure takes every step; the figures only need the status.
    with cs.inst.db.session(Actor.system("test", school_id=cs.id)) as session:
        concern = session.get(Concern, concern_id)
        assert concern is not None
        concern.status = ConcernStatus.CLOSED


def trend_school(inst: Installation, slug: str = "oak") -> TrendSchool:
    cs = concern_school(inst, slug)
    amy = _pupil(inst, cs.id, f"amy.{slug}", YearGroup.YEAR5)
    ben = _pupil(inst, cs.id, f"ben.{slug}", YearGroup.YEAR6)
    cal = _pupil(inst, cs.id, f"cal.{slug}", YearGroup.YEAR3)
    ids = {
        "bully_oct": add(cs, at("2024-10-05"), "online_bullying", [amy.username, ben.username]),
        "bully_oct2": add(
            cs, at("2024-10-20"), "online_bullying", [amy.username], location="in_school"
        ),
        "misuse_nov": add(cs, at("2024-11-02"), "technology_misuse", [ben.username], "at_home"),
        "ypsi_jan": add(cs, at("2025-01-15"), "youth_produced_sexual_imagery", [amy.username]),
        "allegation": add(
            cs,
            at("2025-01-20"),
            "staff_allegation",
            [About(person=cs.teacher2.username, part="harmed_others"), About(person=cal.username)],
            location="in_school",
        ),
        "welfare_feb": add(cs, at("2025-02-10"), "pupil_welfare", [cal.username], None),
        "bully_mar": add(cs, at("2025-03-01"), "online_bullying", [ben.username, cal.username]),
        "before": add(cs, at("2024-08-20"), "online_bullying", [amy.username, ben.username]),
    }
    with cs.session(Role.DSL) as session:
        concerns.change_kind(
            session, ids["welfare_feb"], "radicalisation", "It was about extremist videos."
        )
        # Told later that it happened in December, not March.
        concerns.change_happened_at(
            session, ids["bully_mar"], at("2024-12-01"), "Cal's mother gave the date."
        )
        link = session.scalars(
            select(ConcernPerson.id).where(
                ConcernPerson.concern_id == ids["bully_mar"],
                ConcernPerson.person_id == cal.id,
            )
        ).one()
        concerns.unlink_person(session, ids["bully_mar"], link, "Cal was not in that chat.")
    close(cs, ids["bully_oct"])
    close(cs, ids["misuse_nov"])
    # Another school's concerns never reach these figures.
    other = concern_school(inst, f"{slug}x")
    add(other, at("2024-10-06"), "online_hate", [other[Role.PUPIL].username])
    add(other, at("2024-10-07"), "online_hate", [other[Role.PUPIL].username])
    return TrendSchool(cs, amy, ben, cal, ids)
