"""Reports of sites (issue 4 §9): from the block page's buttons (a signed token, rate-limited)
and from staff pages; read and resolved by the technician and the DSL."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from esafety.audit import SYSTEM
from esafety.errors import PermissionDenied
from esafety.events import subscribe
from esafety.filtering import reports
from esafety.filtering.blockpage import REPORTS_PER_HOUR
from esafety.filtering.reports import SiteReported, check_report_token, report_token
from esafety.filtering.reports_model import ReportKind, ReportSource, ReportStatus, SiteReport
from esafety.installation import Installation
from esafety.security.roles import Role
from esafety.web.deps import SESSION_COOKIE
from tests.accounts import session_and_csrf
from tests.filtering.blockpage_world import DEVICES, BlockWorld, build_world

PAGE = {"accept": "text/html"}
SECRET = b"an installation secret"


@pytest.fixture
def world(inst: Installation, tmp_path: Path) -> BlockWorld:
    return build_world(inst, tmp_path / "lists")


def _rows(inst: Installation) -> list[SiteReport]:
    with inst.db.session(SYSTEM) as session:
        rows = list(session.scalars(select(SiteReport).order_by(SiteReport.id)))
        session.expunge_all()
        return rows


def _form(html: str) -> dict[str, str]:
    """The hidden fields of the block page's report form."""
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))


def _press(world: BlockWorld, device: str, host: str, button: str, **changes: str):
    """Load the block page on ``device`` and press one of its buttons (``kind``)."""
    with world.client(device) as client:
        page = client.get("/", headers={**PAGE, "host": host})
        fields = {**_form(page.text), "kind": button, **changes}
        return client.post("/.esafety/report", data=fields, headers={**PAGE, "host": host})


# -- the token ----------------------------------------------------------------------------


def test_a_token_is_good_for_its_site_and_device_for_half_an_hour() -> None:
    issued = int(time.time())
    token = report_token(SECRET, "blocked.example", "10.0.0.1", issued)
    check_report_token(SECRET, "blocked.example", "10.0.0.1", str(issued), token)
    check_report_token(
        SECRET, "blocked.example", "10.0.0.1", str(issued), token, now=issued + 29 * 60
    )
    refused = [
        ("blocked.example", "10.0.0.1", str(issued), token, issued + 31 * 60, "expired"),
        ("other.example", "10.0.0.1", str(issued), token, issued, "did not come"),
        ("blocked.example", "10.0.0.2", str(issued), token, issued, "did not come"),
        ("blocked.example", "10.0.0.1", str(issued + 1), token, issued, "did not come"),
        ("blocked.example", "10.0.0.1", "soon", token, issued, "did not come"),
        ("blocked.example", "10.0.0.1", str(issued), "0" * 64, issued, "did not come"),
        ("blocked.example", "10.0.0.1", str(issued), "", issued, "did not come"),
    ]
    for site, client, when, given, now, words in refused:
        with pytest.raises(PermissionDenied, match=words):
            check_report_token(SECRET, site, client, when, given, now=now)
    other_secret = report_token(b"another installation", "blocked.example", "10.0.0.1", issued)
    with pytest.raises(PermissionDenied):
        check_report_token(SECRET, "blocked.example", "10.0.0.1", str(issued), other_secret)


def test_the_rate_limiter_counts_per_key_within_its_window() -> None:
    now = [1000.0]
    limiter = reports.RateLimiter(3, 60.0, clock=lambda: now[0], max_keys=4)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")
    now[0] += 61
    assert limiter.allow("a")
    for key in "cdefgh":  # more keys than it keeps: it forgets, it does not fail
        assert limiter.allow(key)


# -- from the block page ------------------------------------------------------------------


