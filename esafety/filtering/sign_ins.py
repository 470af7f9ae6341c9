"""Events about who is using which address, so the DNS filter learns of a sign-in at once.

A sign-in posted to ``POST /api/v1/filtering/sign-ins`` and one from Wi-Fi RADIUS
accounting both end in :func:`esafety.filtering.asking.record_sign_in`, which publishes
:class:`SignInRecorded` when its transaction commits; a RADIUS Stop publishes
:class:`SignInEnded`. ``esafety serve`` connects them to the DNS filter with
:func:`follow_sign_ins`, which reads who is where again instead of waiting for its next poll
(issue 4 §6).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from esafety.events import Event, subscribe

__all__ = ["SIGN_IN_SUBJECTS", "SignInEnded", "SignInRecorded", "follow_sign_ins"]

#: Every sign-in event, as a subject pattern.
SIGN_IN_SUBJECTS = "filtering.sign_in.>"


@dataclass(frozen=True)
class SignInRecorded(Event):
    """A person is using ``client`` from now until ``expires_at``."""

    subject: ClassVar[str] = "filtering.sign_in.recorded"
    school_id: int
    client: str
    person_id: int
    source: str
    expires_at: datetime


@dataclass(frozen=True)
class SignInEnded(Event):
    """A person stopped using ``client`` (a RADIUS Stop): it is no longer theirs."""

    subject: ClassVar[str] = "filtering.sign_in.ended"
    school_id: int
    client: str
    person_id: int
    source: str


def follow_sign_ins(wake: Callable[[], None]) -> Callable[[], None]:
    """Call ``wake`` (in the publisher's thread) after every sign-in event; returns the
    function that stops following. ``wake`` must be quick and thread-safe, such as
    ``lambda: loop.call_soon_threadsafe(dns_service.changed)``."""

    def woken(_event: Event) -> None:
        wake()

    return subscribe(SIGN_IN_SUBJECTS, woken)
