"""``GET /metrics``: esafety's counters for Prometheus (issue 4 §8).

Prometheus scrapes without a browser session, so besides a signed-in session this route
accepts an API token (``Authorization: Bearer <token>``, as the ``/api/v1`` routes do) of
a person with :attr:`Permission.VIEW_METRICS` (technician or administrator): make one with
``esafety users token create USERNAME --name prometheus``. The page holds counts only,
never a name or an address.

Besides what parts registered (:mod:`esafety.metrics`: the DNS filter, the decision log,
RADIUS accounting, DSL alerts, the process), each scrape counts from the database the
scheduled jobs that are failing or overdue, the lists whose last update failed and the
DSL alerts nobody has acknowledged, for the whole installation.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from esafety import metrics
from esafety.audit import Actor
from esafety.db import utcnow
from esafety.errors import AuthenticationFailed
from esafety.filtering.alerts_model import FilterAlert
from esafety.filtering.model import FilterList, SchoolFilterList
from esafety.installation import Installation
from esafety.scheduler import ScheduledJob
from esafety.security import service
from esafety.security.roles import Permission
from esafety.web.deps import Caller, client_address, installation, require

__all__ = ["installation_samples", "router"]

router = APIRouter()

#: A job this late (and not held by a runner) counts as overdue: the scheduler is stuck.
OVERDUE = timedelta(minutes=10)


async def _token(request: Request) -> None:
    """Read an API token on ``/metrics`` too (``deps.identify`` reads them under /api/ only).

    Runs before ``require``; the identity it finds is the one ``require`` then checks.
    """
    header = request.headers.get("authorization")
    if not header or hasattr(request.state, "identity"):
        return
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthenticationFailed(
            "the Authorization header must be 'Bearer <token>'; create a token with "
            "`esafety users token create USERNAME --name prometheus`"
        )
    request.state.identity = await run_in_threadpool(
        service.authenticate_token,
        installation(request),
        value.strip(),
        address=client_address(request),
    )


@router.get("/metrics", dependencies=[Depends(_token)])
def metrics_page(
    request: Request, caller: Caller = Depends(require(Permission.VIEW_METRICS))
) -> Response:
    samples = metrics.registry.collect() + installation_samples(installation(request))
    return Response(metrics.render(samples), media_type=metrics.CONTENT_TYPE)


def installation_samples(inst: Installation) -> list[metrics.Sample]:
    """Counts read from the database at each scrape (no personal data)."""
    now = utcnow()
    samples: list[metrics.Sample] = []
    with inst.db.session(Actor.system("metrics")) as session:
        failing = session.execute(
            select(ScheduledJob.kind, func.count())
            .where(ScheduledJob.done_at.is_(None), ScheduledJob.last_error.is_not(None))
            .group_by(ScheduledJob.kind)
        ).all()
        samples += [
            metrics.Sample(
                "esafety_scheduled_jobs_failing",
                count,
                "Scheduled jobs whose last attempt failed (retried with a growing delay).",
                "gauge",
                {"kind": kind},
            )
            for kind, count in failing
        ]
        if not failing:
            samples.append(
                metrics.Sample(
                    "esafety_scheduled_jobs_failing",
                    0,
                    "Scheduled jobs whose last attempt failed (retried with a growing delay).",
                    "gauge",
                )
            )
        overdue = session.scalar(
            select(func.count())
            .select_from(ScheduledJob)
            .where(
                ScheduledJob.done_at.is_(None),
                ScheduledJob.run_at < now - OVERDUE,
                (ScheduledJob.locked_until.is_(None)) | (ScheduledJob.locked_until < now),
            )
        )
        samples.append(
            metrics.Sample(
                "esafety_scheduled_jobs_overdue",
                overdue or 0,
                "Scheduled jobs due more than 10 minutes ago and not running (is serve up?).",
                "gauge",
            )
        )
        lists = 0
        broken = 0
        for table in (FilterList, SchoolFilterList):
            lists += session.scalar(select(func.count()).select_from(table)) or 0
            broken += (
                session.scalar(
                    select(func.count()).select_from(table).where(table.last_error.is_not(None))
                )
                or 0
            )
        samples += [
            metrics.Sample("esafety_filter_lists", lists, "Filter lists loaded.", "gauge"),
            metrics.Sample(
                "esafety_filter_lists_update_failing",
                broken,
                "Filter lists whose last download failed (the last good copy is in use).",
                "gauge",
            ),
            metrics.Sample(
                "esafety_dsl_alerts_unacknowledged",
                session.scalar(
                    select(func.count())
                    .select_from(FilterAlert)
                    .where(FilterAlert.acknowledged_at.is_(None))
                )
                or 0,
                "Filter alerts to the DSL nobody has acknowledged yet.",
                "gauge",
            ),
        ]
    return samples
