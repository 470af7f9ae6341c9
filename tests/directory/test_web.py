"""The directory's pages and API: permissions per role, school walls, forms with CSRF."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from esafety.audit import Actor
from esafety.directory import registers, service, terms
from esafety.directory.model import AccessGrant, PersonKind, TechnologyRestriction, Term
from esafety.installation import Installation
from esafety.security.roles import Permission, Role, allowed
from esafety.web.app import create_app
from esafety.web.deps import SESSION_COOKIE
from tests import accounts
from tests.accounts import make_school, session_and_csrf
from tests.directory.school_setup import birthday

#: Each GET route this slice adds, with the permission it needs.
PAGES = {
    "/people": Permission.VIEW_DIRECTORY,
    "/people/{pupil}": Permission.VIEW_DIRECTORY,
    "/technology-restrictions": Permission.VIEW_TECHNOLOGY_RESTRICTIONS,
    "/access-register": Permission.VIEW_ACCESS_REGISTER,
    "/calendar": Permission.VIEW_CALENDAR,
    "/api/v1/people": Permission.VIEW_DIRECTORY,
    "/api/v1/people/{pupil}": Permission.VIEW_DIRECTORY,
    "/api/v1/technology-restrictions": Permission.VIEW_TECHNOLOGY_RESTRICTIONS,
    "/api/v1/access-register": Permission.VIEW_ACCESS_REGISTER,
    "/api/v1/calendar": Permission.VIEW_CALENDAR,
}


@dataclass
class Fixture:
    inst: Installation
    school: accounts.TestSchool
    pupil: int
    restriction: int
    grant: int
    flag: int


def _populate(inst: Installation, school_id: int, first: str = "Ada") -> tuple[int, int, int, int]:
    actor = Actor.system("test", school_id=school_id)
    with inst.db.session(actor, school_id=school_id) as session:
        terms.add_term(session, "Autumn", date(2025, 9, 3), date(2025, 12, 19))
        pupil = service.add_person(
            session,
            PersonKind.PUPIL,
            first,
            "Lovelace",
            date_of_birth=birthday(8),
            year_group="Year 3",
            registration_class="3R",
        )
        parent = service.add_person(session, PersonKind.PARENT, "Mary", "Lovelace")
        service.link_parent(session, parent.id, pupil.id, relationship="mother")
        flag = registers.set_pupil_flag(session, pupil.id, "looked_after", "Placed with carers")
        restriction = registers.add_technology_restriction(
            session, pupil.id, "AUP not signed", date.today()
        )
        grant = registers.grant_access(session, pupil.id, "Wi-Fi", granted_on=date(2025, 9, 3))
        return pupil.id, restriction.id, grant.id, flag.id


@pytest.fixture
def world(inst: Installation) -> Fixture:
    school = make_school(inst)
    pupil, restriction, grant, flag = _populate(inst, school.id)
    return Fixture(inst, school, pupil, restriction, grant, flag)


@pytest.fixture
def app(inst: Installation) -> FastAPI:
    return create_app(inst)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


def as_role(client: TestClient, world: Fixture, role: Role) -> str:
    """Sign the client in as the school's person with ``role``; returns the CSRF token."""
    cookie, csrf = session_and_csrf(world.inst, world.school[role])
    client.cookies.set(SESSION_COOKIE, cookie)
    return csrf


def test_every_role_gets_each_page_or_403_never_500(client: TestClient, world: Fixture) -> None:
    for role in Role:
        as_role(client, world, role)
        for template, permission in PAGES.items():
            path = template.format(pupil=world.pupil)
            response = client.get(path)
            expected = 200 if allowed([role], permission) else 403
            assert response.status_code == expected, (role, path, response.text[:300])


def test_signed_out_pages_redirect_and_the_api_answers_401(
    client: TestClient, world: Fixture
) -> None:
    for template in PAGES:
        response = client.get(template.format(pupil=world.pupil))
        if template.startswith("/api/"):
            assert response.status_code == 401
        else:
            assert response.status_code == 303
            assert response.headers["location"].startswith("/sign-in")


