"""A pupil's chronology as a PDF for a case conference (issue 5 §5; STANDARDS R3).

A4, with on every page the school, the pupil (name, date of birth, year group), the words
"CONFIDENTIAL — child protection", who printed it and when, and "Page n of N". The entries
are a table whose rows wrap long text and run on across pages (a narrative may be pages
long), with the table's head repeated on each page.

Text is Unicode (names, quotes, arrows) in DejaVu Sans or Liberation Sans when the machine
has one (Debian: fonts-dejavu-core, which most desktops and Chromium bring); otherwise the
PDF's built-in Helvetica, with the few characters it cannot show replaced by the nearest
it can, so a PDF is always made.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

from fpdf import FPDF
from fpdf.enums import MethodReturnValue

from esafety.safeguarding.chronology import Chronology
from esafety.safeguarding.chronology_entries import Entry, local_time

__all__ = ["FONT_CANDIDATES", "chronology_pdf", "font_files"]

CONFIDENTIAL = "CONFIDENTIAL — child protection"

#: TrueType families looked for, first found wins: (regular, bold, italic) paths.
FONT_CANDIDATES: tuple[tuple[str, str, str], ...] = (
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",  # Debian, Ubuntu
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Oblique.ttf",
    ),
    (
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",  # Fedora
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Oblique.ttf",
    ),
    (
        "/usr/share/fonts/TTF/DejaVuSans.ttf",  # Arch
        "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/TTF/DejaVuSans-Oblique.ttf",
    ),
    (
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Italic.ttf",
    ),
)

# Millimetres and points.
MARGIN = 12.0
BOTTOM = 16.0
SIZE = 8.5
LINE = 3.9
PAD = 1.4
#: A row split across pages keeps at least this many lines on the first page.
MIN_LINES = 4
#: Rows of up to this many lines are never split across pages.
KEEP_TOGETHER = 14
RED = (160, 20, 30)
INK = (25, 30, 28)
SOFT = (95, 102, 98)
RULE = (190, 196, 192)
SHADE = (242, 244, 241)
HEAD = (226, 231, 224)

#: Characters Helvetica (Latin-1) lacks, and what stands in for them.
_LATIN1 = str.maketrans(
    {
        "—": "-",
        "–": "-",
        "‘": "'",
        "’": "'",
        "“": '"',
        "”": '"',
        "…": "...",
        "→": "->",
        "•": "-",
        "\u00a0": " ",
        "Ł": "L",
        "ł": "l",
        "Đ": "D",
        "đ": "d",
        "Œ": "OE",
        "œ": "oe",
    }
)


def _latin1(text: str) -> str:
    """``text`` in the letters Helvetica has: accents kept where Latin-1 has the letter,
    else the bare letter ("Ż" → "Z"), else "?"."""
    out = []
    for char in text.translate(_LATIN1):
        if ord(char) < 256:
            out.append(char)
            continue
        base = unicodedata.normalize("NFKD", char)[:1]
        out.append(base if base and ord(base) < 256 else "?")
    return "".join(out)


@cache
def font_files() -> tuple[str, str, str] | None:
    """The first TrueType family found (regular, bold, italic), or None."""
    for family in FONT_CANDIDATES:
        if all(Path(p).is_file() for p in family):
            return family
    return None


@dataclass(frozen=True)
class _Line:
    text: str
    style: str


#: A table cell: paragraphs, each (text, style) with style "", "B" or "I".
Cell = Sequence[tuple[str, str]]


class _ChronologyPDF(FPDF):
    def __init__(self, chron: Chronology) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.chron = chron
        files = font_files()
        if files is not None:
            for style, path in zip(("", "B", "I"), files, strict=True):
                self.add_font("Body", style, path)
            self.family_name = "Body"
            self.unicode = True
        else:
            self.family_name = "Helvetica"
            self.unicode = False
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(True, margin=BOTTOM)
        self.c_margin = 0
        #: The table being drawn, so that a new page repeats its head.
        self.table_head: tuple[Sequence[float], Sequence[str]] | None = None

    # -- text -----------------------------------------------------------------------

    def safe(self, text: str) -> str:
        if self.unicode:
            return text
        return _latin1(text)

    def font(self, style: str = "", size: float = SIZE, colour: tuple[int, int, int] = INK) -> None:
        self.set_font(self.family_name, style, size)
        self.set_text_color(*colour)

    def lines(self, width: float, cell: Cell) -> list[_Line]:
        found = []
        for text, style in cell:
            self.font(style)
            split = self.multi_cell(
                width, LINE, self.safe(text), dry_run=True, output=MethodReturnValue.LINES
            )
            found += [_Line(str(line), style) for line in cast(list[str], split)]
        return found

    # -- every page -----------------------------------------------------------------

    def header(self) -> None:
        chron, subject = self.chron, self.chron.subject
        width = self.w - 2 * MARGIN
        self.set_xy(MARGIN, 8)
        self.font("B", 10, RED)
        self.cell(width / 2, 5, self.safe(CONFIDENTIAL))
        self.font("", 8.5, SOFT)
        self.cell(width / 2, 5, self.safe(chron.school), align="R")
        self.ln(5)
        facts = [subject.name]
        if subject.date_of_birth:
            facts.append(f"born {subject.date_of_birth.strftime('%d %b %Y')}")
        if subject.year_group:
            facts.append(subject.year_group)
        self.font("B", 10)
        self.cell(width * 0.55, 5, self.safe(" · ".join(facts)))
        self.font("", 7.5, SOFT)
        printed = f"Printed by {chron.read_by}, {local_time(chron.read_at, chron.zone)}"
        self.cell(width * 0.45, 5, self.safe(printed), align="R")
        self.ln(6)
        self.set_draw_color(*RED)
        self.set_line_width(0.4)
        self.line(MARGIN, self.get_y(), self.w - MARGIN, self.get_y())
        self.set_line_width(0.2)
        self.ln(3)
        if self.table_head is not None and self.page_no() > 1:
            self.head_row(*self.table_head)

    def footer(self) -> None:
        self.set_y(-11)
        width = self.w - 2 * MARGIN
        self.font("", 7, SOFT)
        self.cell(
            width * 0.82,
            4,
            self.safe(f"{CONFIDENTIAL}: share only under the school's child protection policy."),
        )
        self.cell(width * 0.18, 4, f"Page {self.page_no()} of {{nb}}", align="R")

    # -- tables ---------------------------------------------------------------------

    def head_row(self, widths: Sequence[float], titles: Sequence[str]) -> None:
        self.set_fill_color(*HEAD)
        x, y = MARGIN, self.get_y()
        self.rect(x, y, sum(widths), LINE + 2 * PAD, style="F")
        self.font("B")
        for width, title in zip(widths, titles, strict=True):
            self.set_xy(x + PAD, y + PAD)
            self.cell(width - 2 * PAD, LINE, self.safe(title))
            x += width
        self.set_xy(MARGIN, y + LINE + 2 * PAD)

    def room(self) -> int:
        """How many lines of a row fit on this page."""
        return int((self.page_break_trigger - self.get_y() - 2 * PAD) // LINE)

    def row(self, widths: Sequence[float], cells: Sequence[Cell], *, shade: bool) -> None:
        columns = [self.lines(w - 2 * PAD, cell) for w, cell in zip(widths, cells, strict=True)]
        total = max(len(c) for c in columns)
        done = 0
        while done < total:
            fit, left = self.room(), total - done
            # A short row that does not fit moves whole to the next page; a long one (a
            # narrative pages long) fills this page and runs on.
            if fit < left and (left <= KEEP_TOGETHER or fit < MIN_LINES):
                self.add_page()
                continue
            take = min(fit, left)
            self.chunk(widths, columns, done, take, shade=shade, continued=done > 0)
            done += take
            if done < total:
                self.add_page()

    def chunk(
        self,
        widths: Sequence[float],
        columns: list[list[_Line]],
        start: int,
        count: int,
        *,
        shade: bool,
        continued: bool,
    ) -> None:
        y = self.get_y()
        height = count * LINE + 2 * PAD
        if shade:
            self.set_fill_color(*SHADE)
            self.rect(MARGIN, y, sum(widths), height, style="F")
        x = MARGIN
        for index, (width, column) in enumerate(zip(widths, columns, strict=True)):
            shown = column[start : start + count]
            if continued and not shown and column:
                # Say whose row runs on: its first line again (the date, the concern).
                shown = [_Line(column[0].text, "I")]
                if index == 0:
                    shown.append(_Line("(continued)", "I"))
            for offset, line in enumerate(shown):
                self.font(line.style, colour=SOFT if line.style == "I" else INK)
                self.set_xy(x + PAD, y + PAD + offset * LINE)
                self.cell(width - 2 * PAD, LINE, line.text)
            x += width
        self.set_draw_color(*RULE)
        self.line(MARGIN, y + height, MARGIN + sum(widths), y + height)
        self.set_xy(MARGIN, y + height)

    def draw_table(
        self, widths: Sequence[float], titles: Sequence[str], rows: Sequence[Sequence[Cell]]
    ) -> None:
        if self.room() < MIN_LINES + 2:
            self.add_page()
        self.head_row(widths, titles)
        self.table_head = (widths, titles)
        for number, cells in enumerate(rows):
            self.row(widths, cells, shade=number % 2 == 1)
        self.table_head = None
        self.ln(3)

    def heading(self, text: str, size: float = 11) -> None:
        if self.room() < MIN_LINES + 3:
            self.add_page()
        self.font("B", size)
        self.cell(0, size * 0.5, self.safe(text), new_x="LMARGIN", new_y="NEXT")
        self.ln(1.5)

    def para(self, text: str, style: str = "", colour: tuple[int, int, int] = INK) -> None:
        self.font(style, colour=colour)
        self.multi_cell(0, LINE + 0.3, self.safe(text), new_x="LMARGIN", new_y="NEXT")


# -- the document -------------------------------------------------------------------


def _when(entry: Entry, chron: Chronology) -> Cell:
    local = entry.at.astimezone(chron.zone)
    return [(local.strftime("%d %b %Y"), ""), (local.strftime("%a %H:%M"), "I")]


def _entry_cells(entry: Entry, chron: Chronology) -> list[Cell]:
    what: list[tuple[str, str]] = [(entry.heading, "B")]
    what += [(line, "") for line in entry.details]
    return [
        _when(entry, chron),
        [(f"#{entry.concern_id}", "B"), (entry.kind_title, "I")],
        what,
        [(entry.by or "", "")],
    ]


def _introduction(pdf: _ChronologyPDF, chron: Chronology) -> None:
    subject = chron.subject
    pdf.font("B", 15)
    pdf.cell(0, 8, pdf.safe("Safeguarding chronology"), new_x="LMARGIN", new_y="NEXT")
    facts = [f"Name: {subject.name}"]
    if subject.date_of_birth:
        facts.append(f"Date of birth: {subject.date_of_birth.strftime('%d %B %Y')}")
    if subject.year_group:
        facts.append(f"Year group: {subject.year_group}")
    if subject.registration_group:
        facts.append(f"Class: {subject.registration_group}")
    if subject.upn:
        facts.append(f"UPN: {subject.upn}")
    if subject.job_title:
        facts.append(f"Job: {subject.job_title}")
    pdf.para("    ".join(facts), "B")
    shown = f"{len(chron.entries)} of {chron.total_entries} entries"
    if chron.filter.active:
        pdf.para(f"Filtered ({chron.filter.describe()}): {shown}.", colour=SOFT)
    else:
        pdf.para(f"Every entry of every concern you may read: {shown}.", colour=SOFT)
    if not chron.reader_acts:
        pdf.para("Only the concerns you raised are included.", colour=SOFT)
    pdf.ln(3)


def _concerns(pdf: _ChronologyPDF, chron: Chronology) -> None:
    pdf.heading(f"Concerns ({len(chron.concerns)})")
    if not chron.concerns:
        pdf.para("No concerns that you may read.", colour=SOFT)
        pdf.ln(2)
        return
    rows = [
        [
            [(f"#{c.id}", "B")],
            [(c.title + (" (grave)" if c.grave else ""), "")],
            [(c.part_words, "")],
            [(c.happened_at.astimezone(chron.zone).strftime("%d %b %Y"), "")],
            [("Open" if c.is_open else "Closed", "")],
        ]
        for c in chron.concerns
    ]
    widths = (19, 83, 46, 24, 14)
    pdf.draw_table(widths, ("Concern", "Kind", "Their part", "Happened", "Status"), rows)


def _linked(pdf: _ChronologyPDF, chron: Chronology) -> None:
    if not chron.linked and not chron.siblings:
        return
    pdf.heading("Linked pupils")
    for pupil in chron.linked:
        year = f" ({pupil.year_group})" if pupil.year_group else ""
        shared = ", ".join(f"#{cid} ({part})" for cid, part in pupil.concerns)
        pdf.para(f"{pupil.name}{year}, the same incident: {shared}")
    for pupil in chron.siblings:
        year = f" ({pupil.year_group})" if pupil.year_group else ""
        count = f"{pupil.concern_count} concern{'' if pupil.concern_count == 1 else 's'}"
        pdf.para(f"{pupil.name}{year}, sibling: {count} of their own")
    pdf.ln(3)


def chronology_pdf(chron: Chronology) -> bytes:
    """The chronology as the bytes of a PDF file."""
    pdf = _ChronologyPDF(chron)
    pdf.set_title("Safeguarding chronology (confidential)")
    pdf.set_creator("esafety")
    pdf.set_creation_date(chron.read_at)
    pdf.add_page()
    _introduction(pdf, chron)
    _concerns(pdf, chron)
    _linked(pdf, chron)
    pdf.heading("Chronology")
    if chron.entries:
        rows = [_entry_cells(e, chron) for e in chron.entries]
        pdf.draw_table((23, 36, 101, 26), ("When", "Concern", "What", "By"), rows)
    else:
        pdf.para("No entries.", colour=SOFT)
    data: Any = pdf.output()
    return bytes(data)
