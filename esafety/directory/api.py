"""The directory's JSON API under ``/api/v1`` (included by :mod:`esafety.directory.web`).

Same permissions and the same school scoping as the pages; a session cookie or a bearer
token. Bodies are validated by their models; a domain error answers with its status
and a message that says what to fix.
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from esafety.directory import groups, registers, service, terms
from esafety.directory.model import AccessGrant, ParentLink, Person, TechnologyRestriction
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, require

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["directory"])


# -- response shapes ----------------------------------------------------------------------


class PersonSummary(BaseModel):
    id: int
    username: str
    kind: str
    first_name: str
    last_name: str
    display_name: str
    roles: list[str]
    year_group: str | None
    key_stage: str | None
    registration_group: str | None
    left_on: date | None

    @classmethod
    def of(cls, person: Person) -> PersonSummary:
        return cls(
            id=person.id,
            username=person.username,
            kind=person.kind.value,
            first_name=person.first_name,
            last_name=person.last_name,
            display_name=person.display_name,
            roles=sorted(r.value for r in person.role_ids),
            year_group=person.year_group.value if person.year_group else None,
            key_stage=person.key_stage.value if person.key_stage else None,
            registration_group=person.registration_group.name
            if person.registration_group
            else None,
            left_on=person.left_on,
        )


class Relative(BaseModel):
    id: int
    display_name: str
    relationship: str
    parental_responsibility: bool


class PersonDetail(PersonSummary):
    legal_first_name: str
    legal_last_name: str
    date_of_birth: date | None
    upn: str | None
    job_title: str | None
    email: str | None
    groups: list[str]
    parents: list[Relative]
    children: list[Relative]
    #: Present only for callers who may see pupil flags.
    flags: list[str] | None = None


class Restriction(BaseModel):
    id: int
    person_id: int
    pupil: str
    registration_group: str | None
    reason: str
    review_on: date
    review_due: bool
    recorded_at: date
    ended_on: date | None

    @classmethod
    def of(cls, entry: registers.RestrictionEntry) -> Restriction:
        row = entry.restriction
        return cls(
            id=row.id,
            person_id=entry.pupil.id,
            pupil=entry.pupil.display_name,
            registration_group=entry.pupil.registration_group.name
            if entry.pupil.registration_group
            else None,
            reason=row.reason,
            review_on=row.review_on,
            review_due=entry.review_due,
            recorded_at=row.recorded_at.date(),
            ended_on=row.ended_on,
        )


class Grant(BaseModel):
    id: int
    person_id: int
    person: str
    username: str
    system: str
    granted_on: date
    granted_by_id: int | None
    revoked_on: date | None
    revoked_by_id: int | None
    note: str | None

    @classmethod
    def of(cls, grant: AccessGrant, person: Person) -> Grant:
        return cls(
            id=grant.id,
            person_id=person.id,
            person=person.display_name,
            username=person.username,
            system=grant.system,
            granted_on=grant.granted_on,
            granted_by_id=grant.granted_by_id,
            revoked_on=grant.revoked_on,
            revoked_by_id=grant.revoked_by_id,
            note=grant.note,
        )


class NewRestriction(BaseModel):
    person_id: int
    reason: str = Field(min_length=1, max_length=2000)
    review_on: date


class NewGrant(BaseModel):
    person_id: int
    system: str = Field(min_length=1, max_length=120)
    granted_on: date | None = None
    note: str | None = Field(default=None, max_length=2000)


class EndDate(BaseModel):
    on: date | None = None


class TermDays(BaseModel):
    name: str
    starts_on: date
    ends_on: date
    school_days: int


class Calendar(BaseModel):
    timezone: str
    today: date
    school_day_today: bool
    terms: list[TermDays]
    closures: list[dict[str, str]]


# -- people -------------------------------------------------------------------------------


@router.get("/people")
def list_people(
    q: str = "",
    kind: str | None = None,
    year: str | None = None,
    group_id: int | None = None,
    include_leavers: bool = False,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    caller: Caller = Depends(require(Permission.VIEW_DIRECTORY)),
    session: Session = SchoolSession,
) -> list[PersonSummary]:
    """People of the caller's school, filtered like the People page."""
    found = service.find_people(
        session,
        text=q,
        kind=kind,
        year_group=year,
        group_id=group_id,
        include_leavers=include_leavers,
        limit=limit,
        offset=offset,
    )
    return [PersonSummary.of(p) for p in found]


