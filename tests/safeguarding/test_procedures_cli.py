"""``esafety safeguarding procedures [KIND] [--json]`` (issue 5 §2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esafety.safeguarding.kinds import IncidentKind


def test_json_lists_every_kind_with_its_steps(cli) -> None:
    r = cli("safeguarding", "procedures", "--json")
    assert r.code == 0, r.err
    listed = json.loads(r.out)
    assert isinstance(listed, list)
    assert [row["kind"] for row in listed] == [k.value for k in IncidentKind]
    for row in listed:
        assert {"kind", "title", "grave", "readers", "refuses_images", "steps"} <= set(row)
        assert row["steps"], row["kind"]
        assert any(step["required"] for step in row["steps"])
        for step in row["steps"]:
            assert isinstance(step["id"], str) and step["id"]
            assert isinstance(step["title"], str) and step["title"]
            assert isinstance(step["required"], bool)
            assert {"guidance", "source", "after", "when", "decision", "due"} <= set(step)
    by_kind = {row["kind"]: row for row in listed}
    ypsi = {s["id"]: s for s in by_kind["youth_produced_sexual_imagery"]["steps"]}
    assert ypsi["delete_images"]["when"] == {
        "step": "confirm_deletion_safe",
        "choices": ["confirmed"],
    }
    assert by_kind["youth_produced_sexual_imagery"]["refuses_images"] is True
    lado = {s["id"]: s for s in by_kind["staff_allegation"]["steps"]}["lado_referral"]
    assert lado["due"] == {"amount": 1, "unit": "working_days", "text": "within 1 working day"}
    assert lado["referral"] == "LADO"
    assert by_kind["staff_allegation"]["readers"] == ["headteacher"]
    choices = {s["id"]: s for s in by_kind["staff_allegation"]["steps"]}["harm_test"]["decision"]
    assert [c["id"] for c in choices["choices"]] == ["met", "not_met"]


def test_human_form_lists_every_kind_and_its_steps(cli) -> None:
    r = cli("safeguarding", "procedures")
    assert r.code == 0, r.err
    for kind in IncidentKind:
        assert kind.value in r.out
    assert "Online bullying" in r.out
    assert "confirm_deletion_safe" in r.out
    assert "within 1 working day" in r.out
    assert "grave" in r.out


def test_one_kind_with_its_guidance(cli) -> None:
    r = cli("safeguarding", "procedures", "staff_allegation")
    assert r.code == 0, r.err
    assert "LADO" in r.out and "KCSIE" in r.out
    assert "online_bullying" not in r.out
    r = cli("safeguarding", "procedures", "data_breach", "--json")
    assert r.code == 0, r.err
    assert [row["kind"] for row in json.loads(r.out)] == ["data_breach"]


def test_an_unknown_kind_is_a_clear_error(cli) -> None:
    r = cli("safeguarding", "procedures", "sexting")
    assert r.code == 2
    assert "unknown kind of incident 'sexting'" in r.err
    assert "youth_produced_sexual_imagery" in r.err
    assert "Traceback" not in r.err


def test_procedures_need_no_database(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "not-set-up"
    empty.mkdir()
    monkeypatch.setenv("ESAFETY_DATA", str(empty))
    monkeypatch.delenv("ESAFETY_DATABASE_URL", raising=False)
    r = cli("safeguarding", "procedures", "--json")
    assert r.code == 0, r.err
    assert len(json.loads(r.out)) == len(IncidentKind)
    assert list(empty.iterdir()) == []  # nothing created: no database was opened
