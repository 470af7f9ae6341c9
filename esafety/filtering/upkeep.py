"""The filter's upkeep: scheduled list updates, decision-log compaction and retention, and
the starter lists a fresh installation loads (issue 4 §3, §8).

Two recurring jobs in the scheduler (:mod:`esafety.scheduler`), set up by
:func:`ensure_upkeep_jobs` when ``esafety serve`` starts (idempotent: each job has a key):

* ``filtering.lists.update`` (hourly): every list with a URL whose ``update_every_hours``
  have passed since its last attempt is downloaded again through
  :func:`esafety.filtering.service.update_lists`; a failed download keeps the last good
  copy and records the error (a failing list is tried again the next hour).
* ``filtering.log.upkeep`` (hourly): each finished day's small decision-log files are
  compacted into one, and days beyond ``[filtering] log_retention_days`` are removed.

The jobs' payload carries the data directory (where the lists and the log live) and the
retention; ``ensure_upkeep_jobs`` brings both up to date at every start.

:func:`load_starter_lists` imports the lists in ``data/starter/`` as installation-wide
lists named ``esafety starter: <category>``, once: run again, it changes nothing; a newer
esafety's changed list replaces the old copy; a starter list someone removed is not brought
back (the audit trail remembers it was loaded). ``esafety db upgrade`` and ``esafety
serve`` run it unless ``[filtering] starter_lists = false``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety import audit
from esafety.audit import Actor, AuditEntry
from esafety.db import Database, utcnow
from esafety.errors import InvalidInput
from esafety.filtering import log as decision_log
from esafety.filtering import service
from esafety.filtering.categories import category_of
from esafety.filtering.model import FilterList, ListColumns, SchoolFilterList
from esafety.filtering.store import ListStore
from esafety.installation import Installation
from esafety.scheduler import JobContext, ScheduledJob, handler, schedule

__all__ = [
    "LISTS_JOB",
    "LOG_JOB",
    "LogUpkeep",
    "ensure_upkeep_jobs",
    "list_is_due",
    "load_starter_lists",
    "log_upkeep",
    "update_due_lists",
]

log = logging.getLogger(__name__)

LISTS_JOB = "filtering.lists.update"
LOG_JOB = "filtering.log.upkeep"
EVERY = timedelta(hours=1)
#: A list whose last download failed is tried again after this, not a whole interval.
RETRY_AFTER = timedelta(hours=1)
STARTER_PREFIX = "esafety starter: "
_STARTER_LOADED = "filtering.starter_list.loaded"


# -- scheduled list updates -------------------------------------------------------------


def list_is_due(row: ListColumns, now: datetime) -> bool:
    """Whether a list with a URL should be downloaded again at ``now``."""
    if not row.url or not row.update_every_hours:
        return False
    if row.updated_at is None:
        return True
    interval = timedelta(hours=row.update_every_hours)
    if row.last_error:
        interval = min(interval, RETRY_AFTER)
    return now - row.updated_at >= interval


def update_due_lists(db: Database, store: ListStore, now: datetime) -> list[service.ListUpdate]:
    """Download every list that is due, each in its own short transaction."""
    actor = Actor.system("list updates")
    with db.session(actor) as session:
        due: list[tuple[int | None, str]] = [
            (None, row.name)
            for row in session.scalars(select(FilterList).order_by(FilterList.name))
            if list_is_due(row, now)
        ]
        due += [
            (row.school_id, row.name)
            for row in session.scalars(
                select(SchoolFilterList).order_by(SchoolFilterList.school_id, SchoolFilterList.name)
            )
            if list_is_due(row, now)
        ]
    updates: list[service.ListUpdate] = []
    for school_id, name in due:
        scoped = Actor.system("list updates", school_id=school_id)
        updated = service.update_lists(
            db, scoped, store, school_id=school_id, name=name,
            reason="scheduled update from the list's address",
        )  # fmt: skip
        # A school session also sees installation lists; keep only its own here.
        updates += [
            u
            for u in updated
            if (getattr(u.list, "school_id", None) is None) == (school_id is None)
        ]
    for update in updates:
        if update.error:
            log.warning(
                "list %r was not updated (the last good copy stays in use): %s",
                update.list.name,
                update.error,
            )
    return updates


# -- the decision log: compaction and retention -----------------------------------------


@dataclass(frozen=True)
class LogUpkeep:
    compacted: list[date] = field(default_factory=list)
    pruned: list[date] = field(default_factory=list)


def log_upkeep(data_dir: Path, retention_days: int, today: date) -> LogUpkeep:
    """Compact every finished day (before ``today``, UTC) and prune beyond retention."""
    pruned = decision_log.prune(data_dir, retention_days, today=today)
    compacted = [
        day
        for day in decision_log.logged_days(data_dir)
        if day < today and decision_log.compact(data_dir, day) is not None
    ]
    return LogUpkeep(compacted, pruned)


# -- the jobs ---------------------------------------------------------------------------


def _data_dir(ctx: JobContext) -> Path:
    data = ctx.payload.get("data")
    if not isinstance(data, str) or not data:
        raise InvalidInput(
            f"job {ctx.kind} has no data directory in its payload: start esafety serve "
            "once so it sets the job up again"
        )
    return Path(data)


def _database(ctx: JobContext) -> Database:
    db = ctx.session.info.get("database")
    if not isinstance(db, Database):
        raise InvalidInput(f"job {ctx.kind}: its session has no database")
    return db


@handler(LISTS_JOB)
def _update_lists_job(ctx: JobContext) -> None:
    # Not in ctx.session: its transaction would hold the database through every download.
    update_due_lists(_database(ctx), ListStore(_data_dir(ctx)), ctx.now)


@handler(LOG_JOB)
def _log_upkeep_job(ctx: JobContext) -> None:
    retention = ctx.payload.get("retention_days")
    if not isinstance(retention, int) or retention < 1:
        raise InvalidInput(f"job {ctx.kind}: retention_days {retention!r} is not a number of days")
    done = log_upkeep(_data_dir(ctx), retention, ctx.now.date())
    if done.compacted or done.pruned:
        log.info(
            "decision log: compacted %s; removed %s (older than %d days)",
            ", ".join(map(str, done.compacted)) or "nothing",
            ", ".join(map(str, done.pruned)) or "nothing",
            retention,
        )


def ensure_upkeep_jobs(inst: Installation, now: datetime | None = None) -> list[ScheduledJob]:
    """Set up (once) the recurring upkeep jobs, with this installation's payload."""
    at = now or utcnow()
    payloads: dict[str, dict[str, Any]] = {
        LISTS_JOB: {"data": str(inst.data_dir)},
        LOG_JOB: {
            "data": str(inst.data_dir),
            "retention_days": inst.settings.filtering.log_retention_days,
        },
    }
    jobs = []
    with inst.db.session(Actor.system("upkeep")) as session:
        for kind, payload in payloads.items():
            job = schedule(session, kind, at, payload, every=EVERY, key=kind)
            if job.payload != payload:  # the data directory or the retention changed
                job.payload = payload
            jobs.append(job)
    return jobs


