"""Sealing: encryption at rest for safeguarding narratives, notes, attachments and two-step
secrets (issue 5 §6; STANDARDS R5).

A copy of the database file, its WAL, a PostgreSQL dump or the attachments folder reads
as noise without the keyring, which lives outside the database (DATA/keys/esafety.keys,
mode 0600, or the setting ``[security] keys``). AES-256-GCM from ``cryptography``;
nothing here is home-made cryptography.

For a model::

    from esafety.sealing import SealedText

    class Concern(SchoolOwned, Base):
        narrative: Mapped[str] = mapped_column(SealedText())

For a file::

    file_id = inst.attachments.put(content)      # DATA/attachments/<id>.sealed
    content = inst.attachments.read(file_id)

A wrong or missing key raises (KeyMissing, KeyringMissing, SealBroken) with what to
restore; nothing is returned half-opened and nothing is written in plaintext.
``esafety keys show|rotate|reseal|retire|new`` look after the keys.
"""

from esafety.sealing.columns import (
    Sealed,
    SealedBytes,
    SealedColumn,
    SealedJSON,
    SealedText,
    attach_keyring,
    sealed_columns,
)
from esafety.sealing.envelope import SealBroken
from esafety.sealing.files import SealedFiles, open_file, seal_file, sealed_files
from esafety.sealing.keyring import Key, KeyMissing, Keyring, KeyringMissing, KeyringUnsafe
from esafety.sealing.rotation import reseal, retire_unused, rotate
from esafety.sealing.usage import KeyUse, check_keys, key_use

__all__ = [
    "Key",
    "KeyMissing",
    "KeyUse",
    "Keyring",
    "KeyringMissing",
    "KeyringUnsafe",
    "SealBroken",
    "Sealed",
    "SealedBytes",
    "SealedColumn",
    "SealedFiles",
    "SealedJSON",
    "SealedText",
    "attach_keyring",
    "check_keys",
    "key_use",
    "open_file",
    "reseal",
    "retire_unused",
    "rotate",
    "seal_file",
    "sealed_columns",
    "sealed_files",
]
