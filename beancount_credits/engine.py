"""The grant engine: credit blocks, draw-downs, expiries and reversals.

Pure functions over Beancount entries (entries in, entries and errors out); the
plugin :mod:`beancount_credits.plugins.expire` is a thin wrapper around
:func:`run`, and :mod:`beancount_credits.asof` runs it for the tools: the
ledger as of a day is the engine booked through that day (running it over its
own output adds nothing: generated expiries are recognised as recorded ones).
Entries it makes carry the generated mark (:data:`GENERATED_KEY`).

The rules (DESIGN.md, "The grant engine"):

- every positive posting to a user wallet is a grant (a credit block) with an
  id, amount, date, expiry, priority and unit cost;
- every negative posting draws down the wallet's open grants of the same
  commodity in :func:`consumption_order`;
- a grant expires at the start of its expiry date: an ``#expired`` transaction
  moves its remainder to the breakage account and sorts before that day's other
  transactions;
- a draw-down beyond the available credits plus the wallet's ``credit_limit``
  is an error; within the limit the balance goes negative and the next grant
  repays it first;
- ``reverses:`` undoes a redemption (restoring the grants it consumed, expired
  ones straight to breakage) or a grant (removing what is left of it);
- closing a wallet forfeits its remaining grants to breakage on the close date.

One pass in date order: each draw-down costs O(log g) in the wallet's open
grants g, never O(total grants).
"""

from __future__ import annotations

import calendar
import collections
import dataclasses
import datetime
import heapq
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, NamedTuple

from beancount.core import amount as amount_lib
from beancount.core import data

from beancount_credits.config import CreditsConfig

ZERO = Decimal(0)
DEFAULT_PRIORITY = 50
GENERATED_FILENAME = "<beancount_credits.plugins.expire>"
# The mark a plugin of this package sets on an entry it makes: a metadata key
# that ledger text cannot hold (Beancount's keys start with a lowercase letter)
# and that Beancount's printer and Fava leave out, valued with the plugin's
# name. Generated entries are told apart from written ones by this mark, never
# by their file name: ``load_string`` names every written entry ``<string>``.
GENERATED_KEY = "__beancount_credits_generated__"
EXPIRE_PLUGIN_NAME = "beancount_credits.plugins.expire"
# Flags Beancount's own generated transactions carry (pad, summarize, transfer,
# conversions, unrealized): made by Beancount, not written.
BEANCOUNT_GENERATED_FLAGS = frozenset("PSTCU")
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

    @property
    def sort_key(self) -> tuple[int, datetime.date, datetime.date, str]:
        return consumption_order(self)


def consumption_order(grant: Grant) -> tuple[int, datetime.date, datetime.date, str]:
    """The order a draw-down consumes open grants in: the one rule to change.

    Lowest priority number first, then soonest expiry (never-expiring last),
    then oldest grant, then grant id.
    """
    return (grant.priority, grant.expires or NEVER, grant.date, grant.id)


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
    heap: list[tuple[tuple[int, datetime.date, datetime.date, str], int, Grant]] = (
        dataclasses.field(default_factory=list)
    )
    available: Decimal = ZERO  # sum of the open grants' remaining amounts
    debt: Decimal = ZERO  # overdraft outstanding (>= 0)
    # Grants that repaid an overdraft, for reversing a redemption whose
    # overdraft part was since repaid.
    repayments: list[Consumption] = dataclasses.field(default_factory=list)

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


# --- Policies from metadata -------------------------------------------------

_PERIOD_RE = re.compile(r"^\s*(\d+)\s*([dwmy])\s*$", re.IGNORECASE)


def parse_period(text: str) -> tuple[int, str]:
    """Parse an ``expire_after`` value such as ``"90d"``, ``"2w"``, ``"12m"``, ``"1y"``."""
    match = _PERIOD_RE.match(str(text))
    if not match:
        raise ValueError(f"expire_after {text!r} is not a period like '90d', '2w', '12m' or '1y'")
    return int(match.group(1)), match.group(2).lower()


def add_period(date: datetime.date, period: tuple[int, str]) -> datetime.date:
    """The date ``period`` after ``date`` (month ends clamp: Jan 31 + 1m = Feb 28/29)."""
    count, unit = period
    if unit == "d":
        return date + datetime.timedelta(days=count)
    if unit == "w":
        return date + datetime.timedelta(weeks=count)
    months = count * 12 if unit == "y" else count
    year, month0 = divmod(date.month - 1 + months, 12)
    year += date.year
    day = min(date.day, calendar.monthrange(year, month0 + 1)[1])
    return datetime.date(year, month0 + 1, day)


def meta_date(value: Any) -> datetime.date:
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"{str(value)!r} is not a date (YYYY-MM-DD)") from None


def meta_decimal(value: Any) -> Decimal:
    if isinstance(value, amount_lib.Amount):
        return value.number
    if isinstance(value, bool):
        raise ValueError(f"{value} is not a number")
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError:
        raise ValueError(f"{str(value)!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{value} is not a finite number")
    return number


def meta_int(value: Any) -> int:
    number = meta_decimal(value)
    if number != number.to_integral_value():
        raise ValueError(f"{value} is not a whole number")
    return int(number)


def meta_amount(value: Any) -> amount_lib.Amount:
    if isinstance(value, amount_lib.Amount):
        return value
    return amount_lib.Amount.from_string(str(value))


class SourcePolicy(NamedTuple):
    """Grant defaults a source account's ``open`` declares."""

    expire_after: tuple[int, str] | None
    priority: int | None
    unit_cost: amount_lib.Amount | None


def txn_id_of(entry: data.Transaction) -> str | None:
    value = entry.meta.get("txn_id") if entry.meta else None
    return None if value is None else str(value)


