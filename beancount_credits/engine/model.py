"""The grant engine's model: grants, draw-downs, wallets, expiries and the pass's result.

Plain data (dataclasses and named tuples) with one rule of their own:
:func:`consumption_order`, the order a draw-down consumes a wallet's open
grants in (by default lowest priority number, soonest expiry, oldest, then id;
configurable), and :meth:`Grant.applies`, which draw-downs may use a grant. The pass
that fills them is :mod:`beancount_credits.engine.booking`.
"""

from __future__ import annotations

import dataclasses
import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from beancount.core import amount as amount_lib
from beancount.core import data

ZERO = Decimal(0)
DEFAULT_PRIORITY = 50
EXPIRED_TAG = "expired"
CARRIED_TAG = "carried"  # grants and overdrafts carried forward by a period close
NEVER = datetime.date.max

# Lines that order generated expiries among a day's entries: Beancount sorts by
# (date, type, line), so line 0 puts an expiry before every transaction of its
# day and a very large line puts a close-day forfeiture after them.
FIRST_LINE = 0
LAST_LINE = 2**31


class CreditsError(NamedTuple):
    """A Beancount error tuple: ``source`` is the offending entry's metadata."""

    source: data.Meta
    message: str
    entry: data.Directive | None


@dataclasses.dataclass(eq=False, slots=True)
class Grant:
    """A credit block: what one positive posting to a wallet granted."""

    id: str
    account: str
    currency: str
    date: datetime.date
    amount: Decimal
    expires: datetime.date | None
    priority: int
    unit_cost: amount_lib.Amount | None
    source: str | None
    txn_id: str | None
    meta: data.Meta
    remaining: Decimal = ZERO
    consumed: Decimal = ZERO
    expired: Decimal = ZERO
    repaid: Decimal = ZERO  # part of ``consumed`` that repaid an earlier overdraft
    reversed: Decimal = ZERO  # part of ``consumed`` removed by a reversal of the grant
    queued: bool = False  # in its wallet's consumption heap
    # The uses (counter-accounts, a parent covers its children) that may draw
    # this grant down; None: any.
    applies_to: tuple[str, ...] | None = None

    @property
    def sort_key(self) -> tuple[Any, ...]:
        """Its place in the default order (a wallet's: ``consumption_order(g, wallet.order)``)."""
        return consumption_order(self)

    def applies(self, use: str | None) -> bool:
        """May a draw-down against ``use`` (its counter-account) consume this grant?"""
        scope = self.applies_to
        if scope is None:
            return True
        return use is not None and any(use == a or use.startswith(a + ":") for a in scope)


# The keys a draw-down order is made of (docs/engine.md, "Draw-downs").
DEFAULT_ORDER = ("priority", "expiry", "granted", "id")
ORDER_KEYS = ("priority", "expiry", "granted", "id", "cost", "cost_desc", "source")


class DrawDownOrder(NamedTuple):
    """A configured draw-down order: its keys, and the ranking of sources ``source`` uses."""

    keys: tuple[str, ...] = DEFAULT_ORDER
    sources: tuple[str, ...] = ()


def _cost(grant: Grant) -> Decimal:
    return ZERO if grant.unit_cost is None else grant.unit_cost.number


def _source_rank(grant: Grant, sources: tuple[str, ...]) -> int:
    source = grant.source or ""
    for rank, account in enumerate(sources):
        if source == account or source.startswith(account + ":"):
            return rank
    return len(sources)


def consumption_order(grant: Grant, order: DrawDownOrder | None = None) -> tuple[Any, ...]:
    """The order a draw-down consumes open grants in: the one rule to change.

    By default lowest priority number first, then soonest expiry
    (never-expiring last), then oldest grant, then grant id. A configured
    order (the plugin configuration's ``order`` and ``sources``) lists keys
    among :data:`ORDER_KEYS`: ``cost`` (lowest unit cost first: free credits
    first), ``cost_desc``, ``source`` (the rank of the grant's source in
    ``sources``, a parent covering its children; unlisted sources last).
    """
    if order is None or order.keys == DEFAULT_ORDER:
        return (grant.priority, grant.expires or NEVER, grant.date, grant.id)
    key: list[Any] = []
    for name in order.keys:
        if name == "priority":
            key.append(grant.priority)
        elif name == "expiry":
            key.append(grant.expires or NEVER)
        elif name == "granted":
            key.append(grant.date)
        elif name == "id":
            key.append(grant.id)
        elif name == "cost":
            key.append(_cost(grant))
        elif name == "cost_desc":
            key.append(-_cost(grant))
        elif name == "source":
            key.append(_source_rank(grant, order.sources))
    return tuple(key)


@dataclasses.dataclass(eq=False, slots=True)
class Consumption:
    """One part of a draw-down: ``grant`` is None for the overdraft part."""

    grant: Grant | None
    amount: Decimal
    restored: Decimal = ZERO  # given back by reversals


@dataclasses.dataclass(eq=False, slots=True)
class DrawDown:
    """A negative posting to a wallet and the grants it consumed."""

    txn_id: str | None
    account: str
    currency: str
    date: datetime.date
    amount: Decimal
    parts: list[Consumption]
    restored: Decimal = ZERO  # how much later reversals gave back


@dataclasses.dataclass(eq=False, slots=True)
class Wallet:
    """Open grants and overdraft of one account in one commodity."""

    account: str
    currency: str
    limit: Decimal
    heap: list[tuple[tuple[Any, ...], int, Grant]] = dataclasses.field(default_factory=list)
    available: Decimal = ZERO  # sum of the open grants' remaining amounts
    debt: Decimal = ZERO  # overdraft outstanding (>= 0)
    # Grants that repaid an overdraft, for reversing a redemption whose
    # overdraft part was since repaid.
    repayments: list[Consumption] = dataclasses.field(default_factory=list)
    order: DrawDownOrder | None = None  # the configured draw-down order (None: the default)
    scoped: bool = False  # holds (or held) a grant with ``applies_to``

    @property
    def balance(self) -> Decimal:
        return self.available - self.debt


class Expiry(NamedTuple):
    """A generated (or recorded) move of a grant's remainder to breakage."""

    txn_id: str
    grant: Grant
    date: datetime.date
    amount: Decimal


class ChangedRecord(NamedTuple):
    """A recorded expiry that the ledger no longer agrees with."""

    recorded: data.Transaction
    account: str | None
    currency: str | None
    written: Decimal  # what the text records
    now: Decimal  # what the ledger expires now (0: nothing)
    now_date: datetime.date | None


@dataclasses.dataclass
class EngineResult:
    """What one pass over the entries found and produced."""

    entries: list[data.Directive]
    errors: list[CreditsError]
    grants: dict[str, Grant]
    drawdowns: list[DrawDown]
    expiries: list[Expiry]
    wallets: dict[tuple[str, str], Wallet]
    users: dict[str, data.Open]  # wallet account -> its open directive
    changed_records: list[ChangedRecord] = dataclasses.field(default_factory=list)
    # The allowance plans (engine.allowances.Book), to go on past the horizon.
    allowances: Any = None


def index_by_txn(index: dict[str, Any], txn_id: str, record: object) -> None:
    existing = index.get(txn_id)
    if existing is None:
        index[txn_id] = record
    elif isinstance(existing, list):
        existing.append(record)
    else:
        index[txn_id] = [existing, record]


def by_txn(index: dict[str, Any], txn_id: str) -> list[Any]:
    existing = index.get(txn_id)
    if existing is None:
        return []
    return existing if isinstance(existing, list) else [existing]
