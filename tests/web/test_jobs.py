"""The served app runs the scheduler's due jobs (esafety serve starts it with run_jobs)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from esafety import scheduler
from esafety.audit import Actor
from esafety.installation import Installation
from esafety.scheduler import ScheduledJob, schedule
from esafety.web.app import create_app

KIND = "test.served"
ran: list[int] = []


def test_serving_app_runs_due_jobs(inst: Installation) -> None:
    if scheduler.handlers.get(KIND) is None:
        scheduler.handlers.register(KIND, lambda ctx: ran.append(ctx.job_id))
    with inst.db.session(Actor.system("test")) as session:
        job_id = schedule(session, KIND, datetime.now(UTC) - timedelta(seconds=1)).id
    with TestClient(create_app(inst, run_jobs=True)):
        deadline = time.monotonic() + 20
        while job_id not in ran and time.monotonic() < deadline:
            time.sleep(0.05)
    assert job_id in ran
    with inst.db.session() as session:
        job = session.get(ScheduledJob, job_id)
        assert job is not None and job.done_at is not None
