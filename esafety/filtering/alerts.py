"""Alerts to the DSL: a block in an alerting category reaches the DSL's list (issue 4 §8).

Categories whose ``alerts_dsl`` is set (``data/categories.toml``: extremism, self-harm,
pornography, VAWG, hate...) are safeguarding signals (KCSIE); a block in one of them
raises an alert. The path, none of it on the filter's hot path:

1. :class:`AlertSink` is a :class:`~esafety.filtering.log.DecisionLog` listener: in the
   log's flushing thread it picks the alerting blocks from each batch into a bounded
   queue (beyond it, counted) and returns.
2. Its own thread (:meth:`AlertSink.process`, every second) coalesces them: the same
   person (or unknown device at one address), site (registrable domain) and categories
   within ``[filtering] alert_window_minutes`` of the last one are one alert with a count.
   A new alert is published at once as :class:`FilterAlertRaised` on the event bus;
   further repeats are published at most once a minute, as a count to add.
3. :class:`AlertStore`, subscribed to that event, writes the :class:`FilterAlert` row,
   or adds the count to the open (unacknowledged) one, so repeats coalesce across
   restarts and DNS worker processes too.

Other slices (monitoring, later) subscribe to the same event without importing this one.
The DSL, deputy DSL and online safety lead read and acknowledge alerts at
``/filtering/alerts`` (:mod:`esafety.filtering.alerts_pages`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from esafety import metrics
from esafety.audit import Actor
from esafety.db import utcnow
from esafety.directory.model import Person
from esafety.directory.service import actor_of, require
from esafety.errors import InvalidInput, NotFound
from esafety.events import Event, publish, subscribe
from esafety.filtering.alerts_model import FilterAlert
from esafety.filtering.categories import info
from esafety.filtering.hostnames import registrable_domain
from esafety.filtering.log import LogEntry
from esafety.installation import Installation
from esafety.security.roles import Permission

__all__ = [
    "DEFAULT_WINDOW",
    "AlertHit",
    "AlertSink",
    "AlertStore",
    "DslAlerts",
    "FilterAlertRaised",
    "acknowledge",
    "alerting_hits",
    "list_alerts",
    "new_alert_count",
    "store_alert",
]

log = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(minutes=10)
#: Repeats of an open alert are published at most this often.
REPEAT_EVERY = timedelta(minutes=1)
#: Hits waiting to be coalesced; beyond, they are counted as dropped.
DEFAULT_CAPACITY = 10_000
#: The newest alerts a page shows.
PAGE_LIMIT = 200


@dataclass(frozen=True)
class FilterAlertRaised(Event):
    """``count`` blocks in alerting categories, from ``first_seen`` to ``last_seen``.

    The first event for a person, site and categories is a new alert; later ones within
    the window add their count to it.
    """

    subject: ClassVar[str] = "filtering.alert.raised"
    school_id: int
    username: str  # "" for an unknown device
    client: str
    site: str
    name: str
    categories: tuple[str, ...]
    rule: str
    policy: str
    first_seen: datetime
    last_seen: datetime
    count: int


@dataclass(frozen=True, slots=True)
class AlertHit:
    """One alerting block, taken from the decision log."""

    time: datetime
    username: str
    client: str
    site: str
    name: str
    categories: tuple[str, ...]
    rule: str
    policy: str

    @property
    def key(self) -> tuple[str, str, str, tuple[str, ...]]:
        # A person is one person wherever they sign in; an unknown device is its address.
        return (self.username, "" if self.username else self.client, self.site, self.categories)


def _site(name: str) -> str:
    host = name.split("/", 1)[0] if "/" in name else name  # a URL decision logs the URL
    host = host.split("://", 1)[-1].rstrip(".").lower()
    try:
        return registrable_domain(host) or host
    except ValueError:
        return host


def alerting_hits(entries: Sequence[LogEntry]) -> list[AlertHit]:
    """The blocks in alerting categories among logged decisions (pure; quick on a batch)."""
    hits = []
    for entry in entries:
        decision = entry.decision
        if not decision.blocked:
            continue
        alerting = tuple(c.value for c in decision.categories if info(c).alerts_dsl)
        if not alerting:
            continue
        hits.append(
            AlertHit(
                time=datetime.fromtimestamp(entry.time, UTC),
                username=entry.person,
                client=entry.client,
                site=_site(entry.name),
                name=entry.name,
                categories=alerting,
                rule=decision.rule,
                policy=decision.policy_id,
            )
        )
    return hits


@dataclass
class _Open:
    """An alert being coalesced in memory."""

    hit: AlertHit
    last: datetime
    #: Hits not yet published, and the first of them.
    pending: int
    pending_first: datetime
    published_at: datetime | None = None


class AlertSink:
    """Takes flushed decision-log batches, coalesces alerting blocks, publishes events."""

    def __init__(
        self,
        school_id: int | None,
        *,
        window: timedelta = DEFAULT_WINDOW,
        repeat_every: timedelta = REPEAT_EVERY,
        capacity: int = DEFAULT_CAPACITY,
        publisher: Callable[[Event], object] = publish,
    ) -> None:
        self.school_id = school_id
        self.window = window
        self.repeat_every = repeat_every
        self.capacity = capacity
        self.publisher = publisher
        self._hits: deque[AlertHit] = deque()
        self._open: dict[tuple[str, str, str, tuple[str, ...]], _Open] = {}
        self._lock = threading.Lock()  # process() from the thread and from stop()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.hits = 0
        self.dropped = 0
        self.published = 0

    # -- in the decision log's flushing thread --------------------------------------------

    def take(self, entries: Sequence[LogEntry]) -> None:
        """The :class:`DecisionLog` listener: queue the alerting blocks, nothing more."""
        for hit in alerting_hits(entries):
            if len(self._hits) >= self.capacity:
                self.dropped += 1
                continue
            self._hits.append(hit)
            self.hits += 1

    # -- in the sink's own thread ---------------------------------------------------------

    def process(self, now: datetime | None = None, *, final: bool = False) -> int:
        """Coalesce the queued hits and publish what is due; returns events published."""
        with self._lock:
            return self._process(now or utcnow(), final)

    def _process(self, now: datetime, final: bool) -> int:
        queued = self._hits
        batch = sorted((queued.popleft() for _ in range(len(queued))), key=lambda h: h.time)
        if self.school_id is None:
            if batch:
                self.dropped += len(batch)
                log.warning(
                    "%d DSL alerts dropped: there is no school yet to raise them in", len(batch)
                )
            return 0
        events = []
        for hit in batch:
            current = self._open.get(hit.key)
            if current is not None and hit.time - current.last > self.window:
                events += self._due(current, now, force=True)  # its last repeats, then anew
                current = None
            if current is None:
                self._open[hit.key] = _Open(hit, hit.time, 1, hit.time)
                continue
            current.last = max(current.last, hit.time)
            if current.pending == 0:
                current.pending_first = hit.time
            current.pending += 1
        for key, current in list(self._open.items()):
            events += self._due(current, now, force=final)
            if current.pending == 0 and now - current.last > self.window:
                del self._open[key]
        for event in events:
            self.publisher(event)
        self.published += len(events)
        return len(events)

    def _due(self, current: _Open, now: datetime, *, force: bool) -> list[FilterAlertRaised]:
        if current.pending == 0:
            return []
        published = current.published_at
        if published is not None and not force and now - published < self.repeat_every:
            return []
        hit = current.hit
        event = FilterAlertRaised(
            school_id=int(self.school_id or 0),
            username=hit.username,
            client=hit.client,
            site=hit.site,
            name=hit.name,
            categories=hit.categories,
            rule=hit.rule,
            policy=hit.policy,
            first_seen=current.pending_first,
            last_seen=current.last,
            count=current.pending,
        )
        current.pending = 0
        current.published_at = now
        return [event]

    def start(self, interval: float = 1.0) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()

        def run() -> None:
            while not self._stopping.wait(interval):
                try:
                    self.process()
                except Exception:  # the thread outlives one bad pass
                    log.exception("DSL alerts: processing failed")

        self._thread = threading.Thread(target=run, name="esafety-dsl-alerts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread and publish every count still held."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            thread.join()
        self.process(final=True)

    def samples(self) -> list[metrics.Sample]:
        return metrics.counters_of(
            "esafety_dsl_alert",
            {"hits": self.hits, "dropped": self.dropped, "events": self.published},
            help_texts={
                "hits": "Blocks in alerting categories taken from the decision log.",
                "dropped": "Alerting blocks dropped (queue full, or no school yet).",
                "events": "Alert events published (new alerts and repeat counts).",
            },
        )


# -- storing --------------------------------------------------------------------------------


def store_alert(session: Session, event: FilterAlertRaised, window: timedelta) -> FilterAlert:
    """Add the event's count to the open alert it continues, or raise a new one."""
    categories = ",".join(event.categories)
    query = select(FilterAlert).where(
        FilterAlert.username == event.username,
        FilterAlert.site == event.site,
        FilterAlert.categories == categories,
        FilterAlert.acknowledged_at.is_(None),
        FilterAlert.last_seen >= event.first_seen - window,
    )
    if not event.username:
        query = query.where(FilterAlert.client == event.client)
    row = session.scalars(query.order_by(FilterAlert.last_seen.desc())).first()
    if row is not None:
        row.count += event.count
        row.last_seen = max(row.last_seen, event.last_seen)
        session.flush()
        return row
    person = None
    if event.username:
        person = session.scalars(select(Person).where(Person.username == event.username)).first()
    row = FilterAlert(
        school_id=event.school_id,
        person_id=person.id if person is not None else None,
        username=event.username,
        client=event.client,
        site=event.site[:253],
        name=event.name[:2000],
        categories=categories,
        rule=event.rule[:500],
        policy=event.policy[:60],
        first_seen=event.first_seen,
        last_seen=event.last_seen,
        count=event.count,
    )
    session.add(row)
    session.flush()
    return row


