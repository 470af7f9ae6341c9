"""The retention schedule: what is due, legal holds, and the run that deletes (issue 5 §8;
STANDARDS R8).

:func:`review` gives every concern of a school its :class:`~retention_rules.Decision` at
a date (the rules are :mod:`esafety.safeguarding.retention_rules`, pure). :func:`run`
deletes what is due, one transaction a concern: the concern with every row that belongs
to it (people, entries, steps, attachments, break-glass reads, lifted holds, and rows other
slices keep about it), and a :class:`DeletionRecord` that says what went without keeping
any of it. The attachments' sealed files leave the disk once the deletion is committed;
the record lists them until they are gone, so a crash in between is finished by the next
run. A dry run deletes nothing.

The run is a daily job in the scheduler (:data:`RETENTION_JOB`, set up by ``esafety
serve``) and the command ``esafety safeguarding retention [--dry-run] [--at DATE]``.
Reading what is due needs only the concerns' dates, kinds and people: no narrative is
opened to decide.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from esafety import audit
from esafety.audit import Actor
from esafety.db import Base, Database, utcnow
from esafety.directory.calendar import school_date
from esafety.directory.model import Person, School
from esafety.directory.service import require
from esafety.errors import EsafetyError, InvalidInput, NotFound
from esafety.installation import Installation
from esafety.safeguarding.model import (
    BreakGlassRead,
    Concern,
    ConcernAttachment,
    ConcernEntry,
    ConcernPerson,
    EntryKind,
    StepEntry,
    allow_deletion,
)
from esafety.safeguarding.reading import actor_name, concern_access, find_concern
from esafety.safeguarding.retention_model import DeletionRecord, LegalHold, RetentionSettings
from esafety.safeguarding.retention_rules import (
    Decision,
    LinkedPerson,
    RetentionFacts,
    RetentionRules,
    Verdict,
    decide,
)
from esafety.scheduler import JobContext, ScheduledJob, handler, schedule
from esafety.sealing import SealedFiles
from esafety.sealing.columns import keyring_of
from esafety.security.roles import Permission

__all__ = [
    "LIMITS",
    "RETENTION_JOB",
    "RetentionRun",
    "SchoolRetention",
    "active_holds",
    "deletion_records",
    "ensure_retention_job",
    "lift_hold",
    "place_hold",
    "retention_rules",
    "review",
    "run",
    "school_today",
    "set_retention_rules",
]

log = logging.getLogger(__name__)

RETENTION_JOB = "safeguarding.retention"
EVERY = timedelta(days=1)
#: What a school may set: longer than the guidance, never shorter (IRMS; KCSIE part 4).
LIMITS: dict[str, tuple[int, int, str]] = {
    "pupil_years": (25, 100, "years after a pupil's date of birth (IRMS: at least 25)"),
    "retirement_age": (60, 75, "retirement age of staff"),
    "allegation_years": (10, 100, "years after an allegation is closed (KCSIE: at least 10)"),
}
_FILES_FOLDER = "attachments"


# -- the school's periods -----------------------------------------------------------


def retention_rules(session: Session) -> RetentionRules:
    """The session's school's retention periods (the defaults when it has set none)."""
    row = session.scalars(select(RetentionSettings)).first()
    if row is None:
        return RetentionRules()
    return RetentionRules(row.pupil_years, row.retirement_age, row.allegation_years)


def set_retention_rules(
    session: Session,
    *,
    reason: str,
    pupil_years: int | None = None,
    retirement_age: int | None = None,
    allegation_years: int | None = None,
) -> RetentionRules:
    """Change the school's retention periods (those given); the change is audited."""
    require(session, Permission.MANAGE_SAFEGUARDING_SETTINGS, "change the retention periods")
    given = {
        "pupil_years": pupil_years,
        "retirement_age": retirement_age,
        "allegation_years": allegation_years,
    }
    for name, value in given.items():
        if value is None:
            continue
        low, high, what = LIMITS[name]
        if not low <= value <= high:
            raise InvalidInput(
                f"{name.replace('_', ' ')} {value}: the {what} must be from {low} to {high}; "
                "a school may keep records longer than the guidance, never shorter"
            )
    if len((reason or "").split()) < 2:
        raise InvalidInput("say why the retention periods are changing (a few words)")
    if session.info.get("school_id") is None:
        raise InvalidInput("the retention periods are a school's: give the school (--school SLUG)")
    audit.set_reason(session, reason.strip())
    row = session.scalars(select(RetentionSettings)).first()
    if row is None:
        row = RetentionSettings(school_id=session.info["school_id"], updated_by=actor_name(session))
        session.add(row)
        current = RetentionRules()
    else:
        current = retention_rules(session)
    row.pupil_years = pupil_years if pupil_years is not None else current.pupil_years
    row.retirement_age = retirement_age if retirement_age is not None else current.retirement_age
    row.allegation_years = (
        allegation_years if allegation_years is not None else current.allegation_years
    )
    row.updated_at, row.updated_by = utcnow(), actor_name(session)
    session.flush()
    audit.set_reason(session, None)
    return retention_rules(session)


