"""``esafety keys rotate``: everything re-sealed with a new key, the old key retired only
when nothing needs it, and everything still readable when a rotation stops half-way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from esafety.audit import SYSTEM, AuditEntry
from esafety.installation import Installation
from esafety.sealing import key_use, reseal, retire_unused, rotate
from esafety.sealing.keyring import new_key_entry
from tests import accounts
from tests.accounts import make_school
from tests.security.test_sealing import raw_cells, reopened, totp_of, write_keyring


class Stopped(Exception):
    """Stands for the process dying after a batch was committed."""


def key_file(inst: Installation) -> Path:
    return inst.data_dir / "keys" / "esafety.keys"


def key_ids_in_file(inst: Installation) -> list[str]:
    return [k["id"] for k in json.loads(key_file(inst).read_text())["keys"]]


def sealed_key_ids(inst: Installation) -> list[str]:
    cells = raw_cells(inst, "account", "totp_secret")
    files = [p.read_bytes() for p in sorted((inst.data_dir / "attachments").glob("*.sealed"))]
    return [blob[1:5].hex() for blob in cells + files]


def everything_opens(
    inst: Installation, school: accounts.TestSchool, files: dict[str, bytes]
) -> None:
    """Read with a fresh Installation, as another process would."""
    other = reopened(inst)
    try:
        for member in school.people.values():
            assert totp_of(other, member.id) == member.totp_secret
        for file_id, content in files.items():
            assert other.attachments.read(file_id) == content
    finally:
        other.close()


def school_with_files(inst: Installation) -> tuple[accounts.TestSchool, dict[str, bytes]]:
    school = make_school(inst, enrol_everyone=True)
    contents = [b"screenshot %d" % n for n in range(3)]
    return school, {inst.attachments.put(content): content for content in contents}


def test_rotation_reseals_everything_and_retires_the_old_key(inst: Installation) -> None:
    school, files = school_with_files(inst)
    old = inst.keys.current().id
    cells_before = set(raw_cells(inst, "account", "totp_secret"))
    files_before = {p.read_bytes() for p in (inst.data_dir / "attachments").glob("*.sealed")}

    key, done = rotate(inst, batch_size=4)

    assert done.values == len(cells_before) == len(school.people)
    assert done.files == len(files)
    assert set(sealed_key_ids(inst)) == {key.id}
    assert cells_before.isdisjoint(raw_cells(inst, "account", "totp_secret"))
    assert files_before.isdisjoint(
        p.read_bytes() for p in (inst.data_dir / "attachments").glob("*.sealed")
    )
    assert key_ids_in_file(inst) == [old, key.id]  # kept until retired

    retired = retire_unused(inst)
    assert (retired.removed, retired.still_used) == ([old], {})
    assert key_ids_in_file(inst) == [key.id]
    everything_opens(inst, school, files)
    with inst.db.session(SYSTEM) as session:
        actions = list(
            session.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "keyring"))
        )
    assert actions == ["keys.rotate", "keys.reseal", "keys.retire"]


def test_rotation_stopped_after_a_batch_leaves_everything_readable(inst: Installation) -> None:
    school, files = school_with_files(inst)
    old = inst.keys.current().id

    def stop(_place: str, _count: int) -> None:
        raise Stopped

    with pytest.raises(Stopped):
        rotate(inst, batch_size=2, after_batch=stop)

    new = inst.keys.current().id
    used = key_use(inst.db.engine, inst.data_dir)
    assert used.count(new) == 2  # the one batch committed
    assert used.count(old) == len(school.people) - 2 + len(files)
    everything_opens(inst, school, files)

    # The old key cannot be retired while anything needs it.
    retired = retire_unused(inst)
    assert retired.removed == [] and retired.still_used == {old: used.count(old)}
    assert key_ids_in_file(inst) == [old, new]

    finished = reseal(inst, batch_size=2)
    assert finished.values == len(school.people) - 2 and finished.files == len(files)
    assert retire_unused(inst).removed == [old]
    assert set(sealed_key_ids(inst)) == {new}
    everything_opens(inst, school, files)


def test_rotation_stopped_among_the_files(inst: Installation) -> None:
    school, files = school_with_files(inst)
    seen: list[str] = []

    def stop_in_files(place: str, _count: int) -> None:
        seen.append(place)
        if place == "files":
            raise Stopped

    with pytest.raises(Stopped):
        rotate(inst, batch_size=1, after_batch=stop_in_files)
    new = inst.keys.current().id
    file_keys = [
        p.read_bytes()[1:5].hex() for p in (inst.data_dir / "attachments").glob("*.sealed")
    ]
    assert file_keys.count(new) == 1
    assert not list((inst.data_dir / "attachments").glob(".*.tmp"))
    everything_opens(inst, school, files)


def test_reseal_twice_does_nothing_the_second_time(inst: Installation) -> None:
    school_with_files(inst)
    rotate(inst)
    again = reseal(inst)
    assert (again.values, again.files) == (0, 0)


# -- the command -----------------------------------------------------------------------


def test_keys_show_and_rotate_from_the_command_line(inst: Installation, cli) -> None:
    school, files = school_with_files(inst)
    shown = cli("keys", "show", "--json")
    assert shown.code == 0, shown.err
    data = json.loads(shown.out)
    (old,) = data["keys"]
    assert old["current"] and old["values"] == len(school.people) and old["files"] == 3
    assert "key" not in old and "material" not in old  # never the key itself
    assert str(key_file(inst)) in data["source"]
    assert json.loads(key_file(inst).read_text())["keys"][0]["key"] not in shown.out

    rotated = cli("keys", "rotate", "--retire-old", "--batch-size", "3")
    assert rotated.code == 0, rotated.err
    assert f"Retired keys no longer used: {old['id']}" in rotated.out
    data = json.loads(cli("keys", "show", "--json").out)
    (new,) = data["keys"]
    assert new["id"] != old["id"] and new["values"] == len(school.people)
    assert cli("keys", "retire").out.strip() == "No old keys to retire."
    everything_opens(inst, school, files)

    text_view = cli("keys", "show")
    assert new["id"] in text_view.out and "current" in text_view.out


def test_commands_refuse_to_start_without_the_keyring(inst: Installation, cli) -> None:
    school_with_files(inst)
    needed = inst.keys.current().id
    key_file(inst).rename(inst.data_dir / "keys-moved-away")
    refused = cli("users", "list", "--json")
    assert refused.code == 2
    assert "sealed records exist" in refused.err and str(key_file(inst)) in refused.err
    assert not key_file(inst).exists()
    shown = cli("keys", "show", "--json")
    assert shown.code == 1
    assert json.loads(shown.out)["missing"][0]["id"] == needed


def test_commands_refuse_to_start_with_the_wrong_keyring(inst: Installation, cli) -> None:
    school_with_files(inst)
    needed = inst.keys.current().id
    write_keyring(key_file(inst), "0badc0de")
    refused = cli("users", "list", "--json")
    assert refused.code == 2
    assert needed in refused.err and "Restore" in refused.err
    assert "MISSING" in cli("keys", "show").out


def test_a_fresh_installation_gets_its_keyring_at_upgrade(cli, settings) -> None:
    done = cli("db", "upgrade", "--no-starter-lists")
    assert done.code == 0, done.err
    assert (settings.data / "keys" / "esafety.keys").exists()


def test_keys_in_the_setting_are_rotated_by_the_operator(
    inst: Installation, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = new_key_entry()
    security = inst.settings.security.model_copy(update={"keys": SecretStr(first)})
    given = Installation(inst.settings.model_copy(update={"security": security}))
    try:
        make_school(given)
    finally:
        given.close()
    monkeypatch.setenv("ESAFETY_SECURITY__KEYS", first)
    refused = cli("keys", "rotate")
    assert refused.code == 2 and "esafety keys new" in refused.err
    assert cli("users", "list").code == 0
    made = cli("keys", "new").out.strip()
    assert made.count(":") == 1
    # The operator puts the new key first, keeps the old one after it, and re-seals.
    monkeypatch.setenv("ESAFETY_SECURITY__KEYS", f"{made},{first}")
    enrolled = len(raw_cells(inst, "account", "totp_secret"))
    resealed = cli("keys", "reseal")
    assert resealed.code == 0 and f"Re-sealed {enrolled} values" in resealed.out
    assert {c[1:5].hex() for c in raw_cells(inst, "account", "totp_secret")} == {made.split(":")[0]}
    retired = cli("keys", "retire")
    assert retired.code == 0
    assert f"remove them from the setting [security] keys: {first.split(':')[0]}" in retired.out
