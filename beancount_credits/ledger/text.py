"""Ledger text as Beancount reads it: the file's exact text, cut into Beancount's lines.

Every reader and writer of ledger text that works by line (the write path, the
importers' edits, period close, amendments, provenance, the notification
outbox) uses :func:`read_text` and :func:`split_lines`, so a line number
Beancount reported is the line an edit lands on: a U+2028, form feed or lone
carriage return inside a string is data, never a line end.
"""

from __future__ import annotations

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
