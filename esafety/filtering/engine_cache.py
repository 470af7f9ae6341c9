"""The filter engine the web app asks (block pages, staff reports), built once per school.

The block page asks the engine again for the person at the device (issue 4 §7), so the
web process needs an engine of its own: the DNS filter may run in other processes.
Building one compiles every stored list, which takes seconds for millions of names, so
it is built on first use and again only when the lists, the school's entries, its
policies or exceptions change (checked at most every :data:`CHECK_SECONDS`, the same
fingerprint the DNS filter uses), or when it is older than :data:`MAX_AGE_SECONDS`. One build at a time per school; callers meanwhile get
the engine they had.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from esafety.audit import Actor
from esafety.filtering import asking, service
from esafety.filtering.decision import FilterEngine
from esafety.filtering.service import build_engine, list_lists
from esafety.filtering.store import ListStore
from esafety.installation import Installation

__all__ = ["CHECK_SECONDS", "MAX_AGE_SECONDS", "EngineCache", "engines_for"]

CHECK_SECONDS = 2.0
MAX_AGE_SECONDS = 600.0


@dataclass
class _Built:
    engine: FilterEngine
    fingerprint: Hashable
    built_at: float
    checked_at: float


def fingerprint(session: Session) -> Hashable:
    """What the engine is built from, cheaply: list versions and the school's entries."""
    lists = tuple(
        (row.store_key, row.sha256, row.updated_at, row.illegal, row.category)
        for row in list_lists(session)
    )
    school = session.info.get("school_id")
    entries = asking.school_entries(session) if school is not None else ()
    # Custom policies and approved exceptions, where the filtering service reads them.
    rules = getattr(service, "rules_fingerprint", None)
    return school, lists, entries, rules(session) if rules is not None else None


class EngineCache:
    """One engine per school (the session's), rebuilt when what it is built from changes."""

    def __init__(self, inst: Installation, clock: Callable[[], float] = time.monotonic) -> None:
        self.inst = inst
        self.store = ListStore(inst.data_dir)
        self.clock = clock
        self._built: dict[int | None, _Built] = {}
        self._locks: dict[int | None, threading.Lock] = {}
        self._guard = threading.Lock()

    def engine(self, school_id: int | None) -> FilterEngine:
        """The engine for a school (blocking: call it from a worker thread).

        It reads the lists as the filter itself does (a system actor), whoever is asking:
        a volunteer reporting a site may not read the lists, but their report still says
        what the filter decided."""
        key = int(school_id) if school_id is not None else None
        now = self.clock()
        built = self._built.get(key)
        if built is not None and now - built.checked_at < CHECK_SECONDS:
            return built.engine
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if built is not None and not lock.acquire(blocking=False):
            return built.engine  # someone is building: answer with what we have
        if built is None:
            lock.acquire()
        try:
            with self.inst.db.session(Actor.system("filter engine", school_id=key)) as session:
                built = self._built.get(key)
                current = fingerprint(session)
                fresh = built is not None and now - built.built_at < MAX_AGE_SECONDS
                if built is not None and fresh and built.fingerprint == current:
                    built.checked_at = now
                    return built.engine
                engine = build_engine(session, self.store)
            self._built[key] = _Built(engine, current, now, now)
            return engine
        finally:
            lock.release()

    def forget(self) -> None:
        """Build again on next use (tests, and after a change this cache cannot see)."""
        self._built.clear()


_CACHES: weakref.WeakKeyDictionary[Installation, EngineCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def engines_for(inst: Installation) -> EngineCache:
    """The installation's engine cache, shared by the block page and the staff pages."""
    with _CACHES_LOCK:
        cache = _CACHES.get(inst)
        if cache is None:
            cache = _CACHES[inst] = EngineCache(inst)
        return cache