def test_another_schools_records_are_not_found_by_any_route(
    client: TestClient, world: Fixture
) -> None:
    other = make_school(world.inst, "elmwood")
    pupil, restriction, grant, flag = _populate(world.inst, other.id, "Eve")
    csrf = as_role(client, world, Role.DSL)
    assert client.get(f"/people/{pupil}").status_code == 404
    assert client.get(f"/api/v1/people/{pupil}").status_code == 404
    listed = client.get("/people?q=Lovelace").text
    assert "Lovelace, Ada" in listed and "Lovelace, Eve" not in listed
    assert all(p["id"] != pupil for p in client.get("/api/v1/people").json())
    assert all(
        r["person_id"] != pupil for r in client.get("/api/v1/technology-restrictions").json()
    )
    headers = {"x-csrf-token": csrf}
    posts = [
        (f"/people/{pupil}/flags", {"flag": "send"}),
        (f"/people/{pupil}/flags/{flag}/remove", {}),
        (f"/people/{world.pupil}/flags/{flag}/remove", {}),
        (
            "/technology-restrictions",
            {"person_id": str(pupil), "reason": "x", "review_on": date.today().isoformat()},
        ),
        (f"/technology-restrictions/{restriction}/end", {}),
    ]
    for path, data in posts:
        assert client.post(path, data=data, headers=headers).status_code == 404, path
    api = [
        (
            "/api/v1/technology-restrictions",
            {"person_id": pupil, "reason": "x", "review_on": date.today().isoformat()},
        ),
        (f"/api/v1/technology-restrictions/{restriction}/end", None),
    ]
    for path, body in api:
        assert client.post(path, json=body, headers=headers).status_code == 404, path

    tech_csrf = as_role(client, world, Role.TECHNICIAN)
    headers = {"x-csrf-token": tech_csrf}
    assert all(g["person_id"] != pupil for g in client.get("/api/v1/access-register").json())
    assert client.post(f"/access-register/{grant}/revoke", headers=headers).status_code == 404
    assert (
        client.post(f"/api/v1/access-register/{grant}/revoke", headers=headers).status_code == 404
    )
    assert (
        client.post(
            "/api/v1/access-register", json={"person_id": pupil, "system": "Wi-Fi"}, headers=headers
        ).status_code
        == 404
    )
    # By username, the other school's pupil is nobody here.
    response = client.post(
        "/access-register", data={"username": "eve.lovelace", "system": "Wi-Fi"}, headers=headers
    )
    assert response.status_code == 422 and "nobody in this school" in response.text
    with world.inst.db.session(Actor.system("test")) as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(AccessGrant)
                .where(AccessGrant.revoked_on.is_not(None))
            )
            == 0
        )


def test_flags_show_only_to_safeguarding_leads(client: TestClient, world: Fixture) -> None:
    as_role(client, world, Role.TEACHER)
    page = client.get(f"/people/{world.pupil}")
    assert page.status_code == 200
    assert "Mary Lovelace" in page.text and "3R" in page.text and "Year 3" in page.text
    assert "Looked-after" not in page.text and "Placed with carers" not in page.text
    assert "May not use technology" in page.text  # 000 §4.5: all staff see it
    assert client.get(f"/api/v1/people/{world.pupil}").json()["flags"] is None
    as_role(client, world, Role.DSL)
    page = client.get(f"/people/{world.pupil}")
    assert "Looked-after child" in page.text and "Placed with carers" in page.text
    detail = client.get(f"/api/v1/people/{world.pupil}").json()
    assert detail["flags"] == ["looked_after"]
    assert detail["key_stage"] == "ks2" and detail["groups"] == ["3R", "Year 3", "KS2"]
    assert detail["parents"][0]["parental_responsibility"] is True


def test_dsl_sets_and_removes_a_flag_through_the_form(client: TestClient, world: Fixture) -> None:
    csrf = as_role(client, world, Role.DSL)
    response = client.post(
        f"/people/{world.pupil}/flags", data={"flag": "send", "note": "", "csrf_token": csrf}
    )
    assert response.status_code == 303
    page = client.get(response.headers["location"])
    assert "The flag was recorded." in page.text and "SEND" in page.text
    bad = client.post(f"/people/{world.pupil}/flags", data={"flag": "sen", "csrf_token": csrf})
    assert bad.status_code == 422 and "unknown flag" in bad.text
    no_token = client.post(f"/people/{world.pupil}/flags", data={"flag": "eal"})
    assert no_token.status_code == 403
    removed = client.post(
        f"/people/{world.pupil}/flags/{world.flag}/remove", data={"csrf_token": csrf}
    )
    assert removed.status_code == 303
    assert "Placed with carers" not in client.get(f"/people/{world.pupil}").text


def test_people_search_and_filters(client: TestClient, world: Fixture) -> None:
    as_role(client, world, Role.TEACHER)
    page = client.get("/people", params={"q": "ada"})
    assert "Lovelace, Ada" in page.text and "Lovelace, Mary" not in page.text
    page = client.get("/people", params={"kind": "parent"})
    assert "Lovelace, Mary" in page.text and "Lovelace, Ada" not in page.text
    page = client.get("/people", params={"q": "nobody-at-all"})
    assert "Nobody matches" in page.text
    found = client.get("/api/v1/people", params={"year": "Year 3"}).json()
    assert [p["username"] for p in found] == ["ada.lovelace"]
    assert found[0]["roles"] == ["pupil"] and found[0]["registration_group"] == "3R"
    bad = client.get("/api/v1/people", params={"kind": "aliens"})
    assert bad.status_code == 422 and "unknown kind" in bad.json()["detail"]


def test_restrictions_list_form_and_api(client: TestClient, world: Fixture) -> None:
    as_role(client, world, Role.VOLUNTEER)
    page = client.get("/technology-restrictions")
    assert "AUP not signed" in page.text and "Review due" in page.text
    assert "Add a child to the list" not in page.text
    assert client.get("/api/v1/technology-restrictions").json()[0]["review_due"] is True

    csrf = as_role(client, world, Role.ONLINE_SAFETY_LEAD)
    end = client.post(
        f"/technology-restrictions/{world.restriction}/end", data={"csrf_token": csrf}
    )
    assert end.status_code == 303
    assert client.get("/api/v1/technology-restrictions").json() == []
    review_on = (date.today() + timedelta(days=14)).isoformat()
    bad = client.post(
        "/technology-restrictions",
        data={
            "person_id": str(world.pupil),
            "reason": "Misuse",
            "review_on": "14/01/2026",
            "csrf_token": csrf,
        },
    )
    assert bad.status_code == 422 and "review date: &#39;14/01/2026&#39; is not a date" in bad.text
    added = client.post(
        "/technology-restrictions",
        data={
            "person_id": str(world.pupil),
            "reason": "Misuse",
            "review_on": review_on,
            "csrf_token": csrf,
        },
    )
    assert added.status_code == 303
    assert "Misuse" in client.get("/technology-restrictions").text
    again = client.post(
        "/api/v1/technology-restrictions",
        json={"person_id": world.pupil, "reason": "Again", "review_on": review_on},
        headers={"x-csrf-token": csrf},
    )
    assert again.status_code == 422 and "already on the list" in again.json()["detail"]
    missing = client.post(
        "/api/v1/technology-restrictions",
        json={"person_id": world.pupil},
        headers={"x-csrf-token": csrf},
    )
    assert missing.status_code == 422
    with world.inst.db.session(Actor.system("test")) as session:
        assert session.scalar(select(func.count()).select_from(TechnologyRestriction)) == 2


