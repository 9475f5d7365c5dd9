"""``daily``: the credit balance history, one row per user, credit type and day.

The ledger logs a balance only on days with activity (the balance log); this
report carries each balance forward over the quiet days, so every day from
``--from`` (default: the ledger's first transaction) through ``--to`` has a
row for every wallet that held the credit type by then, until the wallet is
closed. Change is the day's movement (empty on a quiet day).

Where the ledger keeps the balance log (the ``daily_balances`` plugin is on
and the ledger loaded without errors, so every logged balance holds), the
rows come from the log: one ``balance`` assertion per wallet and active day,
far fewer entries to read than every posting. Otherwise they are summed from
the postings; both give the same rows (tests compare them).

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
from beancount_credits.reports.index import index
from beancount_credits.reports.table import Cell, Chart, Column, Filters, Table

ONE_DAY = datetime.timedelta(days=1)
BALANCE_LOG_PLUGIN = "beancount_credits.plugins.daily_balances"

COLUMNS = [
    Column("Date", "date"),
    Column("User ID"),
    Column("Credit type"),
    Column("Change", "number"),
    Column("Balance", "number"),
]


def report(ledger: Ledger, filters: Filters) -> Table:
    selected = common.selected_users(ledger, filters)
    users = {user.account: user.user_id for user in selected}
    make = rows_from_log if keeps_balance_log(ledger) else daily_rows
    if filters.user and filters.date_to is not None:
        # One user: their own transactions (the wallet index keeps them, every
        # expiry to come booked: cut at --to they are the ledger's), summed.
        ledger = index(ledger).ledger_of(ledger, selected[0].account)
        make = daily_rows
    first = filters.date_from or common.first_date(ledger)
    last = filters.date_to or common.last_date(ledger)
    rows: Iterator[list[Cell]] = iter(())
    if first is not None and last is not None:
        rows = make(ledger, users, filters.commodity, first, last)
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
    closed = {
        user.account: user.close_date
        for user in ledger.users.values()
        if user.account in users and user.close_date is not None
    }
    entries = ledger.entries
    index = 0
    day = first
    while day <= last:
        changes: dict[tuple[str, str], Decimal] = {}
        while index < len(entries) and entries[index].date <= day:
            entry = entries[index]
            index += 1
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
            if account in closed and closed[account] < day:
                continue  # a closed wallet's last row is its close date (credits forfeited)
            key = (account, currency)
            yield [day, user_id, currency, changes.get(key), balances[key]]
        day += ONE_DAY


def keeps_balance_log(ledger: Ledger) -> bool:
    """True when every active day's end-of-day balance is an assertion that holds.

    Not past the horizon of a ledger as of a day with expiries the text does
    not record yet: the log holds no assertion for their days.
    """
    plugins = {name for name, _config in ledger.options.get("plugin") or ()}
    if BALANCE_LOG_PLUGIN not in plugins or ledger.errors:
        return False
    return ledger.day is None or not ledger.as_of(ledger.day).pending


def rows_from_log(
    ledger: Ledger,
    users: dict[str, str],
    commodity: str | None,
    first: datetime.date,
    last: datetime.date,
) -> Iterator[list[Cell]]:
    """The rows of :func:`daily_rows`, read from the balance log.

    An assertion dated D holds the balance at the end of D - 1: the day it logs.
    """
    closes = {
        user.account: user.close_date
        for user in ledger.users.values()
        if user.account in users and user.close_date is not None
    }
    balances: dict[tuple[str, str], Decimal] = {}
    order: list[tuple[str, str, str]] = []
    # One quick pass keeps the log of the selected wallets: the day loop then
    # reads only those assertions (a small share of a large ledger's entries).
    log = [e for e in ledger.entries if type(e) is data.Balance and e.account in users]
    closing_moves = close_day_moves(ledger.entries, closes)
    index = 0
    day = first
    while day <= last:
        logged: dict[tuple[str, str], Decimal] = {}
        asserted = day + ONE_DAY
        while index < len(log) and log[index].date <= asserted:
            entry = log[index]
            index += 1
            currency = entry.amount.currency
            if commodity is not None and currency != commodity:
                continue
            key = (entry.account, currency)
            if key not in balances:
                balances[key] = common.ZERO
                bisect.insort(order, (users[entry.account], currency, entry.account))
            if entry.date == asserted:
                logged[key] = entry.amount.number - balances[key]
            balances[key] = entry.amount.number  # type: ignore[assignment]
        # Closes up to this day, an earlier one too when the range starts after it.
        for close_date in sorted(date for date in closing_moves if date <= day):
            for key, change in closing_moves.pop(close_date).items():
                if key in balances and (close_date < day or key not in logged):
                    balances[key] += change
                    if close_date == day:
                        logged[key] = change
        for user_id, currency, account in order:
            close = closes.get(account)
            if close is not None and close < day:
                continue  # a closed wallet's last row is its close date (credits forfeited)
            key = (account, currency)
            yield [day, user_id, currency, logged.get(key), balances[key]]
        day += ONE_DAY


def close_day_moves(
    entries: list[data.Directive], closes: dict[str, datetime.date]
) -> dict[datetime.date, dict[tuple[str, str], Decimal]]:
    """Each closed wallet's movements on its close day, which the log does not hold.

    There is no assertion after a close, so the forfeiture of the remaining
    credits on that day comes from the postings.
    """
    moves: dict[datetime.date, dict[tuple[str, str], Decimal]] = {}
    for account, date in closes.items():
        index = bisect.bisect_left(entries, date, key=lambda entry: entry.date)
        while index < len(entries) and entries[index].date == date:
            entry = entries[index]
            index += 1
            if type(entry) is not data.Transaction:
                continue
            for posting in entry.postings:
                if posting.account == account and posting.units is not None:
                    key = (account, posting.units.currency)
                    day = moves.setdefault(date, {})
                    day[key] = day.get(key, common.ZERO) + posting.units.number
    return moves