def expiry_txn_id(grant_id: str, cause: str | None = None) -> str:
    """The Transaction ID of a grant's expiry (``cause``: the reversal behind it)."""
    return f"{grant_id}:expiry" if cause is None else f"{grant_id}:expiry:{cause}"


def is_expiry_record(entry: data.Transaction) -> bool:
    """An ``#expired`` transaction carrying a grant id, generated or written in the text."""
    return EXPIRED_TAG in entry.tags and bool(entry.meta) and "grant" in entry.meta


# --- The pass ---------------------------------------------------------------


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


class _Pass:
    """State of one pass over the entries; use :func:`run`."""

    def __init__(
        self,
        config: CreditsConfig,
        recorded: dict[str, data.Transaction],
        keep: set[str] | None = None,
    ):
        self.config = config
        # Draw-down records are kept for every txn_id (None) or only for these
        # (the ones reversals name): records nobody reads are garbage the
        # collector would otherwise walk again and again on a large ledger.
        self.keep = keep
        self.recorded = recorded
        self.used_records: set[str] = set()
        self.errors: list[CreditsError] = []
        self.grants: dict[str, Grant] = {}
        self.drawdowns: list[DrawDown] = []
        self.expiries: list[Expiry] = []
        self.wallets: dict[tuple[str, str], Wallet] = {}
        self.users: dict[str, data.Open] = {}
        self.policies: dict[str, SourcePolicy] = {}
        self.policy_cache: dict[str, SourcePolicy] = {}
        self.limits: dict[str, tuple[Decimal, str | None]] = {}
        # By txn_id, for reversals: one record, or a list when a transaction
        # has several (most have one; no list per transaction keeps the
        # garbage collector's work down on large ledgers).
        self.grants_by_txn: dict[str, Grant | list[Grant]] = {}
        self.drawdowns_by_txn: dict[str, DrawDown | list[DrawDown]] = {}
        self.seen_txn_ids: dict[str, data.Meta] = {}
        self.changed_records: list[ChangedRecord] = []
        self.due: list[tuple[datetime.date, int, Grant]] = []
        self.seq = 0
        self.out: list[data.Directive] = []
        # Expiries a transaction causes (a reversal restoring expired credits)
        # follow it, so a statement shows the credits back before they expire.
        self.after: list[data.Directive] = []
        # Restored credits of expired grants, summed per grant over a transaction.
        self.restored_expired: dict[Grant, Decimal] = {}
        self.role_cache: dict[str, bool] = {}
        # The last day of the archived period when the ledger starts with
        # grants carried forward by a period close.
        self.closed_through: datetime.date | None = None

    # -- helpers

    def error(self, meta: data.Meta, message: str, entry: data.Directive | None) -> None:
        self.errors.append(CreditsError(meta, message, entry))

    def unknown(self) -> str:
        """How to call a txn_id the pass has not seen (it may be in an archived period)."""
        if self.closed_through is None:
            return "unknown"
        return (
            f"unknown in the active period (if it is in the period closed through "
            f"{self.closed_through}, it cannot be reversed after the close: book an "
            "adjustment instead)"
        )

    def is_user(self, account: str) -> bool:
        role = self.role_cache.get(account)
        if role is None:
            role = self.role_cache[account] = self.config.is_user_account(account)
        return role

    def user_label(self, account: str) -> str:
        open_entry = self.users.get(account)
        if open_entry is not None and open_entry.meta.get("user_id") is not None:
            return str(open_entry.meta["user_id"])
        return account

    def wallet(self, account: str, currency: str) -> Wallet:
        key = (account, currency)
        wallet = self.wallets.get(key)
        if wallet is None:
            limit, limit_currency = self.limits.get(account, (ZERO, None))
            if limit_currency is not None and limit_currency != currency:
                limit = ZERO
            wallet = self.wallets[key] = Wallet(account, currency, limit)
        return wallet

    def policy(self, account: str | None) -> SourcePolicy:
        """The source policy of an account, inherited from its nearest declaring parent."""
        if account is None:
            return SourcePolicy(None, None, None)
        cached = self.policy_cache.get(account)
        if cached is not None:
            return cached
        policy = self.policies.get(account)
        if policy is None:
            parent = account.rpartition(":")[0]
            policy = self.policy(parent) if parent else SourcePolicy(None, None, None)
        self.policy_cache[account] = policy
        return policy

    def push(self, wallet: Wallet, grant: Grant) -> None:
        if not grant.queued and grant.remaining > 0:
            self.seq += 1
            heapq.heappush(wallet.heap, (grant.sort_key, self.seq, grant))
            grant.queued = True

    # -- directives

    def open(self, entry: data.Open) -> None:
        meta = entry.meta or {}
        if self.is_user(entry.account):
            self.users[entry.account] = entry
            limit = meta.get("credit_limit")
            if limit is not None:
                try:
                    if isinstance(limit, amount_lib.Amount):
                        self.limits[entry.account] = (limit.number, limit.currency)
                    else:
                        self.limits[entry.account] = (meta_decimal(limit), None)
                    if self.limits[entry.account][0] < 0:
                        raise ValueError("it is negative")
                except (ValueError, ArithmeticError) as exc:
                    self.limits.pop(entry.account, None)
                    self.error(
                        entry.meta,
                        f"credit_limit {limit!r} of {entry.account} is not a non-negative "
                        f"number: {exc}",
                        entry,
                    )
            return
        fields = {}
        for key, parse in (
            ("expire_after", parse_period),
            ("priority", meta_int),
            ("unit_cost", meta_amount),
        ):
            value = meta.get(key)
            if value is None:
                fields[key] = None
                continue
            try:
                fields[key] = parse(value)
            except (ValueError, ArithmeticError) as exc:
                fields[key] = None
                self.error(entry.meta, f"{key} of {entry.account}: {exc}", entry)
        if any(value is not None for value in fields.values()):
            self.policies[entry.account] = SourcePolicy(**fields)
            self.policy_cache.clear()

    def close(self, entry: data.Close) -> None:
        """Forfeit a closed wallet's remaining grants (lost credits are breakage)."""
        if not self.is_user(entry.account):
            return
        for (account, _currency), wallet in self.wallets.items():
            if account != entry.account:
                continue
            for _key, _seq, grant in sorted(wallet.heap):
                if grant.remaining > 0:
                    self.expire(grant, entry.date, LAST_LINE, None, forfeited=True)

    def transaction(self, entry: data.Transaction) -> data.Transaction:
        txn_id = txn_id_of(entry)
        if txn_id is not None:
            first = self.seen_txn_ids.get(txn_id)
            if first is not None:
                self.error(
                    entry.meta,
                    f"Duplicate txn_id {txn_id!r} (first used at "
                    f"{first.get('filename')}:{first.get('lineno')}); "
                    "txn_id is the idempotency key and must be unique",
                    entry,
                )
            else:
                self.seen_txn_ids[txn_id] = entry.meta
        if CARRIED_TAG in entry.tags:
            # Any carry-forward, a zero line included, marks a closed period behind.
            self.closed_through = entry.date

        reverses = entry.meta.get("reverses") if entry.meta else None
        new_postings: list[data.Posting] | None = None
        grant_ids: dict[int, str] | None = None
        is_user = self.is_user
        wallets = self.wallets
        for index, posting in enumerate(entry.postings):
            if not is_user(posting.account):
                continue
            units = posting.units
            if units is None or not isinstance(units.number, Decimal) or units.number == 0:
                continue
            wallet = wallets.get((posting.account, units.currency)) or self.wallet(
                posting.account, units.currency
            )
            annotation: dict[str, Any] | None = None
            if reverses is not None:
                annotation = self.reversal(entry, posting, wallet, str(reverses), txn_id)
            elif units.number > 0:
                if grant_ids is None:
                    grant_ids = self.grant_ids(entry, txn_id)
                source = next((p.account for p in entry.postings if not is_user(p.account)), None)
                grant = self.grant(entry, posting, wallet, grant_ids[index], txn_id, source)
                annotation = self.grant_annotation(grant)
            else:
                drawdown = self.draw(entry, posting, wallet, -units.number, txn_id)
                annotation = self.annotation(drawdown)
            if annotation and self.config.annotate:
                if posting.meta is not None:
                    # Like Beancount's own plugins, write into the posting's
                    # metadata: copying entries is most of the engine's cost.
                    posting.meta.update(annotation)
                    continue
                if new_postings is None:
                    new_postings = list(entry.postings)
                new_postings[index] = data.Posting(
                    posting.account, units, posting.cost, posting.price, posting.flag, annotation
                )
        if self.restored_expired:
            lineno = entry.meta.get("lineno", LAST_LINE)
            for grant, portion in self.restored_expired.items():
                grant.remaining += portion
                self.expire(grant, entry.date, lineno, txn_id or "reversal", amount=portion)
            self.restored_expired.clear()
        if new_postings is not None:
            return data.Transaction(
                entry.meta,
                entry.date,
                entry.flag,
                entry.payee,
                entry.narration,
                entry.tags,
                entry.links,
                new_postings,
            )
        return entry

    # -- grants

    def grant_ids(self, entry: data.Transaction, txn_id: str | None) -> dict[int, str]:
        """Ids of a transaction's grant postings, by posting index.

        A single grant is named by the txn_id; several are qualified by wallet
        and/or commodity (``t-1/Alice``, ``p-7/SESSION``), then by their rank
        if still alike. A posting's own ``grant:`` metadata wins.
        """
        positions = [
            (index, posting)
            for index, posting in enumerate(entry.postings)
            if self.is_user(posting.account)
            and posting.units is not None
            and isinstance(posting.units.number, Decimal)
            and posting.units.number > 0
        ]
        if txn_id is None:
            # A missing txn_id is the policy plugin's error; keep a stable id anyway.
            txn_id = (
                f"{entry.date.isoformat()}@{entry.meta.get('filename')}:{entry.meta.get('lineno')}"
            )
        accounts = {posting.account for _, posting in positions}
        currencies = {posting.units.currency for _, posting in positions}
        ids: dict[int, str] = {}
        for index, posting in positions:
            explicit = posting.meta.get("grant") if posting.meta else None
            if explicit is not None:
                ids[index] = str(explicit)
                continue
            parts = [txn_id]
            if len(accounts) > 1:
                parts.append(posting.account.rpartition(":")[2])
            if len(currencies) > 1:
                parts.append(posting.units.currency)
            ids[index] = "/".join(parts)
        counts = collections.Counter(ids.values())
        rank: collections.Counter[str] = collections.Counter()
        for index, grant_id in list(ids.items()):
            if counts[grant_id] > 1:
                rank[grant_id] += 1
                ids[index] = f"{grant_id}/{rank[grant_id]}"
        return ids

    def grant(
        self,
        entry: data.Transaction,
        posting: data.Posting,
        wallet: Wallet,
        grant_id: str,
        txn_id: str | None,
        source: str | None,
    ) -> Grant:
        pmeta = posting.meta or {}
        tmeta = entry.meta
        granted = entry.date
        carried = CARRIED_TAG in entry.tags and "granted" in pmeta
        if carried:
            # A grant carried forward by a period close: the original grant's
            # date, Transaction ID and source, so it is consumed, reversed and
            # reported exactly as the original; its policy is written out.
            try:
                granted = meta_date(pmeta["granted"])
            except ValueError as exc:
                self.error(entry.meta, f"granted of carried grant {grant_id!r}: {exc}", entry)
            if pmeta.get("grant_txn") is not None:
                txn_id = str(pmeta["grant_txn"])
            source = None if pmeta.get("source") is None else str(pmeta["source"])
        policy = self.policy(None if carried else source)
        expires: datetime.date | None = None
        priority = DEFAULT_PRIORITY
        unit_cost: amount_lib.Amount | None = None
        try:
            raw = pmeta.get("expires", tmeta.get("expires"))
            if raw is not None:
                expires = meta_date(raw)
            elif policy.expire_after is not None:
                expires = add_period(entry.date, policy.expire_after)
        except ValueError as exc:
            self.error(entry.meta, f"expires of grant {grant_id!r}: {exc}", entry)
        try:
            raw = pmeta.get("priority", tmeta.get("priority"))
            if raw is not None:
                priority = meta_int(raw)
            elif policy.priority is not None:
                priority = policy.priority
        except (ValueError, ArithmeticError) as exc:
            self.error(entry.meta, f"priority of grant {grant_id!r}: {exc}", entry)
        try:
            raw = pmeta.get("unit_cost", tmeta.get("unit_cost"))
            unit_cost = meta_amount(raw) if raw is not None else policy.unit_cost
        except (ValueError, ArithmeticError) as exc:
            self.error(entry.meta, f"unit_cost of grant {grant_id!r}: {exc}", entry)

        amount = posting.units.number
        original = amount
        if carried and pmeta.get("granted_amount") is not None:
            try:
                original = meta_decimal(pmeta["granted_amount"])
            except ValueError as exc:
                self.error(entry.meta, f"granted_amount of grant {grant_id!r}: {exc}", entry)
        grant = Grant(
            id=grant_id,
            account=wallet.account,
            currency=wallet.currency,
            date=granted,
            amount=original,
            expires=expires,
            priority=priority,
            unit_cost=unit_cost,
            source=source,
            txn_id=txn_id,
            meta=entry.meta,
            remaining=amount,
            consumed=original - amount,  # a carried grant: what it lost before the close
        )
        if grant_id in self.grants:
            if txn_id is None or self.seen_txn_ids.get(txn_id) is entry.meta:
                self.error(entry.meta, f"Duplicate grant id {grant_id!r}", entry)
            # Keep the duplicate reachable under a unique key so totals still add up.
            grant_id = grant.id = f"{grant_id}#{entry.meta.get('lineno')}"
        self.grants[grant_id] = grant
        if grant.consumed and self.keep is None:
            # What a carried grant lost before the close, as one draw-down on
            # the carry's date, so the grant ledger adds up (amount = consumed +
            # expired + remaining) and money roll-forwards open right.
            part = Consumption(grant, grant.consumed)
            self.drawdowns.append(
                DrawDown(None, wallet.account, wallet.currency, entry.date, grant.consumed, [part])
            )
        if txn_id is not None and (self.keep is None or txn_id in self.keep):
            index_by_txn(self.grants_by_txn, txn_id, grant)
        if expires is not None:
            if expires <= entry.date:
                self.error(
                    entry.meta,
                    f"Grant {grant_id!r} of user {self.user_label(wallet.account)!r} expires on "
                    f"{expires}, not after its own date {entry.date}: it can never be spent",
                    entry,
                )
            heapq.heappush(self.due, (expires, len(self.grants), grant))
        self.settle(wallet, grant)
        return grant

    @staticmethod
    def grant_annotation(grant: Grant) -> dict[str, Any] | None:
        return {"repaid_overdraft": grant.repaid} if grant.repaid else None

    def settle(self, wallet: Wallet, grant: Grant) -> None:
        """Repay the wallet's overdraft from a grant, then open the rest."""
        if wallet.debt > 0 and grant.remaining > 0:
            repay = min(wallet.debt, grant.remaining)
            wallet.debt -= repay
            grant.remaining -= repay
            grant.consumed += repay
            grant.repaid += repay
            wallet.repayments.append(Consumption(grant, repay))
        if grant.remaining > 0:
            wallet.available += grant.remaining
            self.push(wallet, grant)

    # -- draw-downs

    def take(self, wallet: Wallet, grant: Grant, amount: Decimal) -> None:
        grant.remaining -= amount
        grant.consumed += amount
        wallet.available -= amount

    def draw(
        self,
        entry: data.Transaction,
        posting: data.Posting,
        wallet: Wallet,
        asked: Decimal,
        txn_id: str | None,
    ) -> DrawDown:
        available = wallet.available + wallet.limit - wallet.debt
        if asked > available:
            self.error(
                entry.meta,
                f"Draw-down of {asked} {wallet.currency} by user "
                f"{self.user_label(wallet.account)!r} on {entry.date} exceeds the "
                f"{max(available, ZERO)} {wallet.currency} available "
                f"(balance {wallet.balance}, credit limit {wallet.limit})",
                entry,
            )
        parts: list[Consumption] = []
        left = asked
        heap = wallet.heap
        while left > 0 and heap:
            grant = heap[0][2]
            if grant.remaining <= 0:
                heapq.heappop(heap)
                grant.queued = False
                continue
            part = min(left, grant.remaining)
            self.take(wallet, grant, part)
            parts.append(Consumption(grant, part))
            left -= part
            if grant.remaining <= 0:
                heapq.heappop(heap)
                grant.queued = False
        if left > 0:
            wallet.debt += left
            parts.append(Consumption(None, left))
        drawdown = DrawDown(txn_id, wallet.account, wallet.currency, entry.date, asked, parts)
        if self.keep is None:
            self.drawdowns.append(drawdown)
        if txn_id is not None and (self.keep is None or txn_id in self.keep):
            index_by_txn(self.drawdowns_by_txn, txn_id, drawdown)
        return drawdown

    @staticmethod
    def annotation(drawdown: DrawDown) -> dict[str, Any]:
        parts = drawdown.parts
        if len(parts) == 1 and parts[0].grant is not None:  # the common case, kept cheap
            return {"consumed": parts[0].grant.id + " " + str(parts[0].amount)}
        grants = []
        overdraft = ZERO
        for part in parts:
            if part.grant is None:
                overdraft += part.amount
            else:
                grants.append(part.grant.id + " " + str(part.amount))
        meta: dict[str, Any] = {}
        if grants:
            meta["consumed"] = ", ".join(grants)
        if overdraft:
            meta["overdraft"] = overdraft
        return meta

    # -- reversals

    def reversal(
        self,
        entry: data.Transaction,
        posting: data.Posting,
        wallet: Wallet,
        reverses: str,
        txn_id: str | None,
    ) -> dict[str, Any] | None:
        number = posting.units.number
        user = self.user_label(wallet.account)
        if number > 0:
            drawdowns = [
                drawdown
                for drawdown in by_txn(self.drawdowns_by_txn, reverses)
                if drawdown.account == wallet.account and drawdown.currency == wallet.currency
            ]
            if not drawdowns:
                kind = "a grant" if reverses in self.grants_by_txn else self.unknown()
                self.error(
                    entry.meta,
                    f"Reversal {txn_id!r} gives {number} {wallet.currency} back to user "
                    f"{user!r}, but {reverses!r} is {kind}: no draw-down of that user "
                    "to restore",
                    entry,
                )
                self.grant(entry, posting, wallet, txn_id or f"{reverses}:reversal", txn_id, None)
                return None
            restorable = sum((d.amount - d.restored for d in drawdowns), ZERO)
            if number > restorable:
                self.error(
                    entry.meta,
                    f"Reversal {txn_id!r} gives back {number} {wallet.currency} to user "
                    f"{user!r} but only {restorable} of {reverses!r} is left to restore",
                    entry,
                )
            restored = self.restore(entry, wallet, drawdowns, min(number, restorable), txn_id)
            if number > restorable:
                extra = number - restorable
                self.grant(
                    entry,
                    posting._replace(units=amount_lib.Amount(extra, wallet.currency)),
                    wallet,
                    f"{txn_id}:excess",
                    txn_id,
                    None,
                )
            return {"restored": restored} if restored else None

        # A negative posting reversing a grant: remove what is left of it.
        asked = -number
        grants = [
            grant
            for grant in by_txn(self.grants_by_txn, reverses)
            if grant.account == wallet.account and grant.currency == wallet.currency
        ]
        if not grants:
            kind = "a draw-down" if reverses in self.drawdowns_by_txn else self.unknown()
            self.error(
                entry.meta,
                f"Reversal {txn_id!r} takes {asked} {wallet.currency} from user {user!r}, "
                f"but {reverses!r} is {kind}: no grant of that user to remove",
                entry,
            )
            return self.annotation(self.draw(entry, posting, wallet, asked, txn_id))
        parts: list[Consumption] = []
        left = asked
        for grant in grants:
            part = min(left, grant.remaining)
            if part > 0:
                self.take(wallet, grant, part)
                grant.reversed += part
                parts.append(Consumption(grant, part))
                left -= part
        if left > 0:
            remaining = asked - left
            self.error(
                entry.meta,
                f"Reversal {txn_id!r} removes {asked} {wallet.currency} of grant "
                f"{reverses!r} from user {user!r}, but only {remaining} of it is left "
                "(the rest was spent or expired); the difference is drawn from other grants",
                entry,
            )
            extra = self.draw(
                entry,
                posting._replace(units=amount_lib.Amount(-left, wallet.currency)),
                wallet,
                left,
                txn_id,
            )
            parts.extend(extra.parts)
        drawdown = DrawDown(txn_id, wallet.account, wallet.currency, entry.date, asked, parts)
        return self.annotation(drawdown)

    def restore(
        self,
        entry: data.Transaction,
        wallet: Wallet,
        drawdowns: list[DrawDown],
        amount: Decimal,
        txn_id: str | None,
    ) -> str:
        """Give ``amount`` back to the grants the draw-downs consumed, last consumed first."""
        restored: list[str] = []
        left = amount
        for drawdown in reversed(drawdowns):
            for part in reversed(drawdown.parts):
                if left <= 0:
                    break
                portion = min(left, part.amount - part.restored)
                if portion <= 0:
                    continue
                left -= portion
                part.restored += portion
                drawdown.restored += portion
                self.restore_part(entry, wallet, part.grant, portion, txn_id)
                restored.append(f"{part.grant.id if part.grant else 'overdraft'} {portion}")
        return ", ".join(restored)

    def restore_part(
        self,
        entry: data.Transaction,
        wallet: Wallet,
        grant: Grant | None,
        portion: Decimal,
        txn_id: str | None,
    ) -> None:
        if grant is None:
            # The overdraft part: cancel outstanding debt, then undo later repayments.
            cancel = min(wallet.debt, portion)
            wallet.debt -= cancel
            portion -= cancel
            while portion > 0 and wallet.repayments:
                repayment = wallet.repayments[-1]
                undo = min(portion, repayment.amount)
                repayment.amount -= undo
                if repayment.amount <= 0:
                    wallet.repayments.pop()
                assert repayment.grant is not None
                repayment.grant.repaid -= undo
                self.restore_part(entry, wallet, repayment.grant, undo, txn_id)
                portion -= undo
            return
        grant.consumed -= portion
        if grant.expires is not None and grant.expires <= entry.date:
            # The grant expired meanwhile: its credits go straight to breakage
            # (booked once per grant when the transaction is done).
            self.restored_expired[grant] = self.restored_expired.get(grant, ZERO) + portion
            return
        grant.remaining += portion
        self.settle_restored(wallet, grant, portion)

    def settle_restored(self, wallet: Wallet, grant: Grant, portion: Decimal) -> None:
        if wallet.debt > 0:
            repay = min(wallet.debt, portion)
            wallet.debt -= repay
            grant.remaining -= repay
            grant.consumed += repay
            grant.repaid += repay
            wallet.repayments.append(Consumption(grant, repay))
            portion -= repay
        wallet.available += portion
        self.push(wallet, grant)

    # -- expiries

    def flush(self, through: datetime.date) -> None:
        """Expire every grant due on or before ``through`` (at the start of its date)."""
        due = self.due
        while due and due[0][0] <= through:
            expires, _, grant = heapq.heappop(due)
            if grant.remaining > 0:
                self.expire(grant, max(expires, grant.date), FIRST_LINE, None)

    def expire(
        self,
        grant: Grant,
        date: datetime.date,
        lineno: int,
        cause: str | None,
        amount: Decimal | None = None,
        forfeited: bool = False,
    ) -> None:
        """Move a grant's remainder (or ``amount`` of it) to breakage on ``date``."""
        amount = grant.remaining if amount is None else amount
        wallet = self.wallets[(grant.account, grant.currency)]
        grant.remaining -= amount
        grant.expired += amount
        if cause is None:
            wallet.available -= amount
        key = expiry_txn_id(grant.id, cause)
        self.expiries.append(Expiry(key, grant, date, amount))
        recorded = self.recorded.get(key)
        if recorded is not None:
            self.used_records.add(key)
            self.check_record(recorded, grant, date, amount)
            return
        target = self.out if cause is None else self.after
        narration = (
            f"Forfeited credits of grant {grant.id} (wallet closed)"
            if forfeited
            else f"Expired credits of grant {grant.id}"
        )
        target.append(
            expiry_transaction(key, grant, date, amount, lineno, narration, self.config.breakage)
        )

    def check_record(
        self, recorded: data.Transaction, grant: Grant, date: datetime.date, amount: Decimal
    ) -> None:
        written = sum(
            (
                -posting.units.number
                for posting in recorded.postings
                if posting.account == grant.account and posting.units.currency == grant.currency
            ),
            ZERO,
        )
        if written != amount or recorded.date != date:
            self.changed_records.append(
                ChangedRecord(recorded, grant.account, grant.currency, written, amount, date)
            )
            self.error(
                recorded.meta,
                f"Recorded expiry of grant {grant.id!r} of user "
                f"{self.user_label(grant.account)!r} says {written} {grant.currency} on "
                f"{recorded.date}, but the ledger now expires {amount} {grant.currency} on "
                f"{date}: history was changed",
                recorded,
            )

    def check_unused_records(self) -> None:
        for key, recorded in self.recorded.items():
            if key not in self.used_records:
                account = currency = None
                written = ZERO
                for posting in recorded.postings:
                    if self.is_user(posting.account):
                        account, currency = posting.account, posting.units.currency
                        written -= posting.units.number
                self.changed_records.append(
                    ChangedRecord(recorded, account, currency, written, ZERO, None)
                )
                self.error(
                    recorded.meta,
                    f"Recorded expiry {key!r} of grant {recorded.meta.get('grant')!r} matches "
                    "nothing the ledger now expires: history was changed",
                    recorded,
                )


