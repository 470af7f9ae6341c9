"""Unblock requests: asking with a reason, approval by the school's approver (never one's
own), an exception only for its groups and times, warned before, lapsing on time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from esafety.audit import Actor
from esafety.db import utcnow
from esafety.directory.model import Person
from esafety.errors import InvalidInput, NotFound, PermissionDenied
from esafety.events import subscribe
from esafety.filtering import requests
from esafety.filtering import service as filtering
from esafety.filtering.changes import FilterRulesChanged
from esafety.filtering.decision import EngineHolder
from esafety.filtering.dns_service import DnsBridge, WhoIsWhere
from esafety.filtering.log import DecisionLog, query
from esafety.filtering.policy import Action
from esafety.filtering.requests_model import UnblockRequest, UnblockState
from esafety.filtering.service import build_engine
from esafety.filtering.store import ListStore
from esafety.installation import Installation
from esafety.mail import MAIL_JOB, OutgoingMail
from esafety.notices import Notice
from esafety.scheduler import ScheduledJob, run_due
from tests.filtering.exception_school import (
    GAMES,
    MONDAY,
    REASON,
    RISK,
    ExceptionSchool,
    make_exception_school,
)
from tests.smtp import smtp_server, use_smtp

TEN = MONDAY + timedelta(hours=2)  # 10:00
ELEVEN = MONDAY + timedelta(hours=3)


@pytest.fixture
def school(inst: Installation, tmp_path: Path) -> ExceptionSchool:
    return make_exception_school(inst, tmp_path)


def ask(
    school: ExceptionSchool,
    who: str = "tom",
    *,
    site: str = "https://WWW.Games.Example/",
    reason: str = REASON,
    groups: tuple[str, ...] = ("Oak",),
    starts=TEN,
    ends=ELEVEN,
) -> int:
    with school.session(who) as session:
        return requests.request_unblock(session, site, reason, groups, starts, ends, now=MONDAY).id


def approve(school: ExceptionSchool, request_id: int, who: str = "head", now=MONDAY) -> None:
    with school.session(who) as session:
        requests.approve(session, request_id, RISK, now=now)


def count(school: ExceptionSchool, model: type) -> int:
    with school.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def state(school: ExceptionSchool, request_id: int) -> UnblockState:
    with school.session() as session:
        row = session.scalars(select(UnblockRequest).where(UnblockRequest.id == request_id)).one()
        return row.state


# -- asking -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reason": "research"}, "too short: say in a full sentence"),
        ({"reason": "  "}, "educational reason is empty"),
        ({"groups": ()}, "choose at least one class, year group or key stage"),
        ({"groups": ("Narnia",)}, "group 'Narnia': name a class or group"),
        ({"site": "exa mple..com"}, "site"),
        ({"site": ""}, "site is empty"),
        ({"ends": TEN - timedelta(minutes=1)}, "the end must be after the start"),
        ({"ends": TEN + timedelta(days=15)}, "at most 14 days"),
        ({"starts": MONDAY - timedelta(hours=1)}, "is in the past"),
    ],
)
def test_a_bad_request_is_refused_with_its_fix_and_nothing_is_stored(
    school: ExceptionSchool, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        ask(school, **change)
    assert message in str(refused.value)
    assert count(school, UnblockRequest) == 0
    assert count(school, Notice) == 0


def test_a_request_names_the_site_groups_and_times_and_asks_the_approver(
    school: ExceptionSchool,
) -> None:
    request_id = ask(school, groups=("Oak", "Year 5", "ks2", "year:year5"))
    with school.session() as session:
        row = session.scalars(select(UnblockRequest)).one()
        assert row.id == request_id and row.target == "www.games.example"
        assert row.state is UnblockState.REQUESTED
        assert [g["label"] for g in row.groups] == ["Oak", "Year 5", "KS2"]  # no duplicate
        assert (row.starts_at, row.ends_at) == (TEN, ELEVEN)
        assert row.requested_by == "Tom Staff"
        asked = session.scalars(select(Notice)).all()
    assert {n.person_id for n in asked} == {school["head"].person_id}
    assert "please decide" in asked[0].text and asked[0].link == f"/filtering/requests/{request_id}"


def test_a_site_on_an_illegal_content_list_cannot_be_requested(
    school: ExceptionSchool, tmp_path: Path
) -> None:
    """No approval could lift it (illegal lists come before exceptions), so it is refused
    at once, without naming the list, and nothing is stored or sent."""
    listed = tmp_path / "iwf.txt"
    listed.write_text("abuse.example\n")
    with school.session(Actor.system("test")) as session:
        filtering.import_list(session, ListStore(school.inst.data_dir), listed, "domains",
                              "pornography", name="IWF test list", illegal=True)  # fmt: skip
    with school.session() as session:
        engine = build_engine(session, ListStore(school.inst.data_dir))
    for site in ("https://www.abuse.example/page", "ABUSE.example"):
        with pytest.raises(InvalidInput) as refused, school.session("tom") as session:
            requests.request_unblock(
                session, site, REASON, ("Oak",), TEN, ELEVEN, now=MONDAY, engine=engine
            )
        message = str(refused.value)
        assert "on an illegal-content list, which nothing can unblock" in message
        assert "IWF test list" not in message
    assert count(school, UnblockRequest) == 0
    assert count(school, Notice) == 0
    with school.session("tom") as session:  # the same engine: other sites are asked for
        row = requests.request_unblock(
            session, "games.example", REASON, ("Oak",), TEN, ELEVEN, now=MONDAY, engine=engine
        )
        assert row.state is UnblockState.REQUESTED


def test_naive_times_are_the_schools_local_time(school: ExceptionSchool) -> None:
    summer = MONDAY.replace(month=6, day=2)  # BST: 10:00 in London is 09:00 UTC
    with school.session("tom") as session:
        row = requests.request_unblock(
            session,
            GAMES,
            REASON,
            ["Oak"],
            summer.replace(hour=10, tzinfo=None),
            summer.replace(hour=11, tzinfo=None),
            now=summer.replace(hour=7),
        )
        assert row.starts_at == summer.replace(hour=9)


# -- who approves -------------------------------------------------------------------------


def test_a_teacher_cannot_approve(school: ExceptionSchool) -> None:
    request_id = ask(school)
    with (
        pytest.raises(PermissionDenied, match="approve unblock requests"),
        school.session("wendy") as session,
    ):
        requests.approve(session, request_id, RISK, now=MONDAY)
    assert state(school, request_id) is UnblockState.REQUESTED


def test_nobody_approves_their_own_request(school: ExceptionSchool) -> None:
    request_id = ask(school, "head")
    with (
        pytest.raises(PermissionDenied, match="nobody approves their own request"),
        school.session("head") as session,
    ):
        requests.approve(session, request_id, RISK, now=MONDAY)
    assert state(school, request_id) is UnblockState.REQUESTED
    # The approver asked: the DSL decides instead (and was asked to).
    with school.session() as session:
        asked = {n.person_id for n in session.scalars(select(Notice))}
    assert school["dsl"].person_id in asked and school["head"].person_id not in asked
    approve(school, request_id, "dsl")
    assert state(school, request_id) is UnblockState.APPROVED


def test_the_approver_is_the_schools_setting(school: ExceptionSchool) -> None:
    first = ask(school)
    with (
        pytest.raises(PermissionDenied, match="approved by the headteacher"),
        school.session("osl") as session,
    ):
        requests.approve(session, first, RISK, now=MONDAY)
    with pytest.raises(PermissionDenied), school.session("dsl") as session:
        requests.change_settings(
            session, approver_role="online_safety_lead", warn_minutes=30, max_days=5, reason="x"
        )
    with school.session("head") as session:
        with pytest.raises(InvalidInput, match="approver 'teacher': choose one of"):
            requests.change_settings(
                session, approver_role="teacher", warn_minutes=30, max_days=5, reason="no"
            )
        requests.change_settings(
            session,
            approver_role="online_safety_lead",
            warn_minutes=45,
            max_days=5,
            reason="Governors agreed the online safety lead decides (meeting of 1 March).",
        )
    with (
        pytest.raises(PermissionDenied, match="approved by the online safety lead"),
        school.session("head") as session,
    ):
        requests.approve(session, first, RISK, now=MONDAY)
    approve(school, first, "osl")
    assert state(school, first) is UnblockState.APPROVED
    with pytest.raises(InvalidInput, match="at most 5 days"):
        ask(school, ends=TEN + timedelta(days=6))


def test_refusing_needs_a_risk_assessment_and_a_reason(school: ExceptionSchool) -> None:
    request_id = ask(school)
    with pytest.raises(InvalidInput, match="reason"), school.session("head") as session:
        requests.refuse(session, request_id, RISK, " ", now=MONDAY)
    with school.session("head") as session:
        requests.refuse(session, request_id, RISK, "It shows adverts for loot boxes.", now=MONDAY)
    assert state(school, request_id) is UnblockState.REFUSED
    with school.session() as session:
        told = session.scalars(
            select(Notice).where(Notice.person_id == school["tom"].person_id)
        ).one()
    assert "refused" in told.text and "loot boxes" in told.text
    with pytest.raises(InvalidInput, match="already refused"), school.session("head") as session:
        requests.approve(session, request_id, RISK, now=MONDAY)


def test_approving_needs_a_risk_assessment_in_sentences(school: ExceptionSchool) -> None:
    request_id = ask(school)
    with pytest.raises(InvalidInput, match="risk assessment"), school.session("head") as session:
        requests.approve(session, request_id, "fine", now=MONDAY)
    assert state(school, request_id) is UnblockState.REQUESTED


# -- the exception in the engine ----------------------------------------------------------


def test_the_exception_is_only_for_its_groups_and_only_in_its_time(
    school: ExceptionSchool,
) -> None:
    request_id = ask(school, groups=("Oak",))
    inside = TEN + timedelta(minutes=30)
    assert school.decide("ada.westpark", GAMES, inside).action is Action.BLOCK  # not approved
    approve(school, request_id)
    decision = school.decide("ada.westpark", "www.games.example", inside)
    assert decision.action is Action.ALLOW and decision.under_exception
    assert decision.rule == f"exception #{request_id}"
    assert decision.reason.startswith(f"Allowed under exception #{request_id}")
    assert "asked for Oak by Tom Staff, approved by Head Staff" in decision.reason
    # Another Year 5 class, another year, and the wrong times: the normal decision.
    assert school.decide("ben.westpark", "www.games.example", inside).action is Action.BLOCK
    assert school.decide("cat.westpark", "www.games.example", inside).action is Action.BLOCK
    before = school.decide("ada.westpark", "www.games.example", TEN - timedelta(seconds=1))
    assert before.action is Action.BLOCK and not before.under_exception
    assert school.decide("ada.westpark", "www.games.example", ELEVEN).action is Action.BLOCK
    # Only the site asked for: the list's other site stays blocked.
    assert school.decide("ada.westpark", "other-games.example", inside).action is Action.BLOCK


def test_a_year_group_exception_covers_every_class_of_that_year(school: ExceptionSchool) -> None:
    approve(school, ask(school, groups=("Year 5",), site=GAMES))
    inside = TEN + timedelta(minutes=5)
    assert school.decide("ada.westpark", GAMES, inside).action is Action.ALLOW
    assert school.decide("ben.westpark", GAMES, inside).action is Action.ALLOW
    assert school.decide("cat.westpark", GAMES, inside).action is Action.BLOCK


def test_the_decision_log_says_under_exception(school: ExceptionSchool, tmp_path: Path) -> None:
    request_id = ask(school)
    approve(school, request_id)
    with school.session() as session:
        from esafety.filtering import asking

        engine = build_engine(session, ListStore(school.inst.data_dir))
        asker, _ = asking.asker_for_username(session, "ada.westpark")
    moment = (TEN + timedelta(minutes=1)).timestamp()
    where = WhoIsWhere({"10.0.0.5": (asker, moment + 3600)}, usernames={"10.0.0.5": "ada"})
    logged = DecisionLog(tmp_path / "log")
    bridge = DnsBridge(EngineHolder(engine), where, clock=lambda: moment, log=logged)
    assert bridge.decide("10.0.0.5", "www.games.example", 1).action == "allow"
    logged.flush()
    (row,) = query(tmp_path / "log")
    assert row.under_exception and row.rule == f"exception #{request_id}"
    assert row.person == "ada" and row.action == "allow"


# -- on time ------------------------------------------------------------------------------


def _jobs(school: ExceptionSchool) -> list[tuple[str, object]]:
    with school.session() as session:
        rows = session.scalars(
            select(ScheduledJob).where(ScheduledJob.done_at.is_(None)).order_by(ScheduledJob.run_at)
        )
        return [(job.kind, job.run_at) for job in rows]


def _notified(school: ExceptionSchool, key: str) -> set[int]:
    with school.session() as session:
        return set(session.scalars(select(Notice.person_id).where(Notice.key == key)))


def test_it_warns_starts_and_lapses_on_time_even_after_a_restart(
    inst: Installation, school: ExceptionSchool
) -> None:
    published: list[FilterRulesChanged] = []
    stop = subscribe(FilterRulesChanged, published.append)
    try:
        request_id = ask(school, groups=("Oak",))
        approve(school, request_id)
        assert published, "approval tells the filters to build their engine again"
        assert _jobs(school) == [
            (requests.WARN_JOB, TEN - timedelta(minutes=30)),
            (requests.START_JOB, TEN),
            (requests.LAPSE_JOB, ELEVEN),
        ]
        assert run_due(inst, TEN - timedelta(minutes=31)) == []
        # The server restarts: the jobs are rows, and a new process runs them on time.
        inst.close()
        again = Installation(inst.settings)
        try:
            school.inst = again
            (warned,) = run_due(again, TEN - timedelta(minutes=30))
            assert warned.ok and warned.kind == requests.WARN_JOB
            people = _notified(school, f"unblock:{request_id}:warned")
            # The requester (also Oak's teacher) and the DSL; not Willow's teacher.
            assert people == {school["tom"].person_id, school["dsl"].person_id}
            assert state(school, request_id) is UnblockState.APPROVED

            (started,) = run_due(again, TEN)
            assert started.ok and state(school, request_id) is UnblockState.ACTIVE
            assert run_due(again, ELEVEN - timedelta(seconds=1)) == []
            before = len(published)
            (lapsed,) = run_due(again, ELEVEN)
            assert lapsed.ok and state(school, request_id) is UnblockState.LAPSED
            assert len(published) == before + 1
            assert _notified(school, f"unblock:{request_id}:ended") == {school["tom"].person_id}
            with school.session() as session:
                assert requests.approved_exceptions(session) == ()
            assert school.decide("ada.westpark", GAMES, TEN).action is Action.BLOCK
            assert run_due(again, ELEVEN + timedelta(days=1)) == []
        finally:
            again.close()
    finally:
        stop()


def test_the_warning_goes_at_approval_when_that_is_sooner(school: ExceptionSchool) -> None:
    request_id = ask(school, groups=("Year 4",))
    approve(school, request_id, now=TEN - timedelta(minutes=10))
    assert _notified(school, f"unblock:{request_id}:warned") == {
        school["tom"].person_id,
        school["wendy"].person_id,  # Willow is a Year 4 class
        school["dsl"].person_id,
    }
    assert [kind for kind, _ in _jobs(school)] == [requests.START_JOB, requests.LAPSE_JOB]


def test_the_warning_goes_by_e_mail_to_those_warned_who_have_an_address(
    inst: Installation, school: ExceptionSchool
) -> None:
    with school.session() as session:
        for person in session.scalars(select(Person)):
            if person.username.split(".")[0] in ("tom", "wendy", "head"):  # not the DSL
                person.email = f"{person.username}@westpark.example"
    request_id = ask(school, groups=("Oak",))
    approve(school, request_id)
    with smtp_server() as inbox:
        use_smtp(inst, inbox.port)
        (warned,) = run_due(inst, TEN - timedelta(minutes=30))
        assert warned.kind == requests.WARN_JOB and warned.ok
        with school.session() as session:
            queued = session.scalars(select(OutgoingMail)).all()
        # Warned: tom (asked; Oak's teacher) and the DSL, who has no address. Not Wendy
        # (Willow) and not the head (approved, but is not among those warned).
        assert [mail.recipient for mail in queued] == ["tom.westpark@westpark.example"]
        sent = run_due(inst, utcnow() + timedelta(minutes=1))  # the mail job, due now
        assert [job.kind for job in sent if job.kind == MAIL_JOB] == [MAIL_JOB]
    (got,) = inbox.received
    assert got.recipients == ["tom.westpark@westpark.example"]
    assert f"Filter exception #{request_id}: www.games.example unblocked for Oak" in got.subject
    assert "Supervise its use" in got.text and f"/filtering/requests/{request_id}" in got.text


def test_revoked_early_the_filter_is_back_to_normal(
    inst: Installation, school: ExceptionSchool
) -> None:
    request_id = ask(school)
    approve(school, request_id)
    run_due(inst, TEN)
    assert state(school, request_id) is UnblockState.ACTIVE
    with pytest.raises(PermissionDenied, match="you cannot"), school.session("wendy") as session:
        requests.revoke(session, request_id, "Not my class.", now=TEN)
    with school.session("dsl") as session:
        requests.revoke(session, request_id, "A pupil found a chat room on it.", now=TEN)
    assert state(school, request_id) is UnblockState.REVOKED
    assert school.decide("ada.westpark", GAMES, TEN + timedelta(minutes=1)).action is Action.BLOCK
    assert _jobs(school) == []  # the lapse job has nothing left to do
    assert run_due(inst, ELEVEN) == []
    assert _notified(school, f"unblock:{request_id}:ended") == {school["tom"].person_id}


def test_a_waiting_request_is_withdrawn_by_the_person_who_asked(school: ExceptionSchool) -> None:
    request_id = ask(school)
    with pytest.raises(PermissionDenied), school.session("wendy") as session:
        requests.withdraw(session, request_id, "Lesson moved.", now=MONDAY)
    with school.session("tom") as session:
        requests.withdraw(session, request_id, "The lesson moved to next week.", now=MONDAY)
    assert state(school, request_id) is UnblockState.WITHDRAWN
    with pytest.raises(InvalidInput, match="withdrawn"), school.session("head") as session:
        requests.approve(session, request_id, RISK, now=MONDAY)


def test_requests_are_seen_by_the_requester_the_approver_and_overseers(
    school: ExceptionSchool,
) -> None:
    request_id = ask(school)
    for who in ("tom", "head", "dsl", "governor", "tech"):
        with school.session(who) as session:
            assert requests.get_request(session, request_id).id == request_id
    with pytest.raises(PermissionDenied), school.session("wendy") as session:
        requests.get_request(session, request_id)
    with school.session("head") as session:
        lists = requests.request_lists(session)
        assert [r.id for r in lists.waiting_for_me] == [request_id] and lists.mine == []
    with school.session("wendy") as session:
        lists = requests.request_lists(session)
        assert lists.mine == lists.waiting_for_me == lists.current == []


def test_another_schools_request_is_out_of_reach(
    inst: Installation, school: ExceptionSchool, tmp_path: Path
) -> None:
    other = make_exception_school(inst, tmp_path, "eastfield")
    request_id = ask(school)
    with pytest.raises(NotFound, match="no unblock request"), other.session("head") as session:
        requests.approve(session, request_id, RISK, now=MONDAY)
    with other.session(Actor.system("test", school_id=other.id)) as session:
        assert requests.approved_exceptions(session) == ()