# -- the starter lists ------------------------------------------------------------------


def _starter_files() -> list[tuple[str, bytes]]:
    folder = resources.files("esafety.filtering").joinpath("data/starter")
    return sorted(
        (item.name, item.read_bytes())
        for item in folder.iterdir()
        if item.name.endswith(".txt") and item.is_file()
    )


def _loaded_before(session: Session, category: str) -> bool:
    found = session.scalars(
        select(AuditEntry.seq)
        .where(AuditEntry.action == _STARTER_LOADED, AuditEntry.object_id == category)
        .limit(1)
    ).first()
    return found is not None


def load_starter_lists(inst: Installation) -> list[str]:
    """Import the shipped starter lists that are new or changed; returns their names."""
    store = ListStore(inst.data_dir)
    loaded: list[str] = []
    with inst.db.session(Actor.system("starter lists")) as session:
        audit.set_reason(session, "esafety's starter set, loaded so a new installation filters")
        for file_name, content in _starter_files():
            category = category_of(file_name.removesuffix(".txt"))
            name = f"{STARTER_PREFIX}{category.value}"
            digest = hashlib.sha256(content).hexdigest()[:16]
            source = f"esafety starter set ({file_name}, {digest})"
            row = session.scalars(select(FilterList).where(FilterList.name == name)).first()
            if row is not None and row.source == source:
                continue  # the same list is already loaded
            if row is None and _loaded_before(session, category.value):
                continue  # loaded once and removed since: the school's choice stands
            path = store.root / f".starter-{file_name}"
            store.root.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            try:
                service.import_list(
                    session, store, path, "domains", category.value, name=name, source=source
                )
            finally:
                path.unlink(missing_ok=True)
            audit.record(
                session,
                _STARTER_LOADED,
                "starter_list",
                category.value,
                after={"name": name, "source": source},
            )
            loaded.append(name)
    if loaded:
        log.info("starter lists loaded: %s", ", ".join(loaded))
    return loaded
