"""``statement``: one user's history, line by line, with the running balance.

Columns: Transaction ID | Date | Description | Earned | Redeemed | Expired |
Balance (and Credit type when the user holds several; Member, Session, Order
and Cash when any line has them: the redemption's ``member:``, ``session:``,
``order:`` or first link, and ``cash:``; Pending when a redemption is still
pending, flagged ``!``: it counts against the balance but shows apart from
what is settled). The kind of a line
follows from its counter-account (docs/design.md): income is earned, expenses are
redeemed, breakage is expired; other counter-accounts (adjustments, transfers,
openings) count as earned when positive and redeemed when negative. Reversals
show as negative amounts in the column of what they undo.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal

from beancount.core import data

from beancount_credits.ledger import Ledger
from beancount_credits.reports.index import index
from beancount_credits.reports.kinds import classify
from beancount_credits.reports.table import Cell, Chart, Column, Filters, ReportError, Table

ZERO = Decimal(0)


def description(entry: data.Transaction) -> str:
    if entry.payee:
        return f"{entry.payee}: {entry.narration}"
    return entry.narration or ""


class Line:
    """One statement line: a transaction's effect on the user in one credit type."""

    __slots__ = (
        "balance",
        "commodity",
        "date",
        "description",
        "entry",
        "kind",
        "number",
        "pending",
        "txn_id",
    )

    def __init__(
        self,
        txn_id: str | None,
        date: datetime.date,
        text: str,
        commodity: str,
        kind: str,
        number: Decimal,
        balance: Decimal,
        entry: data.Transaction | None = None,
        pending: bool = False,
    ):
        self.entry = entry
        self.pending = pending
        self.txn_id = txn_id
        self.date = date
        self.description = text
        self.commodity = commodity
        self.kind = kind
        self.number = number
        self.balance = balance


def statement_lines(ledger: Ledger, account: str, filters: Filters) -> Iterator[Line]:
    """Every line of a wallet's history up to ``filters.date_to``, opening lines first.

    With ``filters.date_from``, earlier history is folded into one opening
    line per credit type.
    """
    config = ledger.config
    balances: dict[str, Decimal] = defaultdict(Decimal)
    opened = False
    for entry in ledger.entries:
        if filters.date_to is not None and entry.date > filters.date_to:
            break
        if not isinstance(entry, data.Transaction):
            continue
        numbers: dict[str, Decimal] = {}
        for posting in entry.postings:
            if posting.account == account:
                currency = posting.units.currency
                numbers[currency] = numbers.get(currency, ZERO) + posting.units.number
        if not numbers:
            continue
        before = filters.date_from is not None and entry.date < filters.date_from
        if not before and not opened and filters.date_from is not None:
            opened = True
            yield from opening_lines(balances, filters)
        for currency, number in numbers.items():
            if filters.commodity is not None and currency != filters.commodity:
                continue
            balances[currency] += number
            if before:
                continue
            kind = classify(entry, account, config, number)
            yield Line(
                None if entry.meta.get("txn_id") is None else str(entry.meta["txn_id"]),
                entry.date,
                description(entry),
                currency,
                kind,
                number,
                balances[currency],
                entry,
                pending=entry.flag == "!",
            )
    if not opened and filters.date_from is not None:
        yield from opening_lines(balances, filters)


def opening_lines(balances: dict[str, Decimal], filters: Filters) -> Iterator[Line]:
    assert filters.date_from is not None
    for currency in sorted(balances):
        yield Line(
            None,
            filters.date_from,
            "Opening balance",
            currency,
            "opening",
            ZERO,
            balances[currency],
        )


EXTRAS = ("member", "session", "order", "cash")


def extras(line: Line) -> dict[str, Cell]:
    """The redemption details of a line: member, session, order, cash."""
    if line.entry is None:
        return {}
    meta = line.entry.meta
    found: dict[str, Cell] = {}
    for key in EXTRAS:
        value = meta.get(key)
        if key == "order" and value is None and line.entry.links:
            value = sorted(line.entry.links)[0]
        if value is not None:
            found[key] = (
                value.to_string() if key == "cash" and hasattr(value, "to_string") else str(value)
            )
    return found


def row(
    line: Line, with_commodity: bool, columns: tuple[str, ...] = (), with_pending: bool = False
) -> list[Cell]:
    earned = line.number if line.kind == "earned" else None
    redeemed = -line.number if line.kind == "redeemed" and not line.pending else None
    pending = -line.number if line.kind == "redeemed" and line.pending else None
    expired = -line.number if line.kind == "expired" else None
    cells: list[Cell] = [line.txn_id, line.date, line.description]
    if with_commodity:
        cells.append(line.commodity)
    if columns:
        found = extras(line)
        cells += [found.get(key) for key in columns]
    if with_pending:
        return [*cells, earned, redeemed, pending, expired, line.balance]
    return [*cells, earned, redeemed, expired, line.balance]


def report(ledger: Ledger, filters: Filters) -> Table:
    if not filters.user:
        raise ReportError("the statement report needs --user USER_ID")
    user = ledger.user(filters.user)
    if filters.date_to is not None:
        # The wallet's own transactions (the wallet index keeps them, every
        # expiry to come booked): cut at --to they are the ledger's as of --to.
        ledger = index(ledger).ledger_of(ledger, user.account)
    lines = list(statement_lines(ledger, user.account, filters))
    if filters.member is not None:
        lines = [line for line in lines if extras(line).get("member") == filters.member]
    commodities = {line.commodity for line in lines}
    with_commodity = len(commodities) > 1
    present = set().union(*(extras(line) for line in lines)) if lines else set()
    extra = tuple(key for key in EXTRAS if key in present)
    columns = [Column("Transaction ID"), Column("Date", "date"), Column("Description")]
    if with_commodity:
        columns.append(Column("Credit type"))
    columns += [Column(key.capitalize()) for key in extra]
    columns += [Column("Earned", "number"), Column("Redeemed", "number")]
    pending = [line for line in lines if line.pending and line.kind == "redeemed"]
    if pending:
        columns.append(Column("Pending", "number"))
    columns += [Column("Expired", "number"), Column("Balance", "number")]
    title = f"Statement of {user.user_id}"
    if filters.date_to is not None:
        title += f" through {filters.date_to}"
    notes = []
    if pending:
        total = sum((-line.number for line in pending), ZERO)
        notes.append(
            f"Pending: {len(pending)} redemption(s), {total} credits booked but not settled yet "
            "(flag !); the Balance already counts them."
        )
    return Table(
        title,
        columns,
        [row(line, with_commodity, extra, bool(pending)) for line in lines],
        filters,
        notes=notes,
        chart=Chart("step", x="Date", y=["Balance"], title="Balance over time"),
    )
