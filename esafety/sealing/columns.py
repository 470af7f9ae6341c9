"""Sealed columns: a model says ``mapped_column(SealedText())`` and the value is encrypted
on its way into the database and opened on its way out.

The type reaches the keyring through the engine's dialect (each :class:`Installation`
attaches its keyring to its own engine with :func:`attach_keyring`), so that tests and
tools may open several installations in one process, each with its own keys.

The associated data is ``column:<table>.<column>``: a sealed value copied to another
column fails to open. A value copied to another *row* of the same column still opens —
a type sees the value, not the row — and is the audit trail's to catch.

Every sealed column is found from the models (:func:`sealed_columns`), so ``esafety keys
rotate`` covers a table added later without being told. Sealed columns are recorded in the
audit trail only as changed (they join the model's ``__audit_secret__``), or the trail
would hold the very words the column protects.

A sealed column cannot be searched or sorted in SQL: each value is sealed with a fresh
nonce, so ``==`` could never match; comparing one (or ``.asc()``/``.desc()``) raises at
once instead of finding nothing. Load the rows and compare or sort in Python.
"""

from __future__ import annotations

import json
import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Dialect, LargeBinary, MetaData, Table, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DontWrapMixin
from sqlalchemy.orm import Mapper
from sqlalchemy.sql import operators
from sqlalchemy.types import TypeDecorator

from esafety.errors import ConfigError

if TYPE_CHECKING:
    from esafety.sealing.keyring import Keyring

__all__ = [
    "Sealed",
    "SealedBytes",
    "SealedColumn",
    "SealedJSON",
    "SealedText",
    "attach_keyring",
    "keyring_of",
    "sealed_columns",
]

#: Each engine's keyring, by its dialect (a dialect belongs to one engine); weak so that a
#: disposed installation leaves nothing behind.
_KEYRINGS: weakref.WeakKeyDictionary[Dialect, Keyring] = weakref.WeakKeyDictionary()


class NoKeyring(ConfigError, DontWrapMixin):
    """A sealed column was used through an engine no installation attached keys to."""


def attach_keyring(engine: Engine, keyring: Keyring) -> None:
    """Seal and open this engine's sealed columns with ``keyring``."""
    _KEYRINGS[engine.dialect] = keyring


def keyring_of(dialect: Dialect, context: str) -> Keyring:
    found = _KEYRINGS.get(dialect)
    if found is None:
        raise NoKeyring(
            f"{context} is sealed, but this database connection has no keyring: open the "
            "database through esafety.installation.Installation (inst.db), which attaches "
            "the installation's keys"
        )
    return found


#: Comparisons that can never be right on a value sealed with a fresh nonce.
_UNSEARCHABLE = frozenset(
    {
        operators.eq, operators.ne, operators.lt, operators.le, operators.gt, operators.ge,
        operators.like_op, operators.ilike_op, operators.not_like_op, operators.not_ilike_op,
        operators.contains_op, operators.startswith_op, operators.endswith_op,
        operators.in_op, operators.not_in_op, operators.between_op, operators.match_op,
        operators.asc_op, operators.desc_op,
    }
)  # fmt: skip


