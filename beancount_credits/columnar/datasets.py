"""The columnar export's datasets: their columns, and their rows from a loaded ledger.

:mod:`beancount_credits.columnar.writer` writes them, period by period, as
Parquet under the export folder; each dataset is partitioned by month
(``<table>/month=YYYY-MM/``) but ``users``:

- ``postings``: every posting of every transaction (generated expiries
  included), with the wallet's ``user_id`` and, for a wallet posting, its
  ``kind`` as the statement classifies it (earned, redeemed, expired);
- ``grants``: every grant as it was booked (amount, what it repaid of an
  overdraft, expiry, priority, unit cost, source); what became of it is in
  the three dated datasets that follow;
- ``consumption``: every part of every draw-down (``grant_id`` empty for the
  overdraft part), with what reversals restored of it in all;
- ``expiries``: every expiry and forfeiture (grant, date, amount);
- ``reversals``: what each reversal did to each grant, on its own date:
  ``kind`` "grant" removed ``amount`` of the grant, "redemption" gave back
  ``amount`` the draw-down ``reverses`` had consumed of it. A grant or
  redemption reversed in several parts has a row per part, so a report as of
  a day between them counts only the parts made by then;
- ``balances``: the daily balance log: every wallet's end-of-day balance on
  each day it changed (quiet days are carried forward by readers);
- ``users`` (user id, wallet, segment, close date).

Grants, consumption and expiries are the engine's records
(:attr:`Ledger.grants`), not a re-derivation. The ``*places`` columns keep how
many decimal places the ledger's number has (10.50: 2), which the export's
fixed-scale decimal loses: the reports on the export print 10.50 where the
ledger path does. Pure: a ledger and a period in, rows out (tuples in the
order of :data:`COLUMNS`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from beancount.core import data

from beancount_credits import engine
from beancount_credits.columnar.periods import Period
from beancount_credits.engine import asof
from beancount_credits.ledger import Ledger
from beancount_credits.reports import common, daily, liability
from beancount_credits.reports.kinds import classify

COLUMNS: dict[str, list[tuple[str, str]]] = {
    "postings": [
        ("date", "date"),
        ("txn_id", "string"),
        ("flag", "string"),
        ("payee", "string"),
        ("narration", "string"),
        ("tags", "strings"),
        ("links", "strings"),
        ("account", "string"),
        ("user_id", "string"),
        ("commodity", "string"),
        ("number", "number"),
        ("places", "int8"),
        ("kind", "string"),
        ("member", "string"),
        ("session", "string"),
        ("order_id", "string"),
        ("reverses", "string"),
        ("generated", "bool"),
        ("filename", "string"),
        ("lineno", "int64"),
    ],
    "grants": [
        ("date", "date"),
        ("grant_id", "string"),
        ("txn_id", "string"),
        ("user_id", "string"),
        ("account", "string"),
        ("commodity", "string"),
        ("amount", "number"),
        ("amount_places", "int8"),
        ("repaid", "number"),
        ("repaid_places", "int8"),
        ("expires", "date"),
        ("priority", "int64"),
        ("unit_cost", "number"),
        ("unit_cost_places", "int32"),  # decimal places as written: 0.10 -> 2
        ("cost_currency", "string"),
        ("source", "string"),
    ],
    "consumption": [
        ("date", "date"),
        ("txn_id", "string"),
        ("user_id", "string"),
        ("account", "string"),
        ("commodity", "string"),
        ("grant_id", "string"),
        ("amount", "number"),
        ("places", "int8"),
        ("restored", "number"),
    ],
    "expiries": [
        ("date", "date"),
        ("txn_id", "string"),
        ("grant_id", "string"),
        ("user_id", "string"),
        ("account", "string"),
        ("commodity", "string"),
        ("amount", "number"),
        ("places", "int8"),
    ],
    "reversals": [
        ("date", "date"),
        ("txn_id", "string"),
        ("reverses", "string"),
        ("kind", "string"),
        ("grant_id", "string"),
        ("user_id", "string"),
        ("account", "string"),
        ("commodity", "string"),
        ("amount", "number"),
        ("places", "int8"),
    ],
    "balances": [
        ("date", "date"),
        ("user_id", "string"),
        ("account", "string"),
        ("commodity", "string"),
        ("change", "number"),
        ("change_places", "int8"),
        ("balance", "number"),
        ("balance_places", "int8"),
    ],
    "users": [
        ("user_id", "string"),
        ("account", "string"),
        ("segment", "string"),
        ("close_date", "date"),
    ],
}
PARTITIONED = ("postings", "grants", "consumption", "expiries", "reversals", "balances")
ENGINE_DATASETS = ("grants", "consumption", "expiries", "reversals")  # the grant engine's records

Row = tuple[Any, ...]


def month_of(date: datetime.date) -> str:
    return f"{date.year:04d}-{date.month:02d}"


def text(value: object) -> str | None:
    return None if value is None else str(value)


# --- Rows from the ledger (pure) ----------------------------------------------------------


def posting_rows(ledger: Ledger, period: Period) -> Iterable[Row]:
    users = {user.account: user.user_id for user in ledger.users.values()}
    config = ledger.config
    for entry in ledger.entries:
        if not isinstance(entry, data.Transaction) or not period.holds(entry.date):
            continue  # a carry-forward is dated in the period before: not activity
        meta = entry.meta or {}
        head = (
            entry.date,
            text(meta.get("txn_id")),
            entry.flag,
            entry.payee,
            entry.narration,
            sorted(entry.tags or ()),
            sorted(entry.links or ()),
        )
        tail = (
            text(meta.get("member")),
            text(meta.get("session")),
            text(meta.get("order")),
            text(meta.get("reverses")),
            engine.generated_by(entry) == engine.EXPIRE_PLUGIN_NAME,
            meta.get("filename"),
            meta.get("lineno"),
        )
        for posting in entry.postings:
            if posting.units is None or not isinstance(posting.units.number, Decimal):
                continue
            user_id = users.get(posting.account)
            number = posting.units.number
            kind = None if user_id is None else classify(entry, posting.account, config, number)
            yield (
                *head,
                posting.account,
                user_id,
                posting.units.currency,
                number,
                places(number),
                kind,
                *tail,
            )


def places(number: Decimal) -> int:
    """The decimal places a number is written with (10.50: 2, 42: 0)."""
    exponent = number.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def grant_rows(ledger: Ledger, result: engine.EngineResult, period: Period) -> Iterable[Row]:
    """The grants booked in the period (a carried grant belongs to the period that granted it)."""
    users = {user.account: user.user_id for user in ledger.users.values()}
    for grant in result.grants.values():
        if not period.holds(grant.date):
            continue
        cost = common.unit_cost(grant)
        yield (
            grant.date,
            grant.id,
            grant.txn_id,
            users.get(grant.account),
            grant.account,
            grant.currency,
            grant.amount,
            places(grant.amount),
            grant.repaid,
            places(grant.repaid),
            grant.expires,
            grant.priority,
            None if cost is None else cost[0],
            None if cost is None else places(cost[0]),
            None if cost is None else cost[1],
            grant.source,
        )


def consumption_rows(ledger: Ledger, result: engine.EngineResult, period: Period) -> Iterable[Row]:
    """The period's draw-downs (what a carried grant lost before the close is not one)."""
    users = {user.account: user.user_id for user in ledger.users.values()}
    for drawdown in result.drawdowns:
        if not period.holds(drawdown.date):
            continue
        for part in drawdown.parts:
            yield (
                drawdown.date,
                drawdown.txn_id,
                users.get(drawdown.account),
                drawdown.account,
                drawdown.currency,
                None if part.grant is None else part.grant.id,
                part.amount,
                places(part.amount),
                part.restored,
            )


