"""The child-protection file's format (esafety.safeguarding.transfer_bundle): pure."""

from __future__ import annotations

import hashlib
import json
import struct
from datetime import UTC, datetime

import pytest

from esafety.safeguarding.transfer_bundle import (
    ALPHABET,
    MAGIC,
    Bundle,
    BundleRefused,
    make_passphrase,
    open_bundle,
    seal_bundle,
)

WORDS = "Sam showed me messages calling him names."
MADE = datetime(2025, 3, 12, 9, 30, tzinfo=UTC)


def _bundle() -> Bundle:
    return Bundle(
        "0123456789abcdef0123456789abcdef",
        {"pupil": {"legal_first_name": "Sam"}, "concerns": [{"narrative": WORDS}]},
        {"attachments/1-1": b"%PDF-1.4 screenshot"},
        {"summary": ["Concern #1: Online bullying"]},
    )


def _resum(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


def test_a_sealed_file_opens_with_its_passphrase_and_lists_what_is_inside() -> None:
    passphrase = make_passphrase()
    data = seal_bundle(_bundle(), passphrase, MADE)
    assert data.startswith(MAGIC) and WORDS.encode() not in data and b"Sam" not in data
    opened = open_bundle(data, passphrase)
    assert opened.records["concerns"][0]["narrative"] == WORDS
    assert opened.files == {"attachments/1-1": b"%PDF-1.4 screenshot"}
    assert opened.summary == ["Concern #1: Online bullying"]
    paths = [p["path"] for p in opened.manifest["contents"]]
    assert paths == ["cp-file.json", "attachments/1-1"]
    assert opened.manifest["made_at"] == MADE.isoformat() and opened.manifest["version"] == 1


def test_passphrases_are_long_random_and_easy_to_read_aloud() -> None:
    made = {make_passphrase() for _ in range(50)}
    assert len(made) == 50
    for passphrase in made:
        groups = passphrase.split("-")
        assert len(groups) == 6 and all(len(g) == 4 for g in groups)
        assert set(passphrase.replace("-", "")) <= set(ALPHABET)
        assert not set("01OIL") & set(passphrase)


def test_each_kind_of_bad_file_gets_its_own_words() -> None:
    passphrase = make_passphrase()
    data = seal_bundle(_bundle(), passphrase, MADE)
    with pytest.raises(BundleRefused, match="passphrase is wrong"):
        open_bundle(data, make_passphrase())
    with pytest.raises(BundleRefused, match="passphrase is empty"):
        open_bundle(data, " - ")
    with pytest.raises(BundleRefused, match="checksum does not match"):
        open_bundle(data[:-40] + bytes([data[-40] ^ 1]) + data[-39:], passphrase)
    # Changed and given a fresh checksum: the sealed contents no longer open.
    body = bytearray(data[:-32])
    body[-20] ^= 1
    with pytest.raises(BundleRefused, match="sealed contents do not open"):
        open_bundle(_resum(bytes(body)), passphrase)
    with pytest.raises(BundleRefused, match="made by a newer esafety"):
        open_bundle(MAGIC + b"\x07" + data[9:], passphrase)
    with pytest.raises(BundleRefused, match="not a child-protection file"):
        open_bundle(b"%PDF-1.4", passphrase)


def _with_header(data: bytes, change: dict[str, object]) -> bytes:
    (length,) = struct.unpack(">I", data[9:13])
    header = json.loads(data[13 : 13 + length]) | change
    raw = json.dumps(header).encode()
    rest = data[13 + length : -32]
    return _resum(data[:9] + struct.pack(">I", len(raw)) + raw + rest)


def test_a_header_cannot_make_the_server_do_too_much_or_open_wrongly() -> None:
    passphrase = make_passphrase()
    data = seal_bundle(_bundle(), passphrase, MADE)
    greedy = _with_header(data, {"kdf": {"name": "scrypt", "n": 2**24, "r": 8, "p": 1, "salt": ""}})
    with pytest.raises(BundleRefused, match="outside what esafety makes"):
        open_bundle(greedy, passphrase)
    # Another bundle id in the header: the header is authenticated with the contents.
    renamed = _with_header(data, {"bundle": "f" * 32})
    with pytest.raises(BundleRefused, match="damaged or was changed"):
        open_bundle(renamed, passphrase)
