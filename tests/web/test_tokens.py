"""Personal API tokens: bearer authentication, revocation, the account page, audit."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from esafety.audit import SYSTEM, AuditEntry
from esafety.directory.model import Person
from esafety.errors import InvalidInput
from esafety.security import service
from esafety.security.model import ApiToken
from esafety.security.roles import Role
from tests.accounts import add_member, csrf_from, make_school, sign_in


def _me(client, token):
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def test_bearer_token_answers_me_with_the_same_shape(client, inst, school):
    token, _ = service.create_token(inst, school[Role.DSL].id, "sync", actor=SYSTEM)
    assert token.startswith("esf_")
    response = _me(client, token)
    assert response.status_code == 200
    body = response.json()
    assert (body["username"], body["roles"], body["school"], body["via"]) == (
        school[Role.DSL].username,
        ["dsl"],
        "oakfield",
        "token",
    )


def test_token_is_stored_hashed_and_its_use_is_audited(client, inst, school):
    token, info = service.create_token(inst, school[Role.TEACHER].id, "sync", actor=SYSTEM)
    _me(client, token)
    with inst.db.session(SYSTEM) as session:
        row = session.get(ApiToken, info.id)
        assert token not in row.token_hash and row.last_used_at is not None
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.object_type == "api_token")
        ).all()
        dumped = repr([(e.before, e.after) for e in entries])
    assert [e.action for e in entries] == ["create", "update"]
    assert entries[1].actor == f"{school[Role.TEACHER].username} (token 'sync')"
    assert entries[1].address == "testclient"
    assert token not in dumped


def test_revoked_unknown_and_malformed_tokens_answer_401(client, inst, school):
    token, info = service.create_token(inst, school[Role.TEACHER].id, "sync", actor=SYSTEM)
    service.revoke_token(inst, info.id, actor=SYSTEM)
    assert _me(client, token).status_code == 401
    assert _me(client, "esf_" + "x" * 43).status_code == 401
    response = client.get("/api/v1/me", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]


def test_token_of_a_leaver_stops_working(client, inst, school):
    token, _ = service.create_token(inst, school[Role.TEACHER].id, "sync", actor=SYSTEM)
    with inst.db.session(SYSTEM) as session:
        session.execute(
            update(Person).where(Person.id == school[Role.TEACHER].id).values(left_on=date.today())
        )
    assert _me(client, token).status_code == 401


def test_token_sees_its_own_school_only(client, inst, school):
    other = make_school(inst, "elmbrook")
    token, _ = service.create_token(inst, other[Role.TEACHER].id, "sync", actor=SYSTEM)
    assert _me(client, token).json()["school"] == "elmbrook"


def test_owner_creates_a_token_only_after_two_step_sign_in(client, inst, school):
    teacher = school[Role.TEACHER]  # no two-step set up
    page = sign_in(client, inst, teacher, next_path="/account")
    assert "To create a token, sign in with two-step" in page.text
    refused = client.post(
        "/account/tokens", data={"name": "mine", "csrf_token": csrf_from(page.text)}
    )
    assert refused.status_code == 403
    assert "two-step" in refused.text


def test_admin_creates_sees_and_revokes_own_token_on_the_account_page(client, inst, school):
    page = sign_in(client, inst, school[Role.ADMIN], next_path="/account")
    csrf = csrf_from(page.text)
    created = client.post("/account/tokens", data={"name": "timetable sync", "csrf_token": csrf})
    assert created.status_code == 200
    token = created.text.split('id="new-token">')[1].split("<")[0]
    with TestClient(client.app) as elsewhere:  # a program with only the token
        assert _me(elsewhere, token).status_code == 200
    listed = client.get("/api/v1/me/tokens").json()
    assert [t["name"] for t in listed] == ["timetable sync"]
    assert token not in client.get("/account").text  # shown once only
    revoked = client.post(f"/account/tokens/{listed[0]['id']}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 200
    client.cookies.clear()
    assert _me(client, token).status_code == 401


def test_cannot_revoke_someone_elses_token(client, inst, school):
    _, info = service.create_token(inst, school[Role.TEACHER].id, "theirs", actor=SYSTEM)
    page = sign_in(client, inst, school[Role.ADMIN], next_path="/account")
    response = client.post(
        f"/account/tokens/{info.id}/revoke", data={"csrf_token": csrf_from(page.text)}
    )
    assert response.status_code == 404
    assert service.list_tokens(inst, school[Role.TEACHER].id, actor=SYSTEM)[0].active


def test_leaving_person_cannot_get_a_token(inst, school):
    member = add_member(inst, school.id, "gone.teacher", [Role.TEACHER])
    with inst.db.session(SYSTEM) as session:
        session.execute(update(Person).where(Person.id == member.id).values(left_on=date.today()))
    with pytest.raises(InvalidInput, match="has left"):
        service.create_token(inst, member.id, "x", actor=SYSTEM)