def test_i_think_this_is_wrong_records_a_report_with_the_decision(world: BlockWorld) -> None:
    heard: list[SiteReported] = []
    stop = subscribe(SiteReported, heard.append)
    try:
        answer = _press(world, "year5", "blocked.example", "wrongly_blocked",
                        comment="For <b>maths</b> homework")  # fmt: skip
    finally:
        stop()
    assert answer.status_code == 303
    assert answer.headers["location"] == "/.esafety/thanks?kind=wrongly_blocked"
    (row,) = _rows(world.inst)
    assert row.site == "blocked.example" and row.kind is ReportKind.WRONGLY_BLOCKED
    assert row.source is ReportSource.BLOCK_PAGE and row.status is ReportStatus.OPEN
    assert row.client == DEVICES["year5"] and row.comment == "For <b>maths</b> homework"
    assert row.decision_action == "block" and row.categories == ("gambling",)
    assert row.decision_rule == "blocked.example" and row.decision_policy == "ks2"
    assert row.url is not None and row.url.startswith("http://blocked.example/")
    with world.inst.db.session(SYSTEM) as session:
        from esafety.directory.model import Person

        reporter = session.get(Person, row.reporter_id)
        assert reporter is not None and reporter.username == world.pupils["year5"]
    assert [(e.report_id, e.kind, e.categories) for e in heard] == [
        (row.id, "wrongly_blocked", ("gambling",))
    ]
    with world.client("year5") as client:
        thanks = client.get(answer.headers["location"], headers={**PAGE, "host": "blocked.example"})
    assert thanks.status_code == 200 and "Thank you for telling us" in thanks.text


def test_a_ks1_pupil_is_thanked_in_their_words(world: BlockWorld) -> None:
    answer = _press(world, "year1", "social.example", "should_be_blocked")
    with world.client("year1") as client:
        thanks = client.get(answer.headers["location"], headers={**PAGE, "host": "social.example"})
    assert "Thank you for telling us!" in thanks.text
    assert "Now tell your teacher or a trusted adult too." in thanks.text
    (row,) = _rows(world.inst)
    assert row.kind is ReportKind.SHOULD_BE_BLOCKED and row.decision_policy == "ks1"


def test_an_unknown_device_reports_without_a_reporter(world: BlockWorld) -> None:
    assert _press(world, "nobody", "blocked.example", "wrongly_blocked").status_code == 303
    (row,) = _rows(world.inst)
    assert row.reporter_id is None and row.client == DEVICES["nobody"]


def test_an_illegal_list_block_is_kept_neutrally_in_the_report(world: BlockWorld) -> None:
    assert _press(world, "teacher", "hidden.example", "wrongly_blocked").status_code == 303
    (row,) = _rows(world.inst)
    assert row.decision_action == "block"
    assert row.decision_rule == reports.ILLEGAL_RULE and row.categories == ()


@pytest.mark.parametrize(
    ("changes", "status", "words"),
    [
        ({"token": "f" * 64}, 403, "did not come from this page"),
        ({"token": ""}, 403, "did not come from this page"),
        ({"issued": str(int(time.time()) - 3600)}, 403, "did not come from this page"),
        ({"kind": "boring"}, 400, "use wrongly_blocked"),
    ],
)
def test_a_forged_or_broken_report_is_refused_and_nothing_is_kept(
    world: BlockWorld, changes: dict[str, str], status: int, words: str
) -> None:
    answer = _press(world, "year5", "blocked.example", "wrongly_blocked", **changes)
    assert answer.status_code == status and words in answer.text
    assert "Your report was not sent" in answer.text
    assert _rows(world.inst) == []


def test_an_expired_page_says_to_reload(world: BlockWorld) -> None:
    issued = int(time.time()) - 31 * 60
    token = report_token(world.inst.settings.secret(), "blocked.example", DEVICES["year5"], issued)
    answer = _press(world, "year5", "blocked.example", "wrongly_blocked",
                    token=token, issued=str(issued))  # fmt: skip
    assert answer.status_code == 403 and "reload the page" in answer.text
    assert _rows(world.inst) == []


