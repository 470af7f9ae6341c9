"""The concerns API (issue 5 §9) with real tokens, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from esafety.audit import SYSTEM
from esafety.security import service
from esafety.security.roles import Role
from esafety.web.app import create_app
from tests.accounts import Member
from tests.safeguarding.concern_people import MARKER, ConcernSchool, concern_school

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def cs(inst) -> ConcernSchool:
    return concern_school(inst)


@pytest.fixture
def client(inst) -> Iterator[TestClient]:
    with TestClient(create_app(inst), follow_redirects=False) as c:
        yield c


def bearer(cs: ConcernSchool, who: Member | Role) -> dict[str, str]:
    member = cs[who] if isinstance(who, Role) else who
    token, _ = service.create_token(cs.inst, member.id, "tests", actor=SYSTEM)
    return {"Authorization": f"Bearer {token}"}


def new_concern(cs: ConcernSchool, **changes: object) -> dict[str, object]:
    return {
        "about": [cs[Role.PUPIL].username, {"person": cs.pupil2.username, "role": "witness"}],
        "kind": "online_bullying",
        "narrative": f"Sam showed me a group chat calling him names. {MARKER}",
        "happened_at": (datetime.now() - timedelta(hours=2)).replace(microsecond=0).isoformat(),
        "location": {"where": "online", "detail": "WhatsApp"},
        "action_taken": "Told the DSL.",
    } | changes


def test_record_then_read_as_raiser_and_dsl_and_404_for_another_teacher(
    cs: ConcernSchool, client: TestClient
) -> None:
    answer = client.post("/api/v1/concerns", json=new_concern(cs), headers=bearer(cs, Role.TEACHER))
    assert answer.status_code == 201, answer.text
    concern_id = answer.json()["id"]
    assert answer.json()["kind"] == "online_bullying"

    mine = client.get(f"/api/v1/concerns/{concern_id}", headers=bearer(cs, Role.TEACHER))
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert MARKER in body["narrative"]
    assert body["location"] == "online" and body["location_detail"] == "WhatsApp"
    assert {(p["username"], p["role"]) for p in body["people"]} == {
        (cs[Role.PUPIL].username, "harmed"),
        (cs.pupil2.username, "witness"),
    }
    assert body["grounds"] == "raised it"
    assert "keep_evidence" in body["procedure"]["remaining_required"]

    dsl = client.get(f"/api/v1/concerns/{concern_id}", headers=bearer(cs, Role.DSL))
    assert dsl.status_code == 200 and MARKER in dsl.json()["narrative"]

    other = client.get(f"/api/v1/concerns/{concern_id}", headers=bearer(cs, cs.teacher2))
    missing = client.get("/api/v1/concerns/999999", headers=bearer(cs, cs.teacher2))
    assert other.status_code == missing.status_code == 404
    assert other.json()["detail"].replace(str(concern_id), "N") == missing.json()["detail"].replace(
        "999999", "N"
    )
    assert MARKER not in other.text

    assert client.get(
        f"/api/v1/concerns/{concern_id}", headers=bearer(cs, Role.ADMIN)
    ).status_code in (403, 404)
    assert (
        client.get(f"/api/v1/concerns/{concern_id}", headers=bearer(cs, Role.PUPIL)).status_code
        == 403
    )
    listed = client.get("/api/v1/concerns", headers=bearer(cs, cs.teacher2))
    assert listed.status_code == 200 and listed.json() == []


def test_a_deputy_cannot_read_a_staff_allegation_by_the_api(
    cs: ConcernSchool, client: TestClient
) -> None:
    body = new_concern(cs, kind="staff_allegation", about=[cs[Role.TEACHER].username])
    answer = client.post("/api/v1/concerns", json=body, headers=bearer(cs, cs.teacher2))
    concern_id = answer.json()["id"]
    url = f"/api/v1/concerns/{concern_id}"
    assert client.get(url, headers=bearer(cs, Role.DEPUTY_DSL)).status_code == 404
    assert client.get(url, headers=bearer(cs, Role.TEACHER)).status_code == 404
    head = client.get(url, headers=bearer(cs, Role.HEADTEACHER))
    assert head.status_code == 200
    assert head.json()["people"][0]["role"] == "harmed_others"


@pytest.mark.parametrize(
    ("changes", "status", "words"),
    [
        ({"kind": "bullyng"}, 422, "did you mean 'online_bullying'"),
        ({"narrative": ""}, 422, "narrative) is empty"),
        ({"about": []}, 422, "about"),
        ({"about": ["no.such.person"]}, 422, "username or UPN"),
        ({"about": [{"name": "A. B."}]}, 422, "not initials"),
        ({"about": [{"person": "x", "role": "victim"}]}, 422, "role"),
        ({"happened_at": "yesterday"}, 422, "happened_at"),
        (
            {"happened_at": (datetime.now(UTC) + timedelta(days=2)).isoformat()},
            422,
            "in the future",
        ),
    ],
)
def test_bad_input_says_what_to_fix(
    cs: ConcernSchool, client: TestClient, changes: dict[str, object], status: int, words: str
) -> None:
    answer = client.post(
        "/api/v1/concerns", json=new_concern(cs, **changes), headers=bearer(cs, Role.TEACHER)
    )
    assert answer.status_code == status, answer.text
    assert words in str(answer.json()["detail"])


def test_steps_and_closing_by_the_api(cs: ConcernSchool, client: TestClient) -> None:
    created = client.post(
        "/api/v1/concerns", json=new_concern(cs), headers=bearer(cs, Role.TEACHER)
    ).json()
    url = f"/api/v1/concerns/{created['id']}"
    dsl = bearer(cs, Role.DSL)
    refused = client.post(f"{url}/close", json={"outcome": "done"}, headers=dsl)
    assert refused.status_code == 422 and "cannot be closed yet" in refused.json()["detail"]
    step = client.post(f"{url}/steps", json={"step": "keep_evidence", "note": "kept"}, headers=dsl)
    assert step.status_code == 201, step.text
    assert step.json()["steps"][0]["step"] == "keep_evidence"
    teacher_step = client.post(
        f"{url}/steps", json={"step": "investigate"}, headers=bearer(cs, Role.TEACHER)
    )
    assert teacher_step.status_code == 403
    note = client.post(
        f"{url}/corrections",
        json={
            "text": "It was Instagram.",
            "reason": "I named the wrong app",
            "field": "location_detail",
        },
        headers=bearer(cs, Role.TEACHER),
    )
    assert note.status_code == 201, note.text
    assert note.json()["location_detail"] == "WhatsApp"
    assert note.json()["entries"][0]["text"] == "It was Instagram."


def test_break_glass_and_attachments_by_the_api(cs: ConcernSchool, client: TestClient) -> None:
    created = client.post(
        "/api/v1/concerns",
        json=new_concern(cs, kind="youth_produced_sexual_imagery"),
        headers=bearer(cs, Role.TEACHER),
    ).json()
    url = f"/api/v1/concerns/{created['id']}"
    upload = client.post(
        f"{url}/attachments",
        files={"file": ("photo.png", PNG, "image/png")},
        headers=bearer(cs, Role.TEACHER),
    )
    assert upload.status_code == 422
    assert "description" in upload.json()["detail"]
    glass = client.post(
        f"{url}/break-glass",
        json={"reason": "He is in my class and upset right now"},
        headers=bearer(cs, cs.teacher2),
    )
    assert glass.status_code == 200 and glass.json()["grounds"] == "break glass"
    assert MARKER in glass.json()["narrative"]
    assert client.get(url, headers=bearer(cs, cs.teacher2)).status_code == 404


def test_the_api_is_in_the_openapi_document(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/concerns" in document["paths"]
    assert "/api/v1/concerns/{concern_id}" in document["paths"]
    schema = document["components"]["schemas"]["NewConcern"]
    assert "school's time" in schema["properties"]["happened_at"]["description"]
