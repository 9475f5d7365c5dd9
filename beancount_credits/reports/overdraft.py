"""``overdraft``: users whose balance is below zero at the end of ``--to``.

A wallet goes below zero only within its ``credit_limit`` (more is an error of
the grant engine); the lowest balance first, with the limit its ``open`` sets.
"""

from __future__ import annotations

import datetime

from beancount_credits.ledger import Ledger
from beancount_credits.reports import common
from beancount_credits.reports.index import index
from beancount_credits.reports.table import Cell, Column, Filters, Table


def report(ledger: Ledger, filters: Filters) -> Table:
    as_of = filters.date_to or common.last_date(ledger) or datetime.date.today()
    balances = index(ledger).balances_at(as_of)
    users = {user.account: user for user in common.selected_users(ledger, filters)}
    rows: list[list[Cell]] = []
    for (account, currency), balance in sorted(balances.items(), key=lambda item: item[1]):
        user = users.get(account)
        if balance < 0 and user is not None and common.wants_commodity(filters, currency):
            limit = user.credit_limit
            rows.append(
                [
                    user.user_id,
                    user.segment,
                    currency,
                    balance,
                    None if limit is None else str(limit),
                ]
            )
    return Table(
        f"Users in overdraft on {as_of}",
        [
            Column("User ID"),
            Column("Segment"),
            Column("Credit type"),
            Column("Balance", "number"),
            Column("Credit limit"),
        ],
        rows,
        filters,
    )
