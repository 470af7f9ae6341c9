"""The in-process event bus: slices tell each other what happened without importing each other.

Events are frozen dataclasses with a ``subject`` (a dotted name such as
``directory.person.left``). Handlers subscribe to an event type or to a subject pattern
in NATS's syntax (``*`` matches one part, ``>`` the rest), so moving to a message system
at the scale of a trust changes the transport, not the callers.

A handler that fails is logged and the others still run: one broken subscriber must not
stop a block being logged or an alert being raised.

Events about a write should be published only if the write is committed:
:func:`publish_on_commit` holds them on the session and publishes after the commit.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from esafety.errors import InvalidInput

__all__ = [
    "Event",
    "EventBus",
    "bus",
    "decode",
    "encode",
    "publish",
    "publish_on_commit",
    "subject_matches",
    "subscribe",
]

log = logging.getLogger(__name__)

E = TypeVar("E", bound="Event")
Handler = Callable[[Any], None]

#: Every event type by subject, so a message from another process can be decoded.
_TYPES: dict[str, type[Event]] = {}


@dataclass(frozen=True)
class Event:
    """Base of every event. Subclasses are frozen dataclasses that set ``subject``."""

    subject: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        subject = cls.__dict__.get("subject")
        if not subject:
            return
        _check_subject(subject, pattern=False)
        known = _TYPES.get(subject)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ValueError(f"event subject {subject!r} is already used by {known.__qualname__}")
        _TYPES[subject] = cls


def _check_subject(text: str, *, pattern: bool) -> None:
    parts = text.split(".")
    if not text or any(not t for t in parts):
        raise InvalidInput(
            f"event subject {text!r} is not valid: use dot-separated names like 'directory.person.left'"
        )
    for i, part in enumerate(parts):
        wildcard = part in ("*", ">")
        if wildcard and not pattern:
            raise InvalidInput(f"event subject {text!r} may not contain wildcards")
        if part == ">" and i != len(parts) - 1:
            raise InvalidInput(f"subject pattern {text!r}: '>' may only be the last part")


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS matching: ``a.*.c`` matches ``a.b.c``; ``a.>`` matches ``a.b`` and ``a.b.c``."""
    want, have = pattern.split("."), subject.split(".")
    for i, part in enumerate(want):
        if part == ">":
            return len(have) > i
        if i >= len(have) or (part != "*" and part != have[i]):
            return False
    return len(want) == len(have)


class EventBus:
    """Publish/subscribe by subject, handlers called in the publisher's thread, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: list[tuple[str, Handler]] = []

    def subscribe(self, what: type[E] | str, handler: Callable[[E], None]) -> Callable[[], None]:
        """Call ``handler`` for each event of this type or matching this subject pattern.

        Returns a function that ends the subscription.
        """
        if isinstance(what, str):
            _check_subject(what, pattern=True)
            pattern = what
        else:
            pattern = what.subject
            if not pattern:
                raise InvalidInput(f"{what.__qualname__} has no subject; set `subject = '...'`")
        entry = (pattern, handler)
        with self._lock:
            self._subscriptions.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscriptions:
                    self._subscriptions.remove(entry)

        return unsubscribe

    def publish(self, event: Event) -> int:
        """Deliver to every matching handler; returns how many handled it without error."""
        if not event.subject:
            raise InvalidInput(f"{type(event).__qualname__} has no subject and cannot be published")
        with self._lock:
            targets = [h for p, h in self._subscriptions if subject_matches(p, event.subject)]
        delivered = 0
        for handler in targets:
            try:
                handler(event)
            except Exception:
                # A subscriber's fault is its own: log it with the event and carry on.
                log.exception(
                    "event handler %s failed on %s",
                    getattr(handler, "__qualname__", handler),
                    event,
                )
            else:
                delivered += 1
        return delivered

    def clear(self) -> None:
        with self._lock:
            self._subscriptions.clear()


#: The process's bus.
bus = EventBus()


def subscribe(what: type[E] | str, handler: Callable[[E], None]) -> Callable[[], None]:
    return bus.subscribe(what, handler)


def publish(event: Event) -> int:
    return bus.publish(event)


def publish_on_commit(session: Session, event: Event) -> None:
    """Publish ``event`` once ``session`` commits; drop it if the session rolls back."""
    pending: list[Event] = session.info.setdefault("events_pending", [])
    pending.append(event)


@sa_event.listens_for(Session, "after_commit")
def _publish_committed(session: Session) -> None:
    pending: list[Event] = session.info.pop("events_pending", [])
    for item in pending:
        bus.publish(item)


@sa_event.listens_for(Session, "after_rollback")
def _drop_rolled_back(session: Session) -> None:
    session.info.pop("events_pending", None)


# -- the wire format a message system would carry ----------------------------------


def encode(event: Event) -> bytes:
    """The event as JSON, for a message system (dates as ISO strings)."""
    body = {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}
    return json.dumps({"subject": event.subject, "data": body}, sort_keys=True).encode()


def decode(message: bytes) -> Event:
    """Rebuild an event from :func:`encode`'s output."""
    try:
        parsed = json.loads(message)
        cls = _TYPES[parsed["subject"]]
        data = dict(parsed["data"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"cannot decode event message: {exc}") from None
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    for name, hint in hints.items():
        value = data.get(name)
        if isinstance(value, str) and isinstance(hint, str):
            if hint.startswith("datetime"):
                data[name] = datetime.fromisoformat(value)
            elif hint.startswith("date"):
                data[name] = date.fromisoformat(value)
        if isinstance(value, list):
            data[name] = tuple(value)
    return cls(**data)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list | frozenset | set):
        return [_plain(v) for v in value]
    return value
