"""The trends page (issue 5 §7): figures and charts of the concerns of a period, for the
DSL, deputies, the headteacher, governors and the online safety lead, each seeing what
:mod:`esafety.safeguarding.trends` lets them; the charts' stylesheet; and the figures as
CSV for a governors' report.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlalchemy.orm import Session

from esafety.db import utcnow
from esafety.directory.calendar import school_zone
from esafety.directory.model import School
from esafety.directory.years import YearGroup
from esafety.errors import InvalidInput
from esafety.safeguarding.trend_charts import SHORT_KINDS, bar_chart, stylesheet
from esafety.safeguarding.trends import Breakdown, Period, Trends, TrendsView, trends
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, require
from esafety.web.pages import render

__all__ = ["router"]

router = APIRouter()

#: Which breakdowns are drawn with bars across (long labels) and which upright.
_ACROSS = {"kind": True, "location": True, "month": False, "year_group": False}


@dataclass(frozen=True)
class Section:
    breakdown: Breakdown
    chart: Markup | None


def _today(session: Session, caller: Caller) -> date:
    school = session.get(School, caller.school_id)
    zone = school_zone(school.timezone if school is not None else "Europe/London")
    return utcnow().astimezone(zone).date()


def _month_names(found: Trends) -> dict[str, str]:
    """Short month names under the bars: "Sep", or "Sep 2025" over more than a year."""
    months = found.period.months
    fmt = "%b" if len(months) <= 12 else "%b %Y"
    return {f"{y}-{m:02d}": date(y, m, 1).strftime(fmt) for y, m in months}


#: Year groups as schools write them under a narrow bar: Nur, Rec, Y1 ... Y13.
_SHORT_YEARS = {
    YearGroup.NURSERY.value: "Nur",
    YearGroup.RECEPTION.value: "Rec",
    **{
        y.value: "Y" + y.value.removeprefix("year") for y in YearGroup if y.value.startswith("year")
    },
}


def _sections(found: Trends) -> list[Section]:
    short = {**SHORT_KINDS, **_month_names(found), **_SHORT_YEARS}
    sections = []
    for breakdown in found.breakdowns:
        across = _ACROSS.get(breakdown.key)
        chart = None
        # Nothing to draw in a period without concerns: the tables say so.
        if across is not None and breakdown.figures and found.total.count != 0:
            chart = bar_chart(breakdown, across=across, short=short)
        sections.append(Section(breakdown, chart))
    return sections


def _periods(today: date) -> dict[str, Period]:
    this = Period.academic_year(today)
    return {
        "This academic year": this,
        "Last academic year": Period.academic_year(this.start - timedelta(days=1)),
    }


@router.get("/safeguarding/trends", response_class=HTMLResponse)
def trends_page(
    request: Request,
    caller: Caller = Depends(require(Permission.VIEW_CONCERN_TRENDS)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    today = _today(session, caller)
    chosen_from = request.query_params.get("from", "")
    chosen_to = request.query_params.get("to", "")
    context: dict[str, Any] = {
        "chosen_from": chosen_from,
        "chosen_to": chosen_to,
        "periods": _periods(today),
        "TrendsView": TrendsView,
    }
    try:
        period = Period.parse(chosen_from, chosen_to, today=today)
    except InvalidInput as exc:
        context |= {"error": str(exc), "found": None}
        return render(request, "safeguarding/trends.html", context, caller=caller, status_code=422)
    found = trends(session, period, today=today)
    context |= {
        "found": found,
        "sections": _sections(found),
        "chosen_from": chosen_from or period.start.isoformat(),
        "chosen_to": chosen_to or period.end.isoformat(),
        "csv_query": f"from={period.start.isoformat()}&to={period.end.isoformat()}",
    }
    return render(request, "safeguarding/trends.html", context, caller=caller)


@router.get("/safeguarding/trends/charts.css", response_model=None)
def charts_stylesheet(
    _caller: Caller = Depends(require(Permission.VIEW_CONCERN_TRENDS)),
) -> Response:
    return Response(stylesheet(), media_type="text/css")


@router.get("/safeguarding/trends.csv", response_model=None)
def trends_csv(
    request: Request,
    caller: Caller = Depends(require(Permission.VIEW_CONCERN_TRENDS)),
    session: Session = SchoolSession,
) -> Response:
    """The figures the caller sees, one per line (withheld ones in words, never a number),
    for a report to governors. No names, whoever asks."""
    today = _today(session, caller)
    period = Period.parse(
        request.query_params.get("from"), request.query_params.get("to"), today=today
    )
    found = trends(session, period, today=today)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["breakdown", "key", "label", "count"])
    writer.writerow(["total", "total", found.total.label, found.total.text])
    for breakdown in found.breakdowns:
        for figure in breakdown.figures:
            writer.writerow([breakdown.key, figure.key, figure.label, figure.text])
    writer.writerow(
        ["repeat_pupils", "repeat", found.repeat_pupils.label, found.repeat_pupils.text]
    )
    name = f"concern-trends-{period.start.isoformat()}-to-{period.end.isoformat()}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )
