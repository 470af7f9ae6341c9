"""The trends page in a real browser against `esafety serve --demo` (issue 5 "the trends
page shows charts"): a year of concerns is put in the demo school's database, then the
DSL opens the page and a governor does; the charts draw under the app's CSP (no
console errors), and the governor sees no names and no small numbers."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select

from esafety.audit import Actor
from esafety.demo import DEMO_SLUG
from esafety.directory.model import Person, PersonKind, School
from esafety.installation import Installation
from esafety.safeguarding import concerns
from esafety.safeguarding.trends import Period
from tests.conftest import make_settings
from tests.e2e.conftest import RunningServer
from tests.e2e.test_browser_sign_in import _demo_login, _sign_in

pytestmark = pytest.mark.e2e

KINDS = (
    ["online_bullying"] * 9
    + ["technology_misuse"] * 6
    + ["filtering_breach"] * 4
    + ["pupil_welfare"] * 3
    + ["online_hate", "online_hate", "radicalisation", "youth_produced_sexual_imagery"]
)
PLACES = ["online", "online", "in_school", "at_home", None]


def _fill_the_year(tmp_path: Path, database_url: str | None) -> list[str]:
    """Concerns in the demo school since 1 September, with a few pupils again and again;
    the names of the pupils in more than one."""
    inst = Installation(make_settings(tmp_path / "data", database_url))
    try:
        with inst.db.session() as session:
            school = session.scalars(select(School).where(School.slug == DEMO_SLUG)).one()
            pupils = session.scalars(
                select(Person)
                .where(Person.school_id == school.id, Person.kind == PersonKind.PUPIL)
                .order_by(Person.id)
            ).all()
            usernames = {p.id: (p.username, p.display_name) for p in pupils}
        now = datetime.now(UTC)
        start = datetime.combine(Period.academic_year(now.date()).start, datetime.min.time(), UTC)
        span = max((now - start).total_seconds() - 3600, 3600)
        chooser = random.Random(5)
        repeaters = chooser.sample(sorted(usernames), 3)
        counts: dict[int, int] = {}
        actor = Actor.system("test-trends", school_id=school.id)
        for number, kind in enumerate(KINDS):
            pupil = repeaters[number % 3] if number % 2 else chooser.choice(sorted(usernames))
            counts[pupil] = counts.get(pupil, 0) + 1
            with inst.db.session(actor) as session:
                concerns.record_concern(
                    session,
                    kind=kind,
                    narrative="What the pupil said, in their own words, for the trends test.",
                    happened_at=start + timedelta(seconds=chooser.uniform(0, span)),
                    about=[usernames[pupil][0]],
                    location=PLACES[number % len(PLACES)],
                )
        return [usernames[p][1] for p, n in counts.items() if n > 1]
    finally:
        inst.close()


def test_the_dsl_and_a_governor_see_the_trends(
    server: RunningServer, browser, shots: Path, tmp_path: Path, database_url: str | None
) -> None:
    repeated = _fill_the_year(tmp_path, database_url)
    assert len(repeated) >= 3

    username, password, secret = _demo_login(server, "DSL")
    assert secret is not None
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    _sign_in(page, server, username, password)
    page.wait_for_url(re.compile(r"/two-step"))
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(server.url + "/")
    page.get_by_role("link", name="Trends").click()
    page.wait_for_url(server.url + "/safeguarding/trends")
    text = page.inner_text("body")
    assert re.search(rf"\b{len(KINDS)}\s+concerns", text)
    charts = page.locator("svg.trend-chart")
    assert charts.count() == 4
    for chart in charts.all():
        box = chart.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 150
    # pygal's stylesheet applied (from /safeguarding/trends/charts.css): the bars are teal.
    fill = page.locator("svg.trend-chart .series rect").first.evaluate(
        "el => getComputedStyle(el).fill"
    )
    assert fill == "rgb(29, 92, 99)"
    for name in repeated:
        assert page.get_by_role("link", name=name).count() == 1
    page.screenshot(path=str(shots / "trends-dsl.png"), full_page=True)
    assert not problems, problems  # the CSP refused nothing
    context.close()

    username, password, _ = _demo_login(server, "Governor")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = context.new_page()
    _sign_in(page, server, username, password)
    page.wait_for_url(server.url + "/")
    page.goto(server.url + "/safeguarding/trends")
    text = page.inner_text("body")
    assert "fewer than 3" in text
    assert not any(name in text for name in repeated)
    assert page.locator("svg.trend-chart").count() == 4
    page.screenshot(path=str(shots / "trends-governor.png"), full_page=True)
    context.close()
