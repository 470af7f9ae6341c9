"""Times on safeguarding pages, in the school's own time zone (one place for every page)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from esafety.directory.model import School
from esafety.web.deps import Caller

__all__ = ["caller_zone", "local_time"]


def caller_zone(session: Session, caller: Caller) -> ZoneInfo:
    """The time zone of the caller's school (London when it has none)."""
    school = session.get(School, caller.school_id)
    return ZoneInfo(school.timezone if school is not None else "Europe/London")


def local_time(moment: datetime | None, zone: ZoneInfo) -> str:
    """``Mon 23 Nov 2026, 17:06``; empty for no time."""
    return moment.astimezone(zone).strftime("%a %d %b %Y, %H:%M") if moment else ""
