"""``liability``: the credits outstanding, in money, rolled forward per period.

For each period (``--period``, default month) and valuation: opening +
issued - redeemed - expired = closing. Every movement is valued at the unit
cost of the grant it touches (``unit_cost:`` on the grant or its source), so a
redemption that consumed a 0.07 USD grant and a 0.10 USD grant is valued at
each; this is the grant engine's record (``Ledger.grants``: grants, the
draw-downs' consumptions, expiries), not a re-derivation.

- issued: grants (less what a reversal of a grant removed, on its date);
- redeemed: consumptions of draw-downs (less what a reversal of a redemption
  restored, on the reversal's date), and the part of a grant that repaid an
  overdraft (on the grant's date: credits used on credit earlier);

  a grant or redemption reversed in several parts has each part dated by its
  own reversal, in order (the engine restores the last-consumed grant first);
- expired: expiries and forfeitures of closed wallets.

Free credits (grants without a unit cost) are shown apart, in credits, as
"free" rows: they are a liability in credits with no money behind them.
Overdrafts are not valued (no grant was consumed) until a grant repays them.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable, Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from typing import NamedTuple

from babel.numbers import get_currency_precision
from beancount.core import data

from beancount_credits import engine
from beancount_credits.ledger import Ledger
from beancount_credits.reports import common
from beancount_credits.reports.table import Cell, Column, Filters, Table

COLUMNS = [
    Column("Period"),
    Column("Credit type"),
    Column("Valued in"),
    Column("Opening", "number"),
    Column("Issued", "number"),
    Column("Redeemed", "number"),
    Column("Expired", "number"),
    Column("Closing", "number"),
]

Basis = tuple[str, str]  # credit commodity, money currency or FREE
FREE = "free"
MOVES = ("issued", "redeemed", "expired")


def basis_of(grant: engine.Grant) -> tuple[Basis, Decimal]:
    """A grant's valuation basis and the value of one of its credits."""
    cost = common.unit_cost(grant)
    if cost is None:
        return (grant.currency, FREE), Decimal(1)
    return (grant.currency, cost[1]), cost[0]


class ReversalPart(NamedTuple):
    """One reversal transaction's posting on a wallet: its date, size and txn_id."""

    date: datetime.date
    size: Decimal
    txn_id: str | None


Reversals = dict[tuple[str, str], list[ReversalPart]]


def reversal_parts(entries: list[data.Directive]) -> Reversals:
    """Each reversal's date and size on a wallet, by (reversed txn_id, account), in order."""
    parts: Reversals = defaultdict(list)
    for entry in entries:
        if isinstance(entry, data.Transaction) and entry.meta.get("reverses") is not None:
            target = str(entry.meta["reverses"])
            txn_id = entry.meta.get("txn_id")
            for posting in entry.postings:
                parts[(target, posting.account)].append(
                    ReversalPart(
                        entry.date,
                        abs(posting.units.number),  # type: ignore[arg-type]
                        None if txn_id is None else str(txn_id),
                    )
                )
    return parts


class ReversalMove(NamedTuple):
    """What one reversal did to one grant, on the reversal's date.

    ``kind`` is "grant" (the reversal removed ``amount`` of the grant) or
    "redemption" (it gave back ``amount`` that the draw-down ``reverses`` had
    consumed of the grant).
    """

    date: datetime.date
    kind: str
    grant: engine.Grant
    amount: Decimal
    reverses: str
    txn_id: str | None


def reversal_moves(
    result: engine.EngineResult, entries: list[data.Directive]
) -> Iterator[ReversalMove]:
    """Every grant's reversals, each part dated by the reversal that made it.

    The engine's records say how much a reversal removed from a grant or gave
    back of a draw-down, not when: a grant or redemption reversed in several
    parts is spread over its reversals in order, each taking up to its own
    size, and a redemption's consumptions are given back last-consumed first
    (as the engine restores them).
    """
    reversals = reversal_parts(entries)
    for grant in result.grants.values():
        if grant.reversed:
            target = grant.txn_id or ""
            parts = reversals.get((target, grant.account), [])
            for part, amount in dated(grant.reversed, parts, grant.date):
                yield ReversalMove(part.date, "grant", grant, amount, target, part.txn_id)
    for drawdown in result.drawdowns:
        restored = [part for part in reversed(drawdown.parts) if part.restored and part.grant]
        if not restored:
            continue
        target = drawdown.txn_id or ""
        parts = list(reversals.get((target, drawdown.account), []))
        for consumption in restored:
            assert consumption.grant is not None
            for part, amount in dated(consumption.restored, parts, drawdown.date):
                yield ReversalMove(
                    part.date, "redemption", consumption.grant, amount, target, part.txn_id
                )
                parts = consume(parts, amount)


def dated(
    amount: Decimal, parts: list[ReversalPart], fallback: datetime.date
) -> list[tuple[ReversalPart, Decimal]]:
    """``amount`` spread over the reversals in order, each taking up to its own size."""
    spread = []
    for part in parts:
        if amount <= 0:
            break
        take = min(part.size, amount)
        spread.append((part, take))
        amount -= take
    if amount > 0:  # more than the postings say (the engine refused the rest): the last one
        spread.append((parts[-1] if parts else ReversalPart(fallback, amount, None), amount))
    return spread


