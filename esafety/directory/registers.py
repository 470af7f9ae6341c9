"""The directory's registers: pupil flags, technology restrictions, and the access register.

* Pupil flags (SEND, looked-after, other vulnerabilities) are set by the DSL or a deputy
  and read only with ``VIEW_PUPIL_FLAGS``; every read is audited (``PupilFlag``).
* The list of children who may not use technology, with reason and review date, is
  visible to all staff (000 §4.5); reviews that are due are flagged.
* The written record of who was granted access to which system, Wi-Fi included, and
  when (003 §7.2): current grants and the whole history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.db import utcnow
from esafety.directory.events import (
    AccessGranted,
    AccessRevoked,
    PupilFlagRemoved,
    PupilFlagSet,
    TechnologyRestrictionAdded,
    TechnologyRestrictionEnded,
)
from esafety.directory.model import (
    AccessGrant,
    Person,
    PersonKind,
    PupilFlag,
    PupilFlagKind,
    TechnologyRestriction,
)
from esafety.directory.service import actor_person_id, clean_text, get_person, require, school_today
from esafety.errors import InvalidInput, NotFound
from esafety.events import publish_on_commit
from esafety.security.roles import Permission

__all__ = [
    "AccessEntry",
    "RestrictionEntry",
    "access_register",
    "add_technology_restriction",
    "end_technology_restriction",
    "grant_access",
    "pupil_flags",
    "remove_pupil_flag",
    "revoke_access",
    "set_pupil_flag",
    "systems_in_use",
    "technology_restrictions",
]


def _pupil(session: Session, person_id: int, what: str) -> Person:
    person = get_person(session, person_id)
    if person.kind is not PersonKind.PUPIL:
        raise InvalidInput(f"{what} are for pupils; {person.display_name} is a {person.kind.value}")
    return person


# -- pupil flags ----------------------------------------------------------------------


def set_pupil_flag(
    session: Session, person_id: int, flag: PupilFlagKind | str, note: str | None = None
) -> PupilFlag:
    """Record a vulnerability on a pupil (DSL or deputy only)."""
    require(session, Permission.MANAGE_PUPIL_FLAGS, "set pupil flags")
    try:
        kind = PupilFlagKind(flag)
    except ValueError:
        kinds = ", ".join(k.value for k in PupilFlagKind)
        raise InvalidInput(f"unknown flag {flag!r}: use one of {kinds}") from None
    pupil = _pupil(session, person_id, "flags")
    current = session.scalars(
        select(PupilFlag).where(
            PupilFlag.person_id == pupil.id, PupilFlag.flag == kind, PupilFlag.removed_at.is_(None)
        )
    ).first()
    if current is not None:
        raise InvalidInput(f"{pupil.display_name} already has the flag {kind.label!r}")
    row = PupilFlag(
        person_id=pupil.id,
        flag=kind,
        note=clean_text(note, "note", 2000, required=False) or None,
        set_by_id=actor_person_id(session),
    )
    session.add(row)
    session.flush()
    publish_on_commit(session, PupilFlagSet(pupil.school_id, pupil.id, kind.value))
    return row


def remove_pupil_flag(session: Session, flag_id: int) -> PupilFlag:
    require(session, Permission.MANAGE_PUPIL_FLAGS, "remove pupil flags")
    row = session.scalars(select(PupilFlag).where(PupilFlag.id == flag_id)).first()
    if row is None or row.removed_at is not None:
        raise NotFound(f"no current pupil flag with id {flag_id}")
    row.removed_at = utcnow()
    session.flush()
    publish_on_commit(session, PupilFlagRemoved(row.school_id, row.person_id, row.flag.value))
    return row


def pupil_flags(
    session: Session, person_id: int | None = None, *, include_removed: bool = False
) -> list[PupilFlag]:
    """A pupil's flags (or every pupil's): each row read is audited."""
    require(session, Permission.VIEW_PUPIL_FLAGS, "see pupil flags")
    query = select(PupilFlag).order_by(PupilFlag.set_at)
    if person_id is not None:
        query = query.where(PupilFlag.person_id == person_id)
    if not include_removed:
        query = query.where(PupilFlag.removed_at.is_(None))
    return list(session.scalars(query))


# -- technology restrictions (000 §4.5) -------------------------------------------------


@dataclass(frozen=True)
class RestrictionEntry:
    restriction: TechnologyRestriction
    pupil: Person
    review_due: bool


def add_technology_restriction(
    session: Session, person_id: int, reason: str, review_on: date
) -> TechnologyRestriction:
    """Add a child to the list of those who may not use technology."""
    require(session, Permission.MANAGE_TECHNOLOGY_RESTRICTIONS, "add technology restrictions")
    pupil = _pupil(session, person_id, "technology restrictions")
    reason = clean_text(reason, "reason", 2000)
    today = school_today(session)
    if review_on < today:
        raise InvalidInput(
            f"review date {review_on.isoformat()} is in the past: give the date the restriction "
            "will next be reviewed"
        )
    if pupil.is_leaver:
        raise InvalidInput(f"{pupil.display_name} has left the school")
    current = session.scalars(
        select(TechnologyRestriction).where(
            TechnologyRestriction.person_id == pupil.id, TechnologyRestriction.ended_on.is_(None)
        )
    ).first()
    if current is not None:
        raise InvalidInput(
            f"{pupil.display_name} is already on the list (review on "
            f"{current.review_on.isoformat()}); end that restriction first to change it"
        )
    row = TechnologyRestriction(
        person_id=pupil.id,
        reason=reason,
        review_on=review_on,
        recorded_by_id=actor_person_id(session),
    )
    session.add(row)
    session.flush()
    publish_on_commit(session, TechnologyRestrictionAdded(pupil.school_id, pupil.id, review_on))
    return row


def end_technology_restriction(
    session: Session, restriction_id: int, ended_on: date | None = None
) -> TechnologyRestriction:
    require(session, Permission.MANAGE_TECHNOLOGY_RESTRICTIONS, "end technology restrictions")
    row = session.scalars(
        select(TechnologyRestriction).where(TechnologyRestriction.id == restriction_id)
    ).first()
    if row is None or row.ended_on is not None:
        raise NotFound(f"no current technology restriction with id {restriction_id}")
    ended_on = ended_on or school_today(session)
    if ended_on < row.recorded_at.date():
        raise InvalidInput(
            f"end date {ended_on.isoformat()} is before the restriction was recorded"
        )
    row.ended_on = ended_on
    session.flush()
    publish_on_commit(session, TechnologyRestrictionEnded(row.school_id, row.person_id, ended_on))
    return row


def technology_restrictions(
    session: Session, *, today: date | None = None, include_ended: bool = False
) -> list[RestrictionEntry]:
    """The list for all staff, by class then name; ``review_due`` once the date has come."""
    require(session, Permission.VIEW_TECHNOLOGY_RESTRICTIONS, "see technology restrictions")
    today = today or school_today(session)
    query = select(TechnologyRestriction, Person).join(
        Person, Person.id == TechnologyRestriction.person_id
    )
    if not include_ended:
        query = query.where(TechnologyRestriction.ended_on.is_(None))
    rows = session.execute(
        query.order_by(Person.year_group, Person.legal_last_name, Person.legal_first_name)
    )
    entries = [
        RestrictionEntry(r, p, review_due=r.ended_on is None and r.review_on <= today)
        for r, p in rows
    ]
    entries.sort(key=lambda e: (e.pupil.year_group.order if e.pupil.year_group else 99,))
    return entries


# -- the access register (003 §7.2) ---------------------------------------------------


@dataclass(frozen=True)
class AccessEntry:
    grant: AccessGrant
    person: Person

    @property
    def current(self) -> bool:
        return self.grant.revoked_on is None


def grant_access(
    session: Session,
    person_id: int,
    system: str,
    *,
    granted_on: date | None = None,
    note: str | None = None,
) -> AccessGrant:
    """Write in the register that a person was given access to a system (e.g. Wi-Fi)."""
    require(session, Permission.MANAGE_ACCESS_REGISTER, "grant access to systems")
    person = get_person(session, person_id)
    system = clean_text(system, "system", 120)
    granted_on = granted_on or school_today(session)
    if person.is_leaver:
        raise InvalidInput(f"{person.display_name} has left the school; access cannot be granted")
    current = session.scalars(
        select(AccessGrant).where(
            AccessGrant.person_id == person.id,
            AccessGrant.revoked_on.is_(None),
            AccessGrant.system == system,
        )
    ).first()
    if current is not None:
        raise InvalidInput(
            f"{person.display_name} already has access to {system} "
            f"(granted {current.granted_on.isoformat()})"
        )
    grant = AccessGrant(
        person_id=person.id,
        system=system,
        granted_on=granted_on,
        granted_by_id=actor_person_id(session),
        note=clean_text(note, "note", 2000, required=False) or None,
    )
    session.add(grant)
    session.flush()
    publish_on_commit(session, AccessGranted(person.school_id, person.id, system))
    return grant


def revoke_access(session: Session, grant_id: int, revoked_on: date | None = None) -> AccessGrant:
    require(session, Permission.MANAGE_ACCESS_REGISTER, "revoke access to systems")
    grant = session.scalars(select(AccessGrant).where(AccessGrant.id == grant_id)).first()
    if grant is None or grant.revoked_on is not None:
        raise NotFound(f"no current access grant with id {grant_id}")
    revoked_on = revoked_on or school_today(session)
    if revoked_on < grant.granted_on:
        raise InvalidInput(
            f"revoked_on {revoked_on.isoformat()} is before access was granted "
            f"({grant.granted_on.isoformat()})"
        )
    grant.revoked_on = revoked_on
    grant.revoked_by_id = actor_person_id(session)
    session.flush()
    publish_on_commit(session, AccessRevoked(grant.school_id, grant.person_id, grant.system))
    return grant


def access_register(
    session: Session,
    *,
    system: str | None = None,
    person_id: int | None = None,
    current_only: bool = False,
) -> list[AccessEntry]:
    """Who was granted access to what and when, newest first."""
    require(session, Permission.VIEW_ACCESS_REGISTER, "see the access register")
    query = select(AccessGrant, Person).join(Person, Person.id == AccessGrant.person_id)
    if system:
        query = query.where(AccessGrant.system == system.strip())
    if person_id is not None:
        query = query.where(AccessGrant.person_id == person_id)
    if current_only:
        query = query.where(AccessGrant.revoked_on.is_(None))
    rows = session.execute(query.order_by(AccessGrant.granted_on.desc(), AccessGrant.id.desc()))
    return [AccessEntry(grant, person) for grant, person in rows]


def systems_in_use(session: Session) -> list[str]:
    """Names already in the register, offered when granting (so 'Wi-Fi' is spelt one way)."""
    return list(session.scalars(select(AccessGrant.system).distinct().order_by(AccessGrant.system)))
