"""Sealing (issue 5 §6): sealed columns and files are unreadable at rest, on SQLite (the
file and its WAL) and in a PostgreSQL dump, and a wrong or missing key fails loudly,
with what to restore, and writes nothing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, configure_mappers, mapped_column

from esafety.audit import SYSTEM, AuditEntry
from esafety.config import Settings
from esafety.directory.model import Person
from esafety.errors import ConfigError
from esafety.installation import Installation
from esafety.sealing import (
    KeyMissing,
    Keyring,
    KeyringMissing,
    KeyringUnsafe,
    SealBroken,
    SealedBytes,
    SealedJSON,
    SealedText,
    sealed_columns,
)
from esafety.sealing.keyring import new_key_entry
from esafety.security.model import Account
from tests.accounts import add_member, make_school
from tests.conftest import make_settings
from tests.pg import BIN

#: Written sealed; must never be found in the clear.
SEALED_MARK = "ZQXJ-SEALED-NARRATIVE-7781"
TOTP_MARK = "MARKERTOTPSECRETQZXJ"
#: Written to a plain column: the control that shows the search would find a leak.
PLAIN_MARK = "Zqxjplaincontrol"

#: A table of the test's own (not a model): several sealed columns side by side.
probe_metadata = MetaData()
probe = Table(
    "sealing_probe",
    probe_metadata,
    Column("id", Integer, primary_key=True),
    Column("note", SealedText()),
    Column("other", SealedText()),
    Column("data", SealedBytes()),
    Column("answers", SealedJSON()),
)


# -- helpers ---------------------------------------------------------------------------


def at_rest(inst: Installation) -> bytes:
    """Everything the database holds, as an attacker with a copy would see it: the SQLite
    file and its WAL, or a pg_dump of the whole database."""
    url = make_url(inst.settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        wal = path.with_name(path.name + "-wal")
        return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    dumped = subprocess.run(
        [str(BIN / "pg_dump"), "--data-only", "--no-owner", libpq],
        check=True,
        capture_output=True,
    )
    return dumped.stdout


def raw_cells(inst: Installation, table: str, column: str) -> list[bytes]:
    """A column's stored bytes, read with plain SQL (no sealed type in the way)."""
    with inst.db.engine.connect() as conn:
        rows = conn.execute(text(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"))
        return [bytes(value) for (value,) in rows]


def set_totp(inst: Installation, person_id: int, secret: str | None) -> None:
    with inst.db.session(SYSTEM) as session:
        account = session.get(Account, person_id)
        assert account is not None
        account.totp_secret = secret


def totp_of(inst: Installation, person_id: int) -> str | None:
    with inst.db.session(SYSTEM) as session:
        account = session.get(Account, person_id)
        assert account is not None
        return account.totp_secret


def reopened(inst: Installation, **overrides: object) -> Installation:
    """Another Installation on the same data and database (as a new process would be)."""
    settings = make_settings(
        inst.settings.data,
        inst.settings.database_url.get_secret_value() if inst.settings.database_url else None,
        **overrides,
    )
    return Installation(settings)


def write_keyring(path: Path, key_id: str) -> None:
    """A keyring file with one fresh key under ``key_id``."""
    import base64

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    payload = {
        "esafety_keyring": 1,
        "current": key_id,
        "keys": [
            {
                "id": key_id,
                "created": "2025-01-01T00:00:00+00:00",
                "key": base64.b64encode(AESGCM.generate_key(256)).decode(),
            }
        ],
    }
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(payload, out)


# -- sealed columns --------------------------------------------------------------------


def test_a_sealed_column_round_trips_and_is_unreadable_at_rest(inst: Installation) -> None:
    school = make_school(inst)
    dsl = school.people[next(iter(school.people))]
    set_totp(inst, dsl.id, TOTP_MARK)
    with inst.db.session(SYSTEM) as session:
        person = session.get(Person, dsl.id)
        assert person is not None
        person.legal_last_name = PLAIN_MARK

    assert totp_of(inst, dsl.id) == TOTP_MARK
    stored = at_rest(inst)
    assert PLAIN_MARK.encode() in stored  # the search finds what is written in the clear
    assert TOTP_MARK.encode() not in stored
    assert all(TOTP_MARK.encode() not in cell for cell in raw_cells(inst, "account", "totp_secret"))
    # The audit trail records that the secret changed, never the secret.
    with inst.db.session(SYSTEM) as session:
        trail = json.dumps([e.after for e in session.scalars(select(AuditEntry))])
    assert TOTP_MARK not in trail


def test_every_enrolled_two_step_secret_is_sealed(inst: Installation) -> None:
    school = make_school(inst)
    secrets = {m.totp_secret for m in school.people.values() if m.totp_secret}
    assert secrets
    stored = at_rest(inst)
    for secret in secrets:
        assert secret.encode() not in stored
    cells = raw_cells(inst, "account", "totp_secret")
    assert len(cells) == len(secrets)
    assert all(cell[0] == 1 and len(cell) >= 33 for cell in cells)  # version 1 envelopes


def test_probe_table_text_bytes_and_json_round_trip_sealed(inst: Installation) -> None:
    probe.create(inst.db.engine)
    answers = {"marks": [SEALED_MARK, "left arm"], "told_dsl_in_person": True}
    with inst.db.engine.begin() as conn:
        conn.execute(
            insert(probe).values(
                id=1, note=SEALED_MARK, other="", data=SEALED_MARK.encode() + b"\0", answers=answers
            )
        )
    with inst.db.engine.connect() as conn:
        row = conn.execute(select(probe)).one()
    assert (row.note, row.other, row.data, row.answers) == (
        SEALED_MARK,
        "",
        SEALED_MARK.encode() + b"\0",
        answers,
    )
    assert SEALED_MARK.encode() not in at_rest(inst)


def test_ciphertext_copied_to_another_column_does_not_open(inst: Installation) -> None:
    probe.create(inst.db.engine)
    with inst.db.engine.begin() as conn:
        conn.execute(insert(probe).values(id=1, note=SEALED_MARK, other="something else"))
        # An attacker with write access moves the note's ciphertext into the other column.
        conn.execute(text("UPDATE sealing_probe SET other = note"))
    with inst.db.engine.connect() as conn, pytest.raises(SealBroken) as caught:
        conn.execute(select(probe.c.other)).one()
    assert "column:sealing_probe.other" in str(caught.value)
    assert "does not open" in str(caught.value)


def test_ciphertext_copied_from_a_model_column_does_not_open(inst: Installation) -> None:
    make_school(inst)
    probe.create(inst.db.engine)
    secret_cell = raw_cells(inst, "account", "totp_secret")[0]
    with inst.db.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO sealing_probe (id, note) VALUES (1, :blob)"), {"blob": secret_cell}
        )
    with inst.db.engine.connect() as conn, pytest.raises(SealBroken):
        conn.execute(select(probe.c.note)).one()


def test_a_changed_byte_does_not_open(inst: Installation) -> None:
    probe.create(inst.db.engine)
    with inst.db.engine.begin() as conn:
        conn.execute(insert(probe).values(id=1, note=SEALED_MARK))
    (cell,) = raw_cells(inst, "sealing_probe", "note")
    tampered = cell[:-1] + bytes([cell[-1] ^ 1])
    with inst.db.engine.begin() as conn:
        conn.execute(text("UPDATE sealing_probe SET note = :blob"), {"blob": tampered})
        conn.execute(text("UPDATE sealing_probe SET other = :blob"), {"blob": b"plain words"})
    with inst.db.engine.connect() as conn:
        with pytest.raises(SealBroken):
            conn.execute(select(probe.c.note)).one()
        with pytest.raises(SealBroken, match="not one esafety sealed"):
            conn.execute(select(probe.c.other)).one()


def test_sealed_columns_cannot_be_compared_in_sql() -> None:
    with pytest.raises(TypeError, match="sealed"):
        select(Account).where(Account.totp_secret == "JBSWY3DPEHPK3PXP")
    with pytest.raises(TypeError, match="sealed"):
        select(Account).order_by(Account.totp_secret.desc())
    with pytest.raises(TypeError, match="sealed"):
        select(Account).where(Account.totp_secret.like("J%"))
    # Whether a value is there at all is fine.
    select(Account).where(Account.totp_secret.is_(None), Account.totp_secret != None)  # noqa: E711


def test_the_models_sealed_columns_are_found_and_kept_out_of_the_audit_trail() -> None:
    names = {sealed.name for sealed in sealed_columns()}
    assert "account.totp_secret" in names
    assert "totp_secret" in Account.__audit_secret__


# -- the keyring -----------------------------------------------------------------------


def test_keyring_is_made_on_first_use_owner_only(inst: Installation) -> None:
    key_file = inst.data_dir / "keys" / "esafety.keys"
    assert not key_file.exists()
    make_school(inst)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    data = json.loads(key_file.read_text())
    assert [k["id"] for k in data["keys"]] == [data["current"]]


def test_keyring_readable_by_others_is_refused_with_the_chmod_to_run(
    inst: Installation,
) -> None:
    school = make_school(inst)
    enrolled = next(m for m in school.people.values() if m.totp_secret)
    key_file = inst.data_dir / "keys" / "esafety.keys"
    key_file.chmod(0o644)
    other = reopened(inst)
    try:
        with pytest.raises(KeyringUnsafe) as caught:
            totp_of(other, enrolled.id)
        assert f"chmod 600 {key_file}" in str(caught.value)
        with pytest.raises(KeyringUnsafe):
            other.check_keys()
        key_file.chmod(0o600)
        assert totp_of(other, enrolled.id) == enrolled.totp_secret
    finally:
        other.close()


def test_missing_keyring_fails_loudly_and_writes_nothing(inst: Installation) -> None:
    school = make_school(inst)
    enrolled = next(m for m in school.people.values() if m.totp_secret)
    plain = next(m for m in school.people.values() if not m.totp_secret)
    key_file = inst.data_dir / "keys" / "esafety.keys"
    key_file.rename(inst.data_dir / "keys-moved-away")
    other = reopened(inst)
    try:
        with pytest.raises(KeyringMissing) as caught:
            totp_of(other, enrolled.id)
        assert str(key_file) in str(caught.value)
        assert "Restore" in str(caught.value)
        # Sealing a new secret must not make a new keyring: the old records would be lost.
        with pytest.raises(KeyringMissing, match="sealed records exist"):
            set_totp(other, plain.id, TOTP_MARK)
        assert not key_file.exists()
        assert totp_of_raw_is_null(other, plain.id)
        with pytest.raises(KeyringMissing, match="sealed records exist"):
            other.check_keys()
    finally:
        other.close()
    assert TOTP_MARK.encode() not in at_rest(inst)


def totp_of_raw_is_null(inst: Installation, person_id: int) -> bool:
    with inst.db.engine.connect() as conn:
        value = conn.execute(
            text("SELECT totp_secret FROM account WHERE person_id = :id"), {"id": person_id}
        ).scalar_one()
    return value is None


def test_wrong_keyring_fails_loudly_naming_the_key_and_writes_nothing(
    inst: Installation,
) -> None:
    school = make_school(inst)
    enrolled = next(m for m in school.people.values() if m.totp_secret)
    key_file = inst.data_dir / "keys" / "esafety.keys"
    needed = json.loads(key_file.read_text())["current"]
    write_keyring(key_file, "0badc0de")
    other = reopened(inst)
    try:
        with pytest.raises(KeyMissing) as caught:
            totp_of(other, enrolled.id)
        message = str(caught.value)
        assert needed in message and str(key_file) in message and "0badc0de" in message
        with pytest.raises(KeyMissing, match=needed):
            other.check_keys()
        # A failed read inside an update leaves the row as it was.
        with pytest.raises(KeyMissing):
            set_totp(other, enrolled.id, TOTP_MARK)
    finally:
        other.close()
    assert TOTP_MARK.encode() not in at_rest(inst)


def test_same_key_id_other_material_fails_as_not_opening(inst: Installation) -> None:
    school = make_school(inst)
    enrolled = next(m for m in school.people.values() if m.totp_secret)
    key_file = inst.data_dir / "keys" / "esafety.keys"
    write_keyring(key_file, json.loads(key_file.read_text())["current"])
    other = reopened(inst)
    try:
        with pytest.raises(SealBroken, match="does not open with key"):
            totp_of(other, enrolled.id)
    finally:
        other.close()


def test_keys_given_in_the_setting(inst: Installation) -> None:
    entry = new_key_entry()
    security = inst.settings.security.model_copy(update={"keys": SecretStr(entry)})
    other = Installation(inst.settings.model_copy(update={"security": security}))
    try:
        school = make_school(other)
        enrolled = next(m for m in school.people.values() if m.totp_secret)
        assert totp_of(other, enrolled.id) == enrolled.totp_secret
        assert not (other.data_dir / "keys" / "esafety.keys").exists()
        assert {c[1:5].hex() for c in raw_cells(other, "account", "totp_secret")} == {
            entry.split(":")[0]
        }
        assert other.keys.read_only
        with pytest.raises(ConfigError, match="esafety keys new"):
            other.keys.add_key()
    finally:
        other.close()


def test_a_bad_keys_setting_says_what_to_write(tmp_path: Path) -> None:
    from esafety.config import SecuritySettings

    settings = Settings(data=tmp_path, security=SecuritySettings(keys=SecretStr("abc:notbase64")))
    with pytest.raises(KeyringUnsafe, match="esafety keys new"):
        Keyring.from_settings(settings).held_keys()


def test_a_running_installation_follows_a_rotation_made_elsewhere(inst: Installation) -> None:
    school = make_school(inst)
    members = [m for m in school.people.values() if not m.totp_secret]
    rotating = reopened(inst)
    try:
        first = inst.keys.current().id
        new = rotating.keys.add_key().id
        set_totp(inst, members[0].id, TOTP_MARK)  # sealed by the server with the new key
    finally:
        rotating.close()
    with inst.db.engine.connect() as conn:
        cell = conn.execute(
            text("SELECT totp_secret FROM account WHERE person_id = :id"), {"id": members[0].id}
        ).scalar_one()
    assert bytes(cell)[1:5].hex() == new != first


# -- sealed files ----------------------------------------------------------------------


def test_sealed_file_round_trips_and_is_unreadable_on_disk(inst: Installation) -> None:
    content = b"%PDF-1.7 screenshot of messages: " + SEALED_MARK.encode() * 100
    file_id = inst.attachments.put(content)
    assert inst.attachments.read(file_id) == content
    path = inst.attachments.path(file_id)
    assert path.parent == inst.data_dir / "attachments"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    on_disk = b"".join(p.read_bytes() for p in inst.data_dir.rglob("*") if p.is_file())
    assert SEALED_MARK.encode() not in on_disk
    assert list(inst.attachments.ids()) == [file_id]
    assert not list(path.parent.glob(".*.tmp"))  # no temporary file left behind
    inst.attachments.delete(file_id)
    assert not inst.attachments.exists(file_id)


def test_sealed_file_renamed_to_another_id_does_not_open(inst: Installation) -> None:
    first = inst.attachments.put(b"first")
    second = inst.attachments.put(b"second")
    inst.attachments.path(first).replace(inst.attachments.path(second))
    with pytest.raises(SealBroken, match=f"file:attachments/{second}"):
        inst.attachments.read(second)


def test_sealed_file_with_a_wrong_key_fails_loudly(inst: Installation) -> None:
    file_id = inst.attachments.put(b"words")
    key_file = inst.data_dir / "keys" / "esafety.keys"
    needed = json.loads(key_file.read_text())["current"]
    write_keyring(key_file, "0badc0de")
    other = reopened(inst)
    try:
        with pytest.raises(KeyMissing, match=needed):
            other.attachments.read(file_id)
    finally:
        other.close()


def test_stored_file_ids_are_checked(inst: Installation) -> None:
    from esafety.errors import InvalidInput, NotFound

    with pytest.raises(InvalidInput):
        inst.attachments.read("../keys/esafety")
    with pytest.raises(NotFound):
        inst.attachments.read("A" * 24)


def test_first_seal_inside_a_transaction_makes_the_keyring(inst: Installation) -> None:
    # The guard asked before making a keyring reads on its own connection; on SQLite it
    # must not wait for the transaction that is sealing.
    probe.create(inst.db.engine)
    with inst.db.engine.begin() as conn:
        conn.execute(insert(probe).values(id=1, note=SEALED_MARK))
        conn.execute(update(probe).values(other="x"))
    with inst.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(probe)).scalar_one() == 1
    assert (inst.data_dir / "keys" / "esafety.keys").exists()


def test_two_step_member_can_still_be_added_after_sealing(inst: Installation) -> None:
    school = make_school(inst)
    member = add_member(inst, school.id, "extra.dsl", [next(iter(school.people))], two_step=True)
    assert member.totp_secret is not None
    assert totp_of(inst, member.id) == member.totp_secret


def test_a_new_models_sealed_columns_join_its_audit_secrets() -> None:
    class ProbeBase(DeclarativeBase):
        __audit_secret__: frozenset[str] = frozenset({"pin"})

    class Note(ProbeBase):
        __tablename__ = "probe_note"
        id: Mapped[int] = mapped_column(primary_key=True)
        pin: Mapped[str]
        words: Mapped[str] = mapped_column(SealedText())
        summary: Mapped[str | None] = mapped_column(SealedJSON())

    configure_mappers()
    assert Note.__audit_secret__ == {"pin", "words", "summary"}
    assert Note.__table__.c.words.type.context == "probe_note.words"  # type: ignore[attr-defined]
