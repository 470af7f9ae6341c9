"""A school's own policies: made from a built-in one, stored in the database, assigned
like the built-ins, and obeyed by the engine built from the database."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from esafety.audit import Actor
from esafety.errors import InvalidInput, NotFound, PermissionDenied
from esafety.filtering import asking, custom_policies
from esafety.filtering.categories import Category
from esafety.filtering.model import PolicyAssignment
from esafety.filtering.policy import Action, SafeSearch, built_in_policies
from esafety.filtering.service import rules_fingerprint
from esafety.installation import Installation
from esafety.security.roles import Role
from esafety.web.app import create_app
from esafety.web.deps import SESSION_COOKIE
from tests.accounts import make_school, session_and_csrf
from tests.filtering.exception_school import GAMES, MONDAY, ExceptionSchool, make_exception_school

NOON = MONDAY.replace(hour=12, minute=30)


@pytest.fixture
def school(inst: Installation, tmp_path: Path) -> ExceptionSchool:
    return make_exception_school(inst, tmp_path)


def test_made_on_the_command_line_and_assigned_like_a_built_in(
    school: ExceptionSchool, cli
) -> None:
    assert school.decide("ada.westpark", GAMES, NOON).action is Action.BLOCK
    r = cli(
        "filter", "policy", "create", "year5-games", "--school", "westpark",
        "--based-on", "ks2", "--name", "Year 5 (games at lunch)", "--block", "streaming",
        "--time", "allow games 12:00-13:00 mon-fri", "--safe-search", "child_only",
        "--reason", "Year 5 may play the school's maths games at lunchtime.",
    )  # fmt: skip
    assert r.code == 0, r.err
    r = cli("filter", "policy", "show", "year5-games", "--school", "westpark", "--json")
    shown = json.loads(r.out)
    assert shown["based_on"] == "ks2" and shown["custom"] is True
    assert "streaming" in shown["blocked"] and shown["safe_search"] == "child_only"
    assert shown["times"] == ["allow games 12:00-13:00 mon-fri"]
    listed = json.loads(cli("filter", "policy", "list", "--school", "westpark", "--json").out)
    assert [p["id"] for p in listed] == [*built_in_policies(), "year5-games"]
    # Another school does not have it.
    assert cli("filter", "policy", "show", "year5-games", "--json").code == 2

    r = cli(
        "filter", "policy", "assign", "year5-games", "--school", "westpark",
        "--year", "Year 5", "--reason", "Year 5's lunchtime games club.",
    )  # fmt: skip
    assert r.code == 0, r.err
    at_lunch = school.decide("ada.westpark", GAMES, NOON)
    assert at_lunch.action is Action.ALLOW and at_lunch.policy_id == "year5-games"
    after_lunch = school.decide("ada.westpark", GAMES, NOON + timedelta(hours=1))
    assert after_lunch.action is Action.BLOCK and "Year 5 (games at lunch)" in after_lunch.reason
    # Year 4 keeps the built-in policy.
    assert school.decide("cat.westpark", GAMES, NOON).policy_id == "ks2"
    r = cli("filter", "check", GAMES, "--group", "year5-games", "--school", "westpark",
            "--at", NOON.isoformat(), "--json")  # fmt: skip
    assert r.code == 0, r.err and json.loads(r.out)["action"] == "allow"

    r = cli("filter", "policy", "remove", "year5-games", "--school", "westpark", "--reason", "x")
    assert r.code == 2 and "still given to people" in r.err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"policy_id": "KS2"}, "'ks2' is a built-in policy"),
        ({"policy_id": "year 5"}, "use 1-60 lower-case letters"),
        ({"based_on": "year5"}, "based on 'year5': a policy is based on a built-in one"),
        ({"block": ["gamez"]}, "unknown category 'gamez'"),
        ({"block": ["games"], "allow": ["games"]}, "both blocked and allowed"),
        ({"times": ["allow games 13:00-12:00"]}, "the start must be before the end"),
        ({"times": ["allow games at lunch"]}, "write the times as 12:00-13:00"),
        ({"times": ["allow games 12:00-13:00 funday"]}, "days 'funday'"),
        ({"safe_search": "strict"}, "safe search 'strict': use one of off, on, child_only"),
        ({"reason": " "}, "give a reason"),
    ],
)
def test_a_bad_policy_is_refused_and_nothing_is_stored(
    school: ExceptionSchool, change: dict[str, Any], message: str
) -> None:
    arguments = {"policy_id": "year6", "based_on": "ks2", "reason": "Year 6 club.", **change}
    with pytest.raises(InvalidInput) as refused, school.session("tech") as session:
        custom_policies.create_policy(session, **arguments)
    assert message in str(refused.value)
    with school.session("tech") as session:
        assert [v.policy.id for v in custom_policies.list_policies(session)] == list(
            built_in_policies()
        )


def test_only_those_who_manage_the_filter_make_policies(school: ExceptionSchool) -> None:
    with pytest.raises(PermissionDenied), school.session("tom") as session:
        custom_policies.create_policy(session, "year6", based_on="ks2", reason="Year 6 club.")


def test_replacing_and_removing_and_the_engine_follows(school: ExceptionSchool) -> None:
    with school.session("tech") as session:
        before = rules_fingerprint(session)
        row = custom_policies.create_policy(
            session, "walled", based_on="eyfs", default="block", allow=["child_search"],
            reason="Nursery iPads reach only what we list.",
        )  # fmt: skip
        policy = custom_policies.policy_of(row)
        assert policy.default is Action.BLOCK and Category.CHILD_SEARCH in policy.allowed
        assert policy.safe_search is SafeSearch.CHILD_ONLY and policy.pupils
        with pytest.raises(InvalidInput, match="give --replace"):
            custom_policies.create_policy(session, "walled", based_on="eyfs", reason="again")
    with school.session("tech") as session:
        assert rules_fingerprint(session) != before  # the DNS filter builds a new engine
        asking.assign_policy(session, "walled", "group", "Willow")
    assert school.decide("cat.westpark", "www.bbc.co.uk", NOON).action is Action.BLOCK
    with school.session("tech") as session:
        custom_policies.create_policy(
            session, "walled", based_on="ks2", replace_existing=True, reason="Less strict now."
        )
    assert school.decide("cat.westpark", "www.bbc.co.uk", NOON).action is Action.ALLOW
    with school.session("tech") as session:
        with pytest.raises(NotFound):
            custom_policies.remove_policy(session, "nothing", "no reason needed")
        with pytest.raises(InvalidInput, match="built-in policy and cannot be removed"):
            custom_policies.remove_policy(session, "ks1", "no")
        row_id = session.scalars(
            select(PolicyAssignment.id).where(PolicyAssignment.policy_id == "walled")
        ).one()
    with school.session("tech") as session:
        asking.remove_assignment(session, row_id, "Back to the key stage policy.")
        custom_policies.remove_policy(session, "walled", "Not needed any more.")
    with (
        pytest.raises(InvalidInput, match="unknown policy 'walled'"),
        school.session("tech") as session,
    ):
        asking.assign_policy(session, "walled", "group", "Willow")


def test_the_policies_pages(inst: Installation) -> None:
    school = make_school(inst)
    with inst.db.session(Actor.system("t", school_id=school.id), school_id=school.id) as session:
        custom_policies.create_policy(
            session, "year3-4", based_on="ks2", name="Years 3 and 4", safe_search="child_only",
            times=["allow games 12:00-13:00 weekdays"], reason="003 §7.1: Swiggle to Year 4.",
        )  # fmt: skip
    with TestClient(create_app(inst), follow_redirects=False) as client:
        cookie, _ = session_and_csrf(inst, school[Role.TEACHER])
        client.cookies.set(SESSION_COOKIE, cookie)
        page = client.get("/filtering/policies")
        assert page.status_code == 200
        assert "Years 3 and 4" in page.text and "based on ks2" in page.text
        assert "allow games 12:00-13:00 mon-fri" in page.text
        detail = client.get("/filtering/policies/year3-4")
        assert detail.status_code == 200 and "Child-safe search engines only" in detail.text
        assert "Online games" in detail.text
        assert client.get("/filtering/policies/nothing").status_code == 404
        assert client.get("/filtering/policies/ks1").status_code == 200
