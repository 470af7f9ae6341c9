"""The chronology as a PDF for a case conference (issue 5 §5 "Done when": the chronology PDF
of a pupil with 50 concerns renders, and its pages were looked at as images).

Every page is rendered to PNG under ``$ESAFETY_SCREENSHOTS/chronology-pdf`` when that is
set (else the test's own directory), for a person to look at."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from esafety.audit import Actor
from esafety.directory.model import Person
from esafety.directory.years import YearGroup
from esafety.safeguarding import concerns
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.chronology import chronology
from esafety.safeguarding.chronology_pdf import chronology_pdf, font_files
from esafety.safeguarding.concerns import About
from esafety.security.roles import Role
from tests.safeguarding.concern_people import ConcernSchool, concern_school

NAME = "Zoë Łukasz-O’Brien"
KINDS = ("online_bullying", "pupil_welfare", "technology_misuse", "online_hate")
LONG = (
    "Zoë said: “He keeps sending me messages at night, and he said he would share the "
    "photo with everyone in Year 8 if I did not send another one.” She showed me the chat "
    "on her phone; the account is called dark_knight_2011 and the link it sent was "
    "https://example.invalid/" + "a" * 90 + " . "
)


def the_pupil(cs: ConcernSchool) -> int:
    pupil = cs[Role.PUPIL].id
    with cs.inst.db.session(Actor.system("test", school_id=cs.id)) as session:
        person = session.get(Person, pupil)
        assert person is not None
        person.legal_first_name, person.legal_last_name = NAME.split(" ", 1)
        person.date_of_birth = date(2012, 9, 14)
        person.year_group = YearGroup.YEAR8
    return pupil


def fifty_concerns(cs: ConcernSchool) -> None:
    """50 concerns over a year, each with steps and notes; one narrative runs pages long."""
    start = datetime.now(UTC) - timedelta(days=365)
    for number in range(50):
        kind = KINDS[number % len(KINDS)]
        narrative = LONG * (40 if number == 7 else 1 + number % 3)
        with cs.session(Role.TEACHER) as session:
            concern = concerns.record_concern(
                session,
                kind=kind,
                narrative=f"#{number}: {narrative}",
                happened_at=start + timedelta(days=7 * number),
                about=[About(person=cs[Role.PUPIL].username)]
                + ([About(person=cs.pupil2.username, part="witness")] if number % 5 == 0 else []),
                location="online",
                location_detail="Snapchat",
                action_taken="Told the DSL in person at once.",
            )
            concern_id = concern.id
        with cs.session(Role.DSL) as session:
            first = kind_info(kind).steps[0]
            concerns.record_step(
                session,
                concern_id,
                first.id,
                choice=first.decision.choices[0].id if first.decision else None,
                rationale="Her mother agreed to keep the messages" if first.decision else None,
                note="Screenshots kept by her mother; the school did not copy the images.",
            )
            concerns.add_note(
                session, concern_id, f"Spoke to Zoë and her mother (note {number}). → next steps"
            )


def screenshots(tmp_path: Path) -> Path:
    base = os.environ.get("ESAFETY_SCREENSHOTS")
    where = (Path(base) if base else tmp_path) / "chronology-pdf"
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture
def cs(inst) -> ConcernSchool:
    return concern_school(inst)


def test_a_pupil_with_fifty_concerns_prints_as_a_paged_confidential_pdf(cs, tmp_path) -> None:
    pupil = the_pupil(cs)
    fifty_concerns(cs)
    with cs.session(Role.DSL) as session:
        chron = chronology(session, pupil, purpose="export")
    assert len(chron.concerns) == 50
    data = chronology_pdf(chron)
    assert data.startswith(b"%PDF-")

    where = screenshots(tmp_path)
    (where / "chronology.pdf").write_bytes(data)
    document = pdfium.PdfDocument(data)
    try:
        pages = len(document)
        assert pages > 1
        texts = []
        for index in range(pages):
            page = document[index]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_range())
            image = page.render(scale=1.6).to_pil()
            image.save(where / f"page-{index + 1:03}.png")
            image.close()
            textpage.close()
            page.close()
    finally:
        document.close()

    first = texts[0]
    assert "CONFIDENTIAL" in first
    assert "Safeguarding chronology" in first
    assert f"Page 1 of {pages}" in first
    assert f"Page {pages} of {pages}" in texts[-1]
    assert "born 14 Sep 2012" in first and "Year 8" in first
    assert "Printed by" in first and cs[Role.DSL].username in first
    if font_files() is not None:  # Unicode text where the machine has a TrueType font
        assert NAME in first
        assert "CONFIDENTIAL — child protection" in first
    else:
        assert "Zo" in first
    # Every page says what it is and whose it is.
    assert all("CONFIDENTIAL" in text and "Year 8" in text for text in texts)
    # The long narrative wraps and runs on across pages: nothing is cut off.
    whole = " ".join(texts)
    assert whole.count("dark_knight_2011") >= 40
    assert "(continued)" in whole
    assert len(list(where.glob("page-*.png"))) >= pages


def test_without_a_truetype_font_the_pdf_is_still_made(cs, monkeypatch) -> None:
    from esafety.safeguarding import chronology_pdf as module

    pupil = the_pupil(cs)
    with cs.session(Role.TEACHER) as session:
        concerns.record_concern(
            session,
            kind="online_bullying",
            narrative="She said “stop” — and he did not → so she told me.",
            happened_at=datetime.now(UTC) - timedelta(hours=2),
            about=[cs[Role.PUPIL].username],
        )
    monkeypatch.setattr(module, "FONT_CANDIDATES", ())
    module.font_files.cache_clear()
    try:
        with cs.session(Role.DSL) as session:
            data = chronology_pdf(chronology(session, pupil))
    finally:
        module.font_files.cache_clear()
    document = pdfium.PdfDocument(data)
    try:
        page = document[0]
        textpage = page.get_textpage()
        text = " ".join(textpage.get_text_range().split())
        textpage.close()
        page.close()
    finally:
        document.close()
    assert "CONFIDENTIAL - child protection" in text
    assert 'She said "stop" - and he did not -> so she told me.' in text
    assert "Zoë Lukasz-O'Brien" in text  # the nearest letters Helvetica has
