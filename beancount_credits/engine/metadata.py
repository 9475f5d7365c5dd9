"""What the engine reads from metadata, and the mark on the entries the plugins make.

Parsers for the grant policy keys (``expire_after``, ``priority``,
``unit_cost``, dates), the Transaction IDs of grants and their expiries, and
the generated mark: entries this package's plugins make carry a metadata key
that ledger text cannot hold, and :func:`is_generated` reads it, never a file
name. The policy and settings plugins parse with these too.
"""

from __future__ import annotations

import calendar
import datetime
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, NamedTuple

from beancount.core import account as account_lib
from beancount.core import amount as amount_lib
from beancount.core import data

from beancount_credits.engine.model import EXPIRED_TAG

GENERATED_FILENAME = "<beancount_credits.plugins.expire>"
# The mark a plugin of this package sets on an entry it makes: a metadata key
# that ledger text cannot hold (Beancount's keys start with a lowercase letter)
# and that Beancount's printer and Fava leave out, valued with the plugin's
# name. Generated entries are told apart from written ones by this mark, never
# by their file name: ``load_string`` names every written entry ``<string>``.
GENERATED_KEY = "__beancount_credits_generated__"
EXPIRE_PLUGIN_NAME = "beancount_credits.plugins.expire"
# Flags Beancount's own generated transactions carry (pad, summarize, transfer,
# conversions, unrealized): made by Beancount, not written.
BEANCOUNT_GENERATED_FLAGS = frozenset("PSTCU")

# --- Policies from metadata -------------------------------------------------

_PERIOD_RE = re.compile(r"^\s*(\d+)\s*([dwmy])\s*$", re.IGNORECASE)


def parse_period(text: str) -> tuple[int, str]:
    """Parse an ``expire_after`` value such as ``"90d"``, ``"2w"``, ``"12m"``, ``"1y"``."""
    match = _PERIOD_RE.match(str(text))
    if not match:
        raise ValueError(f"expire_after {text!r} is not a period like '90d', '2w', '12m' or '1y'")
    return int(match.group(1)), match.group(2).lower()


def add_period(date: datetime.date, period: tuple[int, str]) -> datetime.date:
    """The date ``period`` after ``date`` (month ends clamp: Jan 31 + 1m = Feb 28/29)."""
    count, unit = period
    if unit == "d":
        return date + datetime.timedelta(days=count)
    if unit == "w":
        return date + datetime.timedelta(weeks=count)
    months = count * 12 if unit == "y" else count
    year, month0 = divmod(date.month - 1 + months, 12)
    year += date.year
    day = min(date.day, calendar.monthrange(year, month0 + 1)[1])
    return datetime.date(year, month0 + 1, day)


def meta_date(value: Any) -> datetime.date:
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"{str(value)!r} is not a date (YYYY-MM-DD)") from None


def meta_decimal(value: Any) -> Decimal:
    if isinstance(value, amount_lib.Amount):
        return value.number
    if isinstance(value, bool):
        raise ValueError(f"{value} is not a number")
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError:
        raise ValueError(f"{str(value)!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{value} is not a finite number")
    return number


def meta_int(value: Any) -> int:
    number = meta_decimal(value)
    if number != number.to_integral_value():
        raise ValueError(f"{value} is not a whole number")
    return int(number)


def meta_amount(value: Any) -> amount_lib.Amount:
    if isinstance(value, amount_lib.Amount):
        return value
    return amount_lib.Amount.from_string(str(value))


def parse_accounts(value: Any) -> tuple[str, ...]:
    """An ``applies_to`` value: one account or several (separated by commas or spaces)."""
    names = tuple(name for name in re.split(r"[\s,]+", str(value)) if name)
    if not names:
        raise ValueError("applies_to names no account")
    for name in names:
        if not account_lib.is_valid(name):
            raise ValueError(f"applies_to: {name!r} is not an account name")
    return names


class SourcePolicy(NamedTuple):
    """Grant defaults a source account's ``open`` declares."""

    expire_after: tuple[int, str] | None
    priority: int | None
    unit_cost: amount_lib.Amount | None
    applies_to: tuple[str, ...] | None = None  # the uses its grants may serve


def txn_id_of(entry: data.Transaction) -> str | None:
    value = entry.meta.get("txn_id") if entry.meta else None
    return None if value is None else str(value)


def expiry_txn_id(grant_id: str, cause: str | None = None) -> str:
    """The Transaction ID of a grant's expiry (``cause``: the reversal behind it)."""
    return f"{grant_id}:expiry" if cause is None else f"{grant_id}:expiry:{cause}"


def is_expiry_record(entry: data.Transaction) -> bool:
    """An ``#expired`` transaction carrying a grant id, generated or written in the text."""
    return EXPIRED_TAG in entry.tags and bool(entry.meta) and "grant" in entry.meta


def generated_meta(plugin: str, lineno: int = 0, filename: str | None = None) -> data.Meta:
    """Metadata for an entry ``plugin`` makes, carrying the generated mark."""
    meta = data.new_metadata(filename or f"<{plugin}>", lineno)
    meta[GENERATED_KEY] = plugin
    return meta


def generated_by(entry: data.Directive) -> str | None:
    """The plugin of this package that made the entry (None: written, or Beancount's)."""
    meta = entry.meta
    return None if not meta else meta.get(GENERATED_KEY)


def is_generated(entry: data.Directive) -> bool:
    """True for entries a plugin made rather than the ledger text.

    This package's plugins mark theirs (:data:`GENERATED_KEY`); Beancount's own
    generated transactions (pad, summarize) carry a flag of their own. The
    file name plays no part: ``load_string`` calls written entries ``<string>``.
    """
    meta = entry.meta
    if meta and GENERATED_KEY in meta:
        return True
    return isinstance(entry, data.Transaction) and entry.flag in BEANCOUNT_GENERATED_FLAGS


def written_entries(entries: Iterable[data.Directive]) -> list[data.Directive]:
    """The entries without the expire plugin's generated expiries (the engine's input)."""
    return [
        entry
        for entry in entries
        if not (entry.meta and entry.meta.get(GENERATED_KEY) == EXPIRE_PLUGIN_NAME)
    ]
