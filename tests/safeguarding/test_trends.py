"""Trends in concerns (issue 5 §7): the figures on a year of generated concerns, who sees
names and small numbers, staff allegations, the charts' safety under the CSP, the page."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from esafety.audit import AuditEntry
from esafety.directory.model import Person
from esafety.directory.years import YearGroup
from esafety.errors import InvalidInput
from esafety.safeguarding.concerns import About
from esafety.safeguarding.small_numbers import Figure, Withheld, protect
from esafety.safeguarding.trend_charts import bar_chart, stylesheet, unsafe_parts
from esafety.safeguarding.trend_counts import year_group_then
from esafety.safeguarding.trends import Breakdown, Period, Trends, TrendsView, trends
from esafety.security.roles import Role
from esafety.web.app import create_app
from esafety.web.deps import SESSION_COOKIE
from tests.accounts import session_and_csrf
from tests.safeguarding.trend_school import PERIOD, TODAY, TrendSchool, add, at, trend_school


@pytest.fixture
def ts(inst) -> TrendSchool:
    return trend_school(inst)


def seen_by(ts: TrendSchool, role: Role, period: Period = PERIOD) -> Trends:
    with ts.session(role) as session:
        return trends(session, period, today=TODAY)


def figures(breakdown: Breakdown) -> dict[str, str]:
    return {f.key: f.text for f in breakdown.figures}


# -- the figures ----------------------------------------------------------------------


def test_the_dsl_sees_every_figure_and_the_repeat_pupils_by_name(ts: TrendSchool) -> None:
    found = seen_by(ts, Role.DSL)
    assert found.view is TrendsView.FULL
    # Six in the period: not the one before it, not the other school's, not the allegation.
    assert found.total.count == 6
    # The changed kind counts as radicalisation, not pupil welfare; no online_hate (the
    # other school's).
    assert next(iter(figures(found.by_kind))) == "online_bullying"  # the commonest first
    assert figures(found.by_kind) == {
        "youth_produced_sexual_imagery": "1",
        "radicalisation": "1",
        "online_bullying": "3",
        "technology_misuse": "1",
    }
    months = figures(found.by_month)
    # Up to "today" (15 June 2025): July and August are still to come.
    assert list(months) == [f"{y}-{m:02d}" for y, m in PERIOD.months[:10]]
    # The March concern's date was corrected to December: it counts there.
    assert {k: v for k, v in months.items() if v != "0"} == {
        "2024-10": "2",
        "2024-11": "1",
        "2024-12": "1",
        "2025-01": "1",
        "2025-02": "1",
    }
    # Cal was unlinked from the December concern: Year 3 has only February's.
    assert figures(found.by_year_group) == {"year3": "1", "year5": "3", "year6": "3"}
    assert figures(found.by_location) == {
        "in_school": "1",
        "at_home": "1",
        "online": "3",
        "elsewhere": "0",
        "not_recorded": "1",
    }
    assert figures(found.by_status) == {"open": "4", "closed": "2"}
    assert found.repeat_pupils.count == 2
    assert [(p.name, p.year_group, p.concerns) for p in found.repeat_names] == [
        ("Amy Tester", "Year 5", 3),
        ("Ben Tester", "Year 6", 3),
    ]
    assert not found.allegations_counted


def test_another_period_counts_only_its_own_concerns(ts: TrendSchool) -> None:
    autumn = seen_by(ts, Role.DSL, Period(date(2024, 10, 1), date(2024, 10, 31)))
    assert autumn.total.count == 2
    assert figures(autumn.by_kind) == {"online_bullying": "2"}
    assert [p.name for p in autumn.repeat_names] == ["Amy Tester"]
    before = seen_by(ts, Role.DSL, Period(date(2024, 8, 1), date(2024, 8, 31)))
    assert before.total.count == 1 and before.repeat_pupils.count == 0


def test_the_headteacher_counts_staff_allegations_but_sees_no_names(ts: TrendSchool) -> None:
    found = seen_by(ts, Role.HEADTEACHER)
    assert found.view is TrendsView.SUMMARY
    assert found.allegations_counted
    assert found.total.count == 7
    assert figures(found.by_kind)["staff_allegation"] == "1"
    assert figures(found.by_year_group)["year3"] == "2"  # Cal, harmed in the allegation
    # Cal is now in two concerns too: a number, never a name.
    assert found.repeat_pupils.count == 3
    assert found.repeat_names == ()


def test_a_deputy_dsl_does_not_count_staff_allegations(ts: TrendSchool) -> None:
    found = seen_by(ts, Role.DEPUTY_DSL)
    assert not found.allegations_counted
    assert "staff_allegation" not in figures(found.by_kind)
    assert found.total.count == 6


def test_a_concern_about_the_reader_is_not_counted_for_them(ts: TrendSchool) -> None:
    add(
        ts.cs,
        at("2025-04-02"),
        "online_hate",
        [ts.amy.username, About(person=ts.cs[Role.DSL].username, part="harmed_others")],
    )
    assert seen_by(ts, Role.DSL).total.count == 6
    assert figures(seen_by(ts, Role.DEPUTY_DSL).by_kind)["online_hate"] == "1"


def test_governors_see_no_small_numbers_and_no_names(ts: TrendSchool) -> None:
    for role in (Role.GOVERNOR, Role.CHAIR_OF_GOVERNORS, Role.ONLINE_SAFETY_LEAD):
        found = seen_by(ts, role)
        assert found.view is TrendsView.PROTECTED
        assert found.repeat_names == ()
        assert found.repeat_pupils.withheld is Withheld.SMALL  # two pupils
        assert not found.allegations_counted
        for breakdown in found.breakdowns:
            for figure in breakdown.figures:
                assert figure.count is None or figure.count == 0 or figure.count >= 3, (
                    role,
                    breakdown.key,
                    figure,
                )
        kinds = {f.key: f for f in found.by_kind.figures}
        assert kinds["radicalisation"].text == "fewer than 3"
        assert figures(found.by_year_group)["year5"] == "3"  # 3 or more is shown


def test_protect_withholds_a_second_figure_when_the_total_gives_one_away() -> None:
    rows = [("bullying", "Online bullying", 30), ("hate", "Online hate", 8), ("ypsi", "YPSI", 2)]
    shown = {f.key: f for f in protect(rows, 40)}
    assert shown["ypsi"].withheld is Withheld.SMALL and shown["ypsi"].text == "fewer than 3"
    # 40 - 30 - 8 would be 2: the smallest other figure goes too.
    assert shown["hate"].withheld is Withheld.COMPLEMENT and shown["hate"].text == "not shown"
    assert shown["bullying"].count == 30
    # Two small figures that leave 3 between them could be 1 and 2 or 2 and 1: enough.
    two = {f.key: f for f in protect([("a", "A", 1), ("b", "B", 2), ("c", "C", 9)], 12)}
    assert two["c"].count == 9
    # Two that leave 2 can only be 1 and 1: the 9 goes too.
    ones = {f.key: f for f in protect([("a", "A", 1), ("b", "B", 1), ("c", "C", 9)], 11)}
    assert ones["c"].withheld is Withheld.COMPLEMENT
    # Nothing small: nothing withheld; no total: only the small ones.
    assert all(f.withheld is None for f in protect([("a", "A", 3), ("b", "B", 0)], 3))
    alone = protect([("a", "A", 1), ("b", "B", 5)], None)
    assert [f.withheld for f in alone] == [Withheld.SMALL, None]


# -- periods and year groups ------------------------------------------------------------


def test_the_period_is_this_academic_year_unless_chosen() -> None:
    assert Period.parse(None, "", today=date(2025, 3, 3)) == PERIOD
    assert Period.parse("", None, today=date(2024, 9, 1)) == PERIOD
    assert PERIOD.label == "the 2024–25 academic year"
    assert Period.parse("2025-01-01", "2025-01-31", today=TODAY).months == [(2025, 1)]
    with pytest.raises(InvalidInput, match="'from' date '1/9/2024' is not a date: write it"):
        Period.parse("1/9/2024", None, today=TODAY)
    with pytest.raises(InvalidInput, match=r"ends .* before it starts"):
        Period.parse("2025-02-01", "2025-01-01", today=TODAY)
    with pytest.raises(InvalidInput, match="at most 36 months"):
        Period.parse("2020-01-01", "2025-01-01", today=TODAY)


def test_the_year_group_at_the_time_steps_back_a_year_each_september() -> None:
    assert year_group_then(YearGroup.YEAR6, date(2025, 6, 1), date(2024, 6, 1)) == YearGroup.YEAR5
    assert year_group_then(YearGroup.YEAR6, date(2025, 6, 1), date(2024, 10, 1)) == YearGroup.YEAR6
    assert year_group_then(YearGroup.NURSERY, date(2025, 9, 5), date(2025, 7, 1)) is None
    assert year_group_then(None, date(2025, 6, 1), date(2025, 2, 1)) is None


def test_last_years_concerns_count_in_last_years_year_group(ts: TrendSchool) -> None:
    # A year on, Amy is in Year 6 on the register; in 2024-25 she was in Year 5.
    with ts.session(Role.DSL) as session:
        found = trends(session, PERIOD, today=date(2025, 10, 1))
    with ts.session(Role.DSL) as session:
        person = session.get(Person, ts.amy.id)
        assert person is not None
        person.year_group = YearGroup.YEAR6
    with ts.session(Role.DSL) as session:
        later = trends(session, PERIOD, today=date(2025, 10, 1))
    assert figures(found.by_year_group)["year4"] == "3"  # shifted from the old Year 5
    # Amy's and Ben's concerns now both fall in Year 5 (the one they share counts once).
    assert figures(later.by_year_group) == {"year2": "1", "year5": "5"}


def test_every_look_is_audited_with_the_pupils_named(ts: TrendSchool) -> None:
    seen_by(ts, Role.DSL)
    seen_by(ts, Role.GOVERNOR)
    with ts.inst.db.session() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "trends").order_by(AuditEntry.seq)
        ).all()
    assert [e.after["view"] for e in entries] == ["full", "protected"]
    assert entries[0].after["pupils_named"] == [ts.amy.id, ts.ben.id]
    assert entries[1].after["pupils_named"] == []


# -- the charts -------------------------------------------------------------------------


def test_charts_carry_no_script_no_style_and_no_address() -> None:
    breakdown = Breakdown(
        "kind",
        "Concerns by kind",
        (
            Figure("online_bullying", "Online bullying", 17),
            Figure("online_hate", "Online hate <b>&", 3),
            Figure("radicalisation", "Radicalisation", None, Withheld.SMALL),
        ),
    )
    for across in (True, False):
        svg = str(bar_chart(breakdown, across=across))
        assert unsafe_parts(svg) == []
        assert "<script" not in svg and "<style" not in svg and "style=" not in svg
        assert "http:" not in svg and "https:" not in svg and "//" not in svg
        assert 'role="img"' in svg and "trend-chart" in svg
        assert "<b>" not in svg and "Online hate &lt;b&gt;&amp;" in svg  # labels escaped
        assert ">17<" in svg
    assert "fewer than 3" in str(bar_chart(breakdown, across=True))
    # The check itself finds what pygal puts in by default.
    found = unsafe_parts('<svg style="x"><script>x()</script><!--http://pygal.org--></svg>')
    assert found == ["a <script>", "a style attribute", "the address http://pygal.org"]
    css = stylesheet()
    assert ".trend-chart" in css and "#chart-" not in css
    assert "http" not in css and "@import" not in css and "googleapis" not in css


# -- the page ---------------------------------------------------------------------------


@pytest.fixture
def client(inst) -> Iterator[TestClient]:
    with TestClient(create_app(inst), follow_redirects=False) as c:
        yield c


def as_role(client: TestClient, ts: TrendSchool, role: Role) -> None:
    cookie, _ = session_and_csrf(ts.inst, ts.cs[role])
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie)


QUERY = "?from=2024-09-01&to=2025-08-31"


def test_the_page_shows_the_dsl_charts_tables_and_names(ts: TrendSchool, client) -> None:
    as_role(client, ts, Role.DSL)
    page = client.get("/safeguarding/trends" + QUERY)
    assert page.status_code == 200, page.text
    assert page.text.count("<svg") >= 4 + 1  # four charts (and the brand mark)
    assert "<script" not in page.text and " style=" not in page.text
    assert f'href="/safeguarding/pupils/{ts.amy.id}/chronology">Amy Tester</a>' in page.text
    assert "Allegations about staff are not counted here" in page.text
    assert re.search(r"<td>Online bullying</td><td class=\"num\">3</td>", page.text)
    assert 'href="/safeguarding/trends"' in client.get("/").text  # in the navigation
    css = client.get("/safeguarding/trends/charts.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_the_page_hides_names_and_small_numbers_from_a_governor(ts: TrendSchool, client) -> None:
    as_role(client, ts, Role.GOVERNOR)
    page = client.get("/safeguarding/trends" + QUERY)
    assert page.status_code == 200, page.text
    assert "Amy" not in page.text and "Ben Tester" not in page.text
    assert "/chronology" not in page.text
    assert "fewer than 3" in page.text
    assert not re.search(r'<td class="num">[12]</td>', page.text)
    rows = list(csv.reader(io.StringIO(client.get("/safeguarding/trends.csv" + QUERY).text)))
    assert rows[0] == ["breakdown", "key", "label", "count"]
    assert ["kind", "radicalisation", "Risk of radicalisation or extremism", "fewer than 3"] in [
        r[:4] for r in rows
    ]
    assert all(r[3] not in ("1", "2") for r in rows[1:])


def test_the_page_is_refused_to_a_teacher(ts: TrendSchool, client) -> None:
    as_role(client, ts, Role.TEACHER)
    assert client.get("/safeguarding/trends").status_code == 403
    assert client.get("/safeguarding/trends.csv").status_code == 403


def test_a_bad_date_is_explained_on_the_page(ts: TrendSchool, client) -> None:
    as_role(client, ts, Role.DSL)
    page = client.get("/safeguarding/trends?from=someday")
    assert page.status_code == 422
    assert "is not a date: write it as YYYY-MM-DD" in page.text
