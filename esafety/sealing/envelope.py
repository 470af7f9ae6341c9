"""The sealed value's envelope: AES-256-GCM with a random nonce, tagged with its key's id.

Layout (version 1)::

    1 byte   version (1)
    4 bytes  key id
    12 bytes nonce (random: NIST SP 800-38D §8.2.2; far below the 2**32 messages a key
             may seal that way before rotation)
    rest     ciphertext and the 16-byte GCM tag

The associated data is the 5-byte header followed by the *context*, which names where
the value lives ("column:concern.narrative", "file:attachments/<id>"): a value copied to
another place, or a header edited to point at another key, fails to open instead of
returning someone else's words.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.exc import DontWrapMixin

from esafety.errors import IntegrityError

__all__ = [
    "HEADER_SIZE",
    "KEY_SIZE",
    "VERSION",
    "SealBroken",
    "key_id_of",
    "open_sealed",
    "seal",
]

VERSION = 1
KEY_ID_SIZE = 4
NONCE_SIZE = 12
TAG_SIZE = 16
#: AES-256.
KEY_SIZE = 32
HEADER_SIZE = 1 + KEY_ID_SIZE
SMALLEST = HEADER_SIZE + NONCE_SIZE + TAG_SIZE


class SealBroken(IntegrityError, DontWrapMixin):
    """A sealed value does not open: changed, moved, cut short, or not made by esafety.

    ``DontWrapMixin``: raised while SQLAlchemy reads or writes a row, it reaches the
    caller (and the CLI's and web app's error handling) as itself, not as a
    StatementError with a traceback.
    """


def header(key_id: bytes) -> bytes:
    return bytes([VERSION]) + key_id


def seal(key_id: bytes, key: AESGCM, plaintext: bytes, context: str) -> bytes:
    """``plaintext`` sealed with ``key`` (whose id is ``key_id``) for ``context``."""
    head = header(key_id)
    nonce = os.urandom(NONCE_SIZE)
    return head + nonce + key.encrypt(nonce, plaintext, head + context.encode())


def key_id_of(blob: bytes, context: str) -> str:
    """The id (8 hex digits) of the key that sealed ``blob``; SealBroken if it is not an
    envelope esafety made."""
    if len(blob) < SMALLEST or blob[0] != VERSION:
        raise SealBroken(
            f"the sealed value in {context} is not one esafety sealed (it is "
            f"{len(blob)} bytes, format {blob[:1].hex() or 'empty'}; esafety writes format "
            f"{VERSION:02x}): it was changed or written by something else. Restore it from a "
            "backup of the database."
        )
    return blob[1:HEADER_SIZE].hex()


def open_sealed(key: AESGCM, blob: bytes, context: str, *, where: str) -> bytes:
    """The plaintext of ``blob``; SealBroken when it does not authenticate.

    ``where`` says where the key came from, for the message.
    """
    key_id = key_id_of(blob, context)
    head = blob[:HEADER_SIZE]
    nonce = blob[HEADER_SIZE : HEADER_SIZE + NONCE_SIZE]
    try:
        return key.decrypt(nonce, blob[HEADER_SIZE + NONCE_SIZE :], head + context.encode())
    except InvalidTag:
        raise SealBroken(
            f"the sealed value in {context} does not open with key {key_id} from {where}. "
            "Either the value was changed or copied here from another place, or that key "
            "is not the one it was sealed with (a keyring from another installation with "
            "the same key id). Nothing was read or written. Restore the keyring that "
            "sealed it (docs/deployment.md, 'Keys'), or the value from a database backup."
        ) from None
