"""PDF export (fpdf2; the chart with matplotlib).

Page 1 carries the title, the ledger, the period, the filters used and the
report's notes, then the chart when the table has one (drawn last, into space
reserved on page 1, because it needs every row). The table follows, with its
header row repeated at the top of every page and "Page n of N" at the bottom.

Rows stream: the first :data:`SIZING_ROWS` rows are held to size the columns
(and choose portrait or landscape), then every row goes straight to its page;
text too wide for its column is cut with an ellipsis. fpdf2 keeps the pages'
content until it writes the file, which is what a PDF file needs; the chart
keeps only its own columns (see chart.py).

Text is set in DejaVu Sans, which matplotlib ships, so any Unicode in a
narration prints.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from beancount_credits.exports import header, stamp
from beancount_credits.exports.chart import ChartData
from beancount_credits.reports.table import Cell, Column, Table, format_cell

SIZING_ROWS = 200  # rows read ahead to size the columns
FONT = "DejaVu"
FONT_SIZE = 8
ROW_HEIGHT = 5.0  # mm
PADDING = 1.5  # mm each side of a cell
BASELINE = 3.5  # mm from a row's top to its text's baseline
CHART_HEIGHT = 150.0  # mm, at most: the chart takes what page 1 has left
GREY = (240, 240, 240)
PAGES_ALIAS = "{pages-total}"


def font_files() -> tuple[Path, Path]:
    import matplotlib

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return fonts / "DejaVuSans.ttf", fonts / "DejaVuSans-Bold.ttf"


class ReportPDF(FPDF):
    """Pages with a running head, the table header repeated, and page numbers."""

    def __init__(self, table: Table, ledger_name: str, orientation: str):
        super().__init__(orientation=orientation, unit="mm", format="A4")
        self.report = table
        self.ledger_name = ledger_name
        self.widths: list[float] = []
        self.right_aligned = [column.kind == "number" for column in table.columns]
        self.char_widths: dict[str, float] = {}
        self.in_table = False
        regular, bold = font_files()
        self.add_font(FONT, "", str(regular))
        self.add_font(FONT, "B", str(bold))
        self.set_margins(12, 12, 12)
        self.c_margin = PADDING
        self.set_auto_page_break(True, margin=15)
        self.set_title(table.title)
        self.set_subject(ledger_name)
        self.set_creator("bean-credits")
        self.set_creation_date(stamp(table))
        # Room for a page count of any width (fpdf2 warns when "{nb}" is narrower).
        self.alias_nb_pages(PAGES_ALIAS)

    def header(self) -> None:
        if self.page_no() > 1:
            self.set_font(FONT, "", 7)
            self.set_text_color(110)
            self.cell(0, 4, f"{self.report.title} · {self.ledger_name}", align="L")
            self.ln(6)
            self.set_text_color(0)
        if self.in_table:
            self.table_header()

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font(FONT, "", 7)
        self.set_text_color(110)
        self.cell(0, 5, f"Page {self.page_no()} of {PAGES_ALIAS}", align="C")
        self.set_text_color(0)

    def table_header(self) -> None:
        self.set_font(FONT, "B", FONT_SIZE)
        self.set_fill_color(*GREY)
        for column, width in zip(self.report.columns, self.widths, strict=True):
            align = "R" if column.kind == "number" else "L"
            self.cell(width, ROW_HEIGHT + 1, fit(self, column.name, width), border="B", align=align)
        self.ln(ROW_HEIGHT + 1)
        self.set_font(FONT, "", FONT_SIZE)

    def row(self, cells: list[str], shade: bool) -> None:
        """One table row. Drawn with text() and the cached widths, not cell(): rows are
        most of a large report's time, and cell() costs several times more per call."""
        if self.y + ROW_HEIGHT > self.page_break_trigger:
            self.add_page()  # the header() of the new page repeats the table header
        top = self.y
        if shade:
            self.rect(self.l_margin, top, sum(self.widths), ROW_HEIGHT, style="F")
        baseline = top + BASELINE
        x = self.l_margin
        for right, width, text in zip(self.right_aligned, self.widths, cells, strict=True):
            if text:
                text, used = self.fitted(text, width - 2 * PADDING)
                self.text(x + width - PADDING - used if right else x + PADDING, baseline, text)
            x += width
        self.y = top + ROW_HEIGHT

    def width_of(self, text: str) -> float:
        """Width of ``text`` in the body font, from per-character widths (fpdf2 does
        not kern, so the sum is exact)."""
        widths = self.char_widths
        total = 0.0
        for char in text:
            width = widths.get(char)
            if width is None:
                width = widths[char] = self.get_string_width(char)
            total += width
        return total

    def fitted(self, text: str, room: float) -> tuple[str, float]:
        """``text`` cut with an ellipsis to fit ``room`` mm, and its width."""
        used = self.width_of(text)
        if used <= room:
            return text, used
        room -= self.width_of("…")
        while text and used > room:
            text = text[:-1]
            used = self.width_of(text)
        return text + "…", used + self.width_of("…")