class Sealed(TypeDecorator[Any]):
    """Base of the sealed column types: stored as the envelope's bytes (BLOB, bytea).

    ``context`` is the associated data's place name, by default ``<table>.<column>``
    (set when the column joins its table). Give it only to keep a renamed column's
    values opening: renaming a table or a column otherwise needs ``esafety keys reseal``
    run before the rename, under the new name, which no tool does yet.
    """

    impl = LargeBinary
    cache_ok = True

    class comparator_factory(TypeDecorator.Comparator[Any]):
        def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
            if op in _UNSEARCHABLE and not (
                op in (operators.eq, operators.ne) and other and other[0] is None
            ):
                raise TypeError(
                    f"{self.expr} is sealed (encrypted with a fresh nonce each time), so "
                    "SQL cannot compare, search or sort it; load the rows and compare in "
                    "Python"
                )
            return super().operate(op, *other, **kwargs)

    def __init__(self, context: str | None = None) -> None:
        super().__init__()
        self.context = context
        #: Given by the model (kept when the column is copied to another table).
        self.explicit = context is not None

    @classmethod
    def at(cls, context: str) -> Sealed:
        """A type for the column at ``context``, named by its table (not by the model)."""
        made = cls(context)
        made.explicit = False
        return made

    @property
    def place(self) -> str:
        return f"column:{self.context or '(a column not in a table)'}"

    def to_bytes(self, value: Any) -> bytes:
        raise NotImplementedError

    def from_bytes(self, value: bytes) -> Any:
        raise NotImplementedError

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        if self.context is None:
            raise ConfigError(
                "a sealed value must belong to a table column (or be given context=...)"
            )
        plaintext = self.to_bytes(value)
        return keyring_of(dialect, self.place).seal(plaintext, self.place)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        blob = bytes(value)  # memoryview on some drivers
        return self.from_bytes(keyring_of(dialect, self.place).open(blob, self.place))

    def copy(self, **kw: Any) -> Sealed:
        made = type(self)(self.context)
        made.explicit = self.explicit
        return made


class SealedText(Sealed):
    """A sealed ``str`` (UTF-8): narratives, notes, secrets."""

    cache_ok = True  # SQLAlchemy asks each subclass

    def to_bytes(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise TypeError(f"{self.place} holds text, not {type(value).__name__}")
        return value.encode()

    def from_bytes(self, value: bytes) -> str:
        return value.decode()


class SealedBytes(Sealed):
    """Sealed ``bytes``."""

    cache_ok = True  # SQLAlchemy asks each subclass

    def to_bytes(self, value: Any) -> bytes:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"{self.place} holds bytes, not {type(value).__name__}")
        return bytes(value)

    def from_bytes(self, value: bytes) -> bytes:
        return value


class SealedJSON(Sealed):
    """A sealed JSON value (lists, dicts, strings, numbers): a body map, a set of answers.

    Like :class:`sqlalchemy.JSON`, a change inside a loaded dict is not noticed; assign a
    new value.
    """

    cache_ok = True

    def to_bytes(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

    def from_bytes(self, value: bytes) -> Any:
        return json.loads(value)


@event.listens_for(Column, "after_parent_attach")
def _name_the_place(column: Column[Any], table: Any) -> None:
    # Each column gets its own type instance named after its table and column, so that a
    # type shared between columns (or copied from a mixin) still binds each to its place.
    sealed = column.type
    if isinstance(sealed, Sealed) and isinstance(table, Table) and not sealed.explicit:
        column.type = type(sealed).at(f"{table.name}.{column.name}")


@event.listens_for(Mapper, "mapper_configured")
def _keep_out_of_audit(mapper: Mapper[Any], class_: type[Any]) -> None:
    sealed = {
        attr.key
        for attr in mapper.column_attrs
        if any(isinstance(c.type, Sealed) for c in attr.columns)
    }
    current: frozenset[str] = getattr(class_, "__audit_secret__", frozenset())
    if sealed - current:
        class_.__audit_secret__ = current | sealed


class SealedColumn:
    """One sealed column: its table, the column, and the primary key to walk it by."""

    def __init__(self, table: Table, column: Column[Any]) -> None:
        self.table = table
        self.column = column

    @property
    def sealed_type(self) -> Sealed:
        if not isinstance(self.column.type, Sealed):
            raise TypeError(f"{self.name} is not sealed")
        return self.column.type

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"

    @property
    def place(self) -> str:
        return self.sealed_type.place

    @property
    def primary_key(self) -> list[Column[Any]]:
        return list(self.table.primary_key.columns)


def sealed_columns(metadata: MetaData | None = None) -> list[SealedColumn]:
    """Every sealed column of every model (esafety.models imported), in table order."""
    if metadata is None:
        import esafety.models  # noqa: F401 - registers every table
        from esafety.db import Base

        metadata = Base.metadata
    return [
        SealedColumn(table, column)
        for table in metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, Sealed)
    ]