class AlertStore:
    """The event subscriber that writes alerts (in the publisher's thread)."""

    def __init__(self, inst: Installation, window: timedelta = DEFAULT_WINDOW) -> None:
        self.inst = inst
        self.window = window

    def __call__(self, event: FilterAlertRaised) -> None:
        actor = Actor.system("dsl alerts", school_id=event.school_id)
        with self.inst.db.session(actor, school_id=event.school_id) as session:
            store_alert(session, event, self.window)

    def subscribe(self) -> Callable[[], None]:
        return subscribe(FilterAlertRaised, self)


class DslAlerts:
    """The sink, its thread, the store's subscription and the metrics, as serve runs them.

    Give :attr:`sink`'s ``take`` to each :class:`DecisionLog` (``on_flush=`` or
    ``add_listener``)."""

    def __init__(
        self, inst: Installation, school_id: int | None, window: timedelta = DEFAULT_WINDOW
    ) -> None:
        self.sink = AlertSink(school_id, window=window)
        self.store = AlertStore(inst, window)
        self._stops: list[Callable[[], None]] = []

    def start(self) -> None:
        self._stops = [self.store.subscribe(), metrics.register("dsl_alerts", self.sink.samples)]
        self.sink.start()

    def stop(self) -> None:
        self.sink.stop()
        for stop in reversed(self._stops):
            stop()
        self._stops = []


