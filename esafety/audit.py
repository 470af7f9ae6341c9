"""The append-only, hash-chained audit trail.

Every entry records who (the actor), what (the action), which record, when and from which
address, and carries ``hash = SHA-256(canonical JSON of the entry and the previous hash)``,
so editing, deleting, inserting or reordering an entry breaks the chain. The chain's head is
kept in the database and, after every commit, in a file in the data directory (and printed
by ``esafety audit head``), so that removing the newest entries is detected too.

One mechanism serves every model (NetBox's change logging is the model): session events
record every insert, update and delete of an audited table, and every load of a table marked
``__audit_reads__``, in the same transaction as the change. Columns named in
``__audit_secret__`` are recorded only as changed, never with their value.
"""

from __future__ import annotations

import enum
import fcntl
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, event, insert, inspect, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session
from sqlalchemy.orm.attributes import get_history

from esafety.db import Base, utcnow

__all__ = [
    "GENESIS",
    "SYSTEM",
    "Actor",
    "AuditEntry",
    "AuditHead",
    "ChainProblem",
    "read_head_file",
    "record",
    "set_reason",
    "verify_chain",
]

GENESIS = "0" * 64
SECRET_MARK = "[changed, not recorded]"  # noqa: S105 - a marker, not a password


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in person, a token, or a named system actor."""

    name: str
    person_id: int | None = None
    school_id: int | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    address: str | None = None

    @classmethod
    def system(cls, name: str, *, school_id: int | None = None) -> Actor:
        return cls(name=f"system:{name}", school_id=school_id)


#: The command line acting on the server's own authority.
SYSTEM = Actor.system("cli")


class AuditEntry(Base):
    __tablename__ = "audit_entry"
    __audited__ = False

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    school_id: Mapped[int | None] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(200))
    actor_id: Mapped[int | None]
    address: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64), index=True)
    object_id: Mapped[str | None] = mapped_column(String(64), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the newest entry's number and hash."""

    __tablename__ = "audit_head"
    __audited__ = False

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int]
    hash: Mapped[str] = mapped_column(String(64))


# -- values -------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A value as JSON-ready data, the same on every database."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return f"[{len(value)} bytes]"
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return str(value)


_HASHED = (
    "seq", "at", "school_id", "actor", "actor_id", "address", "action",
    "object_type", "object_id", "before", "after", "reason", "prev_hash",
)  # fmt: skip


def _hashed_fields(row: dict[str, Any]) -> dict[str, Any]:
    fields = {name: row[name] for name in _HASHED}
    fields["at"] = row["at"].isoformat(timespec="microseconds")
    return fields


def _entry_fields(entry: AuditEntry) -> dict[str, Any]:
    return _hashed_fields({name: getattr(entry, name) for name in _HASHED})


