"""Unblock requests on the web and in the API: a teacher asks, the headteacher decides,
people are told on their home page; a teacher cannot approve; the settings page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from esafety.audit import Actor
from esafety.directory import groups
from esafety.directory import service as directory
from esafety.directory.model import Group, GroupKind, PersonKind
from esafety.filtering import service as filtering
from esafety.filtering.requests_model import UnblockRequest, UnblockState
from esafety.filtering.store import ListStore
from esafety.installation import Installation
from esafety.security.roles import Role
from esafety.security.tokens import create_token
from esafety.web.app import create_app
from esafety.web.deps import SESSION_COOKIE
from tests import accounts
from tests.accounts import make_school, session_and_csrf
from tests.directory.school_setup import birthday

REASON = "Year 5 will use the coding puzzles on this site in Thursday's computing lesson."
RISK = "I looked at the puzzles: no chat, no adverts, and the teacher supervises."


@pytest.fixture
def school(inst: Installation) -> accounts.TestSchool:
    school = make_school(inst)
    actor = Actor.system("test", school_id=school.id)
    with inst.db.session(actor, school_id=school.id) as session:
        directory.add_person(
            session,
            PersonKind.PUPIL,
            "Ada",
            "Pupil",
            date_of_birth=birthday(9),
            year_group="Year 5",
            registration_class="Oak",
        )
        oak = session.scalars(select(Group).where(Group.name == "Oak")).one()
        assert oak.kind is GroupKind.CLASS
        groups.assign_teacher(session, oak.id, school[Role.TEACHER].id)
    return school


@pytest.fixture
def client(inst: Installation) -> Iterator[TestClient]:
    with TestClient(create_app(inst), follow_redirects=False) as test_client:
        yield test_client


def as_role(
    client: TestClient, inst: Installation, school: accounts.TestSchool, role: Role
) -> dict[str, str]:
    cookie, csrf = session_and_csrf(inst, school[role])
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie)
    return {"x-csrf-token": csrf}


def _tomorrow() -> tuple[str, str]:
    day = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    return day, day


def _rows(inst: Installation) -> list[UnblockRequest]:
    with inst.db.session(Actor.system("test")) as session:
        return list(session.scalars(select(UnblockRequest)))


def test_a_teacher_asks_the_head_approves_and_people_are_told(
    client: TestClient, inst: Installation, school: accounts.TestSchool
) -> None:
    headers = as_role(client, inst, school, Role.TEACHER)
    page = client.get("/filtering/requests/new", params={"site": "games.example"})
    assert page.status_code == 200
    assert 'value="games.example"' in page.text  # the block page's link fills it in
    assert "Your classes" in page.text and ">Oak</label>" in page.text.replace(" Oak", ">Oak")
    oak = next(
        line.split('value="')[1].split('"')[0]
        for line in page.text.splitlines()
        if 'name="groups"' in line and "Oak" in line
    )
    day, _ = _tomorrow()
    form = {
        "site": "games.example",
        "reason": "research",
        "groups": [oak],
        "day": day,
        "start": "13:00",
        "end_day": day,
        "end": "14:00",
    }
    refused = client.post("/filtering/requests", data=form, headers=headers)
    assert refused.status_code == 422 and "too short" in refused.text
    assert "research" in refused.text and "checked" in refused.text  # the form is kept
    assert _rows(inst) == []

    form["reason"] = REASON
    sent = client.post("/filtering/requests", data=form, headers=headers)
    assert sent.status_code == 303, sent.text
    (row,) = _rows(inst)
    assert sent.headers["location"] == f"/filtering/requests/{row.id}?done=asked"
    detail = client.get(sent.headers["location"]).text
    assert "Your request was sent" in detail and "Waiting for approval" in detail
    assert "nobody approves their own request" in detail  # no decision form for the teacher
    # A teacher cannot approve, by the form or the API.
    denied = client.post(
        f"/filtering/requests/{row.id}/approve", data={"risk_assessment": RISK}, headers=headers
    )
    assert denied.status_code == 403

    headers = as_role(client, inst, school, Role.HEADTEACHER)
    home = client.get("/").text
    assert "please decide" in home and "requests waiting for your decision" in home
    detail = client.get(f"/filtering/requests/{row.id}").text
    assert "Your decision" in detail and "Risk assessment" in detail
    empty = client.post(
        f"/filtering/requests/{row.id}/approve", data={"risk_assessment": ""}, headers=headers
    )
    assert empty.status_code == 422 and "risk assessment is empty" in empty.text
    approved = client.post(
        f"/filtering/requests/{row.id}/approve",
        data={"risk_assessment": RISK, "note": "Enjoy the lesson."},
        headers=headers,
    )
    assert approved.status_code == 303
    assert "Approved" in client.get(approved.headers["location"]).text
    (row,) = _rows(inst)
    assert row.state is UnblockState.APPROVED and row.decided_by

    as_role(client, inst, school, Role.TEACHER)
    home = client.get("/").text
    assert f"Your request #{row.id} for games.example was approved" in home
    headers = as_role(client, inst, school, Role.TEACHER)
    assert client.post("/notices/read", headers=headers).status_code == 303
    assert "was approved" not in client.get("/").text


def test_the_api_asks_lists_and_decides(
    client: TestClient, inst: Installation, school: accounts.TestSchool
) -> None:
    teacher, _ = create_token(inst, school[Role.TEACHER].id, "t", actor=Actor.system("t"))
    head, _ = create_token(inst, school[Role.HEADTEACHER].id, "h", actor=Actor.system("t"))
    starts = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    body = {
        "site": "https://www.games.example/",
        "reason": REASON,
        "groups": ["Oak", "Year 5"],
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=1)).isoformat(),
    }
    bad = client.post(
        "/api/v1/filtering/unblock-requests",
        json={**body, "groups": []},
        headers={"authorization": f"Bearer {teacher}"},
    )
    assert bad.status_code == 422 and "at least one" in bad.json()["detail"]
    made = client.post(
        "/api/v1/filtering/unblock-requests",
        json=body,
        headers={"authorization": f"Bearer {teacher}"},
    )
    assert made.status_code == 201, made.text
    created = made.json()
    assert created["target"] == "www.games.example" and created["state"] == "requested"
    assert [g["label"] for g in created["groups"]] == ["Oak", "Year 5"]
    number = created["id"]
    own = client.post(
        f"/api/v1/filtering/unblock-requests/{number}/approve",
        json={"risk_assessment": RISK},
        headers={"authorization": f"Bearer {teacher}"},
    )
    assert own.status_code == 403
    listed = client.get(
        "/api/v1/filtering/unblock-requests", headers={"authorization": f"Bearer {head}"}
    ).json()
    assert [r["id"] for r in listed["waiting_for_me"]] == [number]
    refused = client.post(
        f"/api/v1/filtering/unblock-requests/{number}/refuse",
        json={"risk_assessment": RISK, "note": "The site has a public chat room."},
        headers={"authorization": f"Bearer {head}"},
    )
    assert refused.status_code == 200 and refused.json()["state"] == "refused"


def test_a_site_on_an_illegal_content_list_is_refused_on_the_page_and_in_the_api(
    client: TestClient, inst: Installation, school: accounts.TestSchool, tmp_path: Path
) -> None:
    listed = tmp_path / "iwf.txt"
    listed.write_text("abuse.example\n")
    with inst.db.session(Actor.system("test")) as session:
        filtering.import_list(session, ListStore(inst.data_dir), listed, "domains",
                              "pornography", name="IWF test list", illegal=True)  # fmt: skip
    headers = as_role(client, inst, school, Role.TEACHER)
    day, _ = _tomorrow()
    form = {"site": "www.abuse.example", "reason": REASON, "groups": ["Oak"], "day": day,
            "start": "13:00", "end_day": day, "end": "14:00"}  # fmt: skip
    page = client.post("/filtering/requests", data=form, headers=headers)
    assert page.status_code == 422
    assert "on an illegal-content list, which nothing can unblock" in page.text
    assert "IWF test list" not in page.text
    teacher, _ = create_token(inst, school[Role.TEACHER].id, "t", actor=Actor.system("t"))
    starts = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    body = {"site": "https://abuse.example/x", "reason": REASON, "groups": ["Oak"],
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=1)).isoformat()}  # fmt: skip
    api = client.post(
        "/api/v1/filtering/unblock-requests",
        json=body,
        headers={"authorization": f"Bearer {teacher}"},
    )
    assert api.status_code == 422 and "illegal-content list" in api.json()["detail"]
    assert _rows(inst) == []


def test_the_head_chooses_who_approves(
    client: TestClient, inst: Installation, school: accounts.TestSchool
) -> None:
    headers = as_role(client, inst, school, Role.TEACHER)
    assert client.get("/filtering/unblock-settings").status_code == 403
    headers = as_role(client, inst, school, Role.HEADTEACHER)
    page = client.get("/filtering/unblock-settings")
    assert page.status_code == 200 and 'value="headteacher" selected' in page.text
    missing = client.post(
        "/filtering/unblock-settings",
        data={"approver_role": "dsl", "warn_minutes": "30", "max_days": "7", "reason": ""},
        headers=headers,
    )
    assert missing.status_code == 422 and "reason for the change is empty" in missing.text
    saved = client.post(
        "/filtering/unblock-settings",
        data={
            "approver_role": "dsl",
            "warn_minutes": "60",
            "max_days": "7",
            "reason": "The governors made the DSL the approver.",
        },
        headers=headers,
    )
    assert saved.status_code == 303
    page = client.get("/filtering/requests").text
    assert "approved by the designated safeguarding lead" in page.lower()
    assert "told 60 minutes before" in page
