"""``grants``: the grants with credits left at the end of ``--to``, in the order they are spent.

Per grant: its id, date, credit type, source (without the income root), the
amount granted, what is left and when it expires, from the grant engine's
state at the end of ``--to``. With ``--user`` the rows are that user's (the
Credit page's "open grants" of one user); without it, a User ID column leads.
"""

from __future__ import annotations

import datetime

from beancount_credits import engine
from beancount_credits.ledger import Ledger
from beancount_credits.reports import common
from beancount_credits.reports.table import Cell, Column, Filters, Table

COLUMNS = [
    Column("Grant"),
    Column("Date", "date"),
    Column("Credit type"),
    Column("Source"),
    Column("Granted", "number"),
    Column("Remaining", "number"),
    Column("Expires", "date"),
]


def report(ledger: Ledger, filters: Filters) -> Table:
    as_of = filters.date_to or common.last_date(ledger) or datetime.date.today()
    result = common.grants_as_of(ledger, as_of)
    users = common.selected_users(ledger, filters)
    rows: list[list[Cell]] = []
    for user in users:
        for grant in engine.open_grants(result, user.account):
            if not common.wants_commodity(filters, grant.currency):
                continue
            row: list[Cell] = [
                grant.id,
                grant.date,
                grant.currency,
                short_source(grant.source, ledger),
                grant.amount,
                grant.remaining,
                grant.expires,
            ]
            rows.append(row if filters.user else [user.user_id, *row])
    if filters.user:
        return Table(f"Open grants of {filters.user} as of {as_of}", list(COLUMNS), rows, filters)
    return Table(f"Open grants as of {as_of}", [Column("User ID"), *COLUMNS], rows, filters)


def short_source(source: str | None, ledger: Ledger) -> str | None:
    """A grant's source without the income root (``Purchase``); other accounts in full."""
    prefix = ledger.config.income + ":"
    if source is not None and source.startswith(prefix):
        return source[len(prefix) :]
    return source