def expiry_transaction(
    key: str,
    grant: Grant,
    date: datetime.date,
    amount: Decimal,
    lineno: int,
    narration: str,
    breakage: str,
) -> data.Transaction:
    """The ``#expired`` transaction moving ``amount`` of a grant to breakage (generated)."""
    meta = generated_meta(EXPIRE_PLUGIN_NAME, lineno, GENERATED_FILENAME)
    meta["txn_id"] = key
    meta["grant"] = grant.id
    meta["generated"] = True  # shown in Fava; the mark above is what the tools read
    units = amount_lib.Amount(amount, grant.currency)
    postings = [
        data.Posting(grant.account, -units, None, None, None, None),
        data.Posting(breakage, units, None, None, None, None),
    ]
    return data.Transaction(
        meta,
        date,
        "*",
        None,
        narration,
        frozenset({EXPIRED_TAG}),
        data.EMPTY_SET,
        postings,
    )


def generated_meta(plugin: str, lineno: int = 0, filename: str | None = None) -> data.Meta:
    """Metadata for an entry ``plugin`` makes, carrying the generated mark."""
    meta = data.new_metadata(filename or f"<{plugin}>", lineno)
    meta[GENERATED_KEY] = plugin
    return meta


def generated_by(entry: data.Directive) -> str | None:
    """The plugin of this package that made the entry (None: written, or Beancount's)."""
    meta = entry.meta
    return None if not meta else meta.get(GENERATED_KEY)


