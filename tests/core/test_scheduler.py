"""Timed jobs: stored, run when due, retried when they fail, and never lost to a restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from esafety.audit import Actor, AuditEntry
from esafety.config import Settings
from esafety.directory import service
from esafety.directory.model import Person, PersonKind
from esafety.errors import InvalidInput
from esafety.installation import Installation
from esafety.scheduler import (
    JobContext,
    JobHandlers,
    ScheduledJob,
    backoff,
    run_due,
    run_forever,
    schedule,
)

SETUP = Actor.system("test")
NOW = datetime(2025, 9, 3, 8, 0, tzinfo=UTC)


def _school(inst: Installation) -> int:
    with inst.db.session(SETUP) as session:
        return service.create_school(session, "westpark", "West Park Primary").id


def _job(inst: Installation, job_id: int) -> ScheduledJob:
    with inst.db.session(SETUP) as session:
        job = session.get(ScheduledJob, job_id)
        assert job is not None
        return job


def _add_visitor(ctx: JobContext) -> None:
    service.add_person(ctx.session, PersonKind.VISITOR, ctx.payload["first"], "Visitor")


def test_a_job_scheduled_before_a_restart_runs_after_it(settings: Settings) -> None:
    first = Installation(settings)
    school_id = _school(first)
    with first.db.session(SETUP, school_id=school_id) as session:
        job_id = schedule(
            session, "test.add_visitor", NOW + timedelta(hours=1), {"first": "Vera"}
        ).id
    first.close()  # the process stops

    registry = JobHandlers()
    registry.register("test.add_visitor", _add_visitor)
    second = Installation(settings)  # a new process on the same data
    try:
        assert run_due(second, NOW, registry=registry) == []  # not yet due
        (run,) = run_due(second, NOW + timedelta(hours=1), registry=registry)
        assert run.ok and run.job_id == job_id
        job = _job(second, job_id)
        assert job.done_at == NOW + timedelta(hours=1)
        assert job.attempts == 1 and job.school_id == school_id
        assert run_due(second, NOW + timedelta(hours=2), registry=registry) == []  # once only
        with second.db.session(SETUP) as session:
            visitor = session.scalars(select(Person).where(Person.kind == PersonKind.VISITOR)).one()
            assert visitor.school_id == school_id
            entry = session.scalars(
                select(AuditEntry).where(AuditEntry.object_type == "person")
            ).one()
            assert entry.actor == "system:job:test.add_visitor"
    finally:
        second.close()


def test_a_failing_job_is_kept_retried_with_backoff_and_its_work_undone(
    inst: Installation,
) -> None:
    school_id = _school(inst)
    calls: list[int] = []

    def flaky(ctx: JobContext) -> None:
        calls.append(ctx.attempt)
        service.add_person(ctx.session, PersonKind.VISITOR, "Half", "Done")
        if ctx.attempt < 3:
            raise RuntimeError("the mail server is down")

    registry = JobHandlers()
    registry.register("test.flaky", flaky)
    with inst.db.session(SETUP, school_id=school_id) as session:
        job_id = schedule(session, "test.flaky", NOW).id

    (run,) = run_due(inst, NOW, registry=registry)
    assert not run.ok and run.error == "RuntimeError: the mail server is down"
    job = _job(inst, job_id)
    assert job.done_at is None and job.attempts == 1
    assert job.last_error == "RuntimeError: the mail server is down"
    assert job.run_at == NOW + backoff(1) == NOW + timedelta(minutes=1)
    with inst.db.session(SETUP) as session:  # the failed attempt's write was rolled back
        assert session.scalars(select(Person)).all() == []

    assert run_due(inst, NOW + timedelta(seconds=30), registry=registry) == []
    (run,) = run_due(inst, NOW + timedelta(minutes=1), registry=registry)
    assert not run.ok
    assert _job(inst, job_id).run_at == NOW + timedelta(minutes=1) + timedelta(minutes=2)
    (run,) = run_due(inst, NOW + timedelta(minutes=3), registry=registry)
    assert run.ok
    job = _job(inst, job_id)
    assert job.done_at is not None and job.last_error is None and calls == [1, 2, 3]
    with inst.db.session(SETUP) as session:
        assert len(session.scalars(select(Person)).all()) == 1


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff(n).total_seconds() / 60 for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert backoff(40) == timedelta(hours=6)


def test_a_job_without_a_handler_waits_for_one(inst: Installation) -> None:
    with inst.db.session(SETUP) as session:
        job_id = schedule(session, "test.later", NOW).id
    (run,) = run_due(inst, NOW, registry=JobHandlers())
    assert not run.ok and "no handler is registered for job kind 'test.later'" in (run.error or "")
    registry = JobHandlers()
    registry.register("test.later", lambda ctx: None)
    (run,) = run_due(inst, NOW + timedelta(minutes=1), registry=registry)
    assert run.ok and _job(inst, job_id).done_at is not None


def test_recurring_jobs_move_on_and_do_not_catch_up(inst: Installation) -> None:
    registry = JobHandlers()
    runs: list[datetime] = []
    registry.register("test.daily", lambda ctx: runs.append(ctx.now))
    with inst.db.session(SETUP) as session:
        job = schedule(session, "test.daily", NOW, every=timedelta(days=1), key="daily")
        again = schedule(session, "test.daily", NOW, every=timedelta(days=1), key="daily")
        assert again.id == job.id  # scheduling at every start adds it once
    run_due(inst, NOW, registry=registry)
    assert _job(inst, job.id).run_at == NOW + timedelta(days=1)
    assert _job(inst, job.id).done_at is None
    # Down for three days: one run, then on from now.
    late = NOW + timedelta(days=4, hours=2)
    assert len(run_due(inst, late, registry=registry)) == 1
    assert _job(inst, job.id).run_at == late + timedelta(days=1)
    assert runs == [NOW, late]


def test_a_claimed_job_is_not_run_twice(inst: Installation) -> None:
    registry = JobHandlers()
    registry.register("test.once", lambda ctx: None)
    with inst.db.session(SETUP) as session:
        job = schedule(session, "test.once", NOW)
    with inst.db.session(SETUP) as session:  # another runner holds its lease
        held = session.get(ScheduledJob, job.id)
        assert held is not None
        held.locked_until = NOW + timedelta(minutes=10)
    assert run_due(inst, NOW, registry=registry) == []
    # The lease ends (that runner died): the job is taken over.
    (run,) = run_due(inst, NOW + timedelta(minutes=10), registry=registry)
    assert run.ok


def test_a_time_without_a_zone_is_the_schools(inst: Installation) -> None:
    school_id = _school(inst)
    with inst.db.session(SETUP, school_id=school_id) as session:
        job = schedule(session, "test.nine", datetime(2025, 6, 2, 9, 0))
        assert job.run_at == datetime(2025, 6, 2, 8, 0, tzinfo=UTC)  # 9 am BST
    with inst.db.session(SETUP) as session:
        with pytest.raises(InvalidInput, match="has no time zone"):
            schedule(session, "test.nine", datetime(2025, 6, 2, 9, 0))
        with pytest.raises(InvalidInput, match="payload must be JSON"):
            schedule(session, "test.nine", NOW, {"when": NOW})
        with pytest.raises(InvalidInput, match="job kind 'bad kind'"):
            schedule(session, "bad kind", NOW)
        with pytest.raises(InvalidInput, match="at least 1 second"):
            schedule(session, "test.nine", NOW, every=timedelta(0))


def test_handlers_register_once_per_kind() -> None:
    registry = JobHandlers()
    registry.register("test.kind", _add_visitor)
    registry.register("test.kind", _add_visitor)  # the same function again is harmless
    with pytest.raises(InvalidInput, match="already has a handler"):
        registry.register("test.kind", lambda ctx: None)
    assert registry.kinds() == ["test.kind"]


def test_run_forever_runs_due_jobs_until_cancelled(inst: Installation) -> None:
    from esafety import scheduler

    ran: list[int] = []
    kind = "test.forever"
    if scheduler.handlers.get(kind) is None:
        scheduler.handlers.register(kind, lambda ctx: ran.append(ctx.job_id))
    with inst.db.session(SETUP) as session:
        job_id = schedule(session, kind, datetime.now(UTC) - timedelta(seconds=1)).id

    async def main() -> None:
        task = asyncio.create_task(run_forever(inst, interval_s=0.05))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if _job(inst, job_id).done_at is not None:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert _job(inst, job_id).done_at is not None
