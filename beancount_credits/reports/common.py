"""What the reports share: which users a filter selects, periods, sorting, as-of grants.

One place for each rule, so every report reads ``--user``, ``--segment``,
``--period`` and ``--sort`` the same way.
"""

from __future__ import annotations

import dataclasses
import datetime
from decimal import Decimal

from beancount.core import data

from beancount_credits import engine
from beancount_credits.ledger import Ledger, User
from beancount_credits.reports.table import Cell, Filters, ReportError, Table

ZERO = Decimal(0)
DEFAULT_PERIOD = "month"


def selected_users(ledger: Ledger, filters: Filters) -> list[User]:
    """The users ``--user`` / ``--segment`` select, by user id (unknown id: LedgerError)."""
    users = [ledger.user(filters.user)] if filters.user else list(ledger.users.values())
    if filters.segment is not None:
        users = [user for user in users if user.segment == filters.segment]
    return sorted(users, key=lambda user: user.user_id)


def in_range(filters: Filters, date: datetime.date) -> bool:
    return (filters.date_from is None or date >= filters.date_from) and (
        filters.date_to is None or date <= filters.date_to
    )


def wants_commodity(filters: Filters, currency: str) -> bool:
    return filters.commodity is None or currency == filters.commodity


# --- Periods ----------------------------------------------------------------


def period_start(date: datetime.date, period: str) -> datetime.date:
    """The first day of the day / ISO week (Monday) / month holding ``date``."""
    if period == "day":
        return date
    if period == "week":
        return date - datetime.timedelta(days=date.weekday())
    return date.replace(day=1)


def next_period(start: datetime.date, period: str) -> datetime.date:
    if period == "day":
        return start + datetime.timedelta(days=1)
    if period == "week":
        return start + datetime.timedelta(weeks=1)
    return (start.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)


def previous_period(start: datetime.date, period: str) -> datetime.date:
    if period == "day":
        return start - datetime.timedelta(days=1)
    if period == "week":
        return start - datetime.timedelta(weeks=1)
    return (start - datetime.timedelta(days=1)).replace(day=1)


def period_label(start: datetime.date, period: str) -> str:
    """``2025-09-14`` (day), ``2025-W37`` (ISO week), ``2025-09`` (month)."""
    if period == "day":
        return start.isoformat()
    if period == "week":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{start.year}-{start.month:02d}"


def periods(first: datetime.date, last: datetime.date, period: str) -> list[datetime.date]:
    """Starts of every period from the one holding ``first`` through the one holding ``last``."""
    starts = []
    start = period_start(first, period)
    while start <= last:
        starts.append(start)
        start = next_period(start, period)
    return starts


# --- Dates the ledger covers --------------------------------------------------


def first_date(ledger: Ledger) -> datetime.date | None:
    """The date of the ledger's first transaction."""
    return next((e.date for e in ledger.entries if isinstance(e, data.Transaction)), None)


def last_date(ledger: Ledger) -> datetime.date | None:
    """The date of the ledger's last transaction (generated expiries included)."""
    return next((e.date for e in reversed(ledger.entries) if isinstance(e, data.Transaction)), None)


def check_range(ledger: Ledger, filters: Filters, view: Ledger | None = None) -> None:
    """ReportError when the date range misses the ledger's history altogether.

    ``view``: the ledger as of ``--to``, whose last transaction may be an
    expiry the text does not record yet.
    """
    first, last = first_date(ledger), last_date(ledger)
    if view is not None and last is not None:
        last = max(last, last_date(view) or last)
    check_span(first, last, filters, str(ledger.path))


def check_span(
    first: datetime.date | None, last: datetime.date | None, filters: Filters, where: str
) -> None:
    """ReportError when ``--from`` is after ``last`` or ``--to`` before ``first``
    (the dates of the first and last transaction of what ``where`` names)."""
    if first is None or last is None:
        return
    if filters.date_from is not None and filters.date_from > last:
        raise ReportError(
            f"empty range: --from {filters.date_from} is after the ledger's last transaction "
            f"({last}) in {where}"
        )
    if filters.date_to is not None and filters.date_to < first:
        raise ReportError(
            f"empty range: --to {filters.date_to} is before the ledger's first transaction "
            f"({first}) in {where}"
        )


# --- The grant ledger as of a date -------------------------------------------


def grants_as_of(ledger: Ledger, date: datetime.date | None) -> engine.EngineResult:
    """The grant ledger at the end of ``date`` (None: the ledger as loaded).

    A report runs on the ledger as of its ``--to`` (:func:`reports.run`), whose
    grants these are; another day is asked of the same owner
    (:mod:`beancount_credits.engine.asof`).
    """
    if date is None or date == ledger.day:
        return ledger.grants
    return ledger.as_of(date).result


def unit_cost(grant: engine.Grant | None) -> tuple[Decimal, str] | None:
    """(money per credit, currency) of a grant; None for free credits and overdrafts."""
    if grant is None or grant.unit_cost is None:
        return None
    return grant.unit_cost.number, grant.unit_cost.currency  # type: ignore[return-value]


# --- Sorting ------------------------------------------------------------------


def sort_table(table: Table, field: str | None, desc: bool, name: str = "") -> Table:
    """The table's rows sorted by the column named ``field`` (case-insensitive).

    Empty cells sort last either way. An unknown column is a ReportError that
    lists the columns. Sorting reads every row: a streamed report is no longer
    streamed once sorted.
    """
    if field is None:
        return table
    names = [column.name for column in table.columns]
    wanted = field.strip().lower()
    index = next((i for i, name in enumerate(names) if name.lower() == wanted), None)
    if index is None:
        raise ReportError(
            f"unknown sort field {field!r} for report {name or table.title!r}; "
            f"columns: {', '.join(names)}"
        )
    rows = list(table.rows)
    present = [row for row in rows if row[index] is not None]
    empty = [row for row in rows if row[index] is None]
    present.sort(key=lambda row: sort_key(row[index]), reverse=desc)
    return dataclasses.replace(table, rows=present + empty)


def sort_key(value: Cell) -> tuple[int, object]:
    # A column holds one kind of value; the tag keeps mixed columns comparable.
    if isinstance(value, Decimal):
        return (0, value)
    if isinstance(value, datetime.date):
        return (1, value)
    return (2, str(value))