def is_generated(entry: data.Directive) -> bool:
    """True for entries a plugin made rather than the ledger text.

    This package's plugins mark theirs (:data:`GENERATED_KEY`); Beancount's own
    generated transactions (pad, summarize) carry a flag of their own. The
    file name plays no part: ``load_string`` calls written entries ``<string>``.
    """
    meta = entry.meta
    if meta and GENERATED_KEY in meta:
        return True
    return isinstance(entry, data.Transaction) and entry.flag in BEANCOUNT_GENERATED_FLAGS


def written_entries(entries: Iterable[data.Directive]) -> list[data.Directive]:
    """The entries without the expire plugin's generated expiries (the engine's input)."""
    return [
        entry
        for entry in entries
        if not (entry.meta and entry.meta.get(GENERATED_KEY) == EXPIRE_PLUGIN_NAME)
    ]


class Scan(NamedTuple):
    recorded: dict[str, data.Transaction]  # expiries in the input, by Transaction ID
    errors: list[CreditsError]
    horizon: datetime.date | None  # last written transaction or balance
    reversed_ids: set[str]  # txn_ids that reversals name


def scan(entries: Iterable[data.Directive]) -> Scan:
    """What the pass needs to know before it starts.

    The horizon is the date of the last transaction or balance assertion that
    was written in the text: the day the ledger has been kept up to.
    """
    recorded: dict[str, data.Transaction] = {}
    errors: list[CreditsError] = []
    horizon: datetime.date | None = None
    reversed_ids: set[str] = set()
    for entry in entries:
        if isinstance(entry, data.Transaction):
            reverses = entry.meta.get("reverses")
            if reverses is not None:
                reversed_ids.add(str(reverses))
            if is_expiry_record(entry):
                key = txn_id_of(entry) or expiry_txn_id(str(entry.meta["grant"]))
                if key in recorded:
                    errors.append(
                        CreditsError(entry.meta, f"Expiry {key!r} is recorded twice", entry)
                    )
                    continue
                recorded[key] = entry
        elif not isinstance(entry, data.Balance):
            continue
        if not is_generated(entry) and (horizon is None or entry.date > horizon):
            horizon = entry.date
    return Scan(recorded, errors, horizon, reversed_ids)


