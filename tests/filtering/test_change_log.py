"""The filter change log: every change to lists, policies, assignments, entries, networks,
exceptions and settings, with who, when, what and why; governors read it (002 §7.3)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from esafety.audit import Actor
from esafety.errors import InvalidInput, PermissionDenied
from esafety.filtering import asking, requests
from esafety.filtering.changes import Change, ChangeKind, change_log, changes_csv
from esafety.installation import Installation
from esafety.scheduler import run_due
from esafety.security.roles import Role
from esafety.web.app import create_app
from esafety.web.deps import SESSION_COOKIE
from tests.accounts import make_school, session_and_csrf
from tests.filtering.exception_school import (
    MONDAY,
    REASON,
    RISK,
    ExceptionSchool,
    make_exception_school,
)
from tests.pg import free_port


def _log(school: ExceptionSchool, who: str = "governor", **filters: object) -> list[Change]:
    with school.session(who) as session:
        return change_log(session, **filters)  # type: ignore[arg-type]


def _one(changes: list[Change], text: str) -> Change:
    found = [c for c in changes if text in c.what]
    assert len(found) == 1, f"{text!r} in {[c.what for c in changes]}"
    return found[0]


@pytest.fixture
def school(inst: Installation, tmp_path: Path) -> ExceptionSchool:
    return make_exception_school(inst, tmp_path)


def test_every_kind_of_change_says_who_when_what_and_why(
    inst: Installation, school: ExceptionSchool, tmp_path: Path, cli
) -> None:
    betting = tmp_path / "betting.txt"
    betting.write_text("bet.example\nodds.example\n")
    r = cli(
        "filter", "lists", "import", str(betting), "--format", "domains", "--category",
        "gambling", "--school", "westpark", "--name", "LA betting",
        "--reason", "The local authority's feed of betting sites.",
    )  # fmt: skip
    assert r.code == 0, r.err
    dead = f"http://127.0.0.1:{free_port()}/feed.txt"
    r = cli(
        "filter", "lists", "import", str(betting), "--format", "domains", "--category",
        "gambling", "--name", "Feed", "--url", dead,
    )  # fmt: skip
    assert r.code == 0, r.err
    assert cli("filter", "lists", "update", "--name", "Feed").code == 1  # kept the last copy
    r = cli(
        "filter", "policy", "create", "year6", "--school", "westpark", "--based-on", "ks2",
        "--allow", "games", "--reason", "Year 6 code games in their enrichment club.",
    )  # fmt: skip
    assert r.code == 0, r.err
    r = cli(
        "filter", "policy", "assign", "year6", "--school", "westpark", "--year", "Year 6",
        "--reason", "Year 6 enrichment club.",
    )  # fmt: skip
    assert r.code == 0, r.err
    with school.session("tech") as session:
        entry = asking.add_school_entry(session, "Quiz.Example", "block", "Answers to the SATs.")
        subnet = asking.add_subnet(session, "10.1.2.0/24", policy_id="ks1", note="KS1 iPads")
        assignment = asking.assign_policy(session, "ks1", "year", "Year 4")
    with school.session("tech") as session:
        asking.remove_school_entry(session, entry.id, "The SATs are over.")
        asking.remove_subnet(session, subnet.id, "The iPads moved to the Wi-Fi.")
        asking.remove_assignment(session, assignment.id, "Year 4 are ready for ks2.")
    with school.session("tom") as session:
        request = requests.request_unblock(
            session,
            "games.example",
            REASON,
            ["Oak"],
            MONDAY + timedelta(hours=2),
            MONDAY + timedelta(hours=3),
            now=MONDAY,
        )
    with school.session("head") as session:
        requests.approve(session, request.id, RISK, now=MONDAY)
        requests.change_settings(
            session,
            approver_role="dsl",
            warn_minutes=30,
            max_days=10,
            reason="The governors made the DSL the approver.",
        )
    for hour in (1.5, 2, 3):  # warns, starts and lapses, each on time
        run_due(inst, MONDAY + timedelta(hours=hour))

    changes = _log(school)
    seqs = [c.seq for c in changes]
    assert seqs == sorted(seqs, reverse=True)  # newest first
    betting_list = _one(changes, "Imported the school's list 'LA betting'")
    assert betting_list.kind is ChangeKind.LIST and "2 entries" in betting_list.what
    assert betting_list.why == "The local authority's feed of betting sites."
    assert betting_list.who == "the command line on the server"
    failed = _one(changes, "Could not update list 'Feed'")
    assert "could not download" in failed.why
    policy = _one(changes, "Made policy year6")
    assert policy.kind is ChangeKind.POLICY and "allowing games" in policy.what
    assert policy.why == "Year 6 code games in their enrichment club."
    given = _one(changes, "Gave policy year6 to Year 6")
    assert given.why == "Year 6 enrichment club."
    blocked = _one(changes, "Blocked quiz.example for everyone")
    assert (blocked.who, blocked.why) == ("Tech Staff (tech.westpark)", "Answers to the SATs.")
    assert _one(changes, "Removed the school's block entry for quiz.example").why == (
        "The SATs are over."
    )
    assert _one(changes, "Devices on network 10.1.2.0/24 now count as policy ks1").why == (
        "KS1 iPads"
    )
    assert _one(changes, "Removed the mapping of network 10.1.2.0/24").why == (
        "The iPads moved to the Wi-Fi."
    )
    assert _one(changes, "Took policy ks1 away from Year 4").why == "Year 4 are ready for ks2."
    asked = _one(changes, "asked to unblock games.example for Oak")
    assert asked.who == "Tom Staff (tom.westpark)" and asked.why == REASON
    approved = _one(changes, f"Approved exception #{request.id}")
    assert approved.who == "Head Staff (head.westpark)" and RISK in approved.why
    assert approved.link == f"/filtering/requests/{request.id}"
    warned = _one(changes, f"Pre-warning sent for exception #{request.id}")
    assert warned.who == "esafety, on time (scheduled)"
    assert _one(changes, f"Exception #{request.id} for games.example began")
    lapsed = _one(changes, f"Exception #{request.id} for games.example ended on time")
    assert "back to the normal filter" in lapsed.why
    settings = _one(changes, "unblock requests are approved by the Designated safeguarding lead")
    assert settings.kind is ChangeKind.SETTINGS
    assert settings.why == "The governors made the DSL the approver."
    assert all(c.at.tzinfo is not None for c in changes)

    only = _log(school, kinds=["exception"])
    assert only and {c.kind for c in only} == {ChangeKind.EXCEPTION}
    assert _log(school, since=MONDAY.replace(year=2100)) == []

    r = cli("filter", "changes", "--school", "westpark", "--json", "--kind", "policy")
    assert r.code == 0, r.err
    lines = [json.loads(line) for line in r.out.splitlines()]
    assert {line["kind"] for line in lines} == {"policy"}
    assert lines[0]["why"] == "Year 6 code games in their enrichment club."
    assert cli("filter", "changes", "--school", "westpark", "--since", "tomorrow").code == 2


def test_the_log_is_for_those_who_oversee_the_filter(school: ExceptionSchool) -> None:
    for who in ("governor", "head", "dsl", "osl", "tech"):
        _log(school, who)
    with pytest.raises(PermissionDenied, match="read the filter change log"):
        _log(school, "tom")
    with pytest.raises(InvalidInput, match="kind of change 'lists'"):
        _log(school, kinds=["lists"])


def test_another_schools_changes_are_not_shown(
    inst: Installation, school: ExceptionSchool, tmp_path: Path
) -> None:
    other = make_exception_school(inst, tmp_path, "eastfield")
    with other.session(Actor.system("test", school_id=other.id)) as session:
        asking.add_school_entry(session, "theirs.example", "allow", "Their own reason.")
    with school.session(Actor.system("test", school_id=school.id)) as session:
        asking.add_school_entry(session, "ours.example", "allow", "Our own reason.")
    whats = [c.what for c in _log(school)]
    assert "Allowed ours.example for everyone" in whats
    assert not any("theirs.example" in w for w in whats)
    # Lists every school shares are in every school's log.
    assert any("Imported a shared list 'Games eastfield'" in w for w in whats)


def test_a_change_without_a_reason_says_so() -> None:
    change = Change(1, MONDAY, "someone", ChangeKind.ENTRY, '=HYPERLINK("x")', "-1+1")
    rows = list(csv.reader(io.StringIO(changes_csv([change]))))
    assert rows[0] == ["when (UTC)", "who", "kind", "what", "why"]
    assert rows[1][3].startswith("'=") and rows[1][4] == "'-1+1"  # no formulas in a spreadsheet


@pytest.fixture
def web(inst: Installation) -> Iterator[TestClient]:
    with TestClient(create_app(inst), follow_redirects=False) as client:
        yield client


def test_governors_read_it_on_the_web_and_download_it(inst: Installation, web: TestClient) -> None:
    school = make_school(inst)
    tech = school[Role.TECHNICIAN]
    actor = Actor(tech.username, tech.id, school.id, frozenset({"technician"}))
    with inst.db.session(actor, school_id=school.id) as session:
        asking.add_school_entry(session, "cmd.example", "block", "Not for school: see the AUP.")
    for role, status in [(Role.GOVERNOR, 200), (Role.CHAIR_OF_GOVERNORS, 200), (Role.TEACHER, 403)]:
        cookie, _ = session_and_csrf(inst, school[role])
        web.cookies.clear()
        web.cookies.set(SESSION_COOKIE, cookie)
        page = web.get("/filtering/changes")
        assert page.status_code == status, (role, page.text[:300])
    page = web.get("/filtering/changes", params={"kind": "entry", "start": "2000-01-01"})
    assert page.status_code == 403  # still the teacher
    cookie, _ = session_and_csrf(inst, school[Role.GOVERNOR])
    web.cookies.clear()
    web.cookies.set(SESSION_COOKIE, cookie)
    page = web.get("/filtering/changes", params={"kind": "entry", "start": "2000-01-01"})
    assert "Blocked cmd.example for everyone" in page.text
    assert "Not for school: see the AUP." in page.text and "Technician Tester" in page.text
    assert "Filter change log" in web.get("/").text  # a governor's way in
    bad = web.get("/filtering/changes", params={"start": "last week"})
    assert bad.status_code == 422 and "give a date such as" in bad.text
    exported = web.get("/filtering/changes.csv", params={"kind": "entry"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[1][1] == "Technician Tester (technician.oakfield)"
    assert rows[1][4] == "Not for school: see the AUP."
