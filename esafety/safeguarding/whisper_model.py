"""Tables of a pupil's own report of a worry (issue 5 §1; SWGfL Whisper is the model).

A report is a concern in the school's record (:mod:`esafety.safeguarding.concerns`); these
rows add only what the pupil's private link needs: the link's and the code's hashes (never
the link or the code themselves), when the link stops working, and the conversation the
pupil reads there (their words and the school's replies, sealed). Like the concern itself
the conversation is never edited or deleted (STANDARDS R2): the report's rows join the
safeguarding tables' append-only guard, and only the link's expiry and last opening move.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, relationship

from esafety.db import Base, SchoolOwned, utcnow
from esafety.errors import PermissionDenied
from esafety.safeguarding.model import APPEND_ONLY
from esafety.sealing import SealedText

__all__ = ["WorryMessage", "WorryReport"]


class WorryReport(SchoolOwned, Base):
    """A worry a pupil sent themself: the concern it became and its private link."""

    __tablename__ = "worry_report"
    __audit_secret__ = frozenset({"token_hash", "code_hash"})

    id: Mapped[int] = mapped_column(primary_key=True)
    concern_id: Mapped[int] = mapped_column(ForeignKey("concern.id"), unique=True)
    #: SHA-256 of the link's token (the token itself is 192 random bits: a hash is enough).
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: HMAC-SHA-256 of the short code under the installation's secret (a short code could
    #: be guessed from a plain hash of a stolen database; not from a keyed one).
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The pupil put their name on it (they are linked to the concern).
    named: Mapped[bool] = mapped_column(Boolean, default=False)
    #: They said it is happening now, or that they feel unsafe now.
    happening_now: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Who the school's record says sent it ("a pupil (anonymous)" or the pupil's name).
    reporter: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The link and the code stop working then; each new message moves it on.
    expires_at: Mapped[datetime]
    last_opened_at: Mapped[datetime | None]

    messages: Mapped[list[WorryMessage]] = relationship(
        back_populates="report", lazy="selectin", order_by="WorryMessage.id"
    )


class WorryMessage(SchoolOwned, Base):
    """One message of the conversation at the private link: the pupil's or the school's."""

    __tablename__ = "worry_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("worry_report.id"), index=True)
    from_pupil: Mapped[bool] = mapped_column(Boolean)
    text: Mapped[str] = mapped_column(SealedText())
    #: The name the pupil sees under a reply: only when the member of staff signed it.
    signed_as: Mapped[str | None] = mapped_column(String(200))
    #: Who wrote it, for the record (never shown to the pupil).
    written_by: Mapped[str] = mapped_column(String(200))
    written_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    written_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The note that carries it in the concern's record.
    concern_entry_id: Mapped[int | None] = mapped_column(ForeignKey("concern_entry.id"))

    report: Mapped[WorryReport] = relationship(back_populates="messages")


# The safeguarding tables' one append-only guard (esafety.safeguarding.model) covers these
# rows too: the conversation is never edited, the report only moves its link's expiry.
APPEND_ONLY[WorryReport] = frozenset({"expires_at", "last_opened_at"})
APPEND_ONLY[WorryMessage] = frozenset()
_TABLES = frozenset({WorryReport.__tablename__, WorryMessage.__tablename__})


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_edits(state: ORMExecuteState) -> None:
    # The guard's bulk check knows the tables of its own module only.
    if not (state.is_update or state.is_delete):
        return
    if state.session.info.get("safeguarding_deletion_allowed"):
        return
    name = getattr(getattr(state.statement, "table", None), "name", None)
    if name in _TABLES:
        raise PermissionDenied(
            f"a pupil's report of a worry ({name}) is never changed or deleted in bulk "
            "(STANDARDS R2)"
        )