def run(
    entries: list[data.Directive],
    config: CreditsConfig | None = None,
    through: datetime.date | None = None,
    record: bool = True,
) -> EngineResult:
    """Run the grant engine over date-sorted entries.

    Expiries are booked up to the ledger's horizon (its last written
    transaction or balance; a later expiry has not happened yet), or up to
    ``through`` if that is later, or all of them with ``future_expiries``.

    Returns the entries with generated expiries added (sorted the way Beancount
    sorts them) and draw-downs annotated, the errors, and the grant ledger.
    With ``record=False`` (the plugin) only the draw-downs that reversals name
    are kept, and ``EngineResult.drawdowns`` is empty.
    """
    config = config or CreditsConfig()
    recorded, errors, horizon, reversed_ids = scan(entries)
    if config.future_expiries:
        horizon = NEVER
    elif through is not None and (horizon is None or through > horizon):
        horizon = through
    state = _Pass(config, recorded, None if record else reversed_ids)
    state.errors.extend(errors)
    out = state.out
    current: datetime.date | None = None
    for entry in entries:
        if entry.date != current:
            current = entry.date
            if horizon is not None:
                state.flush(min(current, horizon))
        if isinstance(entry, data.Transaction):
            if entry.meta and "grant" in entry.meta and EXPIRED_TAG in entry.tags:
                # Recorded expiries are applied when their grant comes due.
                out.append(entry)
                continue
            out.append(state.transaction(entry))
            if state.after:
                out.extend(state.after)
                state.after.clear()
        elif isinstance(entry, data.Open):
            state.open(entry)
            out.append(entry)
        elif isinstance(entry, data.Close):
            out.append(entry)
            state.close(entry)
        else:
            out.append(entry)
    if horizon is not None:
        state.flush(horizon)
    state.check_unused_records()
    out.sort(key=data.entry_sortkey)
    return EngineResult(
        entries=out,
        errors=state.errors,
        grants=state.grants,
        drawdowns=state.drawdowns,
        expiries=state.expiries,
        wallets=state.wallets,
        users=state.users,
        changed_records=state.changed_records,
    )


