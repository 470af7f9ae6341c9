"""The filtering pages: the school's entries, assignments and networks, and "would it be blocked?"."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from esafety.audit import Actor, AuditEntry
from esafety.directory import service
from esafety.directory.model import PersonKind
from esafety.filtering import asking
from esafety.filtering.model import PolicyAssignment, SchoolFilterEntry, SubnetMapping
from esafety.installation import Installation
from esafety.security.roles import Role
from esafety.web.app import create_app
from esafety.web.deps import SESSION_COOKIE
from tests import accounts
from tests.accounts import make_school, session_and_csrf
from tests.directory.school_setup import birthday


@dataclass
class World:
    inst: Installation
    school: accounts.TestSchool
    pupil: str


def _pupil(inst: Installation, school_id: int, first: str) -> str:
    with inst.db.session(Actor.system("test", school_id=school_id), school_id=school_id) as s:
        pupil = service.add_person(
            s,
            PersonKind.PUPIL,
            first,
            "Pupil",
            date_of_birth=birthday(9),
            year_group="Year 4",
            registration_class="4W",
        )
        return pupil.username


@pytest.fixture
def world(inst: Installation) -> World:
    school = make_school(inst)
    return World(inst, school, _pupil(inst, school.id, "Ada"))


@pytest.fixture
def client(inst: Installation) -> Iterator[TestClient]:
    with TestClient(create_app(inst), follow_redirects=False) as test_client:
        yield test_client


def as_role(client: TestClient, world: World, role: Role) -> dict[str, str]:
    cookie, csrf = session_and_csrf(world.inst, world.school[role])
    client.cookies.set(SESSION_COOKIE, cookie)
    return {"x-csrf-token": csrf}


def _rows(inst: Installation, model: type) -> list:  # type: ignore[type-arg]
    with inst.db.session(Actor.system("test")) as session:
        return list(session.scalars(select(model)))


def test_the_technician_blocks_a_site_and_the_check_page_says_why(
    client: TestClient, world: World
) -> None:
    headers = as_role(client, world, Role.TECHNICIAN)
    added = client.post(
        "/filtering/entries",
        data={
            "target": "Games.Example.COM.",
            "action": "block",
            "reason": "Distracting in lessons",
        },
        headers=headers,
    )
    assert added.status_code == 303
    page = client.get(added.headers["location"]).text
    assert "The entry was added" in page
    assert "games.example.com" in page and "Distracting in lessons" in page

    checked = client.get("/filtering/check", params={"site": "www.games.example.com"})
    assert checked.status_code == 200
    assert "Blocked: www.games.example.com" in checked.text
    allowed = client.get(
        "/filtering/check", params={"site": "www.bbc.co.uk", "person": world.pupil}
    )
    assert "Allowed: www.bbc.co.uk" in allowed.text and "KS2 pupils" in allowed.text


def test_a_change_without_a_reason_is_refused_and_nothing_is_lost(
    client: TestClient, world: World
) -> None:
    headers = as_role(client, world, Role.TECHNICIAN)
    refused = client.post(
        "/filtering/entries",
        data={"target": "games.example.com", "action": "block", "reason": "  "},
        headers=headers,
    )
    assert refused.status_code == 422 and "give a reason" in refused.text
    assert 'value="games.example.com"' in refused.text  # the form keeps what was typed
    assert _rows(world.inst, SchoolFilterEntry) == []

    client.post(
        "/filtering/entries",
        data={"target": "games.example.com", "action": "block", "reason": "Distracting"},
        headers=headers,
    )
    (entry,) = _rows(world.inst, SchoolFilterEntry)
    kept = client.post(
        f"/filtering/entries/{entry.id}/remove", data={"reason": ""}, headers=headers
    )
    assert kept.status_code == 422 and "reason for the removal" in kept.text
    assert len(_rows(world.inst, SchoolFilterEntry)) == 1

    removed = client.post(
        f"/filtering/entries/{entry.id}/remove",
        data={"reason": "The games club needs it"},
        headers=headers,
    )
    assert removed.status_code == 303
    assert _rows(world.inst, SchoolFilterEntry) == []
    why = [
        e.reason
        for e in _rows(world.inst, AuditEntry)
        if e.action == "filtering.school_filter_entry.removed"
    ]
    assert why == ["The games club needs it"]


def test_bad_names_get_a_message_that_says_what_to_fix(client: TestClient, world: World) -> None:
    headers = as_role(client, world, Role.TECHNICIAN)
    bad = client.post(
        "/filtering/entries",
        data={"target": "exa mple..com", "action": "block", "reason": "Test"},
        headers=headers,
    )
    assert bad.status_code == 422 and "notice--error" in bad.text
    checked = client.get("/filtering/check", params={"site": "a" * 64 + ".com"})
    assert checked.status_code == 422 and "63" in checked.text
    nobody = client.get("/filtering/check", params={"site": "example.com", "person": "no.one"})
    assert nobody.status_code == 422 and "no.one" in nobody.text


def test_policies_are_assigned_to_a_year_and_a_network_to_a_class(
    client: TestClient, world: World
) -> None:
    headers = as_role(client, world, Role.TECHNICIAN)
    assigned = client.post(
        "/filtering/assignments",
        data={
            "policy_id": "ks1",
            "kind": "year",
            "target": "year 4",
            "reason": "Year 4 uses Swiggle (003 §7.1)",
        },
        headers=headers,
    )
    assert assigned.status_code == 303
    page = client.get("/filtering").text
    assert "Year group" in page and "Year 4" in page
    checked = client.get(
        "/filtering/check", params={"site": "www.google.com", "person": world.pupil}
    )
    assert "KS1 pupils" in checked.text

    unknown = client.post(
        "/filtering/assignments",
        data={"policy_id": "ks1", "kind": "year", "target": "Year 42", "reason": "x"},
        headers=headers,
    )
    assert unknown.status_code == 422 and "Year 42" in unknown.text

    mapped = client.post(
        "/filtering/subnets",
        data={"network": "10.1.2.0/24", "group": "4W", "policy_id": "", "note": "Class 4W iPads"},
        headers=headers,
    )
    assert mapped.status_code == 303
    assert "members of 4W" in client.get("/filtering").text
    with world.inst.db.session(Actor.system("test"), school_id=world.school.id) as session:
        assert asking.who_is_at(session, "10.1.2.7").asker.groups >= {"4W"}
    sloppy = client.post(
        "/filtering/subnets",
        data={"network": "10.1.2.3/24", "group": "4W", "note": "x"},
        headers=headers,
    )
    assert sloppy.status_code == 422 and "10.1.2.0/24" in sloppy.text

    (assignment,) = _rows(world.inst, PolicyAssignment)
    (subnet,) = _rows(world.inst, SubnetMapping)
    for path in (
        f"/filtering/assignments/{assignment.id}/remove",
        f"/filtering/subnets/{subnet.id}/remove",
    ):
        done = client.post(path, data={"reason": "Term ended"}, headers=headers)
        assert done.status_code == 303, path
    assert _rows(world.inst, PolicyAssignment) == [] and _rows(world.inst, SubnetMapping) == []


def test_staff_see_the_page_but_only_managers_see_and_use_the_forms(
    client: TestClient, world: World
) -> None:
    headers = as_role(client, world, Role.TEACHER)
    page = client.get("/filtering")
    assert page.status_code == 200 and "Who gets which policy" in page.text
    assert 'action="/filtering/entries"' not in page.text
    refused = client.post(
        "/filtering/entries",
        data={"target": "example.com", "action": "block", "reason": "x"},
        headers=headers,
    )
    assert refused.status_code == 403
    assert _rows(world.inst, SchoolFilterEntry) == []


def test_another_schools_entries_cannot_be_removed(client: TestClient, world: World) -> None:
    other = make_school(world.inst, "elmwood")
    actor = Actor.system("test", school_id=other.id)
    with world.inst.db.session(actor, school_id=other.id) as session:
        entry = asking.add_school_entry(session, "elmwood-only.example", "allow", "Their choice")
        subnet = asking.add_subnet(session, "10.9.0.0/16", policy_id="ks1", note="Their iPads")
        entry_id, subnet_id = entry.id, subnet.id
    headers = as_role(client, world, Role.TECHNICIAN)
    assert "elmwood-only.example" not in client.get("/filtering").text
    for path in (f"/filtering/entries/{entry_id}/remove", f"/filtering/subnets/{subnet_id}/remove"):
        response = client.post(path, data={"reason": "Mine now"}, headers=headers)
        assert response.status_code == 404, path
    assert len(_rows(world.inst, SchoolFilterEntry)) == 1
    assert len(_rows(world.inst, SubnetMapping)) == 1
