"""Timed jobs (reminders, expiries, retention) that survive a restart.

Jobs are rows of ``scheduled_job``; a registry maps each job's ``kind`` to its handler.
:func:`run_due` runs what is due, each job in its own transaction together with the
mark that it is done, so a job's work is never half-recorded. A job that fails (or whose
process dies mid-way) is retried with a growing delay and its error kept: never lost.
:func:`run_forever` is the loop ``esafety serve`` starts.

Claiming a job takes a lease (``locked_until``) in a short transaction of its own, so two
processes on one database never run the same job, and a crashed runner's job is picked
up again when its lease ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Index, String, Text, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from esafety.audit import Actor
from esafety.db import Base, utcnow
from esafety.errors import InvalidInput

if TYPE_CHECKING:
    from esafety.config import Settings
    from esafety.installation import Installation

__all__ = [
    "JobContext",
    "JobHandlers",
    "JobRun",
    "ScheduledJob",
    "handler",
    "handlers",
    "run_due",
    "run_forever",
    "run_now",
    "schedule",
]

log = logging.getLogger(__name__)

#: How long a runner may hold a job before another may take it over.
LEASE = timedelta(minutes=10)
#: Retry delays grow 1 min, 2, 4, ... up to this.
MAX_BACKOFF = timedelta(hours=6)
BATCH = 100


class ScheduledJob(Base):
    """A job to run at ``run_at``; recurring if ``every_s`` is set.

    Not audited row by row: runners touch it on every attempt. What a job does is
    audited as the job's system actor, and scheduling it is audited with the change
    that asked for it.
    """

    __tablename__ = "scheduled_job"
    __audited__ = False
    __table_args__ = (Index("ix_scheduled_job_due", "done_at", "run_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(80))
    #: Scheduling with a key replaces nothing: a second ``schedule`` with it returns the first.
    key: Mapped[str | None] = mapped_column(String(200), unique=True)
    run_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    school_id: Mapped[int | None] = mapped_column(
        ForeignKey("school.id", ondelete="CASCADE"), index=True
    )
    every_s: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_run_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]


@dataclass(frozen=True)
class JobContext:
    """What a handler gets: a session scoped to the job's school, acting as the job."""

    session: Session
    job_id: int
    kind: str
    payload: dict[str, Any]
    school_id: int | None
    now: datetime
    attempt: int
    #: The installation running the job (its settings: the SMTP server, for one).
    inst: Installation | None = None

    @property
    def settings(self) -> Settings | None:
        """The installation's settings, when the job runs in one."""
        return self.inst.settings if self.inst is not None else None


JobHandler = Callable[[JobContext], None]


class JobHandlers:
    """The registry of handlers by job kind."""

    def __init__(self) -> None:
        self._handlers: dict[str, JobHandler] = {}

    def register(self, kind: str, fn: JobHandler) -> JobHandler:
        _check_kind(kind)
        existing = self._handlers.get(kind)
        if existing is not None and existing is not fn:
            raise InvalidInput(f"job kind {kind!r} already has a handler ({existing.__qualname__})")
        self._handlers[kind] = fn
        return fn

    def get(self, kind: str) -> JobHandler | None:
        return self._handlers.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._handlers)


#: The process's registry; slices register their kinds at import.
handlers = JobHandlers()


def handler(kind: str) -> Callable[[JobHandler], JobHandler]:
    """Decorator: ``@handler("aup.reminder")`` registers a function for a kind of job."""

    def register(fn: JobHandler) -> JobHandler:
        return handlers.register(kind, fn)

    return register


def _check_kind(kind: str) -> None:
    if not kind or len(kind) > 80 or not all(c.isalnum() or c in "._-" for c in kind):
        raise InvalidInput(
            f"job kind {kind!r}: use 1-80 letters, digits, dots, hyphens or underscores"
        )


def schedule(
    session: Session,
    kind: str,
    run_at: datetime,
    payload: dict[str, Any] | None = None,
    *,
    school_id: int | None = None,
    every: timedelta | None = None,
    key: str | None = None,
) -> ScheduledJob:
    """Add a job in the caller's transaction (so it exists only if the change it serves does).

    ``run_at`` without a zone is the school's local time. With ``key``, scheduling again
    returns the job already stored under that key (for recurring jobs set up at start).
    """
    _check_kind(kind)
    if school_id is None:
        school_id = session.info.get("school_id")
    run_at = _aware(session, run_at, school_id)
    body = payload if payload is not None else {}
    try:
        body = json.loads(json.dumps(body))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"job {kind!r}: payload must be JSON data ({exc})") from None
    if every is not None and every.total_seconds() < 1:
        raise InvalidInput(f"job {kind!r}: a recurring job's interval must be at least 1 second")
    if key is not None:
        found = session.scalars(select(ScheduledJob).where(ScheduledJob.key == key)).first()
        if found is not None:
            return found
    job = ScheduledJob(
        kind=kind,
        key=key,
        run_at=run_at,
        payload=body,
        school_id=school_id,
        every_s=int(every.total_seconds()) if every is not None else None,
    )
    session.add(job)
    session.flush()
    return job


