"""Entries as ledger text: Beancount directives that read back as exactly what was meant.

Every writer of entries (close-day, close-period, amendments, imports, top-up
records) renders them here; :mod:`beancount_credits.ledger.write` puts the text
in the files. Strings from outside (user ids, emails, descriptions, reasons)
go through :func:`quote`, so no input can end a string and start a directive;
a metadata key, commodity, tag or link that is not well formed, and a value of
a type Beancount text cannot hold, are refused with a :class:`WriteError`
(defined here, the write path's lowest layer: a refused rendering is a
refused write, and nothing is written).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from beancount.core import amount as amount_lib
from beancount.core import data

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_ESCAPE_RE = re.compile(r'[\\"\n\t\r]')
_KEY_RE = re.compile(r"^[a-z][a-zA-Z0-9_-]+$")
# A commodity name as Beancount's lexer reads one (the one pattern for it here).
COMMODITY = r"(?:[A-Z][A-Z0-9'._-]{0,22}[A-Z0-9]|[A-Z])"
_CURRENCY_RE = re.compile(COMMODITY)
_TAG_RE = re.compile(r"^[A-Za-z0-9_/.-]+$")


class WriteError(Exception):
    """A write that was refused; nothing was changed. ``details`` lists the reasons."""

    def __init__(self, message: str, details: Sequence[str] = ()):
        super().__init__(message)
        self.details = list(details)

    def __str__(self) -> str:
        return "\n".join([self.args[0], *self.details])


def quote(value: str) -> str:
    """A Beancount string literal that reads back as exactly ``value``.

    Backslashes and quotes are escaped, and so are newlines, tabs and carriage
    returns (which Beancount unescapes), so the literal stays on one line and
    no input can close it early.
    """
    return '"' + _ESCAPE_RE.sub(lambda match: _ESCAPES[match.group()], value) + '"'


def render_value(value: Any) -> str:
    """A metadata value as Beancount text (strings quoted, numbers plain)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, amount_lib.Amount):
        return f"{value.number:f} {check_currency(value.currency)}"
    raise WriteError(f"cannot write a value of type {type(value).__name__}: {value!r}")


def check_key(key: str) -> str:
    if not _KEY_RE.fullmatch(key):
        raise WriteError(
            f"{key!r} is not a metadata key (a lowercase letter, then 1+ of [a-zA-Z0-9_-])"
        )
    return key


def is_commodity(text: object) -> bool:
    """Whether ``text`` is a commodity name Beancount reads."""
    return isinstance(text, str) and _CURRENCY_RE.fullmatch(text) is not None


def check_currency(currency: str) -> str:
    if not is_commodity(currency):
        raise WriteError(f"{currency!r} is not a commodity name")
    return currency


def render_meta(meta: dict[str, Any] | None, indent: str) -> list[str]:
    """Metadata lines, skipping Beancount's own bookkeeping keys."""
    lines = []
    for key, value in (meta or {}).items():
        if key in ("filename", "lineno") or key.startswith("__") or value is None:
            continue
        lines.append(f"{indent}{check_key(key)}: {render_value(value)}")
    return lines


def render_transaction(entry: data.Transaction) -> str:
    """A transaction as Beancount text; every string field is quoted safely."""
    head = [entry.date.isoformat(), entry.flag or "*"]
    if entry.payee is not None:
        head.append(quote(entry.payee))
    head.append(quote(entry.narration or ""))
    for tag in sorted(entry.tags or ()):
        if not _TAG_RE.fullmatch(tag):
            raise WriteError(f"{tag!r} is not a tag")
        head.append("#" + tag)
    for link in sorted(entry.links or ()):
        if not _TAG_RE.fullmatch(link):
            raise WriteError(f"{link!r} is not a link")
        head.append("^" + link)
    lines = [" ".join(head), *render_meta(entry.meta, "  ")]
    for posting in entry.postings:
        units = posting.units
        text = f"  {posting.account}"
        if units is not None and units.number is not None:
            text += f"  {units.number:f} {check_currency(units.currency)}"
        lines.append(text)
        lines += render_meta(posting.meta, "    ")
    return "\n".join(lines) + "\n"


def render_balance(entry: data.Balance) -> str:
    number = entry.amount.number
    currency = check_currency(entry.amount.currency)
    head = f"{entry.date.isoformat()} balance {entry.account}  {number:f} {currency}\n"
    return head + "".join(meta + "\n" for meta in render_meta(entry.meta, "  "))


def render_open(entry: data.Open) -> str:
    head = f"{entry.date.isoformat()} open {entry.account}"
    for currency in entry.currencies or ():
        head += f" {check_currency(currency)}"
    return head + "\n" + "".join(meta + "\n" for meta in render_meta(entry.meta, "  "))


def render_custom(entry: data.Custom) -> str:
    """A ``custom`` directive; its values are plain Python values or Beancount's (value, type)."""
    values = [value[0] if isinstance(value, tuple) else value for value in entry.values]
    head = " ".join(
        [entry.date.isoformat(), "custom", quote(entry.type), *map(render_value, values)]
    )
    return head + "\n" + "".join(meta + "\n" for meta in render_meta(entry.meta, "  "))


def render(entry: data.Directive) -> str:
    if isinstance(entry, data.Transaction):
        return render_transaction(entry)
    if isinstance(entry, data.Balance):
        return render_balance(entry)
    if isinstance(entry, data.Open):
        return render_open(entry)
    if isinstance(entry, data.Custom):
        return render_custom(entry)
    raise WriteError(f"cannot write a {type(entry).__name__} directive")
