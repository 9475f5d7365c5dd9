"""``balances``: every user's balance per credit type, as of a date."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from beancount.core import data

from beancount_credits.ledger import Ledger
from beancount_credits.reports.table import Cell, Column, Filters, Table


def wallet_balances(ledger: Ledger, filters: Filters) -> dict[str, dict[str, Decimal]]:
    """Balance per wallet account and commodity at the end of ``filters.date_to``."""
    config = ledger.config
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for entry in ledger.entries:
        if filters.date_to is not None and entry.date > filters.date_to:
            break
        if not isinstance(entry, data.Transaction):
            continue
        for posting in entry.postings:
            if config.is_user_account(posting.account):
                totals[posting.account][posting.units.currency] += posting.units.number
    return totals


def report(ledger: Ledger, filters: Filters) -> Table:
    totals = wallet_balances(ledger, filters)
    users = [ledger.user(filters.user)] if filters.user else list(ledger.users.values())
    return balances_table(
        totals, [(user.user_id, user.segment, user.account) for user in users], filters
    )


def balances_table(
    totals: dict[str, dict[str, Decimal]],
    users: list[tuple[str, str | None, str]],
    filters: Filters,
) -> Table:
    """The report from the balances per wallet and commodity (the ledger's, or an export's).

    ``users``: (user id, segment, wallet) of the users to list.
    """
    if filters.segment is not None:
        users = [user for user in users if user[1] == filters.segment]
    commodities = sorted({currency for wallet in totals.values() for currency in wallet})
    if filters.commodity is not None:
        commodities = [filters.commodity]
    rows: list[list[Cell]] = []
    for user_id, segment, account in sorted(users):
        wallet = totals.get(account, {})
        rows.append(
            [user_id, segment] + [wallet.get(currency, Decimal(0)) for currency in commodities]  # type: ignore[arg-type]
        )
    title = "Balances" + (f" as of {filters.date_to}" if filters.date_to else "")
    columns = [Column("User ID"), Column("Segment")] + [
        Column(currency, "number") for currency in commodities
    ]
    return Table(title, columns, rows, filters)