def test_another_devices_token_and_another_sites_token_are_refused(world: BlockWorld) -> None:
    with world.client("year5") as client:
        fields = _form(client.get("/", headers={**PAGE, "host": "blocked.example"}).text)
        elsewhere = client.post(
            "/.esafety/report",
            data={**fields, "kind": "wrongly_blocked"},
            headers={**PAGE, "host": "social.example"},
        )
    assert elsewhere.status_code == 403
    with world.client("year1") as client:
        stolen = client.post(
            "/.esafety/report",
            data={**fields, "kind": "wrongly_blocked"},
            headers={**PAGE, "host": "blocked.example"},
        )
    assert stolen.status_code == 403
    assert _rows(world.inst) == []


def test_the_same_report_again_is_one_report_and_a_device_is_rate_limited(
    world: BlockWorld,
) -> None:
    with world.client("year5") as client:
        page = client.get("/", headers={**PAGE, "host": "blocked.example"})
        fields = {**_form(page.text), "kind": "wrongly_blocked"}
        answers = [
            client.post(
                "/.esafety/report",
                data={**fields, "comment": f"try {n}"},
                headers={**PAGE, "host": "blocked.example"},
            ).status_code
            for n in range(REPORTS_PER_HOUR + 1)
        ]
    assert answers == [303] * REPORTS_PER_HOUR + [429]
    (row,) = _rows(world.inst)  # one report, each new comment added to it
    assert row.comment.splitlines() == [f"try {n}" for n in range(REPORTS_PER_HOUR)]


def test_a_big_form_is_refused(world: BlockWorld) -> None:
    answer = _press(world, "year5", "blocked.example", "wrongly_blocked", comment="x" * 20_000)
    assert answer.status_code == 413 and _rows(world.inst) == []


# -- staff pages --------------------------------------------------------------------------


def _as(world: BlockWorld, client, role: Role) -> dict[str, str]:
    cookie, csrf = session_and_csrf(world.inst, world.school[role])
    client.cookies.set(SESSION_COOKIE, cookie)
    return {"x-csrf-token": csrf}


def test_staff_report_a_site_from_their_own_page(world: BlockWorld) -> None:
    with world.client("teacher") as client:
        headers = _as(world, client, Role.TEACHER)
        form = client.get("/filtering/reports/new?site=https://Quiz.Example.COM/round1")
        assert form.status_code == 200 and 'value="https://Quiz.Example.COM/round1"' in form.text
        missing = client.post(
            "/filtering/reports", data={"site": "quiz.example.com"}, headers=headers
        )
        assert missing.status_code == 422 and "choose whether" in missing.text
        bad = client.post(
            "/filtering/reports",
            data={"site": "not a site!", "kind": "should_be_blocked"},
            headers=headers,
        )
        assert bad.status_code == 422 and _rows(world.inst) == []
        sent = client.post(
            "/filtering/reports",
            data={
                "site": "https://Quiz.Example.COM/round1",
                "kind": "should_be_blocked",
                "comment": "Adverts with unsuitable pictures",
            },
            headers=headers,
        )
        assert sent.status_code == 303
        done = client.get(sent.headers["location"])
        assert "your report has gone to the IT technician and the DSL" in done.text
        assert client.get("/filtering/reports").status_code == 403  # teachers do not read them
    (row,) = _rows(world.inst)
    assert row.site == "quiz.example.com" and row.url == "https://Quiz.Example.COM/round1"
    assert (
        row.source is ReportSource.STAFF_PAGE and row.reporter_id == world.school[Role.TEACHER].id
    )
    assert row.decision_action == "allow" and row.decision_policy == "staff"


