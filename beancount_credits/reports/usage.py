"""``usage``: earned, redeemed, expired and net per user, credit type and period.

``--period day|week|month`` (default month). A transaction counts by its
counter-account, as in the statement: income is earned, expenses are redeemed,
breakage is expired, other counter-accounts (adjustments) earned when positive
and redeemed when negative; a reversal shows as a negative amount in the
column of what it undoes. Net is earned - redeemed - expired (the change of
the balance). Trend is the change in redeemed against the user's previous
period (a period without activity counts as 0). With ``--member``, only that
team member's transactions count.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from decimal import Decimal

from beancount.core import data

from beancount_credits.ledger import Ledger
from beancount_credits.reports import common
from beancount_credits.reports.kinds import classify
from beancount_credits.reports.table import Cell, Chart, Column, Filters, Table

KINDS = ("earned", "redeemed", "expired")

COLUMNS = [
    Column("Period"),
    Column("User ID"),
    Column("Credit type"),
    Column("Earned", "number"),
    Column("Redeemed", "number"),
    Column("Expired", "number"),
    Column("Net", "number"),
    Column("Trend", "number"),
]

Totals = dict[str, Decimal]


def usage_by_period(
    ledger: Ledger, filters: Filters, period: str
) -> dict[tuple[str, str], dict[datetime.date, Totals]]:
    """{(wallet, commodity): {period start: {kind: credits}}} for transactions in range."""
    accounts = {user.account for user in common.selected_users(ledger, filters)}
    config = ledger.config
    found: dict[tuple[str, str], dict[datetime.date, Totals]] = defaultdict(dict)
    for entry in ledger.entries:
        if filters.date_to is not None and entry.date > filters.date_to:
            break
        if not isinstance(entry, data.Transaction) or not common.in_range(filters, entry.date):
            continue
        if filters.member is not None and entry.meta.get("member") != filters.member:
            continue
        for posting in entry.postings:
            if posting.account not in accounts or posting.units is None:
                continue
            number, currency = posting.units.number, posting.units.currency
            if not common.wants_commodity(filters, currency):
                continue
            kind = classify(entry, posting.account, config, number)  # type: ignore[arg-type]
            start = common.period_start(entry.date, period)
            totals = found[(posting.account, currency)].setdefault(
                start, dict.fromkeys(KINDS, common.ZERO)
            )
            totals[kind] += number if kind == "earned" else -number
    return found


def report(ledger: Ledger, filters: Filters) -> Table:
    period = filters.period or common.DEFAULT_PERIOD
    found = usage_by_period(ledger, filters, period)
    user_ids = {user.account: user.user_id for user in ledger.users.values()}
    return usage_table(found, user_ids, filters, period)


def usage_table(
    found: dict[tuple[str, str], dict[datetime.date, Totals]],
    user_ids: dict[str, str],
    filters: Filters,
    period: str,
) -> Table:
    """The report from its totals (the ledger's, or a columnar export's)."""
    rows: list[list[Cell]] = []
    for account, currency in sorted(found, key=lambda key: (user_ids[key[0]], key[1])):
        by_period = found[(account, currency)]
        for start in sorted(by_period):
            totals = by_period[start]
            previous = by_period.get(common.previous_period(start, period))
            before = previous["redeemed"] if previous else common.ZERO
            earned, redeemed, expired = (totals[kind] for kind in KINDS)
            rows.append(
                [
                    common.period_label(start, period),
                    user_ids[account],
                    currency,
                    earned,
                    redeemed,
                    expired,
                    earned - redeemed - expired,
                    redeemed - before,
                ]
            )
    return Table(
        f"Usage per {period}",
        COLUMNS,
        rows,
        filters,
        notes=["Trend: redeemed minus the user's redeemed in the previous period"],
        chart=Chart(
            "bar", x="Period", y=["Earned", "Redeemed", "Expired"], title="Credits per period"
        ),
    )