def fit(pdf: FPDF, text: str, width: float) -> str:
    """``text`` cut with an ellipsis to fit a cell ``width`` wide (headers)."""
    room = width - 2 * pdf.c_margin
    while text and pdf.get_string_width(text) > room:
        text = text[:-2] + "…" if len(text) > 1 else ""
    return text


def natural_widths(pdf: FPDF, columns: list[Column], sample: list[list[str]]) -> list[float]:
    """Each column's width for its header and the sampled rows, in mm."""
    return [
        max([header_width(pdf, column)] + [text_width(pdf, cells[index]) for cells in sample])
        for index, column in enumerate(columns)
    ]


def header_width(pdf: FPDF, column: Column) -> float:
    pdf.set_font(FONT, "B", FONT_SIZE)
    width = pdf.get_string_width(column.name) + 2 * PADDING + 1
    pdf.set_font(FONT, "", FONT_SIZE)
    return width


def text_width(pdf: FPDF, text: str) -> float:
    return pdf.get_string_width(text) + 2 * PADDING + 1


def fit_widths(
    natural: list[float], minimum: list[float], columns: list[Column], room: float
) -> list[float]:
    """The natural widths made to fill ``room``.

    When the table is too wide, the widest text columns are cut down to a
    common cap (never below their header); dates and numbers keep their width.
    When it is narrower, the text columns stretch so the table spans the page.
    """
    text = [index for index, column in enumerate(columns) if column.kind == "text"]
    widths = list(natural)
    if sum(widths) <= room:
        spread = text or list(range(len(widths)))
        extra = (room - sum(widths)) / sum(widths[index] for index in spread)
        for index in spread:
            widths[index] *= 1 + extra
        return widths

    def capped(cap: float) -> list[float]:
        return [
            min(width, max(cap, minimum[index])) if index in text else width
            for index, width in enumerate(widths)
        ]

    low, high = 0.0, max(widths)
    for _ in range(40):  # bisect the cap to a fraction of a millimetre
        middle = (low + high) / 2
        low, high = (middle, high) if sum(capped(middle)) <= room else (low, middle)
    widths = capped(low)
    if sum(widths) > room:  # even the headers do not fit: shrink everything alike
        widths = [width * room / sum(widths) for width in widths]
    return widths


def write_pdf(table: Table, out: BinaryIO, *, ledger_name: str) -> None:
    rows: Iterator[list[Cell]] = iter(table.rows)
    head = list(itertools.islice(rows, SIZING_ROWS))
    sample = [[format_cell(cell) for cell in row] for row in head]
    chart = ChartData(table.chart, table.columns) if table.chart else None

    probe = FPDF()
    regular, bold = font_files()
    probe.add_font(FONT, "", str(regular))
    probe.add_font(FONT, "B", str(bold))
    natural = natural_widths(probe, table.columns, sample)
    portrait_room = 210 - 24
    orientation = "portrait" if sum(natural) <= portrait_room * 1.05 else "landscape"

    pdf = ReportPDF(table, ledger_name, orientation)
    pdf.add_page()
    minimum = [header_width(probe, column) for column in table.columns]
    pdf.widths = fit_widths(natural, minimum, table.columns, pdf.epw)
    pdf.set_font(FONT, "B", 16)
    pdf.multi_cell(0, 8, table.title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    for key, value in header(table, ledger_name):
        pdf.set_font(FONT, "B", 9)
        pdf.cell(24, 5, key)
        pdf.set_font(FONT, "", 9)
        pdf.multi_cell(0, 5, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)

    if chart is not None:
        top, left, width = pdf.get_y(), pdf.l_margin, pdf.epw
        height = min(CHART_HEIGHT, pdf.h - pdf.b_margin - top - 4)

        def draw_chart(document: FPDF, _outline: object) -> None:
            if not len(chart):
                document.set_font(FONT, "", 9)
                document.set_xy(left, top)
                document.cell(0, 6, "(no data to chart)")
                return
            png = chart.render_png(width / 25.4, height / 25.4)
            document.image(io.BytesIO(png), x=left, y=top, w=width, h=height)

        # The chart needs every row: reserve the rest of page 1, draw it at the end.
        pdf.insert_toc_placeholder(draw_chart, pages=1, reset_page_indices=False)

    pdf.in_table = True
    pdf.table_header()
    count = 0
    del sample
    for count, row in enumerate(itertools.chain(head, rows), start=1):
        if chart is not None:
            chart.add(row)
        pdf.row([format_cell(cell) for cell in row], shade=count % 2 == 0)
    if count == 0:
        pdf.set_font(FONT, "", FONT_SIZE)
        pdf.cell(0, ROW_HEIGHT, "(no rows)")
    pdf.in_table = False
    out.write(pdf.output())