def test_the_technician_reads_open_reports_first_and_resolves_them(world: BlockWorld) -> None:
    _press(world, "year5", "blocked.example", "wrongly_blocked")
    _press(world, "year1", "social.example", "should_be_blocked")
    first, second = _rows(world.inst)
    with world.client("teacher") as client:
        headers = _as(world, client, Role.TECHNICIAN)
        listing = client.get("/filtering/reports")
        assert listing.status_code == 200
        assert "2</strong> open reports" in listing.text
        assert listing.text.index("social.example") < listing.text.index("blocked.example")
        empty = client.post(
            f"/filtering/reports/{first.id}/resolve", data={"outcome": " "}, headers=headers
        )
        assert empty.status_code == 422 and "say what was done" in empty.text
        done = client.post(
            f"/filtering/reports/{first.id}/resolve",
            data={"outcome": "Left blocked: betting"},
            headers=headers,
        )
        assert done.status_code == 303
        again = client.post(
            f"/filtering/reports/{first.id}/resolve", data={"outcome": "Again"}, headers=headers
        )
        assert again.status_code == 422 and "already resolved" in again.text
        open_only = client.get("/filtering/reports").text
        assert "blocked.example" not in open_only and "social.example" in open_only
        everything = client.get("/filtering/reports?show=all").text
        assert everything.index("social.example") < everything.index("blocked.example")
        assert "Left blocked: betting" in everything
        _as(world, client, Role.DSL)
        assert client.get("/filtering/reports").status_code == 200
    resolved = {row.id: row for row in _rows(world.inst)}[first.id]
    assert resolved.status is ReportStatus.RESOLVED and resolved.outcome == "Left blocked: betting"
    assert resolved.resolved_by_id == world.school[Role.TECHNICIAN].id
    assert resolved.resolved_at is not None
    assert {row.id: row for row in _rows(world.inst)}[second.id].status is ReportStatus.OPEN


def test_the_command_line_lists_reports(world: BlockWorld, cli) -> None:
    _press(world, "year5", "blocked.example", "wrongly_blocked")
    _press(world, "nobody", "social.example", "should_be_blocked")
    with world.inst.db.session(SYSTEM) as session:
        session.info["school_id"] = world.school.id
        row = reports.list_reports(session)[-1]
        reports.resolve_report(session, row.id, "Checked")
    listed = cli("filter", "reports", "--json")
    assert listed.code == 0, listed.err
    lines = [json.loads(line) for line in listed.out.splitlines()]
    assert [(r["site"], r["status"]) for r in lines] == [
        ("social.example", "open"),
        ("blocked.example", "resolved"),
    ]
    assert lines[1]["decision"] == {
        "action": "block",
        "categories": ["gambling"],
        "rule": "blocked.example",
        "policy": "ks2",
    }
    only_open = cli("filter", "reports", "--open", "--json")
    assert [json.loads(line)["site"] for line in only_open.out.splitlines()] == ["social.example"]
    table = cli("filter", "reports", "--school", "westpark")
    assert table.code == 0 and "social.example" in table.out and "Checked" in table.out


def test_another_schools_report_cannot_be_resolved(world: BlockWorld) -> None:
    from esafety.audit import Actor
    from tests.accounts import make_school

    other = make_school(world.inst, "beta")
    with world.inst.db.session(Actor.system("test", school_id=other.id)) as session:
        theirs = reports.record_report(
            session,
            site="beta.example",
            kind=ReportKind.SHOULD_BE_BLOCKED,
            source=ReportSource.STAFF_PAGE,
            decision=None,
        ).id
    with world.client("teacher") as client:
        headers = _as(world, client, Role.TECHNICIAN)
        answer = client.post(
            f"/filtering/reports/{theirs}/resolve", data={"outcome": "Mine now"}, headers=headers
        )
        assert answer.status_code == 404
        assert "beta.example" not in client.get("/filtering/reports?show=all").text
    (row,) = _rows(world.inst)
    assert row.status is ReportStatus.OPEN and row.outcome is None


def test_a_volunteer_who_cannot_read_the_lists_still_reports_with_the_decision(
    world: BlockWorld,
) -> None:
    with world.client("teacher") as client:
        headers = _as(world, client, Role.VOLUNTEER)
        assert client.get("/filtering").status_code == 403  # the lists are not theirs to read
        sent = client.post(
            "/filtering/reports",
            data={"site": "bets.example", "kind": "should_be_blocked"},
            headers=headers,
        )
        assert sent.status_code == 303, sent.text
    (row,) = _rows(world.inst)
    assert row.reporter_id == world.school[Role.VOLUNTEER].id
    assert row.decision_action == "block" and row.categories == ("gambling",)
