"""Sealed files: attachments (screenshots, documents) kept encrypted in the data directory.

``DATA/attachments/<random id>.sealed`` holds the envelope of the whole file (see
:mod:`esafety.sealing.envelope`), whose associated data is the file's place,
``file:attachments/<id>``: a file renamed or copied to another id fails to open. The
plaintext never touches the disk, even briefly: it is sealed in memory, the envelope is
written to a temporary name in the same folder (mode 0600), flushed, and renamed into
place, so a crash leaves the old file or the new one, never half of one.

Every ``*.sealed`` file under the data directory is re-sealed by ``esafety keys rotate``,
so another folder of sealed files needs no registration.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from esafety.errors import InvalidInput, NotFound
from esafety.sealing.keyring import DEFAULT_KEY_FILE, Key, Keyring, replace_private_file

__all__ = ["SUFFIX", "SealedFiles", "file_place", "open_file", "seal_file", "sealed_files"]

SUFFIX = ".sealed"
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def file_place(data_dir: Path, path: Path) -> str:
    """The associated-data place of a sealed file: ``file:<folder>/<id>``."""
    relative = path.relative_to(data_dir)
    return f"file:{relative.with_name(relative.name.removesuffix(SUFFIX)).as_posix()}"


def seal_file(
    keyring: Keyring, path: Path, content: bytes, *, place: str, key: Key | None = None
) -> None:
    """Write ``content`` sealed to ``path`` (replacing it whole, or not at all)."""
    replace_private_file(path, keyring.seal(content, place, key=key))


def open_file(keyring: Keyring, path: Path, *, place: str) -> bytes:
    """The plaintext of the sealed file at ``path``."""
    return keyring.open(path.read_bytes(), place)


def sealed_files(data_dir: Path) -> Iterator[Path]:
    """Every sealed file in the data directory (the keyring's folder aside), sorted."""
    keys_folder = data_dir / DEFAULT_KEY_FILE.parent
    for path in sorted(data_dir.rglob(f"*{SUFFIX}")):
        if path.is_file() and keys_folder not in path.parents:
            yield path


class SealedFiles:
    """A folder of sealed files in the data directory, each known by a random id."""

    def __init__(self, data_dir: Path, folder: str, keyring: Keyring) -> None:
        self.data_dir = data_dir
        self.folder = data_dir / folder
        self.keyring = keyring

    def path(self, file_id: str) -> Path:
        if not _FILE_ID.fullmatch(file_id):
            raise InvalidInput(
                f"{file_id!r} is not a stored file's id (16 to 64 letters, digits, - and _)"
            )
        return self.folder / f"{file_id}{SUFFIX}"

    def put(self, content: bytes) -> str:
        """Seal and store ``content``; its new id."""
        file_id = secrets.token_urlsafe(18)
        path = self.path(file_id)
        seal_file(self.keyring, path, content, place=file_place(self.data_dir, path))
        return file_id

    def read(self, file_id: str) -> bytes:
        path = self.path(file_id)
        try:
            return open_file(self.keyring, path, place=file_place(self.data_dir, path))
        except FileNotFoundError:
            raise NotFound(f"no stored file {file_id} in {self.folder}") from None

    def exists(self, file_id: str) -> bool:
        return self.path(file_id).is_file()

    def delete(self, file_id: str) -> None:
        """Remove the file (a missing one is already gone)."""
        self.path(file_id).unlink(missing_ok=True)

    def ids(self) -> Iterator[str]:
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            yield path.name.removesuffix(SUFFIX)
