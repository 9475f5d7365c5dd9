"""Text export: the aligned table ``bean-credits report`` prints (reports/render.py)."""

from __future__ import annotations

import io
from typing import BinaryIO

from beancount_credits.reports.render import render_text
from beancount_credits.reports.table import Table


def write_text(table: Table, out: BinaryIO, *, ledger_name: str) -> None:
    """UTF-8 text, exactly what the terminal shows (the ledger is the one named on the command)."""
    del ledger_name  # the text report names no ledger: it is printed for the one asked about
    text = io.TextIOWrapper(out, encoding="utf-8", newline="\n", write_through=True)
    try:
        render_text(table, text)
        text.flush()
    finally:
        text.detach()  # leave ``out`` open for the caller
