"""CSV export (RFC 4180): a header row, then one record per row, CRLF line ends.

Fields holding a quote, comma or line break are quoted, quotes doubled (the
csv module's ``excel`` dialect). Numbers are written without exponent
(``format_cell``), dates as ISO 8601, empty cells as empty fields. The title
and filters are not written: a CSV file is one table, for programs to read.

**Formula injection** (the OWASP rule): a spreadsheet opening the file would
run a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return as a formula, and user ids and descriptions come from outside. Such a
*text* cell is written with a ``'`` in front (shown as text, the quote hidden).
Numbers and dates are never prefixed: a number cell is written as the number
(``-50``), which a spreadsheet reads as a number, not a formula; a *text* cell
holding ``-50`` (a user id, say) is prefixed like any other text. ``raw=True``
(``bean-credits report --raw-csv``) writes every cell as it is, for programs.
"""

from __future__ import annotations

import csv
import io
from typing import BinaryIO

from beancount_credits.reports.table import Cell, Table, format_cell

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Cell, raw: bool = False) -> str:
    """A cell as CSV text: a text cell a spreadsheet would run as a formula gets a ``'``."""
    text = format_cell(value)
    if not raw and isinstance(value, str) and text.startswith(FORMULA_START):
        return "'" + text
    return text


def write_csv(table: Table, out: BinaryIO, *, raw: bool = False) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    try:
        writer = csv.writer(text, dialect="excel", lineterminator="\r\n")
        writer.writerow([csv_cell(column.name, raw) for column in table.columns])
        for row in table.rows:
            writer.writerow([csv_cell(cell, raw) for cell in row])
        text.flush()
    finally:
        text.detach()
