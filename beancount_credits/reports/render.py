"""Render a report Table as aligned text."""

from __future__ import annotations

from typing import TextIO

from beancount_credits.reports.table import Table, format_cell


def render_text(table: Table, out: TextIO) -> None:
    """Write the table as a title, the filters, and aligned columns."""
    rows = [[format_cell(cell) for cell in row] for row in table.rows]
    headers = [column.name for column in table.columns]
    widths = [len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    def line(cells: list[str]) -> str:
        parts = []
        for index, cell in enumerate(cells):
            if table.columns[index].kind == "number":
                parts.append(cell.rjust(widths[index]))
            else:
                parts.append(cell.ljust(widths[index]))
        return "  ".join(parts).rstrip()

    out.write(table.title + "\n")
    for name, value in table.filters.describe():
        out.write(f"  {name}: {value}\n")
    for note in table.notes:
        out.write(f"  {note}\n")
    out.write("\n")
    out.write(line(headers) + "\n")
    out.write("  ".join("-" * width for width in widths) + "\n")
    for row in rows:
        out.write(line(row) + "\n")
    if not rows:
        out.write("(no rows)\n")
