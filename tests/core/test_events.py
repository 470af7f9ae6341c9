"""The in-process event bus."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

import pytest

from esafety.audit import Actor
from esafety.errors import InvalidInput
from esafety.events import (
    Event,
    EventBus,
    decode,
    encode,
    publish,
    publish_on_commit,
    subject_matches,
    subscribe,
)
from esafety.installation import Installation


@dataclass(frozen=True)
class SiteBlocked(Event):
    subject = "test.filter.blocked"
    host: str
    person_id: int | None
    at: datetime


@dataclass(frozen=True)
class AupSigned(Event):
    subject = "test.aup.signed"
    person_id: int
    signed_on: date
    versions: tuple[int, ...] = ()


AT = datetime(2025, 9, 3, 9, 15)


def test_handlers_get_the_events_they_subscribed_to() -> None:
    bus = EventBus()
    blocked: list[SiteBlocked] = []
    everything: list[Event] = []
    bus.subscribe(SiteBlocked, blocked.append)
    bus.subscribe("test.>", everything.append)
    event = SiteBlocked("example.com", 7, AT)
    assert bus.publish(event) == 2
    assert bus.publish(AupSigned(7, date(2025, 9, 3))) == 1
    assert blocked == [event]
    assert [type(e) for e in everything] == [SiteBlocked, AupSigned]


def test_a_failing_handler_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    seen: list[Event] = []

    def broken(event: SiteBlocked) -> None:
        raise RuntimeError("monitoring is down")

    bus.subscribe(SiteBlocked, broken)
    bus.subscribe(SiteBlocked, seen.append)
    with caplog.at_level(logging.ERROR, logger="esafety.events"):
        delivered = bus.publish(SiteBlocked("example.com", None, AT))
    assert delivered == 1
    assert len(seen) == 1
    assert "broken" in caplog.text and "monitoring is down" in caplog.text


def test_unsubscribe_stops_delivery() -> None:
    bus = EventBus()
    seen: list[Event] = []
    stop = bus.subscribe("test.*.signed", seen.append)
    bus.publish(AupSigned(1, date(2025, 9, 3)))
    stop()
    stop()  # twice is harmless
    bus.publish(AupSigned(2, date(2025, 9, 3)))
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("a.b.c", "a.b.c", True),
        ("a.b", "a.b.c", False),
        ("a.b.c", "a.b", False),
        ("a.*.c", "a.b.c", True),
        ("a.*", "a.b.c", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a.b", True),
        ("a.>", "a", False),
        (">", "anything.at.all", True),
        ("*.b", "a.b", True),
    ],
)
def test_subjects_match_like_nats(pattern: str, subject: str, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected


def test_bad_subjects_are_refused() -> None:
    bus = EventBus()
    with pytest.raises(InvalidInput, match="'>' may only be the last"):
        bus.subscribe("a.>.b", print)
    with pytest.raises(InvalidInput, match="not valid"):
        bus.subscribe("a..b", print)
    with pytest.raises(InvalidInput, match="has no subject"):
        bus.subscribe(Event, print)
    with pytest.raises(ValueError, match="already used"):

        @dataclass(frozen=True)
        class Clash(Event):
            subject = "test.aup.signed"


def test_events_travel_as_json_for_a_message_system() -> None:
    event = AupSigned(7, date(2025, 9, 3), (1, 2))
    assert decode(encode(event)) == event
    blocked = SiteBlocked("example.com", None, AT)
    assert decode(encode(blocked)) == blocked
    with pytest.raises(InvalidInput, match="cannot decode"):
        decode(b'{"subject": "nobody.knows", "data": {}}')


def test_publish_on_commit_waits_for_the_commit(inst: Installation) -> None:
    seen: list[Event] = []
    stop = subscribe(AupSigned, seen.append)
    try:
        with inst.db.session(Actor.system("test")) as session:
            publish_on_commit(session, AupSigned(1, date(2025, 9, 3)))
            assert seen == []
        assert len(seen) == 1

        def publish_then_fail() -> None:
            with inst.db.session(Actor.system("test")) as session:
                publish_on_commit(session, AupSigned(2, date(2025, 9, 3)))
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            publish_then_fail()
        assert len(seen) == 1
        publish(AupSigned(3, date(2025, 9, 3)))  # the module-level bus
        assert len(seen) == 2
    finally:
        stop()