# -- reading and acknowledging (the DSL's page) -----------------------------------------


def list_alerts(session: Session, *, limit: int = PAGE_LIMIT) -> list[FilterAlert]:
    """The school's alerts, the newest first."""
    require(session, Permission.VIEW_FILTER_ALERTS, "read the filter's alerts")
    return list(
        session.scalars(
            select(FilterAlert)
            .order_by(FilterAlert.last_seen.desc(), FilterAlert.id.desc())
            .limit(limit)
        )
    )


def new_alert_count(session: Session) -> int:
    """Alerts nobody has acknowledged yet (a count: no alert is read, so none is audited)."""
    require(session, Permission.VIEW_FILTER_ALERTS, "read the filter's alerts")
    count = session.scalar(
        select(func.count()).select_from(FilterAlert).where(FilterAlert.acknowledged_at.is_(None))
    )
    return int(count or 0)


def acknowledge(session: Session, alert_id: int, *, now: datetime | None = None) -> FilterAlert:
    """Mark an alert as seen and dealt with, by the session's person."""
    require(session, Permission.ACKNOWLEDGE_FILTER_ALERTS, "acknowledge the filter's alerts")
    row = session.scalars(select(FilterAlert).where(FilterAlert.id == alert_id)).first()
    if row is None:
        raise NotFound(f"no filter alert #{alert_id} in this school")
    if row.acknowledged_at is not None:
        raise InvalidInput(
            f"alert #{alert_id} was already acknowledged by {row.acknowledged_by} "
            f"on {row.acknowledged_at:%d %b %Y at %H:%M}"
        )
    actor = actor_of(session)
    person = session.get(Person, actor.person_id) if actor and actor.person_id else None
    row.acknowledged_at = now or utcnow()
    row.acknowledged_by_id = person.id if person is not None else None
    row.acknowledged_by = (
        person.display_name if person is not None else (actor.name if actor else "system")
    )
    session.flush()
    return row
