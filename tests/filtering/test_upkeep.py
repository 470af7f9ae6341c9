"""The filter's upkeep: scheduled list updates from a local HTTP server, decision-log
compaction and retention driven through the scheduler with an explicit time, and the
starter lists a fresh installation loads once (issue 4 §3, §8)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import func, select

import esafety.filtering.upkeep  # noqa: F401  (registers the job handlers)
from esafety.audit import SYSTEM, Actor, AuditEntry
from esafety.db import utcnow
from esafety.filtering import service
from esafety.filtering.categories import Category
from esafety.filtering.decision import Decision
from esafety.filtering.lists import DomainEntry
from esafety.filtering.log import DecisionLog, LogEntry, decisions_dir, logged_days, query
from esafety.filtering.model import FilterList, SchoolFilterList
from esafety.filtering.policy import Action
from esafety.filtering.store import ListStore
from esafety.filtering.upkeep import (
    LISTS_JOB,
    LOG_JOB,
    STARTER_PREFIX,
    ensure_upkeep_jobs,
    load_starter_lists,
)
from esafety.installation import Installation
from esafety.scheduler import ScheduledJob, run_due
from tests.directory.school_setup import acting, new_school


class ListServer:
    """A local HTTP server whose one list can be changed, or made to fail, or held halfway
    through its body until ``release`` is set (a slow download)."""

    def __init__(self) -> None:
        self.body = b"one.example\ntwo.example\n"
        self.status = 200
        self.requests = 0
        self.hold = False
        self.holding = threading.Event()
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(server.status)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                half = len(server.body) // 2
                self.wfile.write(server.body[:half])
                if server.hold:
                    self.wfile.flush()
                    server.holding.set()
                    server.release.wait(30)
                    server.holding.clear()
                self.wfile.write(server.body[half:])

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/gambling.txt"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.thread.join(5)


@pytest.fixture
def lists_server() -> Iterator[ListServer]:
    server = ListServer()
    try:
        yield server
    finally:
        server.close()


def _entries(inst: Installation, row_key: str) -> set[str]:
    return {e.domain for e in ListStore(inst.data_dir).read(row_key) if isinstance(e, DomainEntry)}


def _list(inst: Installation, name: str, school_id: int | None = None) -> FilterList:
    actor = Actor.system("test", school_id=school_id)
    with inst.db.session(actor, school_id=school_id) as session:
        table = SchoolFilterList if school_id is not None else FilterList
        row = session.scalars(select(table).where(table.name == name)).one()
        session.expunge(row)
        return row  # type: ignore[return-value]


# -- scheduled list updates ---------------------------------------------------------------


def test_lists_with_a_url_update_on_their_schedule_and_keep_the_last_good_copy(
    inst: Installation, lists_server: ListServer, tmp_path: Path
) -> None:
    first = tmp_path / "first.txt"
    first.write_text("zero.example\n")
    school = new_school(inst)
    store = ListStore(inst.data_dir)
    with inst.db.session(SYSTEM) as session:
        service.import_list(
            session, store, first, "domains", "gambling", name="feed",
            url=lists_server.url, update_every_hours=24,
        )  # fmt: skip
    with acting(inst, school) as session:
        service.import_list(
            session, store, first, "domains", "games", name="their feed",
            url=lists_server.url, update_every_hours=6,
        )  # fmt: skip
    start = utcnow()
    ensure_upkeep_jobs(inst, start)

    run_due(inst, start)  # just imported: neither list is due
    assert lists_server.requests == 0
    assert _entries(inst, _list(inst, "feed").store_key) == {"zero.example"}

    runs = run_due(inst, start + timedelta(hours=7))  # the school's list (every 6 h) only
    assert all(r.ok for r in runs), runs
    assert lists_server.requests == 1
    assert _entries(inst, _list(inst, "their feed", school).store_key) == {
        "one.example",
        "two.example",
    }
    assert _entries(inst, _list(inst, "feed").store_key) == {"zero.example"}

    run_due(inst, start + timedelta(hours=25))  # now both
    assert _entries(inst, _list(inst, "feed").store_key) == {"one.example", "two.example"}
    good = _list(inst, "feed")
    assert good.last_error is None and good.last_good_at is not None

    lists_server.status = 500  # the feed breaks: the last good copy stays, the error shows
    run_due(inst, start + timedelta(hours=50))
    broken = _list(inst, "feed")
    assert broken.last_error is not None and "500" in broken.last_error
    assert broken.last_good_at == good.last_good_at
    assert _entries(inst, broken.store_key) == {"one.example", "two.example"}

    lists_server.status, lists_server.body = 200, b"three.example\n"
    run_due(inst, start + timedelta(hours=51))  # a failed list is tried again the next hour
    mended = _list(inst, "feed")
    assert mended.last_error is None
    assert _entries(inst, mended.store_key) == {"three.example"}


def test_a_slow_download_holds_up_no_one_elses_writes(
    inst: Installation, lists_server: ListServer, tmp_path: Path
) -> None:
    """The update runs in the scheduler while staff keep recording: on SQLite one writer
    at a time, so the download must happen outside any write transaction."""
    first = tmp_path / "first.txt"
    first.write_text("zero.example\n")
    with inst.db.session(SYSTEM) as session:
        service.import_list(
            session, ListStore(inst.data_dir), first, "domains", "gambling", name="feed",
            url=lists_server.url, update_every_hours=1,
        )  # fmt: skip
    start = utcnow()
    ensure_upkeep_jobs(inst, start)
    lists_server.hold = True
    runs: list[object] = []
    updating = threading.Thread(
        target=lambda: runs.extend(run_due(inst, start + timedelta(hours=2)))
    )
    updating.start()
    try:
        assert lists_server.holding.wait(30), "the update did not start its download"
        school = new_school(inst)  # a write in another transaction, mid-download
        assert lists_server.holding.is_set(), "the write waited for the download to end"
    finally:
        lists_server.release.set()
        updating.join(60)
    assert school and all(getattr(run, "ok", False) for run in runs), runs
    assert _entries(inst, _list(inst, "feed").store_key) == {"one.example", "two.example"}


def test_the_upkeep_jobs_are_set_up_once_and_follow_the_settings(inst: Installation) -> None:
    ensure_upkeep_jobs(inst)
    ensure_upkeep_jobs(inst)
    with inst.db.session(SYSTEM) as session:
        jobs = {job.kind: job for job in session.scalars(select(ScheduledJob))}
        assert set(jobs) == {LISTS_JOB, LOG_JOB}
        assert all(job.every_s == 3600 for job in jobs.values())
        assert jobs[LOG_JOB].payload == {"data": str(inst.data_dir), "retention_days": 365}
    shorter = inst.settings.model_copy(
        update={"filtering": inst.settings.filtering.model_copy(update={"log_retention_days": 30})}
    )
    moved = Installation(shorter)
    try:
        ensure_upkeep_jobs(moved)
    finally:
        moved.close()
    with inst.db.session(SYSTEM) as session:
        payloads = [j.payload for j in session.scalars(select(ScheduledJob)) if j.kind == LOG_JOB]
    assert payloads == [{"data": str(inst.data_dir), "retention_days": 30}]


# -- the decision log ---------------------------------------------------------------------

ALLOWED = Decision(Action.ALLOW, (), "policy:ks2 default", None, "ks2", "Allowed.")
BLOCKED = Decision(Action.BLOCK, (Category.GAMBLING,), "bet.example", "3", "ks2", "Blocked.")


def _log_batches(data: Path, day: date, batches: int) -> None:
    moment = datetime(day.year, day.month, day.day, 9, tzinfo=UTC).timestamp()
    log = DecisionLog(data)
    for n in range(batches):
        log.record(LogEntry(moment + n, "10.0.0.7", "ada", "bet.example", "A", BLOCKED))
        log.record(LogEntry(moment + n, "10.0.0.7", "ada", "news.example", "A", ALLOWED))
        log.flush()  # one small file a flush


def _files(data: Path, day: date) -> list[str]:
    return sorted(p.name for p in (decisions_dir(data) / f"date={day}").glob("*.parquet"))


def test_the_log_job_compacts_finished_days_and_removes_old_ones(inst: Installation) -> None:
    today = date(2025, 3, 12)
    now = datetime(2025, 3, 12, 3, 0, tzinfo=UTC)
    old, yesterday = today - timedelta(days=366), today - timedelta(days=1)
    for day in (old, yesterday, today):
        _log_batches(inst.data_dir, day, 3)
    assert len(_files(inst.data_dir, yesterday)) == 3
    ensure_upkeep_jobs(inst, now)
    [*runs] = (r for r in run_due(inst, now) if r.kind == LOG_JOB)
    assert [r.ok for r in runs] == [True]
    assert logged_days(inst.data_dir) == [yesterday, today]  # beyond 365 days: gone
    [compacted] = _files(inst.data_dir, yesterday)
    assert compacted.startswith("compacted-")
    assert len(_files(inst.data_dir, today)) == 3  # today is not finished: left alone
    kept = query(inst.data_dir, start=datetime(2025, 3, 11, tzinfo=UTC), limit=100)
    assert len(kept) == 12  # every decision of both days, each once


# -- the starter lists --------------------------------------------------------------------

STARTERS = {
    "search_engines", "child_search", "social_media", "chat",
    "encrypted_dns", "proxies_vpn", "generative_ai",
}  # fmt: skip


def _starter_rows(inst: Installation) -> dict[str, FilterList]:
    with inst.db.session(SYSTEM) as session:
        rows = session.scalars(select(FilterList).where(FilterList.name.like("esafety starter%")))
        return {row.category: row for row in rows}


def test_a_fresh_installation_loads_the_starter_lists_once(inst: Installation) -> None:
    loaded = load_starter_lists(inst)
    assert sorted(loaded) == sorted(f"{STARTER_PREFIX}{c}" for c in STARTERS)
    rows = _starter_rows(inst)
    assert set(rows) == STARTERS
    assert all(row.entry_count >= 5 and row.problem_count == 0 for row in rows.values())
    assert load_starter_lists(inst) == []  # again: nothing changes, nothing is duplicated
    assert {c: r.updated_at for c, r in _starter_rows(inst).items()} == {
        c: r.updated_at for c, r in rows.items()
    }
    with inst.db.session(SYSTEM) as session:  # the filter now blocks encrypted DNS for pupils
        check = service.check(session, ListStore(inst.data_dir), "dns.google")
    assert check.decision.action is Action.BLOCK
    assert Category.ENCRYPTED_DNS in check.decision.categories


def test_a_removed_starter_list_stays_removed_and_a_changed_one_is_replaced(
    inst: Installation,
) -> None:
    load_starter_lists(inst)
    with inst.db.session(SYSTEM) as session:
        chat = session.scalars(select(FilterList).where(FilterList.name.like("%: chat"))).one()
        session.delete(chat)
        vpn = session.scalars(
            select(FilterList).where(FilterList.name.like("%: proxies_vpn"))
        ).one()
        vpn.source = "esafety starter set (proxies_vpn.txt, an older version)"
    assert load_starter_lists(inst) == [f"{STARTER_PREFIX}proxies_vpn"]
    assert set(_starter_rows(inst)) == STARTERS - {"chat"}
    with inst.db.session(SYSTEM) as session:
        loaded = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "filtering.starter_list.loaded")
        )
    assert loaded == len(STARTERS) + 1


def test_db_upgrade_loads_them_unless_told_not_to(inst: Installation, cli) -> None:
    skipped = cli("db", "upgrade", "--no-starter-lists")
    assert skipped.code == 0, skipped.err
    assert _starter_rows(inst) == {}
    result = cli("db", "upgrade")
    assert result.code == 0, result.err
    assert "Starter filter lists loaded" in result.out
    assert set(_starter_rows(inst)) == STARTERS
    again = cli("db", "upgrade")
    assert "Starter filter lists loaded" not in again.out


def test_the_setting_turns_them_off(
    inst: Installation, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESAFETY_FILTERING__STARTER_LISTS", "false")
    assert cli("db", "upgrade").code == 0
    assert _starter_rows(inst) == {}
