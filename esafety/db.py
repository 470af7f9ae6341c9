"""SQLAlchemy engine, sessions and the base of every table.

Two mechanisms every model gets for free live here and in :mod:`esafety.audit`:

* **School scoping.** A session opened for an actor of a school adds
  ``school_id = <theirs>`` to every query of a :class:`SchoolOwned` table and refuses to
  write another school's row, so no route can reach another school's data by accident.
* **Audit.** Every flush and every read of a sensitive table appends to the hash-chained
  audit trail in the same transaction (see :mod:`esafety.audit`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, ForeignKey, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    sessionmaker,
    with_loader_criteria,
)
from sqlalchemy.types import TypeDecorator

from esafety.errors import PermissionDenied

__all__ = ["Base", "Database", "SchoolOwned", "UtcDateTime", "utcnow"]

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Stores UTC and always returns an aware datetime, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON}  # noqa: RUF012

    #: Columns whose values never reach the audit trail (only the fact they changed).
    __audit_secret__: frozenset[str] = frozenset()
    #: Whether changes to this table are audited (off only for high-churn bookkeeping).
    __audited__: bool = True
    #: Whether reading a row of this table is audited (sensitive records).
    __audit_reads__: bool = False


class SchoolOwned:
    """Mixin for every row that belongs to one school."""

    @declared_attr
    def school_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("school.id", ondelete="RESTRICT"), index=True)


class Database:
    """One database: its engine and a way to open sessions for an actor."""

    def __init__(self, url: str, *, audit_head_file: Path | None = None) -> None:
        self.url = url
        self.audit_head_file = audit_head_file
        self.engine = _make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self, actor: Any = None, *, school_id: int | None = None) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on error.

        ``actor`` (an :class:`esafety.audit.Actor`) is recorded on every audit entry; a
        session for an actor with a school only sees and writes that school's rows.
        """
        session = self._sessions()
        session.info["database"] = self
        session.info["actor"] = actor
        scope = school_id if school_id is not None else getattr(actor, "school_id", None)
        if scope is not None:
            session.info["school_id"] = scope
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, begin transactions (see _sqlite_begin).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock at the start: a transaction that read first
            # and writes later can then never fail with "database is locked" mid-way.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


@event.listens_for(Session, "do_orm_execute")
def _scope_to_school(state: ORMExecuteState) -> None:
    school_id = state.session.info.get("school_id")
    if school_id is None or state.is_column_load or state.is_relationship_load:
        return
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(
            with_loader_criteria(
                SchoolOwned,
                lambda cls: cls.school_id == school_id,
                include_aliases=True,
            )
        )


@event.listens_for(Session, "before_flush")
def _refuse_other_schools(session: Session, _context: Any, _instances: Any) -> None:
    school_id = session.info.get("school_id")
    if school_id is None:
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, SchoolOwned) and obj.school_id not in (None, school_id):
            raise PermissionDenied(
                f"{type(obj).__name__} belongs to another school; you can change only your own school's records"
            )
        if isinstance(obj, SchoolOwned) and obj.school_id is None:
            obj.school_id = school_id
