"""The child-protection file that one esafety sends another: its format, sealed with a
passphrase (issue 5 §5; STANDARDS R7). Pure: no database, no clock it is not given.

Layout (format version 1)::

    8 bytes   b"ESCPFILE"
    1 byte    format version (1)
    4 bytes   length of the header, big-endian
    header    JSON: {"format", "version", "bundle", "kdf": {"name": "scrypt", "n", "r",
              "p", "salt"}, "check", "cipher": "AES-256-GCM", "nonce"} (no names, no
              narratives: only what is needed to open the rest)
    body      AES-256-GCM ciphertext and tag of a ZIP archive; the associated data is
              everything before it, so a header changed by a byte fails to open
    32 bytes  SHA-256 of everything before it (tells damage from a wrong passphrase)

The key is scrypt(passphrase, salt): its first 32 bytes are the AES key, the next 32 make
``check`` (an HMAC), so a wrong passphrase is told apart from a changed file. The archive
holds ``manifest.json`` (what is inside: each part with its size and SHA-256, and a line
per concern), ``cp-file.json`` (the sending school, the pupil, every concern with its
entries, steps and attachments' details) and ``attachments/...`` (the files' bytes).
Everything is built and opened in memory: the plaintext never touches a disk.

The passphrase is made here (:func:`make_passphrase`, about 119 bits), shown once to the
sender, and given to the receiving DSL by another channel (telephone), never with the file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import secrets
import struct
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from esafety.errors import InvalidInput

__all__ = [
    "FORMAT",
    "MAGIC",
    "SUFFIX",
    "VERSION",
    "Bundle",
    "BundleRefused",
    "make_passphrase",
    "normalise_passphrase",
    "open_bundle",
    "seal_bundle",
]

MAGIC = b"ESCPFILE"
VERSION = 1
FORMAT = "esafety child-protection file"
#: The file name's ending, so people (and the import form) recognise it.
SUFFIX = ".escp"
#: scrypt at 32 MiB: a second's work for someone guessing, none for a random passphrase.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
#: The most a file may ask of us (a crafted header must not exhaust the server's memory).
MAX_SCRYPT_N = 2**18
SALT_SIZE, NONCE_SIZE, DIGEST_SIZE = 16, 12, 32
_HEAD = len(MAGIC) + 1 + 4
#: Unambiguous letters and digits (no 0/O, 1/I/L): read aloud over the telephone.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
GROUPS, GROUP_SIZE = 6, 4
_CHECK_LABEL = b"esafety child-protection file: passphrase check"
MANIFEST, CP_FILE = "manifest.json", "cp-file.json"


class BundleRefused(InvalidInput):
    """The file cannot be opened: not one of ours, another version, damaged, changed,
    or the passphrase is wrong. Nothing was read from it, and nothing was written."""


@dataclass
class Bundle:
    """What a child-protection file holds, opened."""

    bundle_id: str
    #: The records (sending school, pupil, concerns): see :mod:`transfer_export`.
    records: dict[str, Any]
    #: Attachment bytes by their path in the archive (``attachments/...``).
    files: dict[str, bytes] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> list[str]:
        lines = self.manifest.get("summary", [])
        return [str(x) for x in lines] if isinstance(lines, list) else []


def make_passphrase() -> str:
    """A new random passphrase, in groups of four (``K7QM-2XPA-...``)."""
    chars = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_SIZE))
    return "-".join(chars[i : i + GROUP_SIZE] for i in range(0, len(chars), GROUP_SIZE))


def normalise_passphrase(passphrase: str) -> bytes:
    """What is fed to scrypt: the letters and digits, in capitals (spaces and hyphens as
    typed or read aloud do not matter)."""
    cleaned = "".join(c for c in passphrase.upper() if not c.isspace() and c != "-")
    if not cleaned:
        raise BundleRefused(
            "the passphrase is empty: type the passphrase the sending school's DSL gave you"
        )
    return cleaned.encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str, size: int | None = None) -> bytes:
    try:
        data = base64.b64decode(str(value), validate=True)
    except ValueError:
        raise _damaged(f"its {what} is not readable") from None
    if size is not None and len(data) != size:
        raise _damaged(f"its {what} has the wrong length")
    return data


def _keys(passphrase: str, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes]:
    derived = Scrypt(salt=salt, length=64, n=n, r=r, p=p).derive(normalise_passphrase(passphrase))
    key, check_key = derived[:32], derived[32:]
    return key, hmac.new(check_key, _CHECK_LABEL, hashlib.sha256).digest()


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _archive(bundle: Bundle, made_at: datetime) -> bytes:
    """The ZIP (in memory) with the manifest listing every other part."""
    records = _json(bundle.records)
    parts: list[dict[str, Any]] = [
        {"path": CP_FILE, "what": "the records", "size": len(records), "sha256": _sha(records)}
    ]
    for path, content in sorted(bundle.files.items()):
        parts.append(
            {"path": path, "what": "attachment", "size": len(content), "sha256": _sha(content)}
        )
    manifest = {
        **bundle.manifest,
        "format": FORMAT,
        "version": VERSION,
        "bundle": bundle.bundle_id,
        "made_at": made_at.isoformat(),
        "contents": parts,
    }
    bundle.manifest = manifest
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, _json(manifest))
        archive.writestr(CP_FILE, records)
        for path, content in sorted(bundle.files.items()):
            archive.writestr(path, content)
    return buffer.getvalue()


def seal_bundle(bundle: Bundle, passphrase: str, made_at: datetime) -> bytes:
    """The file's bytes: ``bundle`` archived and sealed with ``passphrase``.

    ``bundle.manifest`` gains the list of contents (so the caller can record it).
    """
    for path in bundle.files:
        if not path.startswith("attachments/") or ".." in path:
            raise InvalidInput(f"attachment path {path!r}: it must be under attachments/")
    plaintext = _archive(bundle, made_at)
    salt, nonce = os.urandom(SALT_SIZE), os.urandom(NONCE_SIZE)
    key, check = _keys(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    header = _json(
        {
            "format": FORMAT,
            "version": VERSION,
            "bundle": bundle.bundle_id,
            "kdf": {
                "name": "scrypt",
                "n": SCRYPT_N,
                "r": SCRYPT_R,
                "p": SCRYPT_P,
                "salt": _b64(salt),
            },
            "check": _b64(check),
            "cipher": "AES-256-GCM",
            "nonce": _b64(nonce),
        }
    )
    head = MAGIC + bytes([VERSION]) + struct.pack(">I", len(header)) + header
    sealed = head + AESGCM(key).encrypt(nonce, plaintext, head)
    return sealed + hashlib.sha256(sealed).digest()


# -- opening ------------------------------------------------------------------------


def _damaged(detail: str) -> BundleRefused:
    return BundleRefused(
        f"this child-protection file is damaged or was changed after it was made ({detail}): "
        "nothing was imported. Ask the sending school's DSL to send it again."
    )


def _not_ours() -> BundleRefused:
    return BundleRefused(
        "this is not a child-protection file made by esafety (it does not start as one, "
        f"and its name should end in {SUFFIX}): nothing was imported. Choose the file the "
        "sending school's DSL sent you."
    )


def _header(data: bytes) -> tuple[bytes, dict[str, Any]]:
    if len(data) < _HEAD or not data.startswith(MAGIC):
        raise _not_ours()
    version = data[len(MAGIC)]
    if version != VERSION:
        raise BundleRefused(
            f"this child-protection file is in format version {version}, and this esafety "
            f"reads version {VERSION}: it was made by "
            f"{'a newer' if version > VERSION else 'an older'} esafety. Upgrade esafety here "
            "(or ask the sending school for a file this version reads); nothing was imported."
        )
    if len(data) < _HEAD + DIGEST_SIZE:
        raise _damaged("it is cut short")
    body, digest = data[:-DIGEST_SIZE], data[-DIGEST_SIZE:]
    if not hmac.compare_digest(hashlib.sha256(body).digest(), digest):
        raise _damaged("its checksum does not match: it was cut short or altered")
    (length,) = struct.unpack(">I", data[len(MAGIC) + 1 : _HEAD])
    if _HEAD + length > len(body):
        raise _damaged("its header is longer than the file")
    try:
        header = json.loads(body[_HEAD : _HEAD + length])
    except ValueError:
        raise _damaged("its header is not readable") from None
    if not isinstance(header, dict):
        raise _damaged("its header is not readable")
    return body[: _HEAD + length], header


def _positive(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _kdf(header: dict[str, Any]) -> tuple[bytes, int, int, int]:
    kdf = header.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise _damaged("it does not say how its key is made")
    n, r, p = (_positive(kdf.get(name)) for name in ("n", "r", "p"))
    if not (n and r and p):
        raise _damaged("its key settings are not numbers")
    if n > MAX_SCRYPT_N or n & (n - 1) or r * p > 64:
        raise _damaged(f"its key settings (n={n}, r={r}, p={p}) are outside what esafety makes")
    return _unb64(kdf.get("salt"), "salt", SALT_SIZE), n, r, p


def open_bundle(data: bytes, passphrase: str) -> Bundle:
    """Open a child-protection file; BundleRefused saying what is wrong, and what to do."""
    head, header = _header(data)
    if header.get("format") != FORMAT or header.get("cipher") != "AES-256-GCM":
        raise _damaged("its header does not name esafety's format")
    salt, n, r, p = _kdf(header)
    nonce = _unb64(header.get("nonce"), "nonce", NONCE_SIZE)
    expected = _unb64(header.get("check"), "passphrase check", DIGEST_SIZE)
    key, check = _keys(passphrase, salt, n, r, p)
    if not hmac.compare_digest(check, expected):
        raise BundleRefused(
            "the passphrase is wrong for this file: nothing was imported. Check it with the "
            "sending school's DSL (it was given to them once, when the file was made; letters "
            "and digits count, spaces and hyphens do not)."
        )
    try:
        plaintext = AESGCM(key).decrypt(nonce, data[len(head) : -DIGEST_SIZE], head)
    except InvalidTag:
        raise _damaged("its sealed contents do not open with the right passphrase") from None
    return _unpack(plaintext, str(header.get("bundle", "")))


def _unpack(plaintext: bytes, bundle_id: str) -> Bundle:
    try:
        with zipfile.ZipFile(io.BytesIO(plaintext)) as archive:
            parts = {name: archive.read(name) for name in archive.namelist()}
    except (zipfile.BadZipFile, ValueError, KeyError):
        raise _damaged("its contents are not readable") from None
    try:
        manifest = json.loads(parts.get(MANIFEST, b""))
        records = json.loads(parts.get(CP_FILE, b""))
    except ValueError:
        raise _damaged("its manifest or records are not readable") from None
    if not isinstance(manifest, dict) or not isinstance(records, dict):
        raise _damaged("its manifest or records are not readable")
    if manifest.get("bundle") != bundle_id or manifest.get("version") != VERSION:
        raise _damaged("its manifest does not match its header")
    listed = manifest.get("contents")
    if not isinstance(listed, list):
        raise _damaged("its manifest lists no contents")
    files: dict[str, bytes] = {}
    named = {MANIFEST}
    for item in listed:
        path = item.get("path") if isinstance(item, dict) else None
        if not isinstance(path, str) or path not in parts:
            raise _damaged(f"{path!r}, listed in its manifest, is missing")
        if _sha(parts[path]) != item.get("sha256"):
            raise _damaged(f"{path} does not match its manifest")
        named.add(path)
        if path != CP_FILE:
            files[path] = parts[path]
    if CP_FILE not in named or set(parts) - named:
        raise _damaged("it holds parts its manifest does not list")
    return Bundle(bundle_id, records, files, manifest)