def _digest(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def entry_hash(entry: AuditEntry) -> str:
    return _digest(_entry_fields(entry))


# -- writing ------------------------------------------------------------------------


@dataclass
class _Pending:
    action: str
    object_type: str
    object_id: str | None
    school_id: int | None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: str | None = None


def record(
    session: Session,
    action: str,
    object_type: str,
    object_id: object = None,
    *,
    school_id: int | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    """Append an entry for something that is not a row change (a sign-in, an export)."""
    actor: Actor | None = session.info.get("actor")
    if school_id is None:
        school_id = session.info.get("school_id") or (actor.school_id if actor else None)
    _pending(session).append(
        _Pending(
            action,
            object_type,
            None if object_id is None else str(object_id),
            school_id,
            after=plain(after) if after is not None else None,
            reason=reason,
        )
    )


def set_reason(session: Session, reason: str | None) -> None:
    """Record ``reason`` on every row change the session writes from now on (the "why" of
    the filter change log, 002 §7.3); None stops it."""
    if reason:
        session.info["audit_reason"] = reason
    else:
        session.info.pop("audit_reason", None)


def _pending(session: Session) -> list[_Pending]:
    pending: list[_Pending] = session.info.setdefault("audit_pending", [])
    return pending


def _row_values(obj: Base, *, only: Iterable[str] | None = None) -> dict[str, Any]:
    mapper = inspect(type(obj))
    names = [c.key for c in mapper.column_attrs] if only is None else list(only)
    values = {}
    for name in names:
        value = getattr(obj, name, None)
        values[name] = (
            SECRET_MARK if name in obj.__audit_secret__ and value is not None else plain(value)
        )
    return values


def _object_id(obj: Base) -> str | None:
    state = inspect(obj)
    identity = state.identity
    if not identity:
        # A row inserted by this flush has no identity key until the flush ends, but its
        # primary key is already set.
        identity = tuple(state.mapper.primary_key_from_instance(obj))
        if any(part is None for part in identity):
            return None
    return ":".join(str(part) for part in identity)


def _school_of(obj: Base, session: Session) -> int | None:
    school_id = getattr(obj, "school_id", None)
    if school_id is None and type(obj).__tablename__ == "school":
        school_id = getattr(obj, "id", None)
    return school_id if school_id is not None else session.info.get("school_id")


def _changes(session: Session) -> list[_Pending]:
    found = []
    why: str | None = session.info.get("audit_reason")
    for obj in session.new:
        if isinstance(obj, Base) and obj.__audited__:
            found.append(
                _Pending(
                    "create",
                    obj.__tablename__,
                    _object_id(obj),
                    _school_of(obj, session),
                    after=_row_values(obj),
                    reason=why,
                )
            )
    for obj in session.dirty:
        if not (isinstance(obj, Base) and obj.__audited__) or not session.is_modified(obj):
            continue
        before, after = {}, {}
        for attr in inspect(type(obj)).column_attrs:
            history = get_history(obj, attr.key)
            if not history.has_changes():
                continue
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            if plain(old) == plain(new):
                continue
            secret = attr.key in obj.__audit_secret__
            before[attr.key] = SECRET_MARK if secret else plain(old)
            after[attr.key] = SECRET_MARK if secret else plain(new)
        if after:
            found.append(
                _Pending(
                    "update",
                    obj.__tablename__,
                    _object_id(obj),
                    _school_of(obj, session),
                    before=before,
                    after=after,
                    reason=why,
                )
            )
    # Rows the flush actually deleted, orphans removed through a relationship included.
    for obj in session.info.pop("audit_deleted", []):
        if isinstance(obj, Base) and obj.__audited__:
            found.append(
                _Pending(
                    "delete",
                    obj.__tablename__,
                    _object_id(obj),
                    _school_of(obj, session),
                    before=_row_values(obj),
                    reason=why,
                )
            )
    return found


@event.listens_for(Base, "after_delete", propagate=True)
def _note_delete(_mapper: Any, _connection: Any, target: Base) -> None:
    session = object_session(target)
    if session is not None:
        session.info.setdefault("audit_deleted", []).append(target)


@event.listens_for(Session, "after_flush")
def _audit_flush(session: Session, _context: Any) -> None:
    entries = _changes(session) + session.info.pop("audit_pending", [])
    if entries:
        _append(session.connection(), session, entries)


@event.listens_for(Session, "before_commit")
def _audit_before_commit(session: Session) -> None:
    entries = session.info.pop("audit_pending", [])
    if entries:
        _append(session.connection(), session, entries)


@event.listens_for(Session, "after_commit")
def _audit_after_commit(session: Session) -> None:
    head = session.info.pop("audit_new_head", None)
    database = session.info.get("database")
    path = getattr(database, "audit_head_file", None)
    if head is not None and path is not None:
        write_head_file(path, *head)


@event.listens_for(Session, "after_rollback")
def _audit_after_rollback(session: Session) -> None:
    session.info.pop("audit_new_head", None)
    session.info.pop("audit_pending", None)
    session.info.pop("audit_deleted", None)


@event.listens_for(Base, "load", propagate=True)
def _audit_read(target: Base, context: Any) -> None:
    if not type(target).__audit_reads__:
        return
    session = context.session
    record(
        session,
        "read",
        target.__tablename__,
        _object_id(target),
        school_id=_school_of(target, session),
    )


def _append(connection: Connection, session: Session, entries: list[_Pending]) -> None:
    actor: Actor | None = session.info.get("actor")
    head = connection.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
    ).first()
    if head is None:
        connection.execute(insert(AuditHead).values(id=1, seq=0, hash=GENESIS))
        seq, prev = 0, GENESIS
    else:
        seq, prev = head.seq, head.hash
    rows = []
    now = utcnow()
    # Plain dicts, not ORM objects: an import may append tens of thousands of entries.
    who = {
        "actor": actor.name if actor else "system:unknown",
        "actor_id": actor.person_id if actor else None,
        "address": actor.address if actor else None,
    }
    for pending in entries:
        seq += 1
        row = {
            "seq": seq,
            "at": now,
            "school_id": pending.school_id,
            **who,
            "action": pending.action,
            "object_type": pending.object_type,
            "object_id": pending.object_id,
            "before": pending.before,
            "after": pending.after,
            "reason": pending.reason,
            "prev_hash": prev,
        }
        prev = row["hash"] = _digest(_hashed_fields(row))
        rows.append(row)
    connection.execute(insert(AuditEntry), rows)
    connection.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=prev))
    session.info["audit_new_head"] = (seq, prev)


