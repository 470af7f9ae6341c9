"""``esafety safeguarding chronology USERNAME [--by USERNAME] [--json] [--pdf FILE]``."""

from __future__ import annotations

import json
import stat

import pytest

from esafety.security.roles import Role
from tests.safeguarding.concern_people import MARKER, ConcernSchool, concern_school, record


@pytest.fixture
def cs(inst) -> ConcernSchool:
    return concern_school(inst)


def test_json_text_and_pdf_as_the_dsl(cs, cli, tmp_path) -> None:
    pupil = cs[Role.PUPIL]
    concern_id = record(cs)
    dsl = cs[Role.DSL].username
    r = cli("safeguarding", "chronology", pupil.username, "--by", dsl, "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["pupil"]["username"] == pupil.username
    assert [c["id"] for c in data["concerns"]] == [concern_id]
    assert [e["type"] for e in data["entries"]][:2] == ["happened", "recorded"]
    assert data["read_by"] == f"Dsl Tester ({dsl})"

    r = cli("safeguarding", "chronology", pupil.username, "--by", dsl, "--type", "recorded")
    assert r.code == 0, r.err
    assert "CONFIDENTIAL" in r.out and MARKER in r.out
    assert "1 of 2 entries" in r.out

    out = tmp_path / "chronology.pdf"
    r = cli("safeguarding", "chronology", pupil.username, "--pdf", str(out))
    assert r.code == 0, r.err
    assert out.read_bytes().startswith(b"%PDF-")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_as_a_teacher_who_may_not_read_it_the_answer_is_not_found(cs, cli) -> None:
    record(cs)
    r = cli("safeguarding", "chronology", cs[Role.PUPIL].username, "--by", cs.teacher2.username)
    assert r.code == 2
    assert "no chronology for person" in r.err
    r = cli("safeguarding", "chronology", "nobody.oak")
    assert r.code == 2 and "no one with username 'nobody.oak'" in r.err
    r = cli("safeguarding", "chronology", cs[Role.PUPIL].username, "--type", "gossip")
    assert r.code == 2 and "type of entry 'gossip'" in r.err