def test_access_register_form_and_api(client: TestClient, world: Fixture) -> None:
    csrf = as_role(client, world, Role.TECHNICIAN)
    teacher = world.school[Role.TEACHER]
    granted = client.post(
        "/access-register",
        data={
            "username": teacher.username,
            "system": "Staff Wi-Fi",
            "granted_on": "",
            "csrf_token": csrf,
        },
    )
    assert granted.status_code == 303
    page = client.get("/access-register")
    assert "Staff Wi-Fi" in page.text and "Wi-Fi" in page.text
    api = client.post(
        "/api/v1/access-register",
        json={"person_id": teacher.id, "system": "Google Classroom", "granted_on": "2025-09-04"},
        headers={"x-csrf-token": csrf},
    )
    assert api.status_code == 201 and api.json()["system"] == "Google Classroom"
    grant_id = api.json()["id"]
    revoked = client.post(
        f"/api/v1/access-register/{grant_id}/revoke",
        json={"on": "2025-12-19"},
        headers={"x-csrf-token": csrf},
    )
    assert revoked.json()["revoked_on"] == "2025-12-19"
    current = client.get("/api/v1/access-register", params={"current": "true"}).json()
    assert sorted(g["system"] for g in current) == ["Staff Wi-Fi", "Wi-Fi"]
    history = client.get("/access-register", params={"show": "all", "system": "Google Classroom"})
    assert "19 Dec 2025" in history.text
    unknown = client.post(
        "/access-register", data={"username": "nobody", "system": "Wi-Fi", "csrf_token": csrf}
    )
    assert unknown.status_code == 422 and "nobody in this school has the username" in unknown.text


def test_calendar_page_and_forms(client: TestClient, world: Fixture) -> None:
    csrf = as_role(client, world, Role.OFFICE)
    page = client.get("/calendar")
    assert "Autumn" in page.text and "Add a term" in page.text
    added = client.post(
        "/calendar/terms",
        data={
            "name": "Spring",
            "starts_on": "2026-01-05",
            "ends_on": "2026-03-27",
            "csrf_token": csrf,
        },
    )
    assert added.status_code == 303
    overlap = client.post(
        "/calendar/terms",
        data={
            "name": "Odd",
            "starts_on": "2025-12-01",
            "ends_on": "2026-01-10",
            "csrf_token": csrf,
        },
    )
    assert overlap.status_code == 422 and "overlaps" in overlap.text
    closure = client.post(
        "/calendar/closures",
        data={"reason": "INSET day", "starts_on": "2026-01-05", "ends_on": "", "csrf_token": csrf},
    )
    assert closure.status_code == 303
    data = client.get("/api/v1/calendar").json()
    assert [t["name"] for t in data["terms"]] == ["Autumn", "Spring"]
    assert data["terms"][0]["school_days"] == 78
    assert data["closures"] == [
        {"reason": "INSET day", "starts_on": "2026-01-05", "ends_on": "2026-01-05"}
    ]
    as_role(client, world, Role.TEACHER)
    assert "Add a term" not in client.get("/calendar").text
    with world.inst.db.session(Actor.system("test")) as session:
        assert session.scalar(select(func.count()).select_from(Term)) == 2


def test_api_accepts_a_bearer_token_with_the_same_permissions(
    client: TestClient, world: Fixture
) -> None:
    from esafety.security import tokens

    member = world.school[Role.TECHNICIAN]
    token, _ = tokens.create_token(world.inst, member.id, "script", actor=Actor.system("test"))
    headers = {"Authorization": f"Bearer {token}"}
    granted = client.post(
        "/api/v1/access-register",
        json={"person_id": world.pupil, "system": "iPads"},
        headers=headers,
    )
    assert granted.status_code == 201
    assert client.get("/api/v1/people", headers=headers).status_code == 200
    denied = client.post(
        "/api/v1/technology-restrictions",
        json={"person_id": world.pupil, "reason": "x", "review_on": date.today().isoformat()},
        headers=headers,
    )
    assert denied.status_code == 403
