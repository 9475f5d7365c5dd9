"""``failed-topups``: failed top-ups recorded from ``--from`` through ``--to``, newest first.

The importers record a declined payment as ``custom "credits-topup"
"<user_id>" "failed"`` with ``request:``, ``reason:`` and ``amount:``
metadata (:mod:`beancount_credits.jobs.records`).
"""

from __future__ import annotations

import datetime

from beancount_credits.ledger import Ledger
from beancount_credits.reports import common
from beancount_credits.reports.index import index
from beancount_credits.reports.table import Cell, Column, Filters, Table


def report(ledger: Ledger, filters: Filters) -> Table:
    as_of = filters.date_to or common.last_date(ledger) or datetime.date.today()
    selected = {user.user_id for user in common.selected_users(ledger, filters)}
    rows: list[list[Cell]] = []
    for entry in index(ledger).topups:
        if entry.date > as_of:
            break
        values = [value.value for value in entry.values]
        if len(values) < 2 or str(values[1]) != "failed":
            continue
        if filters.date_from is not None and entry.date < filters.date_from:
            continue
        if (filters.user or filters.segment) and str(values[0]) not in selected:
            continue
        meta = entry.meta
        amount = meta.get("amount")
        rows.append(
            [
                entry.date,
                str(values[0]),
                None if meta.get("request") is None else str(meta["request"]),
                None if amount is None else str(amount),
                None if meta.get("reason") is None else str(meta["reason"]),
            ]
        )
    rows.reverse()
    return Table(
        "Failed top-ups",
        [
            Column("Date", "date"),
            Column("User ID"),
            Column("Request"),
            Column("Amount"),
            Column("Reason"),
        ],
        rows,
        filters,
    )
