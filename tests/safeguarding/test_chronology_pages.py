"""The chronology pages (issue 5 §5): the page with its filter and print stylesheet, the
PDF download, the list of pupils, the link from a concern; 404 for those who may read
none of it, and every read and export audited."""

from __future__ import annotations

import html
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from esafety.audit import AuditEntry
from esafety.safeguarding import concerns
from esafety.security.roles import Role
from esafety.web.app import create_app
from esafety.web.deps import SESSION_COOKIE
from tests.accounts import Member, session_and_csrf
from tests.safeguarding.concern_people import MARKER, ConcernSchool, concern_school, record


@pytest.fixture
def cs(inst) -> ConcernSchool:
    return concern_school(inst)


@pytest.fixture
def client(inst) -> Iterator[TestClient]:
    with TestClient(create_app(inst), follow_redirects=False) as c:
        yield c


def as_member(client: TestClient, cs: ConcernSchool, who: Member | Role) -> None:
    member = cs[who] if isinstance(who, Role) else who
    cookie, _ = session_and_csrf(cs.inst, member)
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie)


def chronology_audit(cs: ConcernSchool) -> list[tuple[str, str, str | None]]:
    with cs.inst.db.session() as session:
        return [
            (r.actor, r.action, r.object_id)
            for r in session.scalars(
                select(AuditEntry)
                .where(AuditEntry.object_type == "chronology")
                .order_by(AuditEntry.seq)
            )
        ]


def test_the_dsl_reads_filters_and_prints_a_chronology(cs, client) -> None:
    pupil = cs[Role.PUPIL].id
    concern_id = record(cs)
    with cs.session(Role.DSL) as session:
        concerns.add_note(session, concern_id, "Rang home; mother will keep the messages.")
    as_member(client, cs, Role.DSL)
    page = client.get(f"/safeguarding/pupils/{pupil}/chronology")
    assert page.status_code == 200, page.text
    text = html.unescape(page.text)
    assert "CONFIDENTIAL — child protection" in text
    assert "Safeguarding chronology: Pupil Tester" in text
    assert MARKER in text and "Rang home; mother will keep the messages." in text
    assert f'href="/safeguarding/concerns/{concern_id}"' in page.text
    assert 'href="/static/chronology.css"' in page.text  # the print stylesheet
    assert f'href="/safeguarding/pupils/{pupil}/chronology.pdf"' in page.text
    assert 'id="blank-screen-button"' in page.text  # STANDARDS R5 on this record too

    notes = client.get(f"/safeguarding/pupils/{pupil}/chronology?type=note")
    assert notes.status_code == 200
    assert "Rang home" in notes.text and MARKER not in notes.text
    assert 'value="note" checked' in notes.text
    assert "/chronology.pdf?type=note" in notes.text  # the PDF keeps the filter

    wrong = client.get(f"/safeguarding/pupils/{pupil}/chronology?from=2025-03-10&to=2025-03-01")
    assert wrong.status_code == 422
    assert "the dates run backwards" in wrong.text

    css = client.get("/static/chronology.css")
    assert css.status_code == 200 and "@media print" in css.text


def test_the_pdf_downloads_and_the_export_is_audited(cs, client) -> None:
    pupil = cs[Role.PUPIL].id
    record(cs)
    as_member(client, cs, Role.DSL)
    answer = client.get(f"/safeguarding/pupils/{pupil}/chronology.pdf?kind=online_bullying")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"].startswith(
        f'attachment; filename="chronology-{pupil}-'
    )
    assert answer.headers["cache-control"] == "no-store"
    assert answer.content.startswith(b"%PDF-")
    assert chronology_audit(cs) == [(cs[Role.DSL].username, "export", str(pupil))]


def test_a_teacher_without_rights_gets_404_and_learns_nothing(cs, client) -> None:
    pupil = cs[Role.PUPIL]
    record(cs, Role.TEACHER)
    as_member(client, cs, cs.teacher2)
    for path in (
        f"/safeguarding/pupils/{pupil.id}/chronology",
        f"/safeguarding/pupils/{pupil.id}/chronology.pdf",
    ):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "Pupil Tester" not in answer.text and MARKER not in answer.text
    nobody = client.get("/safeguarding/pupils/999999/chronology")
    assert nobody.status_code == 404
    listed = client.get(f"/safeguarding/pupils?q={pupil.username}")
    assert listed.status_code == 200
    assert f"/safeguarding/pupils/{pupil.id}/chronology" not in listed.text
    assert "No pupil matches." in listed.text
    refused = [a for a in chronology_audit(cs) if a[0] == cs.teacher2.username]
    assert [a[1] for a in refused] == ["read_refused", "export_refused"]
    # The teacher who raised it reads it, from the concern page's link.
    as_member(client, cs, Role.TEACHER)
    assert client.get(f"/safeguarding/pupils/{pupil.id}/chronology").status_code == 200


def test_pupils_are_found_by_list_and_by_name_and_linked_from_a_concern(cs, client) -> None:
    pupil = cs[Role.PUPIL]
    concern_id = record(cs)
    as_member(client, cs, Role.DSL)
    listed = client.get("/safeguarding/pupils")
    assert listed.status_code == 200
    assert f'href="/safeguarding/pupils/{pupil.id}/chronology"' in listed.text
    assert f"/pupils/{cs.pupil2.id}/chronology" not in listed.text  # no concerns: not listed...
    found = client.get(f"/safeguarding/pupils?q={cs.pupil2.username}")
    assert f'href="/safeguarding/pupils/{cs.pupil2.id}/chronology"' in found.text  # ...found
    assert 'href="/safeguarding/pupils"' in client.get("/").text  # in the DSL's navigation
    concern_page = client.get(f"/safeguarding/concerns/{concern_id}")
    assert f'href="/safeguarding/pupils/{pupil.id}/chronology"' in concern_page.text