# -- legal holds --------------------------------------------------------------------


def place_hold(session: Session, reason: str, concern_id: int | None = None) -> LegalHold:
    """Do not delete a concern (or, with no ``concern_id``, every concern of the school)
    until the hold is lifted: an investigation or an inquiry may need it."""
    require(session, Permission.MANAGE_SAFEGUARDING_SETTINGS, "place a legal hold")
    why = " ".join((reason or "").split())
    if len(why.split()) < 3:
        raise InvalidInput(
            f"reason {reason!r}: say in a sentence why the records must be kept (which "
            "investigation or inquiry asked), so whoever lifts the hold knows"
        )
    if session.info.get("school_id") is None:
        raise InvalidInput("a legal hold is a school's: give the school (--school SLUG)")
    if concern_id is not None:
        concern = find_concern(session, concern_id)
        if not concern_access(session, concern).can_read:
            raise NotFound(f"no concern #{concern_id} that you can read")
    hold = LegalHold(
        school_id=session.info["school_id"],
        concern_id=concern_id,
        reason=why,
        placed_at=utcnow(),
        placed_by=actor_name(session),
    )
    session.add(hold)
    session.flush()
    return hold


def lift_hold(session: Session, hold_id: int, reason: str) -> LegalHold:
    require(session, Permission.MANAGE_SAFEGUARDING_SETTINGS, "lift a legal hold")
    hold = session.scalars(select(LegalHold).where(LegalHold.id == hold_id)).first()
    if hold is None:
        raise NotFound(f"no legal hold #{hold_id} in this school (see: safeguarding holds)")
    if not hold.is_active:
        raise InvalidInput(f"legal hold #{hold_id} was already lifted on {hold.lifted_at:%Y-%m-%d}")
    why = " ".join((reason or "").split())
    if len(why.split()) < 3:
        raise InvalidInput("say in a sentence why the hold can be lifted")
    hold.lifted_at, hold.lifted_by, hold.lift_reason = utcnow(), actor_name(session), why
    session.flush()
    return hold


def active_holds(session: Session) -> list[LegalHold]:
    return list(
        session.scalars(
            select(LegalHold).where(LegalHold.lifted_at.is_(None)).order_by(LegalHold.id)
        )
    )


# -- what is due --------------------------------------------------------------------


def _hold_words(hold: LegalHold) -> str:
    # The hold's reason is sealed and may name an inquiry: the report says only which hold.
    scope = "every concern of the school" if hold.concern_id is None else "this concern"
    return (
        f"on legal hold #{hold.id} ({scope}), placed {hold.placed_at:%Y-%m-%d} by "
        f"{hold.placed_by}: kept until it is lifted"
    )


def _facts(session: Session, zone: str, only: int | None = None) -> list[RetentionFacts]:
    """Each concern's retention facts, read from columns that are not sealed."""
    concerns = select(Concern.id, Concern.kind, Concern.closed_at).order_by(Concern.id)
    if only is not None:
        concerns = concerns.where(Concern.id == only)
    rows = session.execute(concerns).all()
    if not rows:
        return []
    ids = [row.id for row in rows]
    kinds: dict[int, str] = {}
    changes = (
        select(ConcernEntry.concern_id, ConcernEntry.new_kind)
        .where(ConcernEntry.kind == EntryKind.KIND_CHANGED, ConcernEntry.concern_id.in_(ids))
        .order_by(ConcernEntry.id)
    )
    for concern_id, new_kind in session.execute(changes):
        if new_kind is not None:
            kinds[concern_id] = str(new_kind)
    linked: dict[int, list[LinkedPerson]] = {}
    people = (
        select(
            ConcernPerson.concern_id,
            ConcernPerson.person_id,
            ConcernPerson.part,
            Person.kind,
            Person.date_of_birth,
        )
        .outerjoin(Person, Person.id == ConcernPerson.person_id)
        .where(ConcernPerson.concern_id.in_(ids))
        .order_by(ConcernPerson.id)
    )
    for concern_id, person_id, part, kind, born in session.execute(people):
        linked.setdefault(concern_id, []).append(
            LinkedPerson(person_id, str(kind) if kind else None, str(part), born)
        )
    holds = active_holds(session)
    everything = next((h for h in holds if h.concern_id is None), None)
    by_concern = {h.concern_id: h for h in holds if h.concern_id is not None}
    facts = []
    for row in rows:
        hold = by_concern.get(row.id) or everything
        facts.append(
            RetentionFacts(
                concern_id=row.id,
                kind=kinds.get(row.id, str(row.kind)),
                closed_on=school_date(row.closed_at, zone) if row.closed_at else None,
                linked=tuple(linked.get(row.id, ())),
                hold=_hold_words(hold) if hold is not None else None,
            )
        )
    return facts


def _school(session: Session) -> School:
    school_id = session.info.get("school_id")
    school = session.get(School, school_id) if school_id is not None else None
    if school is None:
        raise InvalidInput("the retention schedule runs for one school at a time: give the school")
    return school


def school_today(school: School, now: datetime | None = None) -> date:
    return school_date(now or utcnow(), school.timezone)


def review(session: Session, at: date | None = None) -> list[Decision]:
    """Every concern of the session's school with its retention decision on ``at``
    (the school's today by default), in the order they were recorded."""
    require(session, Permission.MANAGE_SAFEGUARDING_SETTINGS, "review the retention schedule")
    school = _school(session)
    day = at or school_today(school)
    rules = retention_rules(session)
    return [decide(f, rules, day) for f in _facts(session, school.timezone)]


# -- deleting -----------------------------------------------------------------------

#: The tables that make up a concern, deleted by name (so each row's deletion is audited).
_CONCERN_TABLES = frozenset(
    cls.__tablename__
    for cls in (
        Concern,
        ConcernPerson,
        ConcernEntry,
        StepEntry,
        ConcernAttachment,
        BreakGlassRead,
        LegalHold,
    )
)


def _dependents(table: Table) -> list[tuple[Table, Any, Any]]:
    """(other table, its column, the referred column) for every foreign key from a table
    outside the concern's own to ``table``: rows other slices keep about a concern."""
    found = []
    for other in Base.metadata.sorted_tables:
        if other.name in _CONCERN_TABLES or other.name == DeletionRecord.__tablename__:
            continue
        for fk in other.foreign_keys:
            if fk.column.table is table:
                found.append((other, fk.parent, fk.column))
    return found


def _delete_dependents(session: Session, table: Table, keys: Any, removed: Counter[str]) -> None:
    """Delete, children first, the rows of other tables that refer to ``table``'s rows
    whose referred column is in ``keys`` (a subquery)."""
    for other, column, referred in _dependents(table):
        pk = list(other.primary_key.columns)
        if len(pk) == 1:
            child_keys = select(pk[0]).where(column.in_(select(referred).where(referred.in_(keys))))
            _delete_dependents(session, other, child_keys, removed)
        result = session.execute(
            delete(other).where(column.in_(select(referred).where(referred.in_(keys))))
        )
        count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            removed[other.name] += count
            audit.record(session, "delete", other.name, after={"rows": count})


def _delete_concern(
    session: Session, concern: Concern, decision: Decision, zone: str
) -> DeletionRecord:
    """Delete ``concern`` and all its rows in this session; the record of it (pending)."""
    allow_deletion(session, f"retention schedule: {decision.rule}")
    audit.set_reason(session, f"retention schedule: {decision.rule} (due {decision.due_on})")
    removed: Counter[str] = Counter()
    # Rows of other slices first (they refer to the concern's rows, never the reverse).
    for cls in (ConcernEntry, ConcernPerson, StepEntry, ConcernAttachment, BreakGlassRead):
        table = cast(Table, cls.__table__)
        ids = select(table.c.id).where(table.c.concern_id == concern.id)
        _delete_dependents(session, table, ids, removed)
    table = cast(Table, Concern.__table__)
    _delete_dependents(session, table, select(table.c.id).where(table.c.id == concern.id), removed)
    files = [a.file_id for a in concern.attachments]
    counts = {
        "people": len(concern.people),
        "entries": len(concern.entries),
        "steps": len(concern.steps),
        "attachments": len(concern.attachments),
    }
    glass = list(
        session.scalars(select(BreakGlassRead).where(BreakGlassRead.concern_id == concern.id))
    )
    holds = list(session.scalars(select(LegalHold).where(LegalHold.concern_id == concern.id)))
    counts["break_glass_reads"] = len(glass)
    counts["lifted_holds"] = len(holds)
    for row in [*glass, *holds, *concern.steps, *concern.attachments]:
        session.delete(row)
    session.flush()
    # A correction refers to the entry it corrects: newest first, one at a time.
    for entry in sorted(concern.entries, key=lambda e: e.id, reverse=True):
        session.delete(entry)
        session.flush()
    for person in concern.people:
        session.delete(person)
    session.flush()
    kind = concern.current_kind.value
    recorded_on = school_date(concern.recorded_at, zone)
    closed_on = school_date(concern.closed_at, zone) if concern.closed_at else None
    concern_id = concern.id
    session.expire(concern)
    session.delete(concern)
    session.flush()
    record = DeletionRecord(
        school_id=session.info["school_id"],
        concern_id=concern_id,
        kind=kind,
        recorded_on=recorded_on,
        closed_on=closed_on,
        due_on=decision.due_on,
        rule=decision.rule[:300],
        removed={**counts, **dict(removed)},
        deleted_at=utcnow(),
        deleted_by=actor_name(session),
        files_pending=files,
    )
    session.add(record)
    session.flush()
    audit.set_reason(session, None)
    return record


def _remove_files(db: Database, files: SealedFiles, actor: Actor, record_id: int) -> None:
    """Remove a committed deletion's sealed files, then empty its list."""
    with db.session(actor) as session:
        record = session.get(DeletionRecord, record_id)
        if record is None or not record.files_pending:
            return
        left = []
        for file_id in record.files_pending:
            try:
                files.delete(file_id)
            except OSError as error:
                # Kept in the list: the next run removes it (the rows are already gone).
                log.warning("retention: sealed file %s not removed yet: %s", file_id, error)
                left.append(file_id)
        record.files_pending = left


# -- the run ------------------------------------------------------------------------


@dataclass
class SchoolRetention:
    """One school's part of a run."""

    school: str
    at: date
    decisions: list[Decision]
    #: Concerns deleted (or, in a dry run, that would be), by number.
    deleted: list[int] = field(default_factory=list)
    #: Concerns that were due but could not be deleted, with the error.
    failed: dict[int, str] = field(default_factory=dict)

    def by_verdict(self, verdict: Verdict) -> list[Decision]:
        return [d for d in self.decisions if d.verdict is verdict]


@dataclass
class RetentionRun:
    dry_run: bool
    schools: list[SchoolRetention] = field(default_factory=list)

    @property
    def deleted(self) -> int:
        return sum(len(s.deleted) for s in self.schools)


def run(
    db: Database,
    files: SealedFiles,
    *,
    at: date | None = None,
    dry_run: bool = False,
    school: str | None = None,
    actor: str = "retention",
    now: datetime | None = None,
) -> RetentionRun:
    """Delete every concern that is due (each school on its own date; ``at`` for all).

    Refused: ``at`` after today without ``dry_run`` (nothing is deleted before it is due).
    """
    moment = now or utcnow()
    outcome = RetentionRun(dry_run=dry_run)
    with db.session(Actor.system(actor)) as session:
        query = select(School.id, School.slug, School.timezone).order_by(School.slug)
        if school is not None:
            query = query.where(School.slug == school.strip())
        schools = session.execute(query).all()
    if school is not None and not schools:
        raise NotFound(f"no school with slug {school!r}")
    if not dry_run:
        _finish_pending_files(db, files, actor)
    for school_id, slug, zone in schools:
        today = school_date(moment, zone)
        day = at or today
        if day > today and not dry_run:
            raise InvalidInput(
                f"--at {day.isoformat()} is after today ({today.isoformat()}) at {slug}: a "
                "date ahead is only for a preview (--dry-run); nothing is deleted before it is due"
            )
        outcome.schools.append(_run_school(db, files, school_id, slug, zone, day, dry_run, actor))
    return outcome


