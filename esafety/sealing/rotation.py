"""``esafety keys rotate``: a new key, every sealed value and file re-sealed with it, and
the old keys retired once nothing needs them.

Safe to stop at any point: the new key is written to the keyring before anything is
re-sealed, each batch is its own transaction, each file is replaced whole, and the old
keys stay in the keyring until a count finds nothing sealed with them. Stopped half-way,
everything still opens (some values with the old key, some with the new);
``esafety keys reseal`` finishes the work.

Re-sealing changes no value a person sees, so the audit trail records the rotation, the
re-seal and the retirement as three events, not each row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import LargeBinary, select, tuple_, type_coerce, update
from sqlalchemy.engine import Connection

from esafety.audit import SYSTEM, Actor, record
from esafety.sealing import envelope
from esafety.sealing.columns import SealedColumn, sealed_columns
from esafety.sealing.files import file_place, open_file, seal_file, sealed_files
from esafety.sealing.keyring import Key, Keyring
from esafety.sealing.usage import key_use

if TYPE_CHECKING:
    from esafety.installation import Installation

__all__ = ["BATCH", "Resealed", "Retirement", "reseal", "retire_unused", "rotate"]

BATCH = 500

#: Called after each committed batch with the place ("column:concern.narrative",
#: "files") and how many were re-sealed there so far.
Progress = Callable[[str, int], None]


@dataclass
class Resealed:
    key: str
    values: int = 0
    files: int = 0
    #: Rows changed by someone else between reading and writing (already sealed anew).
    changed_meanwhile: int = 0
    places: dict[str, int] = field(default_factory=dict)


@dataclass
class Retirement:
    removed: list[str]
    #: Old keys still sealing something: key id → how many values and files.
    still_used: dict[str, int]
    #: Keys given in the setting: esafety cannot remove them; these may go.
    remove_from_setting: list[str] = field(default_factory=list)


def rotate(
    inst: Installation,
    *,
    actor: Actor = SYSTEM,
    batch_size: int = BATCH,
    after_batch: Progress | None = None,
) -> tuple[Key, Resealed]:
    """Make a new current key, then re-seal everything with it."""
    old = inst.keys.current()
    key = inst.keys.add_key()
    with inst.db.session(actor) as session:
        record(
            session,
            "keys.rotate",
            "keyring",
            key.id,
            after={"new_key": key.id, "previous_key": old.id},
        )
    return key, reseal(inst, actor=actor, batch_size=batch_size, after_batch=after_batch)


def reseal(
    inst: Installation,
    *,
    actor: Actor = SYSTEM,
    batch_size: int = BATCH,
    after_batch: Progress | None = None,
) -> Resealed:
    """Re-seal every value and file not sealed with the current key."""
    keyring = inst.keys
    current = keyring.current()
    done = Resealed(current.id)
    for sealed in sealed_columns():
        count = _reseal_column(inst, keyring, current, sealed, batch_size, after_batch, done)
        if count:
            done.places[sealed.place] = count
        done.values += count
    done.files = _reseal_files(inst, keyring, current, batch_size, after_batch)
    with inst.db.session(actor) as session:
        record(
            session,
            "keys.reseal",
            "keyring",
            current.id,
            after={"key": current.id, "values": done.values, "files": done.files},
        )
    return done


def _reseal_column(
    inst: Installation,
    keyring: Keyring,
    current: Key,
    sealed: SealedColumn,
    batch_size: int,
    after_batch: Progress | None,
    done: Resealed,
) -> int:
    pk = sealed.primary_key
    raw = type_coerce(sealed.column, LargeBinary)
    count = 0
    last: tuple[Any, ...] | None = None
    while True:
        query = select(*pk, raw.label("sealed")).where(sealed.column.is_not(None))
        if last is not None:
            query = query.where(pk[0] > last[0] if len(pk) == 1 else tuple_(*pk) > tuple_(*last))
        with inst.db.engine.begin() as conn:
            rows = conn.execute(query.order_by(*pk).limit(batch_size)).all()
            if not rows:
                return count
            last = tuple(rows[-1][: len(pk)])
            for row in rows:
                moved = _reseal_value(conn, keyring, current, sealed, row)
                if moved is None:
                    done.changed_meanwhile += 1
                count += int(bool(moved))
        if after_batch is not None:
            after_batch(sealed.place, count)


def _reseal_value(
    conn: Connection, keyring: Keyring, current: Key, sealed: SealedColumn, row: Any
) -> bool | None:
    """True when re-sealed, False when already sealed with ``current``, None when the row
    changed since it was read (its new value was sealed by whoever changed it)."""
    place = sealed.place
    blob = bytes(row.sealed)
    if envelope.key_id_of(blob, place) == current.id:
        return False
    fresh = keyring.seal(keyring.open(blob, place), place, key=current)
    raw = type_coerce(sealed.column, LargeBinary)
    where = [column == value for column, value in zip(sealed.primary_key, row, strict=False)]
    result = conn.execute(
        update(sealed.table)
        .where(*where, raw == type_coerce(blob, LargeBinary))
        .values({sealed.column.name: type_coerce(fresh, LargeBinary)})
    )
    return True if result.rowcount == 1 else None


def _reseal_files(
    inst: Installation,
    keyring: Keyring,
    current: Key,
    batch_size: int,
    after_batch: Progress | None,
) -> int:
    count = 0
    for path in sealed_files(inst.data_dir):
        place = file_place(inst.data_dir, path)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:  # deleted meanwhile
            continue
        if envelope.key_id_of(blob, place) == current.id:
            continue
        content = open_file(keyring, path, place=place)
        if not path.exists():  # deleted while we read it: do not bring it back
            continue
        seal_file(keyring, path, content, place=place, key=current)
        count += 1
        if after_batch is not None and count % batch_size == 0:
            after_batch("files", count)
    if after_batch is not None and count % batch_size:
        after_batch("files", count)
    return count


def retire_unused(inst: Installation, *, actor: Actor = SYSTEM) -> Retirement:
    """Remove the old keys nothing is sealed with any more (counted first)."""
    keyring = inst.keys
    current = keyring.current()
    use = key_use(inst.db.engine, inst.data_dir)
    old = [key.id for key in keyring.held_keys() if key.id != current.id]
    unused = [key_id for key_id in old if use.count(key_id) == 0]
    still = {key_id: use.count(key_id) for key_id in old if use.count(key_id)}
    if keyring.read_only:
        return Retirement([], still, remove_from_setting=unused)
    if unused:
        keyring.remove(set(unused))
        with inst.db.session(actor) as session:
            record(
                session,
                "keys.retire",
                "keyring",
                current.id,
                after={"removed": unused, "kept": sorted(still)},
            )
    return Retirement(unused, still)
