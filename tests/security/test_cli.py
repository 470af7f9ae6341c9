"""`esafety users token …`, `users password set`, `users unlock`."""

from __future__ import annotations

import io
import json

from fastapi.testclient import TestClient

from esafety.security import service
from esafety.security.roles import Role
from esafety.web.app import create_app


def test_token_create_prints_the_token_alone_on_its_last_line(inst, school, cli):
    result = cli(
        "users", "token", "create", school[Role.TECHNICIAN].username, "--name", "wifi sync"
    )
    assert result.code == 0, result.err
    token = result.out.strip().splitlines()[-1]
    assert token.startswith("esf_") and " " not in token
    with TestClient(create_app(inst)) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["roles"] == ["technician"]


def test_token_list_and_revoke(inst, school, cli):
    username = school[Role.TEACHER].username
    token = cli("users", "token", "create", username, "--name", "sync").out.splitlines()[-1]
    listed = json.loads(cli("users", "token", "list", username, "--json").out)
    assert [(t["name"], t["revoked_at"]) for t in listed] == [("sync", None)]
    assert token not in cli("users", "token", "list", username).out
    result = cli("users", "token", "revoke", username, "--name", "sync")
    assert result.code == 0, result.err
    assert "Revoked 1 token" in result.out
    with TestClient(create_app(inst)) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401
    again = cli("users", "token", "revoke", username, "--name", "sync")
    assert again.code == 2 and "no active API token named 'sync'" in again.err


def test_token_for_unknown_person_or_without_a_name_is_a_clear_error(inst, school, cli):
    unknown = cli("users", "token", "create", "nobody", "--name", "x")
    assert unknown.code == 2 and "no person with username 'nobody'" in unknown.err
    blank = cli("users", "token", "create", school[Role.TEACHER].username, "--name", "  ")
    assert blank.code == 2 and "give the token a name" in blank.err
    assert "Traceback" not in unknown.err + blank.err


def test_password_set_from_stdin_is_temporary(inst, school, cli, monkeypatch):
    username = school[Role.TEACHER].username
    monkeypatch.setattr("sys.stdin", io.StringIO("office-reset-77\n"))
    result = cli("users", "password", "set", username, "--password-stdin")
    assert result.code == 0, result.err
    assert "choose their own" in result.out
    signed = service.sign_in(inst, username, "office-reset-77", address="a")
    assert signed.identity.next_step is service.Step.CHANGE_PASSWORD


def test_password_set_permanent_and_too_short(inst, school, cli, monkeypatch):
    username = school[Role.TEACHER].username
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    short = cli("users", "password", "set", username, "--password-stdin")
    assert short.code == 2 and "at least 10" in short.err
    monkeypatch.setattr("sys.stdin", io.StringIO("kept-for-good-9\n"))
    kept = cli("users", "password", "set", username, "--password-stdin", "--permanent")
    assert kept.code == 0, kept.err
    assert (
        service.sign_in(inst, username, "kept-for-good-9", address="a").identity.next_step is None
    )