def open_grants(result: EngineResult, account: str | None = None) -> Iterator[Grant]:
    """Grants with credits left at the end of the pass, in consumption order."""
    for wallet in result.wallets.values():
        if account is not None and wallet.account != account:
            continue
        yield from sorted(
            (grant for _key, _seq, grant in wallet.heap if grant.remaining > 0),
            key=consumption_order,
        )


def book_through(
    result: EngineResult, day: datetime.date, breakage: str
) -> tuple[EngineResult, list[data.Transaction]]:
    """Go on from a finished pass: book the expiries due on or before ``day``.

    ``result`` is a pass over every written entry with nothing after its
    horizon that the engine acts on (no transaction, no wallet ``close``): then
    what is left to happen by ``day`` is the expiries of the open grants, and
    this equals a pass through ``day`` (the ``flush`` at its end). Returns a new
    result, sharing what did not change, and the expiry transactions booked.
    The input is not modified, so a result can be shared by concurrent readers.
    """
    due = sorted(
        (
            grant
            for grant in result.grants.values()
            if grant.remaining > 0 and grant.expires is not None and grant.expires <= day
        ),
        key=lambda grant: grant.expires or NEVER,  # stable: creation order within a day
    )
    if not due:
        return result, []
    grants = dict(result.grants)
    wallets = dict(result.wallets)
    expiries = list(result.expiries)
    booked: list[data.Transaction] = []
    gone: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for grant in due:
        amount = grant.remaining
        date = max(grant.expires or NEVER, grant.date)
        copy = dataclasses.replace(grant, remaining=ZERO, expired=grant.expired + amount)
        grants[grant.id] = copy
        key = (grant.account, grant.currency)
        wallet = wallets[key]
        if wallet is result.wallets.get(key):
            wallet = wallets[key] = dataclasses.replace(wallet, repayments=list(wallet.repayments))
        wallet.available -= amount
        gone[key].add(grant.id)
        txn_id = expiry_txn_id(grant.id)
        expiries.append(Expiry(txn_id, copy, date, amount))
        booked.append(
            expiry_transaction(
                txn_id,
                copy,
                date,
                amount,
                FIRST_LINE,
                f"Expired credits of grant {grant.id}",
                breakage,
            )
        )
    for key, ids in gone.items():
        heap = [item for item in wallets[key].heap if item[2].id not in ids]
        heapq.heapify(heap)
        wallets[key].heap = heap
    return (
        dataclasses.replace(result, grants=grants, wallets=wallets, expiries=expiries),
        booked,
    )


