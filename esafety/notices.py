"""Notices: short messages to one person, shown on their home page until they are read.

The filter's pre-warning before an exception starts (000 §5 "with pre-warning only"),
and news of a request's approval or end, reach people this way. A notice with a ``key``
is sent once per person, so a job that runs again after a crash does not repeat it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from esafety.db import Base, SchoolOwned, utcnow

__all__ = ["Notice", "mark_read", "notify", "unread"]


class Notice(SchoolOwned, Base):
    __tablename__ = "notice"
    __table_args__ = (
        UniqueConstraint("person_id", "key"),
        Index("ix_notice_unread", "person_id", "read_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    #: A page of esafety to open, such as ``/filtering/requests/12``.
    link: Mapped[str | None] = mapped_column(String(500))
    key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


def notify(
    session: Session,
    person_ids: Iterable[int],
    text: str,
    *,
    link: str | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> list[Notice]:
    """Send ``text`` to each person once (once per ``key`` when one is given)."""
    school_id = session.info.get("school_id")
    wanted = sorted(set(person_ids))
    already: set[int] = set()
    if key is not None and wanted:
        already = set(
            session.scalars(
                select(Notice.person_id).where(Notice.key == key, Notice.person_id.in_(wanted))
            )
        )
    sent = []
    for person_id in wanted:
        if person_id in already:
            continue
        notice = Notice(person_id=person_id, text=text, link=link, key=key)
        notice.created_at = now or utcnow()
        if school_id is not None:
            notice.school_id = int(school_id)
        session.add(notice)
        sent.append(notice)
    session.flush()
    return sent


def unread(session: Session, person_id: int, *, limit: int = 20) -> list[Notice]:
    """The person's unread notices, newest first."""
    return list(
        session.scalars(
            select(Notice)
            .where(Notice.person_id == person_id, Notice.read_at.is_(None))
            .order_by(Notice.created_at.desc(), Notice.id.desc())
            .limit(limit)
        )
    )


def mark_read(session: Session, person_id: int, *, now: datetime | None = None) -> int:
    """Mark every unread notice of the person read; returns how many."""
    rows = list(
        session.scalars(
            select(Notice).where(Notice.person_id == person_id, Notice.read_at.is_(None))
        )
    )
    for row in rows:
        row.read_at = now or utcnow()
    session.flush()
    return len(rows)
