"""Ledger text as Beancount reads it: the file's exact text, its lines, an entry's lines.

Every reader and writer of ledger text that works by line (the write path, the
importers' edits, period close, amendments, provenance, the notification
outbox) uses :func:`read_text` and :func:`split_lines`, so a line number
Beancount reported is the line an edit lands on: a U+2028, form feed or lone
carriage return inside a string is data, never a line end. :func:`entry_span`
says which lines an entry spans, as Beancount ends a directive.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def read_text(path: Path) -> str:
    """A ledger file's text exactly as Beancount reads it (UTF-8, no newline translation).

    Python's default text mode would turn a lone ``\r`` (data inside a string
    literal for Beancount) into a line end and shift every line number after it.
    """
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def split_lines(text: str) -> list[str]:
    """``text`` cut into lines the way Beancount counts them: after each ``\n`` only.

    Each line keeps its ``\n`` (or ``\r\n``), so ``"".join`` gives the text
    back. ``str.splitlines`` also cuts at U+2028, U+2029, U+0085, ``\f``,
    ``\v``, ``\x1c``-``\x1e`` and a lone ``\r``, which Beancount keeps inside
    a line: every reader and writer of ledger text uses this function instead.
    """
    lines = text.split("\n")
    last = lines.pop()
    result = [line + "\n" for line in lines]
    if last:
        result.append(last)
    return result


def entry_span(lines: Sequence[str], lineno: int) -> tuple[int, int]:
    """The lines of the entry whose header is line ``lineno`` of ``lines``: (first, last), 1-based.

    Beancount ends a directive at the first blank line or the next line
    that starts in column 0; everything indented in between (postings,
    metadata, indented comments) belongs to it. Stopping before blank lines
    matters: git often attributes the blank line between two entries to the
    commit that added the *next* one.
    """
    last = lineno
    for number in range(lineno + 1, len(lines) + 1):
        text = lines[number - 1]
        if not text.strip() or text[0] not in " \t":
            break
        last = number
    return lineno, last