def horizon(entries: Iterable[data.Directive]) -> datetime.date | None:
    """The last day the text records: its last written transaction or balance assertion."""
    return scan(entries).horizon


# --- Back from annotations ------------------------------------------------------
#
# The annotations the pass writes (``consumed:``, ``overdraft:``, ``restored:``,
# ``repaid_overdraft:``) are read back here, beside their writer, so a change
# of their form changes both. tests/test_asof.py holds :func:`rewind` equal to
# a pass through the day for every day of every case ledger and of the demo.


def _pairs(text: object, grants: dict[str, Grant]) -> list[tuple[str, Decimal]] | None:
    """``"g-1 5, g-2 3"`` as [("g-1", 5), ("g-2", 3)]; None if a grant is unknown."""
    parts: list[tuple[str, Decimal]] = []
    for piece in str(text).split(", "):
        grant_id, _space, number = piece.rpartition(" ")
        if grant_id not in grants:
            return None
        try:
            parts.append((grant_id, Decimal(number)))
        except ArithmeticError:
            return None
    return parts


def rewind(
    end: EngineResult,
    later: Iterable[data.Directive],
    day: datetime.date,
    config: CreditsConfig,
) -> EngineResult | None:
    """The grants and wallets as they stood at the end of ``day``, from the end state.

    ``end`` is a pass over annotated entries (the expire plugin's, ``annotate``
    on) and ``later`` those entries dated after ``day``. Undoes what they did,
    grant by grant: the draw-downs' ``consumed:`` and ``overdraft:``, the
    expiries, a reversal's ``restored:``, a grant's ``repaid_overdraft:``;
    grants dated after ``day`` did not exist yet. Returns grants and wallets
    only (no draw-down or expiry records), or None when that cannot be exact:
    the engine disagrees with a recorded expiry, grants were carried forward
    after ``day``, a reversal after ``day`` gave credits back to a wallet that
    was ever overdrawn (restoring may repay the overdraft, which no annotation
    records), or an annotation does not add up to its posting.
    """
    if end.changed_records:  # recorded expiries the engine disagrees with
        return None
    undo: dict[str, Decimal] = collections.defaultdict(Decimal)
    debt: dict[tuple[str, str], Decimal] = collections.defaultdict(Decimal)
    overdrawn = {key for key, wallet in end.wallets.items() if wallet.debt or wallet.repayments} | {
        (grant.account, grant.currency) for grant in end.grants.values() if grant.repaid
    }
    is_user: dict[str, bool] = {}
    for entry in later:
        if not isinstance(entry, data.Transaction):
            continue
        if CARRIED_TAG in entry.tags:
            return None  # carried grants keep their original date: not told apart here
        reversal = entry.meta.get("reverses") is not None
        expiry = is_expiry_record(entry)
        for posting in entry.postings:
            account = posting.account
            user = is_user.get(account)
            if user is None:
                user = is_user[account] = config.is_user_account(account)
            units = posting.units
            if not user or units is None or not isinstance(units.number, Decimal):
                continue
            meta = posting.meta or {}
            key = (account, units.currency)
            if expiry:
                if units.number < 0:
                    undo[str(entry.meta["grant"])] -= units.number
            elif units.number > 0 and reversal:
                if key in overdrawn:
                    return None
                restored = _pairs(meta["restored"], end.grants) if "restored" in meta else []
                if restored is None or sum((n for _i, n in restored), ZERO) > units.number:
                    return None
                for grant_id, amount in restored:
                    undo[grant_id] -= amount
            elif units.number > 0:
                repaid = meta.get("repaid_overdraft")
                if repaid is not None:
                    debt[key] += repaid  # the overdraft this grant repaid was still owed
            elif units.number < 0:
                consumed = _pairs(meta["consumed"], end.grants) if "consumed" in meta else []
                overdraft = meta.get("overdraft", ZERO)
                if consumed is None or not isinstance(overdraft, Decimal):
                    return None
                if sum((n for _i, n in consumed), overdraft) != -units.number:
                    return None
                for grant_id, amount in consumed:
                    undo[grant_id] += amount
                debt[key] -= overdraft  # not yet owed then
    wallets: dict[tuple[str, str], Wallet] = {}
    grants: dict[str, Grant] = {}
    seq = 0
    for grant in end.grants.values():
        if grant.date > day:
            continue
        remaining = grant.remaining + undo.get(grant.id, ZERO)
        if remaining > grant.amount or remaining < 0:
            return None  # the annotations do not describe this grant
        grants[grant.id] = copy = dataclasses.replace(grant, remaining=remaining, queued=False)
        key = (grant.account, grant.currency)
        wallet = wallets.get(key)
        if wallet is None:
            limit = end.wallets[key].limit if key in end.wallets else ZERO
            wallet = wallets[key] = Wallet(grant.account, grant.currency, limit)
        if remaining > 0:
            seq += 1
            wallet.heap.append((copy.sort_key, seq, copy))
            wallet.available += remaining
    for key, wallet in end.wallets.items():
        owed = wallet.debt + debt.get(key, ZERO)
        if owed < 0:
            return None
        if owed:
            if key not in wallets:
                wallets[key] = Wallet(key[0], key[1], wallet.limit)
            wallets[key].debt = owed
    for wallet in wallets.values():
        heapq.heapify(wallet.heap)
    return EngineResult(
        entries=[],
        errors=[],
        grants=grants,
        drawdowns=[],
        expiries=[],
        wallets=wallets,
        users=end.users,
    )
