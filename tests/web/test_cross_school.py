"""No route reaches another school's rows: every route that takes an id is asked, by a
person of one school holding every role, for the rows of another school, by session and
(for the API) by token. The routes come from the app, so a new route with an id is covered
too: this test fails until it knows a row of another school for each new kind of id."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from esafety.audit import Actor, AuditEntry
from esafety.directory import registers
from esafety.filtering import asking, custom_policies, requests
from esafety.filtering import reports as site_reports
from esafety.filtering.alerts import FilterAlertRaised, store_alert
from esafety.filtering.reports_model import ReportKind, ReportSource
from esafety.installation import Installation
from esafety.safeguarding.attachments import add_attachment
from esafety.safeguarding.concerns import record_concern
from esafety.safeguarding.transfer import start_transfer
from esafety.safeguarding.whisper import send_worry
from esafety.security.roles import Role
from esafety.security.tokens import create_token
from esafety.web.app import create_app
from esafety.web.deps import SESSION_COOKIE
from tests.accounts import add_member, make_school, session_and_csrf


def _other_school(inst: Installation) -> tuple[int, dict[str, int]]:
    beta = make_school(inst, "beta")
    actor = Actor.system("test", school_id=beta.id)
    pupil = beta[Role.PUPIL].id
    with inst.db.session(actor) as session:
        flag = registers.set_pupil_flag(session, pupil, "send", "needs a reader")
        restriction = registers.add_technology_restriction(
            session, pupil, "parents asked", date.today() + timedelta(days=30)
        )
        grant = registers.grant_access(session, pupil, "Wi-Fi")
        ids = {"flag_id": flag.id, "restriction_id": restriction.id, "grant_id": grant.id}
    with inst.db.session(actor, school_id=beta.id) as session:
        entry = asking.add_school_entry(session, "beta-only.example", "allow", "their choice")
        assignment = asking.assign_policy(session, "ks1", "year", "Year 3")
        subnet = asking.add_subnet(session, "10.9.0.0/16", policy_id="ks1", note="their iPads")
        ids |= {"entry_id": entry.id, "assignment_id": assignment.id, "subnet_id": subnet.id}
        alert = store_alert(
            session,
            FilterAlertRaised(
                beta.id, "", "10.9.0.7", "beta-alert.example", "beta-alert.example",
                ("extremism",), "beta-alert.example", "ks2",
                datetime.now(UTC), datetime.now(UTC), 1,
            ),
            timedelta(minutes=10),
        )  # fmt: skip
        ids["alert_id"] = alert.id
        report = site_reports.record_report(
            session,
            site="beta-report.example",
            kind=ReportKind.WRONGLY_BLOCKED,
            source=ReportSource.STAFF_PAGE,
            decision=None,
        )
        ids["report_id"] = report.id
        policy = custom_policies.create_policy(
            session, "beta-only", based_on="ks2", block=["games"], reason="their own policy"
        )
        ids["policy_id"] = policy.policy_id  # type: ignore[assignment]
    teacher = beta[Role.TEACHER]
    asking_actor = Actor(teacher.username, teacher.id, beta.id, frozenset({"teacher"}))
    with inst.db.session(asking_actor, school_id=beta.id) as session:
        soon = datetime.now(UTC) + timedelta(days=1)
        unblock = requests.request_unblock(
            session,
            "beta-games.example",
            "Their Year 3 class will use this site for a science lesson on magnets.",
            ["role:pupil"],
            soon,
            soon + timedelta(hours=1),
        )
        ids["request_id"] = unblock.id
        concern = record_concern(
            session,
            kind="online_bullying",
            narrative="Beta's own concern about a group chat.",
            happened_at=datetime.now(UTC) - timedelta(hours=1),
            about=[beta[Role.PUPIL].username],
        )
        attached = add_attachment(session, inst.attachments, concern.id, "a.pdf", b"%PDF-1.4\n")
        ids |= {"concern_id": concern.id, "attachment_id": attached.id}
    # A pupil's private link (esafety.safeguarding.whisper): beta's, opened from alpha.
    worry = send_worry(inst.db, beta.id, what="Beta's own worry.", secret=inst.settings.secret())
    ids["token"] = worry.token  # type: ignore[assignment]
    # A pupil's child-protection file transfer (esafety.safeguarding.transfer).
    with inst.db.session(actor, school_id=beta.id) as session:
        moving = start_transfer(session, pupil, destination_name="Beta's pupil's new school")
        ids["transfer_id"] = moving.id
    _, token = create_token(inst, beta[Role.DSL].id, "beta's token", actor=actor)
    return beta.id, {**ids, "person_id": pupil, "token_id": token.id}


def _changes(inst: Installation, school_id: int) -> int:
    with inst.db.session() as session:
        count = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.school_id == school_id, AuditEntry.action != "read")
        )
    return count or 0


def test_no_route_reaches_another_schools_rows(inst: Installation) -> None:
    alpha = make_school(inst, "alpha")
    everything = add_member(
        inst, alpha.id, "everything.alpha", [r for r in Role if r is not Role.PUPIL]
    )
    beta_id, theirs = _other_school(inst)
    before = _changes(inst, beta_id)
    cookie, csrf = session_and_csrf(inst, everything)
    token, _ = create_token(
        inst, everything.id, "mine", actor=Actor.system("test", school_id=alpha.id)
    )
    app = create_app(inst)
    routes = [
        (method, ctx.path)
        for ctx in iter_route_contexts(app.routes)
        if ctx.path and "{" in ctx.path
        for method in sorted(ctx.methods or ())
        if method != "HEAD"
    ]
    assert len(routes) >= 10
    form = {"csrf_token": csrf, "reason": "checking", "confirm": "yes"}
    with TestClient(app, follow_redirects=False) as client:
        for method, path in routes:
            names = re.findall(r"\{([^}:]+)", path)
            unknown = [n for n in names if n not in theirs]
            assert not unknown, f"{path}: give this test a row of another school for {unknown}"
            url = re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda m: str(theirs[m.group(1)]), path)
            ways = [({"x-csrf-token": csrf}, {SESSION_COOKIE: cookie})]
            if path.startswith("/api/"):
                ways.append(({"authorization": f"Bearer {token}"}, {}))
            for headers, cookies in ways:
                client.cookies.clear()
                for name, value in cookies.items():
                    client.cookies.set(name, value)
                body = {"data": form} if not path.startswith("/api/") else {"json": form}
                response = client.request(
                    method, url, headers=headers, **(body if method == "POST" else {})
                )
                assert response.status_code == 404, (
                    f"{method} {url} ({'token' if 'authorization' in headers else 'session'}) "
                    f"answered {response.status_code}: {response.text[:300]}"
                )
    assert _changes(inst, beta_id) == before, "a route changed another school's rows"
