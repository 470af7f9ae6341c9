"""The keyring: the keys that seal safeguarding records, kept outside the database.

By default a file in the data directory, ``DATA/keys/esafety.keys`` (``[security]
key_file``), mode 0600 in a 0700 folder, made the first time something is sealed (or by
``esafety db upgrade``). Or given in the setting ``[security] keys``
(``ESAFETY_SECURITY__KEYS``) as ``id:base64key,id:base64key``, the first sealing.

Several keys, each with an id: the current one seals, every one opens, so that
``esafety keys rotate`` can add a key and re-seal everything before the old key is
retired. A copy of the database is useless without the keyring, and the keyring useless
without the database: they are backed up apart (docs/deployment.md, "Keys").

A running server notices when another process (``esafety keys rotate``) changed the
file: it looks at the file before each seal, and reads it again before saying a key is
missing.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.exc import DontWrapMixin

from esafety.errors import ConfigError
from esafety.sealing import envelope

if TYPE_CHECKING:
    from esafety.config import Settings

__all__ = [
    "DEFAULT_KEY_FILE",
    "Key",
    "KeyMissing",
    "Keyring",
    "KeyringMissing",
    "KeyringUnsafe",
    "new_key_entry",
]

#: Inside the data directory.
DEFAULT_KEY_FILE = Path("keys") / "esafety.keys"
FORMAT = 1
RESTORE = "docs/deployment.md, 'Keys'"


class KeyringMissing(ConfigError, DontWrapMixin):
    """No keyring where esafety looked, and sealed records need one."""


class KeyMissing(ConfigError, DontWrapMixin):
    """A record was sealed with a key the keyring does not hold."""


class KeyringUnsafe(ConfigError, DontWrapMixin):
    """The keyring file is readable by other users, or is not a keyring."""


@dataclass(frozen=True)
class Key:
    """One key: its id (8 hex digits), when it was made, and the key itself (never shown)."""

    id: str
    #: None for keys given in the setting (which says nothing of when they were made).
    created: datetime | None
    material: bytes = field(repr=False)

    @cached_property
    def aead(self) -> AESGCM:
        return AESGCM(self.material)

    @property
    def id_bytes(self) -> bytes:
        return bytes.fromhex(self.id)


def _new_key(taken: Sequence[str] = ()) -> Key:
    while True:
        key_id = secrets.token_bytes(envelope.KEY_ID_SIZE).hex()
        if key_id not in taken:
            return Key(key_id, datetime.now(UTC).replace(microsecond=0), AESGCM.generate_key(256))


def new_key_entry() -> str:
    """A fresh key written for the ``[security] keys`` setting: ``id:base64key``."""
    key = _new_key()
    return f"{key.id}:{base64.b64encode(key.material).decode()}"


@dataclass(frozen=True)
class _Loaded:
    keys: tuple[Key, ...]
    current: Key
    #: The file's identity when it was read (None: keys from the setting).
    stamp: tuple[int, int, int] | None


@dataclass
class _Draft:
    keys: list[Key]
    current: Key


class Keyring:
    """The installation's keys, read from the key file or the setting.

    ``guard`` is asked before a new key file is made on first use: it returns a
    description of sealed records that already exist (so the keyring was lost and must be
    restored, not replaced), or None when there are none.
    """

    def __init__(
        self,
        *,
        path: Path,
        given: str | None = None,
        guard: Callable[[], str | None] | None = None,
    ) -> None:
        self.path = path
        self._given = given or None
        self._guard = guard
        self._loaded: _Loaded | None = None
        self._lock = threading.RLock()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, guard: Callable[[], str | None] | None = None
    ) -> Keyring:
        security = settings.security
        path = security.key_file if security.key_file is not None else DEFAULT_KEY_FILE
        if not path.is_absolute():
            path = settings.data / path
        given = security.keys.get_secret_value() if security.keys is not None else None
        return cls(path=path, given=given, guard=guard)

    # -- where the keys are ------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        """Keys given in the setting: esafety cannot add or remove one itself."""
        return self._given is not None

    @property
    def source(self) -> str:
        """Where the keys come from, as a person would look for them."""
        if self._given is not None:
            return "the setting [security] keys (ESAFETY_SECURITY__KEYS)"
        return f"the key file {self.path}"

    def exists(self) -> bool:
        return self._given is not None or self.path.exists()

    # -- reading -----------------------------------------------------------------------

    def held_keys(self) -> tuple[Key, ...]:
        """Every key, oldest first. KeyringMissing when there is no keyring."""
        return self._state().keys

    def current(self) -> Key:
        """The key that seals, making the key file on first use (when ``guard`` allows)."""
        with self._lock:
            if self._given is None and not self.path.exists() and self._loaded is None:
                self.create()
            return self._state(recheck=True).current

    def get(self, key_id: str, *, context: str) -> Key:
        """The key with this id, reading the file again once before saying it is missing."""
        for attempt in range(2):
            state = self._state(recheck=attempt > 0)
            for key in state.keys:
                if key.id == key_id:
                    return key
        held = ", ".join(k.id for k in state.keys)
        raise KeyMissing(
            f"the sealed value at {context} was sealed with key {key_id}, which is not in "
            f"{self.source} (it holds {held}). Nothing was read or written. Restore the "
            f"keyring that holds key {key_id} from your backup of the keys ({RESTORE}); "
            "`esafety keys show` lists the keys the records need."
        )

    def seal(self, plaintext: bytes, context: str, *, key: Key | None = None) -> bytes:
        """``plaintext`` sealed for ``context`` with the current key (or ``key``)."""
        key = key if key is not None else self.current()
        return envelope.seal(key.id_bytes, key.aead, plaintext, context)

    def open(self, blob: bytes, context: str) -> bytes:
        key = self.get(envelope.key_id_of(blob, context), context=context)
        return envelope.open_sealed(key.aead, blob, context, where=self.source)

    def _state(self, *, recheck: bool = False) -> _Loaded:
        with self._lock:
            loaded = self._loaded
            # Keys from the setting never change while esafety runs; the file may.
            if loaded is not None and (
                not recheck or loaded.stamp is None or _stamp(self.path) == loaded.stamp
            ):
                return loaded
            if self._given is not None:
                self._loaded = _given_keys(self._given)
            else:
                self._loaded = self._read_file()
            return self._loaded

    def _read_file(self) -> _Loaded:
        path = self.path
        try:
            info = path.stat()
        except FileNotFoundError:
            raise KeyringMissing(
                f"no keyring at {path}: the keys that seal safeguarding records are not "
                f"there. Restore the file from your backup of the keys ({RESTORE}), or "
                "point [security] key_file (ESAFETY_SECURITY__KEY_FILE) at it."
            ) from None
        _refuse_loose(path, info.st_mode)
        try:
            data = json.loads(path.read_text())
            keys = tuple(_key_from_json(item) for item in data["keys"])
            current = next(k for k in keys if k.id == data["current"])
        except (OSError, ValueError, KeyError, TypeError, StopIteration):
            raise KeyringUnsafe(
                f"the keyring {path} cannot be read as an esafety keyring (it is damaged or "
                f"not a keyring). Restore it from your backup of the keys ({RESTORE})."
            ) from None
        return _Loaded(keys, current, (info.st_ino, info.st_mtime_ns, info.st_size))

    # -- writing -----------------------------------------------------------------------

    def create(self) -> None:
        """Make the key file with one key, unless it exists (another process made it)."""
        self._refuse_if_given("make a key file")
        with self._lock:
            if self.path.exists():
                return
            found = self._guard() if self._guard is not None else None
            if found is not None:
                raise KeyringMissing(
                    f"no keyring at {self.path}, but sealed records exist ({found}). "
                    "esafety will not make a new keyring: the records could then never be "
                    f"read. Restore the keyring from your backup of the keys ({RESTORE}), "
                    "or point [security] key_file (ESAFETY_SECURITY__KEY_FILE) at it."
                )
            key = _new_key()
            _write_new(self.path, _payload([key], key))
            self._loaded = None

    def add_key(self) -> Key:
        """Make a new key and make it the current one (``esafety keys rotate``)."""
        self._refuse_if_given("add a key")
        self.current()  # the file exists from here on
        with self._updating() as draft:
            key = _new_key([k.id for k in draft.keys])
            draft.keys.append(key)
            draft.current = key
        return key

    def remove(self, key_ids: set[str]) -> None:
        """Take keys out of the file (never the current one)."""
        self._refuse_if_given("remove a key")
        self.held_keys()  # KeyringMissing, with its message, when there is no file
        with self._updating() as draft:
            if draft.current.id in key_ids:
                raise ConfigError(
                    f"key {draft.current.id} is the current key and cannot be removed"
                )
            draft.keys[:] = [k for k in draft.keys if k.id not in key_ids]

    @contextlib.contextmanager
    def _updating(self) -> Iterator[_Draft]:
        # One writer at a time (two rotations at once would lose a key); the lock file
        # sits beside the keyring so that it needs no other folder.
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock, open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._loaded = None
            state = self._state()
            draft = _Draft(list(state.keys), state.current)
            yield draft
            replace_private_file(self.path, _payload(draft.keys, draft.current))
            self._loaded = None

    def _refuse_if_given(self, action: str) -> None:
        if self._given is not None:
            raise ConfigError(
                f"cannot {action}: the keys come from {self.source}, which esafety cannot "
                "change. Run `esafety keys new`, put what it prints first in the setting "
                "(keep the old entries after it), restart esafety, then run `esafety keys "
                "reseal`; once it reports nothing left under the old keys, remove them from "
                "the setting."
            )


# -- the file ----------------------------------------------------------------------------


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def _refuse_loose(path: Path, mode: int) -> None:
    if stat.S_IMODE(mode) & 0o077:
        raise KeyringUnsafe(
            f"the keyring {path} can be read or changed by other users (mode "
            f"{stat.S_IMODE(mode):04o}); whoever reads it can read every safeguarding "
            f"record. Run `chmod 600 {path}` (and `chmod 700 {path.parent}`) as the user "
            "esafety runs as, then start esafety again."
        )


def _given_keys(given: str) -> _Loaded:
    keys = []
    for number, item in enumerate(given.split(","), 1):
        key_id, _, text = item.strip().partition(":")
        key = _decode_key(key_id, text, created=None)
        if key is None:
            raise KeyringUnsafe(
                f"setting [security] keys: entry {number} is not 'id:base64key' with an id "
                "of 8 hex digits and a 32-byte key in base64; make entries with "
                "`esafety keys new`"
            )
        keys.append(key)
    # Written newest first; kept oldest first like the file.
    return _Loaded(tuple(reversed(keys)), keys[0], None)


def _decode_key(key_id: str, text: str, *, created: datetime | None) -> Key | None:
    try:
        material = base64.b64decode(text, validate=True)
        bytes.fromhex(key_id)
    except (binascii.Error, ValueError):
        return None
    if len(key_id) != 2 * envelope.KEY_ID_SIZE or len(material) != envelope.KEY_SIZE:
        return None
    return Key(key_id.lower(), created, material)


def _key_from_json(item: dict[str, Any]) -> Key:
    made = item.get("created")
    key = _decode_key(
        str(item["id"]), str(item["key"]), created=datetime.fromisoformat(made) if made else None
    )
    if key is None:
        raise ValueError("bad key")
    return key


def _payload(keys: Sequence[Key], current: Key) -> bytes:
    data = {
        "esafety_keyring": FORMAT,
        "note": "The keys that seal esafety's safeguarding records. Keep secret; back up "
        "apart from the database; see docs/deployment.md, 'Keys'.",
        "current": current.id,
        "keys": [
            {
                "id": k.id,
                "created": k.created.isoformat() if k.created else None,
                "key": base64.b64encode(k.material).decode(),
            }
            for k in keys
        ],
    }
    return (json.dumps(data, indent=2) + "\n").encode()


def _write_temporary(path: Path, content: bytes) -> Path:
    """``content`` in a new 0600 file beside ``path``, flushed to disk."""
    folder = path.parent
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = folder / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(path: Path, content: bytes) -> None:
    """Write ``path`` whole or not at all, never over a file another process made."""
    temporary = _write_temporary(path, content)
    try:
        os.link(temporary, path)  # atomic, and fails if the file appeared meanwhile
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)
    _sync_folder(path.parent)


def replace_private_file(path: Path, content: bytes) -> None:
    """Write ``path`` (mode 0600) whole or not at all, replacing what was there."""
    temporary = _write_temporary(path, content)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)
