"""DSL alerts: blocks in alerting categories, taken from the decision log's flushed batches,
coalesced, published on the event bus and stored; the DSL's page and home-page count; and
the DNS filter raising one end to end (issue 4 §8)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dns.message
import dns.query
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from esafety.audit import AuditEntry
from esafety.config import DnsSettings
from esafety.directory.model import Person
from esafety.events import subscribe
from esafety.filtering import alerts, asking, service
from esafety.filtering.alerts import AlertSink, AlertStore, FilterAlertRaised, alerting_hits
from esafety.filtering.alerts_model import FilterAlert
from esafety.filtering.categories import Category
from esafety.filtering.decision import Decision
from esafety.filtering.dns_service import DnsService
from esafety.filtering.log import DecisionLog, LogEntry
from esafety.filtering.policy import Action
from esafety.filtering.serve_parts import ServeParts
from esafety.filtering.store import ListStore
from esafety.installation import Installation
from esafety.security.roles import Role
from esafety.web.app import create_app
from esafety.web.deps import SESSION_COOKIE
from tests.accounts import add_member, session_and_csrf
from tests.directory.school_setup import acting, add_pupil, new_school
from tests.filtering.loop_thread import LoopThread

NOON = datetime(2025, 3, 12, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=10)

EXTREMIST = Decision(
    Action.BLOCK, (Category.EXTREMISM,), "extremist.example", "7", "ks2", "Blocked: extremism."
)
GAMBLING = Decision(
    Action.BLOCK, (Category.GAMBLING,), "bet.example", "3", "ks2", "Blocked: gambling."
)
ALLOWED = Decision(Action.ALLOW, (), "policy:ks2 default", None, "ks2", "Allowed.")
# A block in two categories: only the alerting one is on the alert.
MIXED = Decision(
    Action.BLOCK,
    (Category.GAMBLING, Category.SELF_HARM),
    "mixed.example",
    "5",
    "ks2",
    "Blocked.",
)


def entry(
    name: str,
    decision: Decision,
    *,
    at: datetime = NOON,
    person: str = "ada.owen",
    client: str = "10.0.0.7",
) -> LogEntry:
    return LogEntry(at.timestamp(), client, person, name, "A", decision, frozenset({"4B"}))


# -- picking the alerting blocks (pure) ---------------------------------------------------


def test_only_blocks_in_alerting_categories_are_picked() -> None:
    hits = alerting_hits(
        [
            entry("www.extremist.example", EXTREMIST),
            entry("bet.example", GAMBLING),
            entry("news.example", ALLOWED),
            entry("cdn.mixed.example", MIXED),
        ]
    )
    assert [(h.site, h.categories) for h in hits] == [
        ("extremist.example", ("extremism",)),
        ("mixed.example", ("self_harm",)),
    ]


# -- through the decision log, the bus and the database ---------------------------------


@pytest.fixture
def school(inst: Installation) -> int:
    school_id = new_school(inst, "westpark")
    with acting(inst, school_id) as session:
        add_pupil(session, "Ada", "Owen", year="Year 4", class_name="4B")
    return school_id


@pytest.fixture
def raised() -> Iterator[list[FilterAlertRaised]]:
    seen: list[FilterAlertRaised] = []
    stop = subscribe(FilterAlertRaised, seen.append)
    try:
        yield seen
    finally:
        stop()


@pytest.fixture
def stored(inst: Installation) -> Iterator[AlertStore]:
    store = AlertStore(inst, WINDOW)
    stop = store.subscribe()
    try:
        yield store
    finally:
        stop()


def flushed(tmp_path: Path, sink: AlertSink, *entries: LogEntry) -> None:
    """Entries through a real DecisionLog whose listener is the sink."""
    log = DecisionLog(tmp_path, on_flush=sink.take)
    for item in entries:
        log.record(item)
    assert log.flush() == len(entries)


def alert_rows(inst: Installation, school_id: int) -> list[FilterAlert]:
    with acting(inst, school_id) as session:
        return list(session.scalars(select(FilterAlert).order_by(FilterAlert.id)))


def test_a_block_in_an_alerting_category_raises_one_alert(
    inst: Installation,
    school: int,
    tmp_path: Path,
    stored: AlertStore,
    raised: list[FilterAlertRaised],
) -> None:
    sink = AlertSink(school, window=WINDOW)
    flushed(tmp_path, sink, entry("www.extremist.example", EXTREMIST))
    assert sink.process(NOON) == 1
    [event] = raised
    assert (event.username, event.site, event.categories, event.count) == (
        "ada.owen",
        "extremist.example",
        ("extremism",),
        1,
    )
    [row] = alert_rows(inst, school)
    assert (row.username, row.client, row.site, row.name) == (
        "ada.owen",
        "10.0.0.7",
        "extremist.example",
        "www.extremist.example",
    )
    assert (row.categories, row.rule, row.policy, row.count) == (
        "extremism",
        "extremist.example",
        "ks2",
        1,
    )
    assert row.person_id is not None
    assert row.first_seen == row.last_seen == NOON


def test_repeats_within_the_window_are_counted_on_one_alert(
    inst: Installation, school: int, tmp_path: Path, stored: AlertStore
) -> None:
    sink = AlertSink(school, window=WINDOW, repeat_every=timedelta(minutes=1))
    names = ["extremist.example", "www.extremist.example", "cdn.extremist.example"]
    flushed(
        tmp_path,
        sink,
        *(entry(names[i % 3], EXTREMIST, at=NOON + timedelta(seconds=i)) for i in range(5)),
    )
    assert sink.process(NOON + timedelta(seconds=5)) == 1  # the new alert, with all five
    later = NOON + timedelta(minutes=4)
    flushed(tmp_path, sink, entry("extremist.example", EXTREMIST, at=later))
    flushed(tmp_path, sink, entry("extremist.example", EXTREMIST, at=later))
    assert sink.process(later) == 1  # a repeat count, a minute or more after the last
    [row] = alert_rows(inst, school)
    assert row.count == 7
    assert (row.first_seen, row.last_seen) == (NOON, later)
    # Past the window after the last one: a new alert.
    much_later = later + WINDOW + timedelta(seconds=1)
    flushed(tmp_path, sink, entry("extremist.example", EXTREMIST, at=much_later))
    sink.process(much_later)
    assert [r.count for r in alert_rows(inst, school)] == [7, 1]


def test_repeats_are_held_until_a_minute_has_passed_and_stop_publishes_them(
    inst: Installation, school: int, tmp_path: Path, stored: AlertStore
) -> None:
    sink = AlertSink(school, window=WINDOW, repeat_every=timedelta(minutes=1))
    flushed(tmp_path, sink, entry("extremist.example", EXTREMIST))
    sink.process(NOON)
    flushed(tmp_path, sink, entry("extremist.example", EXTREMIST, at=NOON + timedelta(seconds=5)))
    assert sink.process(NOON + timedelta(seconds=10)) == 0  # held: no event a second
    assert [r.count for r in alert_rows(inst, school)] == [1]
    sink.stop()  # publishes what is held
    assert [r.count for r in alert_rows(inst, school)] == [2]


def test_non_alerting_categories_and_allowed_sites_raise_nothing(
    inst: Installation, school: int, tmp_path: Path, stored: AlertStore
) -> None:
    sink = AlertSink(school, window=WINDOW)
    flushed(tmp_path, sink, entry("bet.example", GAMBLING), entry("news.example", ALLOWED))
    assert sink.process(NOON) == 0
    assert alert_rows(inst, school) == []
    assert sink.hits == 0


def test_unknown_devices_are_told_apart_by_address_and_people_by_name(
    inst: Installation, school: int, tmp_path: Path, stored: AlertStore
) -> None:
    sink = AlertSink(school, window=WINDOW)
    flushed(
        tmp_path,
        sink,
        entry("extremist.example", EXTREMIST, person="", client="10.0.0.8"),
        entry("extremist.example", EXTREMIST, person="", client="10.0.0.9"),
        # the same pupil on two devices is one alert
        entry("extremist.example", EXTREMIST, client="10.0.0.10"),
        entry("extremist.example", EXTREMIST, client="10.0.0.11"),
    )
    sink.process(NOON)
    rows = alert_rows(inst, school)
    assert sorted((r.username, r.client, r.count) for r in rows) == [
        ("", "10.0.0.8", 1),
        ("", "10.0.0.9", 1),
        ("ada.owen", "10.0.0.10", 2),
    ]
    unknown = next(r for r in rows if r.client == "10.0.0.8")
    assert unknown.person_id is None


def test_the_database_coalesces_across_a_restart_until_acknowledged(
    inst: Installation, school: int, tmp_path: Path, stored: AlertStore
) -> None:
    first = AlertSink(school, window=WINDOW)
    flushed(tmp_path, first, entry("extremist.example", EXTREMIST))
    first.process(NOON)
    again = AlertSink(school, window=WINDOW)  # a restarted serve remembers nothing
    flushed(tmp_path, again, entry("extremist.example", EXTREMIST, at=NOON + timedelta(minutes=2)))
    again.process(NOON + timedelta(minutes=2))
    [row] = alert_rows(inst, school)
    assert row.count == 2
    with acting(inst, school) as session:
        alerts.acknowledge(session, row.id)
    third = AlertSink(school, window=WINDOW)
    flushed(tmp_path, third, entry("extremist.example", EXTREMIST, at=NOON + timedelta(minutes=3)))
    third.process(NOON + timedelta(minutes=3))
    assert [r.count for r in alert_rows(inst, school)] == [2, 1]  # a new one after the ack


def test_a_full_queue_drops_hits_and_counts_them(school: int, tmp_path: Path) -> None:
    sink = AlertSink(school, capacity=2, publisher=lambda _event: None)
    flushed(tmp_path, sink, *(entry("extremist.example", EXTREMIST) for _ in range(5)))
    assert (sink.hits, sink.dropped) == (2, 3)


def test_a_listener_that_fails_does_not_stop_the_log(tmp_path: Path) -> None:
    def broken(_batch: object) -> None:
        raise RuntimeError("boom")

    log = DecisionLog(tmp_path, on_flush=broken)
    seen: list[int] = []
    remove = log.add_listener(lambda batch: seen.append(len(batch)))
    log.record(entry("extremist.example", EXTREMIST))
    assert log.flush() == 1
    assert (log.listener_errors, seen) == (1, [1])
    remove()
    log.record(entry("extremist.example", EXTREMIST))
    log.flush()
    assert seen == [1]
    assert log.counters()["esafety_decision_log_listener_errors_total"] == 2  # still asked


# -- the DSL's page -----------------------------------------------------------------------


def _raise(inst: Installation, school: int, tmp_path: Path, **kwargs: object) -> None:
    sink = AlertSink(school, window=WINDOW)
    flushed(tmp_path, sink, entry("www.extremist.example", EXTREMIST, **kwargs))  # type: ignore[arg-type]
    sink.process(NOON)


def test_the_dsl_reads_and_acknowledges_alerts_and_home_shows_the_count(
    inst: Installation, school: int, tmp_path: Path, stored: AlertStore
) -> None:
    _raise(inst, school, tmp_path)
    _raise(inst, school, tmp_path, person="", client="10.0.0.99")
    dsl = add_member(inst, school, "dee.dsl", [Role.DSL])
    cookie, csrf = session_and_csrf(inst, dsl)
    with TestClient(create_app(inst), follow_redirects=False) as client:
        client.cookies.set(SESSION_COOKIE, cookie)
        home = client.get("/")
        assert "Filter alerts" in home.text
        assert '<span class="card__count">2</span> new alerts' in home.text
        page = client.get("/filtering/alerts")
        assert page.status_code == 200
        assert "Ada Owen" in page.text and "4B" in page.text
        assert "Unknown device at 10.0.0.99" in page.text
        assert "Extremism" in page.text
        [first, _second] = alert_rows(inst, school)
        answer = client.post(f"/filtering/alerts/{first.id}/acknowledge", data={"csrf_token": csrf})
        assert answer.status_code == 303
        assert "acknowledged" in client.get(answer.headers["location"]).text
        again = client.post(f"/filtering/alerts/{first.id}/acknowledge", data={"csrf_token": csrf})
        assert again.status_code == 422 and "already acknowledged" in again.text
        assert '<span class="card__count">1</span> new alert' in client.get("/").text
    row = next(r for r in alert_rows(inst, school) if r.id == first.id)
    assert row.acknowledged_by == "Dee Tester" and row.acknowledged_by_id == dsl.id
    with acting(inst, school) as session:  # reading the alerts is in the audit trail
        reads = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "read", AuditEntry.object_type == "filter_alert"
            )
        ).all()
    assert reads


# -- end to end: the DNS filter's block reaches the DSL -----------------------------------


def test_a_pupils_blocked_query_in_an_alerting_category_reaches_the_dsls_list(
    inst: Installation, school: int, tmp_path: Path
) -> None:
    listed = tmp_path / "extremism.txt"
    listed.write_text("extremist.example\n")
    with acting(inst, school) as session:
        service.import_list(session, ListStore(inst.data_dir), listed, "domains", "extremism")
        pupil = session.scalars(select(Person)).first()
        assert pupil is not None
        asking.record_sign_in(session, "127.0.0.5", pupil.username, "api", timedelta(hours=1))
    loop = LoopThread()
    dns_service = DnsService(inst, DnsSettings(port=0))
    parts = ServeParts(inst)
    try:
        loop.run(dns_service.start())
        loop.run(parts.start(dns_service))
        query = dns.message.make_query("www.extremist.example", "A")
        # Asked again, it is answered (and logged) by the C fast path: both ways alert.
        for _ in range(3):
            dns.query.udp(query, "127.0.0.1", port=dns_service.port, timeout=3, source="127.0.0.5")
    finally:
        loop.run(dns_service.close())  # the last batch is flushed...
        loop.run(parts.close())  # ...and its alert published and stored
        loop.stop()
    [row] = alert_rows(inst, school)
    assert (row.username, row.site, row.categories, row.client) == (
        pupil.username,
        "extremist.example",
        "extremism",
        "127.0.0.5",
    )
    assert row.count == 3