def _run_school(
    db: Database,
    files: SealedFiles,
    school_id: int,
    slug: str,
    zone: str,
    day: date,
    dry_run: bool,
    actor_name_: str,
) -> SchoolRetention:
    actor = Actor.system(actor_name_, school_id=school_id)
    with db.session(actor) as session:
        decisions = review(session, day)
    result = SchoolRetention(slug, day, decisions)
    for decision in decisions:
        if not decision.is_due:
            continue
        if dry_run:
            result.deleted.append(decision.concern_id)
            continue
        try:
            with db.session(actor) as session:
                # Decided again inside the transaction: a hold placed since is honoured.
                rules = retention_rules(session)
                now = [decide(f, rules, day) for f in _facts(session, zone, decision.concern_id)]
                if not now or not now[0].is_due:
                    continue
                record = _delete_concern(
                    session, find_concern(session, decision.concern_id), now[0], zone
                )
                record_id = record.id
        except (SQLAlchemyError, EsafetyError) as error:
            log.exception("retention: concern #%s at %s was not deleted", decision.concern_id, slug)
            result.failed[decision.concern_id] = f"{type(error).__name__}: {error}"
            continue
        result.deleted.append(decision.concern_id)
        _remove_files(db, files, actor, record_id)
    return result


def _finish_pending_files(db: Database, files: SealedFiles, actor_name_: str) -> None:
    """Remove sealed files a run deleted the rows of but crashed before removing."""
    with db.session(Actor.system(actor_name_)) as session:
        pending = [
            (record_id, school_id)
            for record_id, school_id, names in session.execute(
                select(DeletionRecord.id, DeletionRecord.school_id, DeletionRecord.files_pending)
            )
            if names
        ]
    for record_id, school_id in pending:
        _remove_files(db, files, Actor.system(actor_name_, school_id=school_id), record_id)


def deletion_records(session: Session) -> list[DeletionRecord]:
    """The school's records of deletion, newest first."""
    require(session, Permission.MANAGE_SAFEGUARDING_SETTINGS, "read the record of deletions")
    return list(
        session.scalars(
            select(DeletionRecord).order_by(
                DeletionRecord.deleted_at.desc(), DeletionRecord.id.desc()
            )
        )
    )


# -- the daily job ------------------------------------------------------------------


def _files_of(ctx: JobContext, db: Database) -> SealedFiles:
    data = ctx.payload.get("data")
    if not isinstance(data, str) or not data:
        raise InvalidInput(
            f"job {ctx.kind} has no data directory in its payload: start esafety serve "
            "once so it sets the job up again"
        )
    return SealedFiles(Path(data), _FILES_FOLDER, keyring_of(db.engine.dialect, "retention"))


@handler(RETENTION_JOB)
def _retention_job(ctx: JobContext) -> None:
    db = ctx.session.info.get("database")
    if not isinstance(db, Database):
        raise InvalidInput(f"job {ctx.kind}: its session has no database")
    # Not in ctx.session: each concern is deleted in a transaction of its own.
    done = run(db, _files_of(ctx, db), actor=f"job:{RETENTION_JOB}", now=ctx.now)
    failed = sum(len(s.failed) for s in done.schools)
    if done.deleted or failed:
        log.info("retention schedule: %d concerns deleted, %d failed", done.deleted, failed)


def ensure_retention_job(inst: Installation, now: datetime | None = None) -> ScheduledJob:
    """Set up (once) the daily retention run, with this installation's data directory."""
    payload = {"data": str(inst.data_dir)}
    with inst.db.session(Actor.system("retention")) as session:
        job = schedule(
            session, RETENTION_JOB, now or utcnow(), payload, every=EVERY, key=RETENTION_JOB
        )
        if job.payload != payload:
            job.payload = payload
        return job