def _aware(session: Session, moment: datetime, school_id: int | None) -> datetime:
    if moment.tzinfo is not None:
        return moment
    if school_id is None:
        raise InvalidInput(
            f"run_at {moment.isoformat()} has no time zone and the job has no school whose "
            "time it could be: pass an aware datetime"
        )
    from esafety.directory.calendar import to_utc
    from esafety.directory.model import School

    school = session.get(School, school_id)
    return to_utc(moment, school.timezone if school is not None else "Europe/London")


# -- running ------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRun:
    job_id: int
    kind: str
    ok: bool
    error: str | None = None


def backoff(attempts: int) -> timedelta:
    """Delay before retry number ``attempts`` (1 min, 2, 4, ... capped at 6 hours)."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def run_due(
    inst: Installation, now: datetime | None = None, *, registry: JobHandlers | None = None
) -> list[JobRun]:
    """Run every job due at ``now``, each in its own transaction; return what happened."""
    now = now if now is not None else utcnow()
    registry = registry if registry is not None else handlers
    with inst.db.session(Actor.system("scheduler")) as session:
        due = list(
            session.scalars(
                select(ScheduledJob.id)
                .where(*_due(now))
                .order_by(ScheduledJob.run_at, ScheduledJob.id)
                .limit(BATCH)
            )
        )
    runs = []
    for job_id in due:
        claimed = _claim(inst, job_id, now)
        if claimed is not None:
            runs.append(_run(inst, claimed, now, registry))
    return runs


def run_now(
    inst: Installation,
    job_ids: list[int],
    now: datetime | None = None,
    *,
    registry: JobHandlers | None = None,
) -> list[JobRun]:
    """Run these jobs now if they are due and no runner holds them (an e-mail that should
    not wait for the next pass); the claim keeps them from running twice."""
    now = now if now is not None else utcnow()
    registry = registry if registry is not None else handlers
    runs = []
    for job_id in job_ids:
        claimed = _claim(inst, job_id, now)
        if claimed is not None:
            runs.append(_run(inst, claimed, now, registry))
    return runs


def _due(now: datetime) -> tuple[Any, ...]:
    return (
        ScheduledJob.done_at.is_(None),
        ScheduledJob.run_at <= now,
        or_(ScheduledJob.locked_until.is_(None), ScheduledJob.locked_until <= now),
    )


@dataclass(frozen=True)
class _Claim:
    job_id: int
    kind: str
    payload: dict[str, Any]
    school_id: int | None
    attempt: int


def _claim(inst: Installation, job_id: int, now: datetime) -> _Claim | None:
    with inst.db.session(Actor.system("scheduler")) as session:
        job = session.scalars(
            select(ScheduledJob)
            .where(ScheduledJob.id == job_id, *_due(now))
            .with_for_update(skip_locked=True)
        ).first()
        if job is None:  # another runner took it
            return None
        job.attempts += 1
        job.locked_until = now + LEASE
        return _Claim(job.id, job.kind, dict(job.payload or {}), job.school_id, job.attempts)


def _run(inst: Installation, claimed: _Claim, now: datetime, registry: JobHandlers) -> JobRun:
    fn = registry.get(claimed.kind)
    actor = Actor.system(f"job:{claimed.kind}", school_id=claimed.school_id)
    try:
        if fn is None:
            raise LookupError(f"no handler is registered for job kind {claimed.kind!r}")
        with inst.db.session(actor) as session:
            fn(
                JobContext(
                    session=session,
                    job_id=claimed.job_id,
                    kind=claimed.kind,
                    payload=claimed.payload,
                    school_id=claimed.school_id,
                    now=now,
                    attempt=claimed.attempt,
                    inst=inst,
                )
            )
            job = session.get(ScheduledJob, claimed.job_id)
            if job is not None:
                _finish(job, now)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.exception(
            "job %s (%s) failed on attempt %s", claimed.job_id, claimed.kind, claimed.attempt
        )
        _record_failure(inst, claimed, now, error)
        return JobRun(claimed.job_id, claimed.kind, ok=False, error=error)
    return JobRun(claimed.job_id, claimed.kind, ok=True)


def _finish(job: ScheduledJob, now: datetime) -> None:
    job.last_run_at = now
    job.locked_until = None
    job.last_error = None
    if job.every_s:
        interval = timedelta(seconds=job.every_s)
        next_run = job.run_at + interval
        # After downtime, run once and go on from now rather than catching up every missed run.
        job.run_at = next_run if next_run > now else now + interval
        job.attempts = 0
    else:
        job.done_at = now


def _record_failure(inst: Installation, claimed: _Claim, now: datetime, error: str) -> None:
    with inst.db.session(Actor.system("scheduler")) as session:
        job = session.get(ScheduledJob, claimed.job_id)
        if job is None:
            return
        job.last_error = error[:4000]
        job.locked_until = None
        job.last_run_at = now
        job.run_at = now + backoff(job.attempts)


async def run_forever(inst: Installation, interval_s: float = 30.0) -> None:
    """Run due jobs every ``interval_s`` seconds until cancelled (started by ``esafety serve``)."""
    while True:
        try:
            await asyncio.to_thread(run_due, inst)
        except Exception:
            # The database may be briefly unavailable; the jobs wait in their table.
            log.exception("scheduler pass failed; trying again in %s s", interval_s)
        await asyncio.sleep(interval_s)
