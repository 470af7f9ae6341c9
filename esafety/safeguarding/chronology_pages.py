"""Pages of a pupil's safeguarding chronology (issue 5 §5; STANDARDS R3): the chronology
with its filter form and a print stylesheet, the same as a PDF for a case conference,
and the list of pupils to find one by.

Every read goes through :func:`esafety.safeguarding.chronology.chronology` (access-checked
per concern and audited; 404 for one who may read none of the pupil's concerns and does
not act on concerns) or :func:`esafety.safeguarding.pupil_index.pupil_index` (through
``reading.list_concerns``, audited).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from esafety.errors import InvalidInput
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.chronology import ChronologyFilter, chronology, parse_filter
from esafety.safeguarding.chronology_entries import ENTRY_TYPE_LABELS, EntryType, local_time
from esafety.safeguarding.chronology_pdf import chronology_pdf
from esafety.safeguarding.pupil_index import pupil_index
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, require
from esafety.web.pages import render

__all__ = ["router"]

router = APIRouter()


@router.get("/safeguarding/pupils", response_class=HTMLResponse)
def pupils_page(
    request: Request,
    q: str = "",
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    """Pupils with concerns the caller may read, or a search by name (to open a
    chronology)."""
    search = q.strip()[:100]
    rows = pupil_index(session, search)
    context = {
        "rows": rows,
        "q": search,
        "acts": caller.can(Permission.ACT_ON_CONCERNS),
        "date": lambda moment: moment.strftime("%d %b %Y") if moment else "",
    }
    return render(request, "safeguarding/pupils.html", context, caller=caller)


def _filter(
    kind: list[str], type_: list[str], date_from: str, date_to: str
) -> tuple[ChronologyFilter, str | None]:
    try:
        return parse_filter(kind, type_, date_from, date_to), None
    except InvalidInput as exc:
        return ChronologyFilter(), str(exc)


@router.get("/safeguarding/pupils/{person_id}/chronology", response_class=HTMLResponse)
def chronology_page(
    request: Request,
    person_id: int,
    kind: list[str] = Query(default=[]),
    type_: list[str] = Query(default=[], alias="type"),
    date_from: str = Query("", alias="from"),
    date_to: str = Query("", alias="to"),
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> HTMLResponse:
    """The chronology, filterable; 404 for one who may read none of it."""
    chosen, error = _filter(kind, type_, date_from, date_to)
    chron = chronology(session, person_id, chosen)
    context = {
        "chron": chron,
        "error": error,
        "form": {
            "kinds": {k.value for k in chosen.kinds},
            "types": {t.value for t in chosen.types},
            "from": chosen.date_from.isoformat() if chosen.date_from else date_from,
            "to": chosen.date_to.isoformat() if chosen.date_to else date_to,
        },
        "kind_choices": [(k.value, kind_info(k).title) for k in chron.kinds_present],
        "type_choices": [(t.value, ENTRY_TYPE_LABELS[t]) for t in EntryType],
        "query": request.url.query,
        "local": lambda moment: local_time(moment, chron.zone),
        "day": lambda moment: moment.astimezone(chron.zone).strftime("%a %d %b %Y"),
        "clock": lambda moment: moment.astimezone(chron.zone).strftime("%H:%M"),
    }
    return render(
        request,
        "safeguarding/chronology.html",
        context,
        caller=caller,
        status_code=422 if error else 200,
    )


@router.get("/safeguarding/pupils/{person_id}/chronology.pdf", response_model=None)
def chronology_pdf_download(
    person_id: int,
    kind: list[str] = Query(default=[]),
    type_: list[str] = Query(default=[], alias="type"),
    date_from: str = Query("", alias="from"),
    date_to: str = Query("", alias="to"),
    caller: Caller = Depends(require(Permission.VIEW_CONCERNS)),
    session: Session = SchoolSession,
) -> Response:
    """The chronology as a PDF for a case conference (the export is audited)."""
    chosen = parse_filter(kind, type_, date_from, date_to)
    chron = chronology(session, person_id, chosen, purpose="export")
    stamp = datetime.now(chron.zone).strftime("%Y-%m-%d")
    # The file name carries the record's number, not the child's name (downloads folders
    # and e-mail attachments are seen by others).
    name = f"chronology-{person_id}-{stamp}.pdf"
    return Response(
        chronology_pdf(chron),
        media_type="application/pdf",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )
