"""Account tables: credentials, two-step secrets, recovery codes, tokens, web sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from esafety.db import Base, SchoolOwned, utcnow
from esafety.sealing import SealedText

__all__ = ["Account", "ApiToken", "PasswordHistory", "RecoveryCode", "WebSession"]


class Account(SchoolOwned, Base):
    """How a person signs in. People come from the directory; accounts hold secrets."""

    __tablename__ = "account"
    __audit_secret__ = frozenset({"password_hash", "totp_secret"})

    person_id: Mapped[int] = mapped_column(
        ForeignKey("person.id", ondelete="CASCADE"), primary_key=True
    )
    #: None until the person sets a password (first sign-in link or a staff reset).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_changed_at: Mapped[datetime | None]
    must_change_password: Mapped[bool] = mapped_column(default=False)
    #: Sealed (encrypted at rest): a copy of the database must not let anyone make codes.
    totp_secret: Mapped[str | None] = mapped_column(SealedText())
    totp_enrolled_at: Mapped[datetime | None]
    #: The last TOTP time step used, so a code cannot be replayed.
    totp_last_step: Mapped[int | None]
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    disabled: Mapped[bool] = mapped_column(default=False)
    last_sign_in_at: Mapped[datetime | None]


class PasswordHistory(SchoolOwned, Base):
    __tablename__ = "password_history"
    __audit_secret__ = frozenset({"password_hash"})

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecoveryCode(SchoolOwned, Base):
    __tablename__ = "recovery_code"
    __audit_secret__ = frozenset({"code_hash"})

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None]


class ApiToken(SchoolOwned, Base):
    """A personal token for integrations, sent as ``Authorization: Bearer``; stored hashed."""

    __tablename__ = "api_token"
    __audit_secret__ = frozenset({"token_hash"})

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class WebSession(SchoolOwned, Base):
    """A browser session. Not audited row by row (it changes on every request); sign-in,
    sign-out, lock and unlock are audited as events instead."""

    __tablename__ = "web_session"
    __audited__ = False

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    #: Password checked; two-step code checked (or not needed).
    two_step_done: Mapped[bool] = mapped_column(default=False)
    locked: Mapped[bool] = mapped_column(default=False)
    ended_at: Mapped[datetime | None]
    csrf_token: Mapped[str] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64))
