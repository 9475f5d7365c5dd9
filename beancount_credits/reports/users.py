"""``users``: every user, one row per credit type: balance, period figures, alerts' inputs.

Balance, "Expiring in 30 days" and the low-balance threshold are taken at the
end of ``--to``; Earned, Redeemed and Expired count the transactions from
``--from`` through ``--to`` (as the statement counts them, so a user's row adds
up to their statement); Last activity is the last day with a transaction other
than an expiry. ``--user``, ``--segment``, ``--commodity`` and ``--search``
(a part of the user id, any case) narrow the rows. The Credit page's all-users
table is this report; with Fava's account or tag filter on, it passes the
entries that filter keeps as ``activity`` and lists only users with some.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from beancount.core import data

from beancount_credits.engine import settings
from beancount_credits.ledger import Ledger, User
from beancount_credits.reports import common, expiring
from beancount_credits.reports.index import Activity, activity_of, index
from beancount_credits.reports.table import Cell, Column, Filters, Table

ZERO = Decimal(0)
EXPIRING_DAYS = 30

COLUMNS = [
    Column("User ID"),
    Column("Segment"),
    Column("Credit type"),
    Column("Balance", "number"),
    Column("Earned", "number"),
    Column("Redeemed", "number"),
    Column("Expired", "number"),
    Column(f"Expiring in {EXPIRING_DAYS} days", "number"),
    Column("Last activity", "date"),
    Column("Low-balance threshold", "number"),
]


def report(
    ledger: Ledger, filters: Filters, *, activity: Iterable[data.Directive] | None = None
) -> Table:
    as_of = filters.date_to or common.last_date(ledger) or datetime.date.today()
    found = index(ledger)
    if activity is None:
        moved = found.activity(filters.date_from, as_of)
    else:
        moved = activity_of(activity, ledger.config, filters.date_from, as_of)
    balances, last = found.balances_at(as_of), found.last_activity(as_of)
    soon: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    grants = common.grants_as_of(ledger, as_of)
    for grant in expiring.expiring_grants(grants, as_of, EXPIRING_DAYS):
        soon[grant.account, grant.currency] += grant.remaining
    by_account: dict[str, set[str]] = defaultdict(set)
    for account, currency in [*balances, *moved]:
        by_account[account].add(currency)
    default = main_credit_type(balances)
    active = {account for account, _currency in moved}
    conf = found.settings
    with_thresholds = settings.threshold_commodities(conf)
    needle = filters.search.casefold() if filters.search else None
    rows: list[list[Cell]] = []
    for user in common.selected_users(ledger, filters):
        if activity is not None and user.account not in active:
            continue
        if needle is not None and needle not in user.user_id.casefold():
            continue
        for currency in sorted(by_account.get(user.account) or {default}):
            if not common.wants_commodity(filters, currency):
                continue
            key = (user.account, currency)
            figures = moved.get(key, Activity())
            rows.append(
                [
                    user.user_id,
                    user.segment,
                    currency,
                    balances.get(key, ZERO),
                    figures.earned,
                    figures.redeemed,
                    figures.expired,
                    soon.get(key, ZERO),
                    last.get(user.account),
                    threshold_number(conf, user, currency, as_of)
                    if currency in with_thresholds
                    else None,
                ]
            )
    rows.sort(key=lambda row: (str(row[0]), str(row[2])))
    return Table("Credit balances", list(COLUMNS), rows, filters)


def threshold_number(
    conf: settings.Settings, user: User, currency: str, as_of: datetime.date
) -> Decimal | None:
    """The user's low-balance threshold of a credit type on a day (None: none set)."""
    threshold = settings.low_balance_threshold(conf, user, currency, as_of)
    return None if threshold is None else threshold.amount.number


def main_credit_type(balances: dict[tuple[str, str], Decimal]) -> str:
    """The credit type most wallets hold (shown for users without any activity)."""
    counts: dict[str, int] = defaultdict(int)
    for _account, currency in balances:
        counts[currency] += 1
    return max(sorted(counts), key=lambda currency: counts[currency], default="CREDIT")