def reversal_rows(ledger: Ledger, result: engine.EngineResult, period: Period) -> Iterable[Row]:
    users = {user.account: user.user_id for user in ledger.users.values()}
    for move in liability.reversal_moves(result, ledger.entries):
        if not period.holds(move.date):
            continue
        grant = move.grant
        yield (
            move.date,
            move.txn_id,
            move.reverses,
            move.kind,
            grant.id,
            users.get(grant.account),
            grant.account,
            grant.currency,
            move.amount,
            places(move.amount),
        )


def expiry_rows(ledger: Ledger, result: engine.EngineResult, period: Period) -> Iterable[Row]:
    users = {user.account: user.user_id for user in ledger.users.values()}
    for expiry in result.expiries:
        if not period.holds(expiry.date):
            continue
        grant = expiry.grant
        yield (
            expiry.date,
            expiry.txn_id,
            grant.id,
            users.get(grant.account),
            grant.account,
            grant.currency,
            expiry.amount,
            places(expiry.amount),
        )


def balance_rows(ledger: Ledger, period: Period) -> Iterable[Row]:
    """The balance log: the daily report's rows on the days of the period a balance changed.

    Summed from the postings (:func:`daily.daily_rows`): a closed period's
    archive lacks the assertion of its last day (dated the day after, it stays
    with the next period), and the carry-forward it opened with gives each
    wallet its opening balance.
    """
    span = transactions_span(ledger, period)
    if span is None:
        return
    start, end = span
    users = {user.account: user.user_id for user in ledger.users.values()}
    accounts = {user_id: account for account, user_id in users.items()}
    for day, user_id, currency, change, balance in daily.daily_rows(
        ledger, users, None, start, end
    ):
        if change is not None:
            yield (
                day,
                user_id,
                accounts[str(user_id)],
                currency,
                change,
                places(change),  # type: ignore[arg-type]
                balance,
                places(balance),  # type: ignore[arg-type]
            )


def transactions_span(ledger: Ledger, period: Period) -> tuple[datetime.date, datetime.date] | None:
    """The first and last date of the period's transactions (generated expiries included)."""
    dated = (entry for entry in ledger.entries if isinstance(entry, data.Transaction))
    first = next((entry.date for entry in dated if period.holds(entry.date)), None)
    backwards = (entry for entry in reversed(ledger.entries) if isinstance(entry, data.Transaction))
    last = next((entry.date for entry in backwards if period.holds(entry.date)), None)
    return None if first is None or last is None else (first, last)


def user_rows(ledger: Ledger) -> Iterable[Row]:
    for user in sorted(ledger.users.values(), key=lambda user: user.user_id):
        yield (user.user_id, user.account, user.segment, user.close_date)


def period_rows(
    ledger: Ledger, period: Period, release: bool
) -> Iterator[tuple[str, Iterable[Row]]]:
    """Each dataset's rows of one period of a loaded ledger, one dataset at a time.

    With ``release`` the engine's records are dropped from the ledger once
    their rows are written, before the postings' rows are made, so the peak
    stays near the load's own (``bench/bench_columnar.py``).
    """
    result = ledger.grants
    yield "grants", grant_rows(ledger, result, period)
    yield "consumption", consumption_rows(ledger, result, period)
    yield "expiries", expiry_rows(ledger, result, period)
    yield "reversals", reversal_rows(ledger, result, period)
    del result
    if release:  # memory the rows of the postings can reuse
        ledger.__dict__.pop("grants", None)  # functools.cached_property keeps it there
        ledger.timeline = asof.Timeline(ledger.entries, ledger.config)  # and its owner
    yield "postings", posting_rows(ledger, period)
    yield "balances", balance_rows(ledger, period)
