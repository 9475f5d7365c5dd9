"""Exports: a report's Table written as text, CSV, Excel (.xlsx) or PDF.

One entry point, :func:`export`, used by the CLI (``bean-credits report
--format``) and the Fava page alike. Every format streams ``table.rows`` once
(it may be a generator) and keeps only what the format itself needs: text
aligns columns so it holds the formatted rows; CSV and Excel hold one row at a
time; PDF holds the first page's rows to size its columns and, when the table
has a chart, the chart's x/y values.

Output is reproducible: the same table gives the same bytes (no "generated
at" stamp; file dates inside .xlsx/.pdf come from the report's own period).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import BinaryIO

from beancount_credits.ledger import write
from beancount_credits.reports.table import Table

FORMATS = ("text", "csv", "xlsx", "pdf")

MEDIA_TYPES = {
    "text": "text/plain; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
SUFFIXES = {"text": ".txt", "csv": ".csv", "xlsx": ".xlsx", "pdf": ".pdf"}
BINARY = frozenset({"xlsx", "pdf"})  # formats a terminal cannot show


class ExportError(Exception):
    """An export that cannot be made as asked (unknown format...)."""


def check_format(fmt: str) -> str:
    """``fmt`` if it is a known format, else ExportError naming the known ones."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    return fmt


def media_type(fmt: str) -> str:
    """The HTTP Content-Type of a format."""
    return MEDIA_TYPES[check_format(fmt)]


def suffix(fmt: str) -> str:
    """The file name suffix of a format, with its dot (``.xlsx``)."""
    return SUFFIXES[check_format(fmt)]


def is_binary(fmt: str) -> bool:
    return check_format(fmt) in BINARY


def ledger_name(path: Path, options: dict) -> str:
    """How exports name a ledger: its ``title`` option and file name."""
    title = options.get("title")
    if title and title != "Beancount":  # Beancount's default title says nothing
        return f"{title} ({path.name})"
    return path.name


def export(
    table: Table, fmt: str, out: BinaryIO, *, ledger_name: str, raw_csv: bool = False
) -> None:
    """Write ``table`` to the binary stream ``out`` in format ``fmt`` (one of FORMATS).

    CSV text cells that a spreadsheet would run as formulas get a ``'`` in
    front unless ``raw_csv`` (see :mod:`.to_csv`).
    """
    check_format(fmt)
    if fmt == "text":
        from beancount_credits.exports.to_text import write_text

        write_text(table, out, ledger_name=ledger_name)
    elif fmt == "csv":
        from beancount_credits.exports.to_csv import write_csv

        write_csv(table, out, raw=raw_csv)
    elif fmt == "xlsx":
        from beancount_credits.exports.to_xlsx import write_xlsx

        write_xlsx(table, out, ledger_name=ledger_name)
    else:
        from beancount_credits.exports.to_pdf import write_pdf

        write_pdf(table, out, ledger_name=ledger_name)


def export_file(
    table: Table, fmt: str, path: Path, *, ledger_name: str, raw_csv: bool = False
) -> None:
    """Export to ``path`` atomically: a temporary sibling, fsync, rename.

    A failed export (bad row, full disk, interrupted) removes the temporary file
    and leaves whatever ``path`` held before.
    """
    check_format(fmt)
    temporary = write.temporary_path(path)
    try:
        with open(temporary, "wb") as handle:
            export(table, fmt, handle, ledger_name=ledger_name, raw_csv=raw_csv)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def format_of(path: Path) -> str | None:
    """The format a file name asks for by its suffix (``x.xlsx`` -> xlsx), if any."""
    for fmt, known in SUFFIXES.items():
        if path.suffix.lower() == known:
            return fmt
    return None


def period(table: Table) -> str:
    """The report's date range in words."""
    start, end = table.filters.date_from, table.filters.date_to
    if start and end:
        return f"{start} to {end}"
    if end:
        return f"through {end}"
    if start:
        return f"from {start}"
    return "all dates"


def header(table: Table, ledger_name: str) -> list[tuple[str, str]]:
    """What every export says about a report: ledger, period, the other filters, notes."""
    pairs = [("Ledger", ledger_name), ("Date range", period(table))]
    pairs += [
        (name.capitalize(), value)
        for name, value in table.filters.describe()
        if name not in ("date from", "date to")
    ]
    pairs += [("Note", note) for note in table.notes]
    return pairs


def stamp(table: Table) -> datetime.datetime:
    """The date written into a file's metadata: the end of the report's period, not now."""
    day = table.filters.date_to or table.filters.date_from or datetime.date(2000, 1, 1)
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)


__all__ = [
    "FORMATS",
    "ExportError",
    "export",
    "export_file",
    "format_of",
    "header",
    "is_binary",
    "ledger_name",
    "media_type",
    "period",
    "suffix",
]
