"""``daily``: the credit balance history, one row per user, credit type and day.

The ledger logs a balance only on days with activity (the balance log); this
report carries each balance forward over the quiet days, so every day from
``--from`` (default: the ledger's first transaction) through ``--to`` has a
row for every wallet that held the credit type by then, until the wallet is
closed. Change is the day's movement (empty on a quiet day).

Rows are a generator, date by date: memory stays at one balance per wallet
however long the range, so exporters can stream a large ledger.
"""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Iterator
from decimal import Decimal

from beancount.core import data

from beancount_credits.ledger import Ledger
from beancount_credits.reports import common
from beancount_credits.reports.table import Cell, Chart, Column, Filters, Table

ONE_DAY = datetime.timedelta(days=1)

COLUMNS = [
    Column("Date", "date"),
    Column("User ID"),
    Column("Credit type"),
    Column("Change", "number"),
    Column("Balance", "number"),
]


def report(ledger: Ledger, filters: Filters) -> Table:
    users = {user.account: user.user_id for user in common.selected_users(ledger, filters)}
    first = filters.date_from or common.first_date(ledger)
    last = filters.date_to or common.last_date(ledger)
    rows: Iterator[list[Cell]] = iter(())
    if first is not None and last is not None:
        rows = daily_rows(ledger, users, filters.commodity, first, last)
    return Table(
        "Daily balances",
        COLUMNS,
        rows,
        filters,
        notes=["balances carried forward over days without activity (Change empty)"],
        chart=Chart("step", x="Date", y=["Balance"], series="User ID", title="Balance over time"),
    )


def daily_rows(
    ledger: Ledger,
    users: dict[str, str],
    commodity: str | None,
    first: datetime.date,
    last: datetime.date,
) -> Iterator[list[Cell]]:
    """[date, user id, commodity, change, balance] for every wallet and day first..last."""
    balances: dict[tuple[str, str], Decimal] = {}
    # Wallets in report order (user id, commodity), kept sorted as they appear.
    order: list[tuple[str, str, str]] = []
    closing: set[str] = set()
    entries = ledger.entries
    index = 0
    day = first
    while day <= last:
        changes: dict[tuple[str, str], Decimal] = {}
        while index < len(entries) and entries[index].date <= day:
            entry = entries[index]
            index += 1
            if isinstance(entry, data.Close) and entry.account in users:
                closing.add(entry.account)
                continue
            if not isinstance(entry, data.Transaction):
                continue
            for posting in entry.postings:
                user_id = users.get(posting.account)
                if user_id is None or posting.units is None:
                    continue
                currency = posting.units.currency
                if commodity is not None and currency != commodity:
                    continue
                key = (posting.account, currency)
                if key not in balances:
                    balances[key] = common.ZERO
                    bisect.insort(order, (user_id, currency, posting.account))
                balances[key] += posting.units.number
                if entry.date == day:
                    changes[key] = changes.get(key, common.ZERO) + posting.units.number
        for user_id, currency, account in order:
            key = (account, currency)
            yield [day, user_id, currency, changes.get(key), balances[key]]
        if closing:
            # A closed wallet's last row is its close date (its credits forfeited).
            order = [item for item in order if item[2] not in closing]
            closing.clear()
        day += ONE_DAY