def consume(parts: list[ReversalPart], amount: Decimal) -> list[ReversalPart]:
    """The reversals left after ``amount`` of them was placed (in order)."""
    left = []
    for part in parts:
        take = min(part.size, amount)
        amount -= take
        if part.size > take:
            left.append(part._replace(size=part.size - take))
    return left


def movements(
    result: engine.EngineResult, accounts: set[str], ledger: Ledger
) -> list[tuple[datetime.date, Basis, str, Decimal]]:
    """(date, basis, move, value) of every valued movement of the selected wallets' grants."""
    moves: list[tuple[datetime.date, Basis, str, Decimal]] = []
    for grant in result.grants.values():
        if grant.account not in accounts:
            continue
        basis, value = basis_of(grant)
        moves.append((grant.date, basis, "issued", grant.amount * value))
        if grant.repaid:
            moves.append((grant.date, basis, "redeemed", grant.repaid * value))
    for drawdown in result.drawdowns:
        if drawdown.account not in accounts:
            continue
        for part in drawdown.parts:
            if part.grant is None:
                continue
            basis, value = basis_of(part.grant)
            moves.append((drawdown.date, basis, "redeemed", part.amount * value))
    for move in reversal_moves(result, ledger.entries):
        if move.grant.account in accounts:
            basis, value = basis_of(move.grant)
            kind = "issued" if move.kind == "grant" else "redeemed"
            moves.append((move.date, basis, kind, -move.amount * value))
    for expiry in result.expiries:
        if expiry.grant.account in accounts:
            basis, value = basis_of(expiry.grant)
            moves.append((expiry.date, basis, "expired", expiry.amount * value))
    return moves


def report(ledger: Ledger, filters: Filters) -> Table:
    accounts = {user.account for user in common.selected_users(ledger, filters)}
    result = common.grants_as_of(ledger, filters.date_to)
    first = filters.date_from or common.first_date(ledger)
    last = filters.date_to or common.last_date(ledger)
    if first is None or last is None:
        return Table("Liability roll-forward", COLUMNS, [], filters)
    return roll_forward(movements(result, accounts, ledger), filters, first, last)


def roll_forward(
    moves: Iterable[tuple[datetime.date, Basis, str, Decimal]],
    filters: Filters,
    first: datetime.date,
    last: datetime.date,
) -> Table:
    """The report from the valued movements (the ledger's, or a columnar export's)."""
    period = filters.period or common.DEFAULT_PERIOD
    rows: list[list[Cell]] = []
    opening: dict[Basis, Decimal] = defaultdict(Decimal)
    by_period: dict[tuple[datetime.date, Basis], dict[str, Decimal]] = {}
    for date, basis, move, value in moves:
        if not common.wants_commodity(filters, basis[0]) or date > last:
            continue
        if date < first:
            opening[basis] += value if move == "issued" else -value
            continue
        start = common.period_start(date, period)
        totals = by_period.setdefault((start, basis), dict.fromkeys(MOVES, common.ZERO))
        totals[move] += value
    bases = sorted(set(opening) | {basis for _start, basis in by_period}, key=basis_order)
    for start in common.periods(first, last, period):
        for basis in bases:
            totals = by_period.get((start, basis), dict.fromkeys(MOVES, common.ZERO))
            before = opening[basis]
            closing = before + totals["issued"] - totals["redeemed"] - totals["expired"]
            if not before and not any(totals.values()):
                continue
            rows.append(
                [
                    common.period_label(start, period),
                    basis[0],
                    "free credits" if basis[1] == FREE else basis[1],
                    *shown(basis, before, totals, closing),
                ]
            )
            opening[basis] = closing
    return Table(
        f"Liability roll-forward per {period}",
        COLUMNS,
        rows,
        filters,
        notes=[
            "opening + issued - redeemed - expired = closing, each credit valued at its "
            "grant's unit cost",
            "money at the currency's places, rounded half to even: opening, closing, issued "
            "and expired each rounded; redeemed the balancing figure",
            "free credits (no unit cost) in credits, apart",
        ],
    )


def places(currency: str) -> Decimal:
    """The currency's smallest unit (ISO 4217 minor units: 0.01 USD, 1 JPY; else 0.01)."""
    return Decimal(1).scaleb(-get_currency_precision(currency))


def shown(
    basis: Basis, opening: Decimal, totals: dict[str, Decimal], closing: Decimal
) -> list[Decimal]:
    """Opening, issued, redeemed, expired, closing as the report prints them.

    Money is shown at its currency's places, and the row still adds up: the
    balances (opening, closing) and issued and expired are each the exact
    figure rounded half to even; redeemed is what makes opening + issued -
    redeemed - expired = closing (within two units of the last place of its
    exact figure). A period's opening is the previous closing, rounded alike,
    so the periods chain. Free credits are counts of credits: shown exact.
    """
    if basis[1] == FREE:
        return [opening, totals["issued"], totals["redeemed"], totals["expired"], closing]
    unit = places(basis[1])
    start, issued, expired, end = (
        number.quantize(unit, ROUND_HALF_EVEN)
        for number in (opening, totals["issued"], totals["expired"], closing)
    )
    return [start, issued, start + issued - expired - end, expired, end]


def basis_order(basis: Basis) -> tuple[str, bool, str]:
    return (basis[0], basis[1] == FREE, basis[1])
