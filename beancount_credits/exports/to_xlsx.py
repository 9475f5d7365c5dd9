"""Excel export (.xlsx, xlsxwriter in constant-memory mode: rows stream to disk).

Sheet 1, "Report", holds the table: a bold, frozen header row with an autofilter, then
typed cells (dates as Excel dates formatted ``yyyy-mm-dd``, numbers as
numbers, text always as text so a cell like ``=HYPERLINK(...)`` from a
ledger's narration never becomes a formula). Column widths follow the longest
value (capped). Sheet 2, "About", says what the table is: title, ledger,
period, the filters used, notes and the row count.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import BinaryIO

from beancount_credits.reports.table import Table, format_cell

MIN_WIDTH, MAX_WIDTH = 8, 60
DATE_FORMAT = "yyyy-mm-dd"


def write_xlsx(table: Table, out: BinaryIO, *, ledger_name: str) -> None:
    import xlsxwriter

    from beancount_credits.exports import header, stamp

    workbook = xlsxwriter.Workbook(
        out,
        {
            "constant_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    # The file's creation date is the report's own date, so the bytes are reproducible.
    workbook.set_properties(
        {
            "title": table.title,
            "comments": ledger_name,
            "created": stamp(table).replace(tzinfo=None),
        }
    )
    bold = workbook.add_format({"bold": True, "bottom": 1})
    dates = workbook.add_format({"num_format": DATE_FORMAT})
    sheet = workbook.add_worksheet("Report")
    columns = table.columns
    widths = [max(MIN_WIDTH, len(column.name) + 2) for column in columns]
    for index, column in enumerate(columns):
        sheet.write_string(0, index, column.name, bold)
    sheet.freeze_panes(1, 0)

    count = 0
    for count, row in enumerate(table.rows, start=1):
        for index, cell in enumerate(row):
            if cell is None:
                continue
            if isinstance(cell, Decimal):
                sheet.write_number(count, index, float(cell))
                length = len(format_cell(cell))
            elif isinstance(cell, datetime.date):
                sheet.write_datetime(count, index, cell, dates)
                length = 10
            else:
                # Excel breaks lines in a cell at LF; a CR would show as _x000D_ in readers.
                text = str(cell).replace("\r\n", "\n").replace("\r", "\n")
                if text:  # an empty string is an empty cell
                    sheet.write_string(count, index, text)
                length = len(text)
            if length + 2 > widths[index]:
                widths[index] = min(MAX_WIDTH, length + 2)
    for index, width in enumerate(widths):
        sheet.set_column(index, index, width)
    sheet.autofilter(0, 0, max(count, 1), len(columns) - 1)

    about = workbook.add_worksheet("About")
    about.write_string(0, 0, table.title, workbook.add_format({"bold": True, "font_size": 14}))
    pairs = [*header(table, ledger_name), ("Rows", str(count))]
    for line, (key, value) in enumerate(pairs, start=2):
        about.write_string(line, 0, key, bold)
        about.write_string(line, 1, value)
    about.set_column(0, 0, 12)
    about.set_column(1, 1, min(100, max([len(value) for _key, value in pairs] + [20]) + 2))
    workbook.close()
