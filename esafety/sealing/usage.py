"""Which keys the sealed records need, and the check esafety makes before it starts.

Counting reads only each envelope's 5-byte header (version and key id), in SQL for
columns, so it neither needs the keys nor holds any plaintext.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import LargeBinary, Select, func, literal_column, select, type_coerce
from sqlalchemy.engine import Engine

from esafety.sealing import envelope
from esafety.sealing.columns import sealed_columns
from esafety.sealing.files import sealed_files
from esafety.sealing.keyring import RESTORE, KeyMissing

if TYPE_CHECKING:
    from esafety.installation import Installation

__all__ = ["KeyUse", "check_keys", "key_use", "sealed_data_found"]


@dataclass
class KeyUse:
    """How many sealed values and files each key id sealed, place by place."""

    #: place ("column:concern.narrative") → key id → values
    values: dict[str, Counter[str]] = field(default_factory=dict)
    #: key id → files
    files: Counter[str] = field(default_factory=Counter)
    #: Values and files whose header is not an esafety envelope (changed or damaged).
    damaged: list[str] = field(default_factory=list)

    def value_count(self, key_id: str) -> int:
        return sum(counts[key_id] for counts in self.values.values())

    def count(self, key_id: str) -> int:
        return self.value_count(key_id) + self.files[key_id]

    def key_ids(self) -> set[str]:
        found = set(self.files)
        for counts in self.values.values():
            found |= set(counts)
        return found

    def where(self, key_id: str) -> str:
        """Where a key is used, for a message: "3 values in column:account.totp_secret"."""
        parts = [
            f"{counts[key_id]} in {place}"
            for place, counts in self.values.items()
            if counts[key_id]
        ]
        if self.files[key_id]:
            parts.append(f"{self.files[key_id]} sealed files")
        return ", ".join(parts)


def _parse_header(head: bytes) -> str | None:
    if len(head) < envelope.HEADER_SIZE or head[0] != envelope.VERSION:
        return None
    return head[1 : envelope.HEADER_SIZE].hex()


def key_use(engine: Engine, data_dir: Path) -> KeyUse:
    """Count the sealed values and files by the key that sealed them."""
    use = KeyUse()
    with engine.connect() as conn:
        for sealed in sealed_columns():
            raw = type_coerce(sealed.column, LargeBinary)
            head = func.substr(raw, 1, envelope.HEADER_SIZE).label("head")
            counts: Counter[str] = Counter()
            query = (
                select(head, func.count().label("n"))
                .where(sealed.column.is_not(None))
                .group_by(head)
            )
            for row in conn.execute(query):
                key_id = _parse_header(bytes(row.head))
                if key_id is None:
                    use.damaged.append(f"{row.n} values in {sealed.place}")
                else:
                    counts[key_id] += row.n
            use.values[sealed.place] = counts
    for path in sealed_files(data_dir):
        with path.open("rb") as handle:
            key_id = _parse_header(handle.read(envelope.HEADER_SIZE))
        if key_id is None:
            use.damaged.append(str(path))
        else:
            use.files[key_id] += 1
    return use


def sealed_data_found(engine: Engine, data_dir: Path) -> str | None:
    """A description of any sealed record that exists, or None.

    Asked before a new keyring is made on first use, possibly in the middle of a flush,
    so it reads on a plain driver connection: on SQLite an esafety transaction begins
    IMMEDIATE and would wait for the very flush that asked.
    """
    found = next(sealed_files(data_dir), None)
    if found is not None:
        return f"sealed files such as {found}"
    dialect = engine.dialect
    dbapi_error = dialect.loaded_dbapi.Error
    # A connection of its own, outside the pool: this runs once in an installation's
    # life, and taking one of the pool's would change which connection sessions get.
    cargs, cparams = dialect.create_connect_args(engine.url)
    connection = dialect.connect(*cargs, **cparams)
    try:
        for sealed in sealed_columns():
            query: Select[tuple[Any]] = (
                select(literal_column("1"))
                .select_from(sealed.table)
                .where(sealed.column.is_not(None))
                .limit(1)
            )
            sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
            cursor = connection.cursor()
            try:
                cursor.execute(sql)
                row = cursor.fetchone()
            except dbapi_error:  # the table is not made yet: nothing sealed in it
                connection.rollback()
                continue
            finally:
                cursor.close()
            if row is not None:
                return f"sealed values in {sealed.place}"
        connection.rollback()
    finally:
        connection.close()
    return None


def check_keys(inst: Installation) -> None:
    """Before esafety starts: make the keyring at install, or refuse to go on without it.

    Makes the key file when there is none and nothing is sealed yet; refuses (with what
    to restore) when sealed records exist and the keyring, or a key they need, is gone.
    """
    keyring = inst.keys
    if not keyring.exists():
        keyring.create()  # refuses, through its guard, when sealed records exist
        return
    held = {key.id for key in keyring.held_keys()}  # also refuses a keyring others can read
    use = key_use(inst.db.engine, inst.data_dir)
    missing = sorted(use.key_ids() - held)
    if missing:
        needs = "; ".join(f"key {key_id}: {use.where(key_id)}" for key_id in missing)
        raise KeyMissing(
            f"sealed records need keys that are not in {keyring.source} ({needs}); it "
            f"holds {', '.join(sorted(held))}. esafety will not start: they could not be "
            f"read, and new records would be sealed with another key. Restore the keyring "
            f"that holds {', '.join(missing)} from your backup of the keys ({RESTORE})."
        )
