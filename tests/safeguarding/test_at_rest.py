"""Issue 5 "Done when": narratives and attachments are unreadable in the database file (and
its WAL) and on disk; a wrong key fails loudly.

An attacker with a copy of the machine's disk sees the SQLite file and its WAL, or
PostgreSQL's data directory (tables and pg_wal), and the data directory's files. Every
place a words-of-the-child value can land is written with one marker, and the marker must
not appear in any of them.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from esafety.installation import Installation
from esafety.safeguarding import attachments, concerns, reading
from esafety.safeguarding.concerns import About
from esafety.sealing import KeyMissing
from esafety.security.roles import Role
from tests.pg import PostgresServer
from tests.safeguarding.concern_people import ConcernSchool, an_hour_ago, concern_school
from tests.security.test_sealing import at_rest, reopened, write_keyring

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


def _files_under(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def _everything_written(cs: ConcernSchool, marker: str) -> int:
    """A concern with the marker in every sealed place; returns its id."""
    with cs.session(Role.TEACHER) as session:
        concern = concerns.record_concern(
            session,
            kind="online_sexual_abuse",
            narrative=f"Jo said a man on the game asked for photos. {marker}",
            happened_at=an_hour_ago(),
            about=[
                cs[Role.PUPIL].username,
                About(
                    name=f"Gamer {marker}",
                    description=f"says he is 14 {marker}",
                    handle=f"@{marker}",
                ),
            ],
            location="online",
            location_detail=f"Roblox chat {marker}",
            action_taken=f"Kept the tablet {marker}",
        )
        concern_id = concern.id
        attachments.add_attachment(
            session, cs.inst.attachments, concern_id, f"chat-{marker}.pdf", PDF + marker.encode()
        )
    with cs.session(Role.DSL) as session:
        concerns.add_note(session, concern_id, f"Spoke to Jo's mother {marker}")
        concerns.correct(session, concern_id, f"Jo said a man asked for photos {marker}", "typo")
        concerns.record_step(
            session,
            concern_id,
            "report_police_ceop",
            choice="ceop",
            rationale=f"online grooming {marker}",
            reference=f"CEOP-{marker}",
        )
    return concern_id


def test_narratives_and_attachments_are_unreadable_in_the_files(
    inst: Installation, request: pytest.FixtureRequest
) -> None:
    cs = concern_school(inst)
    marker = f"zebra-{uuid.uuid4().hex[:12]}"
    concern_id = _everything_written(cs, marker)
    needle = marker.encode()

    with cs.session(Role.DSL) as session:  # it was written, and opens with the key
        opened = reading.open_concern(session, concern_id).concern
        assert marker in opened.narrative
        assert any(marker in (e.text or "") for e in opened.entries)

    url = make_url(inst.settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        # Read while the engine is still open: the latest writes are in the WAL, not yet
        # checkpointed into the main file.
        wal = Path(str(url.database) + "-wal")
        assert wal.exists() and wal.stat().st_size > 0, "expected recent writes in the WAL"
        written = wal.read_bytes()
        assert b"online_sexual_abuse" in written  # the scan sees plain columns...
        assert needle not in written  # ...and not the sealed ones
    else:
        server: PostgresServer = request.getfixturevalue("pg_server")
        with inst.db.engine.connect() as conn:
            conn.execute(text("CHECKPOINT"))
        raw = _files_under(server.datadir)  # tables, indexes and pg_wal, as on disk
        assert b"online_sexual_abuse" in raw  # the scan sees plain columns...
        assert b"Jo's mother" not in raw  # ...and not the sealed words
        assert needle not in raw
    assert needle not in at_rest(inst)
    assert needle not in _files_under(inst.data_dir)  # attachments, keys, logs, everything


def test_a_wrong_key_fails_loudly_and_the_record_survives(inst: Installation) -> None:
    cs = concern_school(inst)
    concern_id = _everything_written(cs, "wrong-key-mark")
    key_file = inst.data_dir / "keys" / "esafety.keys"
    kept = key_file.read_bytes()
    needed = json.loads(kept)["current"]
    write_keyring(key_file, "0badc0de")
    other = reopened(inst)
    try:
        actor = cs.actor(cs[Role.DSL])
        with pytest.raises(KeyMissing) as caught, other.db.session(actor) as session:
            reading.open_concern(session, concern_id)
        assert needed in str(caught.value) and str(key_file) in str(caught.value)
        with pytest.raises(KeyMissing), other.db.session(actor) as session:
            concerns.add_note(session, concern_id, "written under the wrong key")
    finally:
        other.close()
    key_file.write_bytes(kept)
    again = reopened(inst)
    try:
        with again.db.session(cs.actor(cs[Role.DSL])) as session:
            concern = reading.open_concern(session, concern_id).concern
            assert "wrong-key-mark" in concern.narrative
            assert not any("wrong key" in (e.text or "") for e in concern.entries)
    finally:
        again.close()