# -- the head file ------------------------------------------------------------------


def write_head_file(path: Path, seq: int, digest: str) -> None:
    """Record the newest head, never moving it backwards (several processes may write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        current = _parse_head(handle.read())
        if current is None or current[0] < seq:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{seq} {digest}\n")
            handle.flush()
            os.fsync(handle.fileno())


def read_head_file(path: Path) -> tuple[int, str] | None:
    try:
        return _parse_head(path.read_text())
    except FileNotFoundError:
        return None


def _parse_head(text: str) -> tuple[int, str] | None:
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1]


# -- verifying ----------------------------------------------------------------------


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    kind: str  # edited, deleted, inserted, reordered, truncated
    message: str


def verify_chain(session: Session, head_file: Path | None) -> tuple[int, ChainProblem | None]:
    """Walk the chain; return how many entries were checked and the first problem."""
    entries = session.scalars(
        select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=2000)
    )
    try:
        return _walk(session, entries, head_file)
    finally:
        entries.close()


def _walk(
    session: Session, entries: Iterable[AuditEntry], head_file: Path | None
) -> tuple[int, ChainProblem | None]:
    expected_seq, prev = 1, GENESIS
    seen_hashes: dict[str, int] = {}
    count = 0
    for entry in entries:
        count += 1
        if entry_hash(entry) != entry.hash:
            return count, ChainProblem(
                entry.seq, "edited", f"entry {entry.seq} was edited after it was written"
            )
        if entry.seq < expected_seq:
            return count, ChainProblem(
                entry.seq, "inserted", f"entry {entry.seq} was inserted: its number repeats"
            )
        if entry.prev_hash != prev:
            if entry.prev_hash in seen_hashes:
                return count, ChainProblem(
                    entry.seq,
                    "inserted",
                    f"entry {entry.seq - 1} was inserted: entry {entry.seq} follows entry "
                    f"{seen_hashes[entry.prev_hash]}",
                )
            if entry.seq > expected_seq:
                return count, ChainProblem(
                    expected_seq, "deleted", _deleted(expected_seq, entry.seq - 1)
                )
            return count, ChainProblem(
                entry.seq,
                "reordered",
                f"entry {entry.seq} is out of order or was replaced: it does not follow entry {entry.seq - 1}",
            )
        if entry.seq > expected_seq:
            return count, ChainProblem(
                expected_seq, "deleted", _deleted(expected_seq, entry.seq - 1)
            )
        seen_hashes[entry.hash] = entry.seq
        expected_seq, prev = entry.seq + 1, entry.hash

    last_seq = expected_seq - 1
    stored = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    heads = [("the database's head", (stored.seq, stored.hash) if stored else None)]
    if head_file is not None:
        heads.append((f"the head file {head_file}", read_head_file(head_file)))
    for where, head in heads:
        if head is None:
            if last_seq:
                if where.startswith("the head file"):
                    continue  # a copy of the database moved to a new data directory
                return count, ChainProblem(last_seq, "truncated", f"{where} is missing")
            continue
        head_seq, head_hash = head
        if head_seq > last_seq:
            return count, ChainProblem(
                last_seq + 1,
                "deleted",
                f"{_deleted(last_seq + 1, head_seq)} ({where} says the newest is entry {head_seq})",
            )
        if head_seq == last_seq and head_hash != prev:
            return count, ChainProblem(
                last_seq, "edited", f"entry {last_seq} was replaced ({where} records another hash)"
            )
        if head_seq < last_seq and seen_hashes.get(head_hash) != head_seq:
            return count, ChainProblem(
                head_seq, "edited", f"entry {head_seq} does not match {where}"
            )
    return count, None


def _deleted(first: int, last: int) -> str:
    return (
        f"entry {first} was deleted" if first == last else f"entries {first} to {last} were deleted"
    )


def entry_as_dict(entry: AuditEntry) -> dict[str, Any]:
    return {**_entry_fields(entry), "hash": entry.hash}
