"""Exports: every format written by the exporter and read back with its own reader.

CSV with the csv module, .xlsx with openpyxl, PDF with pypdf; on the report
cases' ledger (tests/reports/history.beancount), the demo ledger and small
synthetic tables for hostile strings and streaming.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from openpyxl.utils import get_column_letter
from pypdf import PdfReader

from beancount_credits import exports
from beancount_credits.cli import main
from beancount_credits.exports.chart import MAX_SERIES, ChartData, ChartError
from beancount_credits.ledger import LedgerError, load
from beancount_credits.reports import REPORTS, Filters, Table
from beancount_credits.reports.table import Cell, Chart, Column

HISTORY = Path(__file__).parent / "reports" / "history.beancount"
DEMO = Path(__file__).parent.parent / "ledgers" / "demo" / "main.beancount"
END = datetime.date(2024, 12, 31)
DEMO_END = datetime.date(2026, 11, 20)

HOSTILE = [
    'He said "stop"',
    "a,b,,c",
    "two\nlines",
    "crlf\r\nand more",
    '",\n"',
    '=HYPERLINK("http://x","y")',
    "+1-2",
    "@SUM(A1)",
    " leading and trailing ",
    "Zoë Ørsted – Ωmega",
    "",
]


def export_bytes(
    table: Table, fmt: str, name: str = "test.beancount", raw_csv: bool = False
) -> bytes:
    out = io.BytesIO()
    exports.export(table, fmt, out, ledger_name=name, raw_csv=raw_csv)
    return out.getvalue()


def history_statement(**filters: object) -> Table:
    ledger = load(HISTORY)
    return REPORTS["statement"](ledger, Filters(user="alice", date_to=END, **filters))  # type: ignore[arg-type]


def hostile_table(rows: int | None = None) -> Table:
    """Text, date and number columns; the rows a generator, as reports may return."""
    columns = [Column("Text"), Column("Date", "date"), Column("Amount", "number")]
    numbers = [Decimal("1E+3"), Decimal("-0.00000001"), Decimal("12345678.50"), None]

    def generate() -> Iterator[list[Cell]]:
        count = len(HOSTILE) if rows is None else rows
        for index in range(count):
            yield [
                HOSTILE[index % len(HOSTILE)],
                datetime.date(2024, 1, 1) + datetime.timedelta(days=index),
                numbers[index % len(numbers)],
            ]

    return Table(
        'Hostile "strings"',
        columns,
        generate(),
        Filters(user="zoë", date_from=datetime.date(2024, 1, 1), date_to=END),
        notes=["a note, with a comma"],
    )


# --- the entry point -----------------------------------------------------------------


def test_unknown_format_is_a_clear_error() -> None:
    with pytest.raises(exports.ExportError, match=r"unknown format 'docx'; formats: text, csv"):
        exports.export(history_statement(), "docx", io.BytesIO(), ledger_name="x")
    with pytest.raises(exports.ExportError):
        exports.media_type("docx")


def test_media_types_and_suffixes() -> None:
    assert [exports.suffix(fmt) for fmt in exports.FORMATS] == [".txt", ".csv", ".xlsx", ".pdf"]
    assert exports.media_type("csv").startswith("text/csv")
    assert exports.media_type("pdf") == "application/pdf"
    assert exports.media_type("xlsx").endswith("spreadsheetml.sheet")
    assert exports.format_of(Path("x/Report.XLSX")) == "xlsx"
    assert exports.format_of(Path("report.json")) is None


def test_text_export_is_what_the_cli_prints() -> None:
    printed = CliRunner().invoke(
        main, ["report", "statement", str(HISTORY), "--user", "alice", "--to", str(END)]
    )
    assert printed.exit_code == 0, printed.output
    assert export_bytes(history_statement(), "text").decode() == printed.stdout


@pytest.mark.parametrize("fmt", exports.FORMATS)
def test_every_format_streams_a_generator_once_and_is_reproducible(fmt: str) -> None:
    first = export_bytes(hostile_table(rows=300), fmt)
    assert first == export_bytes(hostile_table(rows=300), fmt)
    if fmt == "csv":
        assert len(list(csv.reader(io.StringIO(first.decode("utf-8"), newline="")))) == 301
    elif fmt == "xlsx":
        sheet = openpyxl.load_workbook(io.BytesIO(first))["Report"]
        assert sheet.max_row == 301
    elif fmt == "pdf":
        text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(first)).pages)
        assert "2024-10-26" in text  # the 300th row's date


# --- CSV ------------------------------------------------------------------------------


def test_csv_round_trips_hostile_strings() -> None:
    # raw: every cell as it is (the default neutralises formulas: tests/test_security.py)
    data = export_bytes(hostile_table(), "csv", raw_csv=True)
    # RFC 4180: CRLF ends every record (bare newlines only inside quoted fields).
    assert data.endswith(b"\r\n")
    assert data.startswith(b"Text,Date,Amount\r\n")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[0] == ["Text", "Date", "Amount"]
    assert [row[0] for row in rows[1:]] == HOSTILE
    assert rows[1][1:] == ["2024-01-01", "1000"]  # ISO date, no exponent
    assert rows[2][2] == "-0.00000001"
    assert rows[3][2] == "12345678.50"
    assert rows[4][2] == ""  # None is an empty field


def test_csv_of_a_statement_has_every_line() -> None:
    table = history_statement()
    expected = [[exports_cell(cell) for cell in row] for row in history_statement().rows]
    rows = list(csv.reader(io.StringIO(export_bytes(table, "csv").decode(), newline="")))
    assert rows[0] == [column.name for column in table.columns]
    assert rows[1:] == expected
    by_name = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    (order,) = [row for row in by_name if row["Transaction ID"] == "r-2"]
    assert order["Date"] == "2024-02-10"
    assert order["Description"] == "Order o-7, part paid in cash"  # a comma, quoted
    assert (order["Order"], order["Redeemed"], order["Balance"]) == ("o-7", "30", "75")


def exports_cell(cell: Cell) -> str:
    from beancount_credits.reports.table import format_cell

    return format_cell(cell)


# --- Excel ----------------------------------------------------------------------------


def test_xlsx_cells_are_typed_and_the_header_is_bold_frozen_and_filtered() -> None:
    table = history_statement()
    expected = list(history_statement().rows)
    book = openpyxl.load_workbook(io.BytesIO(export_bytes(table, "xlsx", "history.beancount")))
    assert book.sheetnames == ["Report", "About"]
    sheet = book["Report"]
    assert [cell.value for cell in sheet[1]] == [column.name for column in table.columns]
    assert all(cell.font.b for cell in sheet[1])
    assert sheet.freeze_panes == "A2"
    last = get_column_letter(len(table.columns))
    assert sheet.auto_filter.ref == f"A1:{last}{len(expected) + 1}"
    for row, cells in zip(sheet.iter_rows(min_row=2), expected, strict=True):
        for cell, value, column in zip(row, cells, table.columns, strict=True):
            if value is None:
                assert cell.value is None
            elif column.kind == "date":
                assert cell.is_date and cell.number_format == "yyyy-mm-dd"
                assert cell.value.date() == value
            elif column.kind == "number":
                assert cell.data_type == "n"
                assert Decimal(str(cell.value)) == value
            else:
                assert cell.data_type == "s" and cell.value == value
    # Columns are wide enough for their longest value.
    description = get_column_letter(1 + [c.name for c in table.columns].index("Description"))
    assert sheet.column_dimensions[description].width >= len("Order o-7, part paid in cash")
    about = {row[0]: row[1] for row in book["About"].iter_rows(min_row=3, values_only=True)}
    assert about == {
        "Ledger": "history.beancount",
        "Date range": "through 2024-12-31",
        "User": "alice",
        "Rows": str(len(expected)),
    }
    assert book["About"]["A1"].value == "Statement of alice through 2024-12-31"


def test_xlsx_never_turns_text_into_formulas() -> None:
    book = openpyxl.load_workbook(io.BytesIO(export_bytes(hostile_table(), "xlsx")))
    sheet = book["Report"]
    texts = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    # Excel stores "" as an empty cell, and breaks lines at LF alone.
    assert texts == [text.replace("\r\n", "\n") or None for text in HOSTILE]
    assert all(row[0].data_type == "s" for row in sheet.iter_rows(min_row=2) if row[0].value)
    about = {row[0]: row[1] for row in book["About"].iter_rows(min_row=3, values_only=True)}
    assert about["Date range"] == "2024-01-01 to 2024-12-31"
    assert about["User"] == "zoë"
    assert about["Note"] == "a note, with a comma"


# --- PDF ------------------------------------------------------------------------------


def pdf_pages(data: bytes) -> tuple[PdfReader, list[str]]:
    reader = PdfReader(io.BytesIO(data))
    return reader, [page.extract_text() for page in reader.pages]


def demo_statement(user: str, chart: Chart | None) -> Table:
    table = REPORTS["statement"](load(DEMO), Filters(user=user, date_to=DEMO_END))
    return dataclasses.replace(table, chart=chart)


def test_pdf_has_title_filters_repeated_header_page_numbers_and_chart() -> None:
    ledger = load(DEMO)
    name = exports.ledger_name(DEMO, ledger.options)
    assert name == "Credits demo (main.beancount)"
    lines = list(REPORTS["statement"](ledger, Filters(user="org-acme", date_to=DEMO_END)).rows)
    table = demo_statement("org-acme", Chart("step", "Date", ["Balance"]))
    reader, pages = pdf_pages(export_bytes(table, "pdf", name))
    assert len(pages) > 2
    first = pages[0]
    assert "Statement of org-acme through 2026-11-20" in first
    assert "Credits demo (main.beancount)" in first
    assert "through 2026-11-20" in first and "org-acme" in first
    assert reader.pages[0].images, "the chart is an image on page 1"
    for number, text in enumerate(pages[1:], start=2):
        assert "Transaction ID" in text and "Balance" in text, f"header on page {number}"
        assert f"Page {number} of {len(pages)}" in text
    assert f"Page 1 of {len(pages)}" in first
    body = "\n".join(pages)
    for line in (lines[0], lines[len(lines) // 2], lines[-1]):
        assert str(line[0]) in body  # every transaction id is printed
    assert reader.metadata.title == table.title


def test_pdf_without_chart_has_no_image_and_prints_unicode() -> None:
    reader, pages = pdf_pages(export_bytes(hostile_table(rows=200), "pdf", "zoë.beancount"))
    assert not any(page.images for page in reader.pages)
    text = "\n".join(pages)
    assert 'Hostile "strings"' in pages[0]
    assert "zoë.beancount" in pages[0] and "2024-01-01 to 2024-12-31" in pages[0]
    assert "Zoë Ørsted – Ωmega" in text
    assert "a note, with a comma" in pages[0]
    assert "Text" in pages[1] and "Amount" in pages[1]  # the header, repeated


def test_pdf_of_an_empty_table_says_so() -> None:
    table = Table("Nothing", [Column("A"), Column("B", "number")], iter([]))
    _reader, pages = pdf_pages(export_bytes(table, "pdf"))
    assert "(no rows)" in pages[0] and "Page 1 of 1" in pages[0]


# --- Charts ---------------------------------------------------------------------------


def test_chart_line_keeps_the_last_value_of_a_day_and_bar_sums_a_period() -> None:
    columns = [Column("Date", "date"), Column("User"), Column("Amount", "number")]
    day = datetime.date(2024, 1, 1)
    rows: list[list[Cell]] = [
        [day, "a", Decimal(5)],
        [day, "a", Decimal(3)],
        [day, "b", Decimal(7)],
        [day + datetime.timedelta(days=1), "a", None],
    ]
    line = ChartData(Chart("line", "Date", ["Amount"], series="User"), columns)
    bar = ChartData(Chart("bar", "Date", ["Amount"], series="User"), columns)
    for row in rows:
        line.add(row)
        bar.add(row)
    ordinal = day.toordinal()
    assert line.points() == {(0, 0): {ordinal: 3.0}, (1, 0): {ordinal: 7.0}}
    assert bar.points() == {(0, 0): {ordinal: 8.0}, (1, 0): {ordinal: 7.0}}
    assert line.render_png(4, 3).startswith(b"\x89PNG")
    assert bar.render_png(4, 3).startswith(b"\x89PNG")


def test_chart_with_many_series_draws_the_largest() -> None:
    columns = [Column("Month"), Column("User"), Column("Net", "number")]
    chart = ChartData(Chart("bar", "Month", ["Net"], series="User"), columns)
    for user in range(12):
        for month in ("2024-01", "2024-02"):
            chart.add([month, f"u{user}", Decimal(user)])
    assert chart.shown_series() == list(range(12 - MAX_SERIES, 12))
    assert f"{MAX_SERIES} largest of 12 User values shown" in chart.caption()
    assert chart.render_png(6, 3).startswith(b"\x89PNG")


def test_chart_of_unknown_columns_is_an_export_error() -> None:
    table = dataclasses.replace(history_statement(), chart=Chart("line", "Day", ["Balance"]))
    with pytest.raises(ChartError, match="chart of columns not in the table: Day"):
        export_bytes(table, "pdf")
    assert issubclass(ChartError, exports.ExportError)


# --- CLI ------------------------------------------------------------------------------


def cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["report", *args])


def test_cli_writes_each_format_to_a_file(tmp_path: Path) -> None:
    base = ["statement", str(HISTORY), "--user", "alice", "--to", str(END)]
    for fmt in ("csv", "xlsx", "pdf", "text"):
        explicit = tmp_path / f"explicit.{fmt}"
        result = cli(*base, "--format", fmt, "-o", str(explicit))
        assert result.exit_code == 0, result.output
        assert result.stdout == ""
        assert explicit.read_bytes() == export_bytes(history_statement(), fmt, HISTORY.name)
    # The suffix of -o chooses the format when --format is not given.
    inferred = tmp_path / "alice.xlsx"
    assert cli(*base, "-o", str(inferred)).exit_code == 0
    assert inferred.read_bytes() == (tmp_path / "explicit.xlsx").read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "alice.xlsx",
        "explicit.csv",
        "explicit.pdf",
        "explicit.text",
        "explicit.xlsx",
    ]


def test_cli_csv_to_standard_output() -> None:
    result = cli("statement", str(HISTORY), "--user", "alice", "--to", str(END), "--format", "csv")
    assert result.exit_code == 0
    assert result.stdout_bytes == export_bytes(history_statement(), "csv")


def test_cli_unknown_format_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.docx"
    result = cli("balances", str(HISTORY), "--format", "docx", "-o", str(target))
    assert result.exit_code != 0
    assert result.output == "Error: unknown format 'docx'; formats: text, csv, xlsx, pdf\n"
    assert not target.exists()


def test_cli_failed_report_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out.pdf"
    target.write_bytes(b"before")
    result = cli("statement", str(HISTORY), "--user", "carol", "-o", str(target))
    assert result.exit_code == 2
    assert "unknown user id 'carol'" in result.output and "Traceback" not in result.output
    assert target.read_bytes() == b"before"
    assert [path.name for path in tmp_path.iterdir()] == ["out.pdf"]


@pytest.mark.parametrize("fmt", exports.FORMATS)
def test_export_failing_half_way_leaves_the_old_file(tmp_path: Path, fmt: str) -> None:
    def rows() -> Iterator[list[Cell]]:
        yield [HOSTILE[0], datetime.date(2024, 1, 1), Decimal(1)]
        raise LedgerError("the ledger changed under the report")

    table = dataclasses.replace(hostile_table(), rows=rows())
    target = tmp_path / "report.out"
    target.write_bytes(b"before")
    with pytest.raises(LedgerError):
        exports.export_file(table, fmt, target, ledger_name="x")
    assert target.read_bytes() == b"before"
    assert [path.name for path in tmp_path.iterdir()] == ["report.out"]


def test_cli_refuses_binary_formats_on_a_terminal() -> None:
    main_fd, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [
                *(sys.executable, "-m", "beancount_credits.cli", "report", "balances"),
                *(str(HISTORY), "--to", str(END), "--format", "xlsx"),
            ],
            stdout=terminal,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(main_fd)
    assert result.returncode == 2
    assert result.stderr.decode() == (
        "Error: xlsx is a binary format: not writing it to a terminal; use -o FILE\n"
    )


# --- every report --------------------------------------------------------------------

REPORT_FILTERS: dict[str, dict[str, object]] = {
    "statement": {"user": "org-acme"},
    "members": {"user": "org-acme"},
    "daily": {"user": "org-acme", "date_from": datetime.date(2026, 9, 1)},
    "usage": {"period": "month", "date_from": datetime.date(2026, 5, 1)},
}


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_every_report_exports_to_every_format(name: str) -> None:
    from beancount_credits.reports import run

    ledger = load(DEMO)
    filters = Filters(date_to=DEMO_END, **REPORT_FILTERS.get(name, {}))  # type: ignore[arg-type]

    def table() -> Table:
        return run(name, ledger, filters)

    expected = [[exports_cell(cell) for cell in row] for row in table().rows]
    rows = list(csv.reader(io.StringIO(export_bytes(table(), "csv").decode(), newline="")))
    assert rows[1:] == expected
    sheet = openpyxl.load_workbook(io.BytesIO(export_bytes(table(), "xlsx")))["Report"]
    assert sheet.max_row == len(expected) + 1
    made = table()
    reader, pages = pdf_pages(export_bytes(made, "pdf"))
    assert made.title in pages[0]
    assert bool(reader.pages[0].images) == (made.chart is not None)
