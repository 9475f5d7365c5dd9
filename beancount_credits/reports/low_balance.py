"""``low-balance``: users below their low-balance threshold at the end of ``--to``.

As the notifications see it (:mod:`beancount_credits.jobs.alerts`): wallets
open on that day with a transaction by then, compared with the user's
``credits-low-balance`` threshold of that day (:mod:`beancount_credits.engine.settings`);
"Below since" is the first day of the episode (the day the balance, or a
raised threshold, put it below). The furthest below first.
"""

from __future__ import annotations

import bisect
import datetime
from decimal import Decimal

from beancount_credits.engine import settings
from beancount_credits.jobs import alerts
from beancount_credits.ledger import Ledger
from beancount_credits.reports import common
from beancount_credits.reports.index import index
from beancount_credits.reports.table import Cell, Column, Filters, Table


def report(ledger: Ledger, filters: Filters) -> Table:
    as_of = filters.date_to or common.last_date(ledger) or datetime.date.today()
    found = index(ledger)
    conf = found.settings
    commodities = settings.threshold_commodities(conf)
    users = {
        user.account: user
        for user in common.selected_users(ledger, filters)
        if user.close_date is None or user.close_date > as_of
    }
    rows: list[list[Cell]] = []
    for (account, currency), history in found.wallets.items():
        user = users.get(account)
        if user is None or currency not in commodities:
            continue
        if not common.wants_commodity(filters, currency):
            continue
        count = bisect.bisect_right(history.dates, as_of)
        if not count:
            continue
        balance = history.balance[count - 1]
        threshold = settings.low_balance_threshold(conf, user, currency, as_of)
        if threshold is None or balance >= threshold.amount.number:
            continue
        days: dict[datetime.date, Decimal] = {}
        for day, running in zip(history.dates[:count], history.balance[:count], strict=True):
            days[day] = running  # the end-of-day balance: the day's last transaction
        episode = alerts.low_balance_episode(conf, user, currency, list(days.items()), as_of)
        rows.append(
            [
                user.user_id,
                user.segment,
                currency,
                balance,
                threshold.amount.number,
                threshold.scope,
                None if episode is None else episode[0],
            ]
        )
    rows.sort(key=lambda row: (row[3] - row[4], str(row[0]), str(row[2])))  # type: ignore[operator]
    return Table(
        f"Users below their low-balance threshold on {as_of}",
        [
            Column("User ID"),
            Column("Segment"),
            Column("Credit type"),
            Column("Balance", "number"),
            Column("Threshold", "number"),
            Column("Set for"),
            Column("Below since", "date"),
        ],
        rows,
        filters,
    )
