"""The demo school: a whole primary school to try esafety with, created once.

``ensure_demo`` creates "Demo Primary School" (slug ``demo``) the first time and finds it
every time after: a few hundred pupils from Nursery to Year 6 in two classes a year,
their parents, staff in every role, governors, volunteers and a visitor, this academic
year's terms and closures, and a few flags, technology restrictions and access grants.
Names come from Faker (en_GB) with a fixed seed. One person per role can sign in with
``demo-<role>-password``; roles that need two-step sign-in come with their authenticator
secret already enrolled, so a newcomer can add it to an app and sign in.

Only those ~15 passwords are hashed, so the demo is quick even with production Argon2
costs. Everything is created in one transaction: all of it or nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.audit import Actor
from esafety.db import utcnow
from esafety.directory import groups, registers, service, terms
from esafety.directory.calendar import academic_year_start, school_date
from esafety.directory.model import Group, GroupKind, Person, PersonKind, PupilFlagKind, School
from esafety.directory.upn import make_upn
from esafety.directory.usernames import unique_username
from esafety.directory.years import YearGroup
from esafety.security.model import Account
from esafety.security.roles import TWO_STEP_ROLES, Role

if TYPE_CHECKING:
    from faker import Faker

    from esafety.installation import Installation

__all__ = ["DEMO_SLUG", "DemoInfo", "DemoLogin", "demo_password", "demo_username", "ensure_demo"]

DEMO_SLUG = "demo"
DEMO_NAME = "Demo Primary School"
DEMO_TIMEZONE = "Europe/London"
SEED = 20240901
#: Not a real local authority number, so a demo UPN can never be a real child's.
DEMO_LA = 999
DEMO_ESTABLISHMENT = 2001
CLASS_SIZE = 25
CLASS_NAMES = {
    YearGroup.NURSERY: ("Acorns",),
    YearGroup.RECEPTION: ("Ladybirds", "Caterpillars"),
    YearGroup.YEAR1: ("Robins", "Wrens"),
    YearGroup.YEAR2: ("Owls", "Kestrels"),
    YearGroup.YEAR3: ("Rowan", "Hazel"),
    YearGroup.YEAR4: ("Willow", "Birch"),
    YearGroup.YEAR5: ("Oak", "Ash"),
    YearGroup.YEAR6: ("Cedar", "Maple"),
}
ACTOR = Actor.system("demo")


def demo_username(role: Role) -> str:
    return f"demo.{role.value.replace('_', '')}"


def demo_password(role: Role) -> str:
    return f"demo-{role.value}-password"


@dataclass(frozen=True)
class DemoLogin:
    role: Role
    username: str
    password: str
    display_name: str
    totp_secret: str | None = None
    otpauth_uri: str | None = None


@dataclass(frozen=True)
class DemoInfo:
    school_slug: str
    school_name: str
    #: True when this call created the school, False when it was already there.
    created: bool
    logins: tuple[DemoLogin, ...] = field(default_factory=tuple)

    def login(self, role: Role | str) -> DemoLogin:
        wanted = Role(role)
        return next(entry for entry in self.logins if entry.role is wanted)


def ensure_demo(inst: Installation, *, today: date | None = None) -> DemoInfo:
    """Create the demo school once; later calls find it and say how to sign in.

    The starter filter lists are loaded too (as ``esafety db upgrade`` and ``esafety
    serve`` load them), so the demo blocks VPNs, encrypted DNS, social media... for pupils.
    """
    with inst.db.session(ACTOR) as session:
        school = session.scalars(select(School).where(School.slug == DEMO_SLUG)).first()
        if school is not None:
            info = _info(session, school, created=False)
        else:
            school = service.create_school(session, DEMO_SLUG, DEMO_NAME, timezone=DEMO_TIMEZONE)
            session.info["school_id"] = school.id  # from here on, act within the demo school
            _Builder(inst, session, today or school_date(utcnow(), DEMO_TIMEZONE)).build()
            info = _info(session, school, created=True)
    if inst.settings.filtering.starter_lists:
        from esafety.filtering.upkeep import load_starter_lists

        load_starter_lists(inst)  # once: it changes nothing when they are loaded
    return info


def _info(session: Session, school: School, *, created: bool) -> DemoInfo:
    from esafety.security.totp import provisioning_uri

    usernames = {demo_username(role): role for role in Role}
    rows = session.execute(
        select(Person, Account)
        .outerjoin(Account, Account.person_id == Person.id)
        .where(Person.school_id == school.id, Person.username.in_(usernames))
    )
    logins = []
    for person, account in rows:
        role = usernames[person.username]
        secret = account.totp_secret if account is not None else None
        logins.append(
            DemoLogin(
                role=role,
                username=person.username,
                password=demo_password(role),
                display_name=person.display_name,
                totp_secret=secret,
                otpauth_uri=provisioning_uri(secret, person.username, school.name)
                if secret
                else None,
            )
        )
    order = list(Role)
    logins.sort(key=lambda entry: order.index(entry.role))
    return DemoInfo(school.slug, school.name, created, tuple(logins))


def _birthday(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def _weekday_on_or_after(day: date, weekday: int) -> date:
    return day + timedelta(days=(weekday - day.weekday()) % 7)


def _weekday_on_or_before(day: date, weekday: int) -> date:
    return day - timedelta(days=(day.weekday() - weekday) % 7)


MONDAY, FRIDAY = 0, 4


class _Builder:
    def __init__(self, inst: Installation, session: Session, today: date) -> None:
        from faker import Faker

        self.inst = inst
        self.session = session
        self.today = today
        self.year = academic_year_start(today)
        self.rng = random.Random(SEED)
        self.fake: Faker = Faker("en_GB")
        self.fake.seed_instance(SEED)
        table = Person.__table__
        self.taken = set(session.connection().execute(select(table.c.username)).scalars())
        self.serial = 0
        self.demo_people: dict[Role, Person] = {}
        self.classes: dict[YearGroup, list[Group]] = {}

    def build(self) -> None:
        # Each service call flushes what it needs; flushing on every query besides would
        # write an audit batch per query and make the demo several times slower.
        with self.session.no_autoflush:
            self.calendar()
            pupils = self.pupils_and_parents()
            self.staff()
            self.governors_and_others()
            self.registers(pupils)
            self.accounts()

    # -- people ------------------------------------------------------------------

    def username(self, first: str, last: str, role: Role | None = None) -> str:
        name = demo_username(role) if role is not None else None
        if name is None or name in self.taken:
            name = unique_username(first, last, self.taken.__contains__)
        self.taken.add(name)
        return name

    def add(
        self, kind: PersonKind, first: str, last: str, *, demo: Role | None = None, **kw: Any
    ) -> Person:
        username = self.username(first, last, demo)
        person = service.add_person(self.session, kind, first, last, username=username, **kw)
        if demo is not None:
            self.demo_people[demo] = person
        return person

    def adult_birthday(self) -> date:
        return _birthday(self.rng, date(self.year - 62, 9, 1), date(self.year - 22, 8, 31))

    def pupils_and_parents(self) -> list[Person]:
        pupils: list[Person] = []
        families: list[tuple[str, list[Person]]] = []
        for year, names in CLASS_NAMES.items():
            offset = year.order - 1  # Reception is 0: four on 1 September
            born_from = date(self.year - 5 - offset, 9, 1)
            born_to = date(self.year - 4 - offset, 8, 31)
            size = CLASS_SIZE + 1 if year is YearGroup.NURSERY else CLASS_SIZE
            for class_name in names:
                label = f"{year.label} {class_name}"
                for _ in range(size):
                    demo = Role.PUPIL if self._wants_demo_pupil(year) else None
                    family = None
                    if demo is None and families and self.rng.random() < 0.18:
                        family = self.rng.choice(families[-80:])
                    surname = family[0] if family else self.fake.last_name()
                    girl = self.rng.random() < 0.5
                    first = self.fake.first_name_female() if girl else self.fake.first_name_male()
                    self.serial += 1
                    pupil = self.add(
                        PersonKind.PUPIL,
                        first,
                        surname,
                        demo=demo,
                        date_of_birth=_birthday(self.rng, born_from, born_to),
                        upn=make_upn(DEMO_LA, DEMO_ESTABLISHMENT, self.year - offset, self.serial),
                        year_group=year,
                        registration_class=label,
                    )
                    pupils.append(pupil)
                    if family is None:
                        family = (surname, self.parents(surname, first_child=pupil))
                        families.append(family)
                    for priority, parent in enumerate(family[1], start=1):
                        relationship = "mother" if priority == 1 else "father"
                        service.link_parent(
                            self.session,
                            parent.id,
                            pupil.id,
                            relationship=relationship,
                            parental_responsibility=True,
                            priority=priority,
                        )
            self.classes[year] = [
                g for g in groups.list_groups(self.session, GroupKind.CLASS) if g.year_group is year
            ]
        return pupils

    def _wants_demo_pupil(self, year: YearGroup) -> bool:
        return year is YearGroup.YEAR5 and Role.PUPIL not in self.demo_people

    def parents(self, surname: str, *, first_child: Person) -> list[Person]:
        demo = Role.PARENT if self.demo_people.get(Role.PUPIL) is first_child else None
        mother = self.add(
            PersonKind.PARENT,
            self.fake.first_name_female(),
            surname,
            demo=demo,
            date_of_birth=self.adult_birthday(),
            email=self.fake.free_email(),
            phone=self.fake.cellphone_number(),
        )
        if self.rng.random() < 0.25:  # a single-parent family
            return [mother]
        father_surname = surname if self.rng.random() < 0.8 else self.fake.last_name()
        father = self.add(
            PersonKind.PARENT,
            self.fake.first_name_male(),
            father_surname,
            date_of_birth=self.adult_birthday(),
            email=self.fake.free_email(),
        )
        return [mother, father]

    def staff_member(
        self, job_title: str, roles: list[Role], *, demo: Role | None = None
    ) -> Person:
        girl = self.rng.random() < 0.75
        first = self.fake.first_name_female() if girl else self.fake.first_name_male()
        return self.add(
            PersonKind.STAFF,
            first,
            self.fake.last_name(),
            demo=demo,
            job_title=job_title,
            roles=roles,
            date_of_birth=self.adult_birthday(),
            email=None,
        )

    def staff(self) -> None:
        for year, classes in self.classes.items():
            for group in classes:
                demo = Role.TEACHER if self._is_demo_pupils_class(group) else None
                teacher = self.staff_member(
                    f"Class teacher, {group.name}", [Role.TEACHER], demo=demo
                )
                groups.assign_teacher(self.session, group.id, teacher.id)
            assistant = self.staff_member(
                f"Teaching assistant, {year.label}",
                [Role.TEACHING_ASSISTANT],
                demo=Role.TEACHING_ASSISTANT if year is YearGroup.YEAR5 else None,
            )
            for group in classes:
                groups.assign_teacher(self.session, group.id, assistant.id)
        self.staff_member("Headteacher", [Role.HEADTEACHER], demo=Role.HEADTEACHER)
        self.staff_member(
            "Deputy headteacher and designated safeguarding lead", [Role.DSL], demo=Role.DSL
        )
        self.staff_member("SENCo and deputy DSL", [Role.DEPUTY_DSL], demo=Role.DEPUTY_DSL)
        self.staff_member(
            "Computing lead and online safety lead",
            [Role.TEACHER, Role.ONLINE_SAFETY_LEAD],
            demo=Role.ONLINE_SAFETY_LEAD,
        )
        self.staff_member("School business manager", [Role.OFFICE], demo=Role.OFFICE)
        self.staff_member("Office administrator", [Role.OFFICE])
        self.staff_member("IT technician", [Role.TECHNICIAN], demo=Role.TECHNICIAN)
        self.staff_member("Trust IT administrator", [Role.ADMIN], demo=Role.ADMIN)

    def _is_demo_pupils_class(self, group: Group) -> bool:
        pupil = self.demo_people.get(Role.PUPIL)
        return pupil is not None and pupil.registration_group_id == group.id

    def governors_and_others(self) -> None:
        self.add(
            PersonKind.GOVERNOR,
            self.fake.first_name(),
            self.fake.last_name(),
            demo=Role.CHAIR_OF_GOVERNORS,
            roles=[Role.CHAIR_OF_GOVERNORS],
            job_title="Chair of governors",
        )
        titles = [
            "Safeguarding governor",
            "Parent governor",
            "Parent governor",
            "Co-opted governor",
            "Local authority governor",
        ]
        for i, title in enumerate(titles):
            self.add(
                PersonKind.GOVERNOR,
                self.fake.first_name(),
                self.fake.last_name(),
                demo=Role.GOVERNOR if i == 0 else None,
                job_title=title,
            )
        for i, title in enumerate(
            ["Reading volunteer", "Reading volunteer", "Forest school volunteer"]
        ):
            self.add(
                PersonKind.VOLUNTEER,
                self.fake.first_name(),
                self.fake.last_name(),
                demo=Role.VOLUNTEER if i == 0 else None,
                job_title=title,
            )
        self.add(
            PersonKind.VISITOR,
            self.fake.first_name(),
            self.fake.last_name(),
            demo=Role.VISITOR,
            job_title="Visiting speech and language therapist",
        )

    # -- calendar ----------------------------------------------------------------

    def calendar(self) -> None:
        y = self.year
        autumn = (
            _weekday_on_or_after(date(y, 9, 2), MONDAY),
            _weekday_on_or_before(date(y, 12, 20), FRIDAY),
        )
        spring = (
            _weekday_on_or_after(date(y + 1, 1, 5), MONDAY),
            _weekday_on_or_before(date(y + 1, 3, 28), FRIDAY),
        )
        summer = (
            _weekday_on_or_after(date(y + 1, 4, 14), MONDAY),
            _weekday_on_or_before(date(y + 1, 7, 22), FRIDAY),
        )
        for name, (start, end) in (
            (f"Autumn {y}", autumn),
            (f"Spring {y + 1}", spring),
            (f"Summer {y + 1}", summer),
        ):
            terms.add_term(self.session, name, start, end)
        half_terms = (
            _weekday_on_or_after(date(y, 10, 23), MONDAY),
            _weekday_on_or_after(date(y + 1, 2, 12), MONDAY),
            _weekday_on_or_after(date(y + 1, 5, 25), MONDAY),
        )
        for start in half_terms:
            terms.add_closure(self.session, start, start + timedelta(days=4), "Half term")
        terms.add_closure(self.session, autumn[0], autumn[0], "INSET day")
        terms.add_closure(self.session, spring[0], spring[0], "INSET day")
        may_day = _weekday_on_or_after(date(y + 1, 5, 1), MONDAY)
        terms.add_closure(self.session, may_day, may_day, "Early May bank holiday")

    # -- registers ---------------------------------------------------------------

    def registers(self, pupils: list[Person]) -> None:
        dsl = self.demo_people[Role.DSL]
        lead = self.demo_people[Role.ONLINE_SAFETY_LEAD]
        technician = self.demo_people[Role.TECHNICIAN]
        picked = self.rng.sample(pupils, 24)
        flags = (
            [PupilFlagKind.SEND] * 9
            + [PupilFlagKind.EAL] * 6
            + [
                PupilFlagKind.LOOKED_AFTER,
                PupilFlagKind.LOOKED_AFTER,
                PupilFlagKind.PREVIOUSLY_LOOKED_AFTER,
                PupilFlagKind.CHILD_PROTECTION_PLAN,
                PupilFlagKind.CHILD_IN_NEED,
                PupilFlagKind.YOUNG_CARER,
                PupilFlagKind.YOUNG_CARER,
                PupilFlagKind.OTHER_VULNERABILITY,
            ]
        )
        for pupil, kind in zip(picked, flags, strict=False):
            flag = registers.set_pupil_flag(self.session, pupil.id, kind)
            flag.set_by_id = dsl.id
        reasons = [
            ("Parents have not yet signed the acceptable use agreement", 0),
            ("Misused a school iPad to message other pupils; supervised use only until review", 21),
            ("Parental request: no internet use while the family's concerns are discussed", 42),
        ]
        # Review dates count from the real today (a review date may not be in the past).
        review_from = max(self.today, service.school_today(self.session))
        for pupil, (reason, days) in zip(picked[-3:], reasons, strict=True):
            restriction = registers.add_technology_restriction(
                self.session, pupil.id, reason, review_from + timedelta(days=days)
            )
            restriction.recorded_by_id = lead.id
        staff = service.find_people(self.session, kind=PersonKind.STAFF)
        start = date(self.year, 9, 1)
        for person in staff:
            for system in ("Staff Wi-Fi", "School network"):
                grant = registers.grant_access(self.session, person.id, system, granted_on=start)
                grant.granted_by_id = technician.id
        for person in service.find_people(self.session, year_group=YearGroup.YEAR6):
            grant = registers.grant_access(
                self.session, person.id, "Google Classroom", granted_on=start + timedelta(days=7)
            )
            grant.granted_by_id = technician.id
        for guests in (PersonKind.VOLUNTEER, PersonKind.VISITOR, PersonKind.GOVERNOR):
            for person in service.find_people(self.session, kind=guests):
                grant = registers.grant_access(
                    self.session, person.id, "Guest Wi-Fi", granted_on=start + timedelta(days=14)
                )
                grant.granted_by_id = technician.id

    # -- sign-in -----------------------------------------------------------------

    def accounts(self) -> None:
        from esafety.security.passwords import hasher
        from esafety.security.totp import new_secret

        ph = hasher(self.inst.settings.security)
        now = utcnow()
        for role, person in self.demo_people.items():
            two_step = role in TWO_STEP_ROLES
            self.session.add(
                Account(
                    person_id=person.id,
                    password_hash=ph.hash(demo_password(role)),
                    password_changed_at=now,
                    totp_secret=new_secret() if two_step else None,
                    totp_enrolled_at=now if two_step else None,
                )
            )
        self.session.flush()