@router.get("/people/{person_id}")
def get_person(
    person_id: int,
    caller: Caller = Depends(require(Permission.VIEW_DIRECTORY)),
    session: Session = SchoolSession,
) -> PersonDetail:
    """One person: details, groups, parents or children; flags only for safeguarding leads."""
    person = service.get_person(session, person_id)

    def relatives(rows: list[tuple[ParentLink, Person]]) -> list[Relative]:
        return [
            Relative(
                id=p.id,
                display_name=p.display_name,
                relationship=link.relationship_to_child,
                parental_responsibility=link.parental_responsibility,
            )
            for link, p in rows
        ]

    flags = None
    if caller.can(Permission.VIEW_PUPIL_FLAGS):
        flags = [f.flag.value for f in registers.pupil_flags(session, person.id)]
    return PersonDetail(
        **PersonSummary.of(person).model_dump(),
        legal_first_name=person.legal_first_name,
        legal_last_name=person.legal_last_name,
        date_of_birth=person.date_of_birth,
        upn=person.upn,
        job_title=person.job_title,
        email=person.email,
        groups=groups.groups_of(session, person).labels(),
        parents=relatives(service.parents_of(session, person.id)),
        children=relatives(service.children_of(session, person.id)),
        flags=flags,
    )


# -- technology restrictions ---------------------------------------------------------------


@router.get("/technology-restrictions")
def list_restrictions(
    include_ended: bool = False,
    caller: Caller = Depends(require(Permission.VIEW_TECHNOLOGY_RESTRICTIONS)),
    session: Session = SchoolSession,
) -> list[Restriction]:
    """Children who may not use technology, with reason and review date (000 §4.5)."""
    entries = registers.technology_restrictions(session, include_ended=include_ended)
    return [Restriction.of(e) for e in entries]


@router.post("/technology-restrictions", status_code=201)
def add_restriction(
    body: NewRestriction,
    caller: Caller = Depends(require(Permission.MANAGE_TECHNOLOGY_RESTRICTIONS)),
    session: Session = SchoolSession,
) -> Restriction:
    row = registers.add_technology_restriction(session, body.person_id, body.reason, body.review_on)
    return _restriction(session, row)


@router.post("/technology-restrictions/{restriction_id}/end")
def end_restriction(
    restriction_id: int,
    body: EndDate | None = None,
    caller: Caller = Depends(require(Permission.MANAGE_TECHNOLOGY_RESTRICTIONS)),
    session: Session = SchoolSession,
) -> Restriction:
    row = registers.end_technology_restriction(session, restriction_id, body.on if body else None)
    return _restriction(session, row)


def _restriction(session: Session, row: TechnologyRestriction) -> Restriction:
    pupil = service.get_person(session, row.person_id)
    due = row.ended_on is None and row.review_on <= service.school_today(session)
    return Restriction.of(registers.RestrictionEntry(row, pupil, due))


# -- the access register ------------------------------------------------------------------


@router.get("/access-register")
def list_access(
    system: str | None = None,
    person_id: int | None = None,
    current: bool = False,
    caller: Caller = Depends(require(Permission.VIEW_ACCESS_REGISTER)),
    session: Session = SchoolSession,
) -> list[Grant]:
    """Who was granted access to which system and when, newest first (003 §7.2)."""
    entries = registers.access_register(
        session, system=system, person_id=person_id, current_only=current
    )
    return [Grant.of(e.grant, e.person) for e in entries]


@router.post("/access-register", status_code=201)
def add_grant(
    body: NewGrant,
    caller: Caller = Depends(require(Permission.MANAGE_ACCESS_REGISTER)),
    session: Session = SchoolSession,
) -> Grant:
    grant = registers.grant_access(
        session, body.person_id, body.system, granted_on=body.granted_on, note=body.note
    )
    return Grant.of(grant, service.get_person(session, grant.person_id))


@router.post("/access-register/{grant_id}/revoke")
def revoke_grant(
    grant_id: int,
    body: EndDate | None = None,
    caller: Caller = Depends(require(Permission.MANAGE_ACCESS_REGISTER)),
    session: Session = SchoolSession,
) -> Grant:
    grant = registers.revoke_access(session, grant_id, body.on if body else None)
    return Grant.of(grant, service.get_person(session, grant.person_id))


# -- the calendar -------------------------------------------------------------------------


@router.get("/calendar")
def calendar(
    caller: Caller = Depends(require(Permission.VIEW_CALENDAR)),
    session: Session = SchoolSession,
) -> Calendar:
    """Terms (with their school days), closures, and whether today is a school day."""
    school_calendar = terms.school_calendar(session)
    today = service.school_today(session)
    return Calendar(
        timezone=school_calendar.timezone,
        today=today,
        school_day_today=school_calendar.is_school_day(today),
        terms=[
            TermDays(
                name=t.name,
                starts_on=t.starts_on,
                ends_on=t.ends_on,
                school_days=school_calendar.school_days_between(t.starts_on, t.ends_on),
            )
            for t in school_calendar.terms
        ],
        closures=[
            {
                "reason": c.name,
                "starts_on": c.starts_on.isoformat(),
                "ends_on": c.ends_on.isoformat(),
            }
            for c in school_calendar.closures
        ],
    )
