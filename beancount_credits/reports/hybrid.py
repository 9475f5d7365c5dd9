"""``hybrid``: orders paid partly with credits and partly in cash.

A redemption carrying ``cash:`` (the money part of a hybrid payment, e.g.
``cash: 12.50 USD``) is a hybrid payment. For each: the credits drawn, their
value at the unit cost of the grants they were drawn from (the grant engine's
consumptions, as paid: a later reversal does not change them; free credits and
overdraft count 0), the cash, and the cash
share of the total. The order is the ``order:`` metadata, else the
transaction's first link.
"""

from __future__ import annotations

from decimal import Decimal

from beancount.core import data

from beancount_credits import engine
from beancount_credits.ledger import Ledger
from beancount_credits.reports import common
from beancount_credits.reports.table import Cell, Column, Filters, ReportError, Table

COLUMNS = [
    Column("Date", "date"),
    Column("Transaction ID"),
    Column("User ID"),
    Column("Member"),
    Column("Order"),
    Column("Credit type"),
    Column("Credits", "number"),
    Column("Credits value", "number"),
    Column("Cash", "number"),
    Column("Currency"),
    Column("Cash share %", "number"),
]
CENT = Decimal("0.01")
TENTH = Decimal("0.1")


def credits_value(drawdowns: list[engine.DrawDown], currency: str) -> Decimal:
    """What the draw-downs consumed, at their grants' unit cost in ``currency``."""
    value = common.ZERO
    for drawdown in drawdowns:
        for part in drawdown.parts:
            cost = common.unit_cost(part.grant)
            if cost is not None and cost[1] == currency:
                value += part.amount * cost[0]
    return value


def report(ledger: Ledger, filters: Filters) -> Table:
    users = {user.account: user.user_id for user in common.selected_users(ledger, filters)}
    by_txn: dict[str, list[engine.DrawDown]] = {}
    for drawdown in ledger.grants.drawdowns:
        if drawdown.txn_id is not None:
            by_txn.setdefault(drawdown.txn_id, []).append(drawdown)
    rows: list[list[Cell]] = []
    totals: dict[str, list[Decimal]] = {}
    for entry in ledger.entries:
        if filters.date_to is not None and entry.date > filters.date_to:
            break
        if not isinstance(entry, data.Transaction) or "cash" not in entry.meta:
            continue
        if not common.in_range(filters, entry.date):
            continue
        if filters.member is not None and entry.meta.get("member") != filters.member:
            continue
        try:
            cash = engine.meta_amount(entry.meta["cash"])
        except (ValueError, ArithmeticError) as exc:
            raise ReportError(
                f"{entry.meta.get('filename')}:{entry.meta.get('lineno')}: cash "
                f"{entry.meta['cash']!r} of {entry.meta.get('txn_id')!r} is not an amount "
                f"like 12.50 USD ({exc})"
            ) from None
        txn_id = entry.meta.get("txn_id")
        order = entry.meta.get("order") or next(iter(sorted(entry.links)), None)
        for posting in entry.postings:
            if posting.account not in users or posting.units is None:
                continue
            if posting.units.number >= 0:
                continue
            currency = posting.units.currency
            if not common.wants_commodity(filters, currency):
                continue
            drawn = [
                d
                for d in by_txn.get(str(txn_id), [])
                if d.account == posting.account and d.currency == currency
            ]
            value = credits_value(drawn, cash.currency).quantize(CENT)
            whole = value + cash.number
            rows.append(
                [
                    entry.date,
                    None if txn_id is None else str(txn_id),
                    users[posting.account],
                    entry.meta.get("member"),
                    None if order is None else str(order),
                    currency,
                    -posting.units.number,
                    value,
                    cash.number,
                    cash.currency,
                    (cash.number * 100 / whole).quantize(TENTH) if whole else None,
                ]
            )
            sums = totals.setdefault(cash.currency, [common.ZERO, common.ZERO])
            sums[0] += value
            sums[1] += cash.number
    notes = [
        f"{currency}: credits {sums[0]}, cash {sums[1]}, total {sums[0] + sums[1]}"
        for currency, sums in sorted(totals.items())
    ]
    notes.append("credits valued at their grants' unit cost; free credits count 0")
    return Table("Hybrid payments (credits and cash)", COLUMNS, rows, filters, notes=notes)
