"""CSV export (RFC 4180): a header row, then one record per row, CRLF line ends.

Fields holding a quote, comma or line break are quoted, quotes doubled (the
csv module's ``excel`` dialect). Numbers are written without exponent
(``format_cell``), dates as ISO 8601, empty cells as empty fields. The title
and filters are not written: a CSV file is one table, for programs to read.
"""

from __future__ import annotations

import csv
import io
from typing import BinaryIO

from beancount_credits.reports.table import Table, format_cell


def write_csv(table: Table, out: BinaryIO) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    try:
        writer = csv.writer(text, dialect="excel", lineterminator="\r\n")
        writer.writerow([column.name for column in table.columns])
        for row in table.rows:
            writer.writerow([format_cell(cell) for cell in row])
        text.flush()
    finally:
        text.detach()
