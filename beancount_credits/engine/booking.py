"""The pass of the grant engine: credit blocks, draw-downs, expiries and reversals.

Pure functions over Beancount entries (entries in, entries and errors out); the
plugin :mod:`beancount_credits.plugins.expire` is a thin wrapper around
:func:`run`, and :mod:`beancount_credits.engine.asof` runs it for the tools: the
ledger as of a day is the engine booked through that day (running it over its
own output adds nothing: generated expiries are recognised as recorded ones).
Entries it makes carry the generated mark (:data:`GENERATED_KEY`).

The rules (docs/design.md, "The grant engine"):

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
grants g, never O(total grants). Three parts of it live in their own modules,
as functions over the pass's state (:class:`Pass`):
:mod:`beancount_credits.engine.grants` (a grant posting's credit block and its
terms), :mod:`beancount_credits.engine.expiries` (due grants to breakage,
recorded expiries checked, :func:`~beancount_credits.engine.expiries.book_through`)
and :mod:`beancount_credits.engine.reversals`; this module keeps the state, the
directives' dispatch, draw-downs and :func:`run`.
"""

from __future__ import annotations

import datetime
import heapq
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, NamedTuple

from beancount.core import amount as amount_lib
from beancount.core import data

from beancount_credits.engine import allowances, expiries, grants, reversals
from beancount_credits.engine.annotations import drawdown_annotation, grant_annotation
from beancount_credits.engine.config import CreditsConfig
from beancount_credits.engine.metadata import (
    SourcePolicy,
    expiry_txn_id,
    is_expiry_record,
    is_generated,
    meta_amount,
    meta_decimal,
    meta_int,
    parse_accounts,
    parse_period,
    txn_id_of,
)
from beancount_credits.engine.model import (
    CARRIED_TAG,
    LAST_LINE,
    NEVER,
    ZERO,
    ChangedRecord,
    Consumption,
    CreditsError,
    DrawDown,
    EngineResult,
    Expiry,
    Grant,
    Wallet,
    consumption_order,
    index_by_txn,
)

# --- The pass ---------------------------------------------------------------


class Pass:
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
        self.allowances: allowances.Book | None = None

    # -- helpers

    def error(self, meta: data.Meta, message: str, entry: data.Directive | None) -> None:
        self.errors.append(CreditsError(meta, message, entry))

    def claim_txn_id(self, entry: data.Transaction, txn_id: str) -> None:
        """Note the first use of a Transaction ID; a later one is an error."""
        first = self.seen_txn_ids.setdefault(txn_id, entry.meta)
        if first is not entry.meta:
            self.duplicate_txn_id(entry, txn_id, first)

    def duplicate_txn_id(self, entry: data.Transaction, txn_id: str, first: data.Meta) -> None:
        self.error(
            entry.meta,
            f"Duplicate txn_id {txn_id!r} (first used at "
            f"{first.get('filename')}:{first.get('lineno')}); "
            "txn_id is the idempotency key and must be unique",
            entry,
        )

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
            wallet = self.wallets[key] = Wallet(
                account, currency, limit, order=self.config.draw_down_order
            )
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

    def reorder(self, wallet: Wallet) -> None:
        """Rebuild a wallet's heap after its grants' place in the order changed."""
        heap = []
        for _key, seq, grant in wallet.heap:
            if grant.remaining > 0:
                heap.append((consumption_order(grant, wallet.order), seq, grant))
            else:  # spent or expired: dropped now rather than when a draw-down meets it
                grant.queued = False
        heapq.heapify(heap)
        wallet.heap = heap

    def push(self, wallet: Wallet, grant: Grant) -> None:
        if not grant.queued and grant.remaining > 0:
            self.seq += 1
            heapq.heappush(wallet.heap, (consumption_order(grant, wallet.order), self.seq, grant))
            grant.queued = True
            if grant.applies_to is not None:
                wallet.scoped = True

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
            ("applies_to", parse_accounts),
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
        allowances.close(self, entry.account)
        for (account, _currency), wallet in self.wallets.items():
            if account != entry.account:
                continue
            for _key, _seq, grant in sorted(wallet.heap):
                if grant.remaining > 0:
                    expiries.expire(self, grant, entry.date, LAST_LINE, None, forfeited=True)

    def transaction(self, entry: data.Transaction) -> data.Transaction:
        meta = entry.meta
        # txn_id_of and claim_txn_id, inlined: this runs once per transaction of the ledger.
        value = meta.get("txn_id") if meta else None
        txn_id = None if value is None else str(value)
        if txn_id is not None:
            first = self.seen_txn_ids.setdefault(txn_id, meta)
            if first is not meta:
                self.duplicate_txn_id(entry, txn_id, first)
        if entry.tags and CARRIED_TAG in entry.tags:
            # Any carry-forward, a zero line included, marks a closed period behind.
            self.closed_through = entry.date

        reverses = meta.get("reverses") if meta else None
        new_postings: list[data.Posting] | None = None
        grant_ids: dict[int, str] | None = None
        role_cache = self.role_cache
        wallets = self.wallets
        annotate = self.config.annotate
        # A draw-down nobody will ask for again (no reversal names it, and the
        # pass keeps no records) needs no DrawDown: see the quick path below.
        unrecorded = self.keep is not None and (txn_id is None or txn_id not in self.keep)
        for index, posting in enumerate(entry.postings):
            account = posting.account
            user = role_cache.get(account)
            if user is None:
                user = self.is_user(account)
            if not user:
                continue
            units = posting.units
            if units is None:
                continue
            number = units.number
            if not isinstance(number, Decimal) or not number:
                continue
            wallet = wallets.get((account, units.currency)) or self.wallet(account, units.currency)
            annotation: dict[str, Any] | None = None
            if reverses is not None:
                annotation = reversals.reversal(self, entry, posting, wallet, str(reverses), txn_id)
            elif number > 0:
                if grant_ids is None:
                    grant_ids = grants.grant_ids(self, entry, txn_id)
                source = None
                for other in entry.postings:
                    role = role_cache.get(other.account)
                    if not (self.is_user(other.account) if role is None else role):
                        source = other.account
                        break
                grant = grants.grant(self, entry, posting, wallet, grant_ids[index], txn_id, source)
                annotation = grant_annotation(grant)
            else:
                asked = -number
                heap = wallet.heap
                if unrecorded and heap and not wallet.scoped:
                    # The quick path of draw(): the first grant in the order covers
                    # the draw-down, within what the wallet has. Same effect and
                    # annotation as draw() with drawdown_annotation(), minus the
                    # records (most draw-downs of a ledger take this path).
                    grant = heap[0][2]
                    remaining = grant.remaining
                    # Within what the wallet has: no debt and enough open credits
                    # (the credit limit is never negative) is draw()'s check, cheaper.
                    # remaining >= asked > 0: the grant is open.
                    if remaining >= asked and not wallet.debt and wallet.available >= asked:
                        grant.remaining = remaining = remaining - asked
                        grant.consumed += asked
                        wallet.available -= asked
                        if not remaining:
                            heapq.heappop(heap)
                            grant.queued = False
                        consumed = grant.id + " " + str(asked)
                        if annotate and posting.meta is not None:
                            posting.meta["consumed"] = consumed
                            continue
                        annotation = {"consumed": consumed}
                if annotation is None:
                    annotation = drawdown_annotation(
                        self.draw(entry, posting, wallet, asked, txn_id)
                    )
            if annotation and annotate:
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
                expiries.expire(
                    self, grant, entry.date, lineno, txn_id or "reversal", amount=portion
                )
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

    # -- draw-downs

    def result(
        self, entries: list[data.Directive], errors: list[CreditsError] | None = None
    ) -> EngineResult:
        """The pass's state as an engine result, with ``entries`` (and ``errors``, default
        the pass's own list): one place that names every field of the state."""
        return EngineResult(
            entries=entries,
            errors=self.errors if errors is None else errors,
            grants=self.grants,
            drawdowns=self.drawdowns,
            expiries=self.expiries,
            wallets=self.wallets,
            users=self.users,
            changed_records=self.changed_records,
            allowances=self.allowances,
        )

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
        use = None
        skipped: list[tuple[Any, int, Grant]] | None = None
        if wallet.scoped:
            # Scoped grants (applies_to) serve only some uses: this draw-down's
            # is its counter-account; the others' credits are not available to it.
            use = next((p.account for p in entry.postings if not self.is_user(p.account)), None)
            usable = sum(
                (g.remaining for _k, _s, g in wallet.heap if g.remaining > 0 and g.applies(use)),
                ZERO,
            )
            available = usable + wallet.limit - wallet.debt
            skipped = []
        else:
            available = wallet.available + wallet.limit - wallet.debt
        if asked > available:
            to_use = "" if skipped is None else f" to {use}"
            self.error(
                entry.meta,
                f"Draw-down of {asked} {wallet.currency} by user "
                f"{self.user_label(wallet.account)!r} on {entry.date} exceeds the "
                f"{max(available, ZERO)} {wallet.currency} available{to_use} "
                f"(balance {wallet.balance}, credit limit {wallet.limit})",
                entry,
            )
        parts: list[Consumption] = []
        left = asked
        heap = wallet.heap
        while left > 0 and heap:
            grant = heap[0][2]
            remaining = grant.remaining
            if remaining <= 0:
                heapq.heappop(heap)
                grant.queued = False
                continue
            if skipped is not None and not grant.applies(use):
                skipped.append(heapq.heappop(heap))  # another use's credits: kept for it
                continue
            # take(), inlined: one draw-down per redemption of the ledger.
            part = remaining if remaining < left else left  # min(): left when equal
            grant.remaining = remaining = remaining - part
            grant.consumed += part
            wallet.available -= part
            parts.append(Consumption(grant, part))
            left -= part
            if remaining <= 0:
                heapq.heappop(heap)
                grant.queued = False
        if skipped:
            for item in skipped:
                heapq.heappush(heap, item)
        if left > 0:
            wallet.debt += left
            parts.append(Consumption(None, left))
        drawdown = DrawDown(txn_id, wallet.account, wallet.currency, entry.date, asked, parts)
        if self.keep is None:
            self.drawdowns.append(drawdown)
        if txn_id is not None and (self.keep is None or txn_id in self.keep):
            index_by_txn(self.drawdowns_by_txn, txn_id, drawdown)
        return drawdown


class Scan(NamedTuple):
    recorded: dict[str, data.Transaction]  # expiries in the input, by Transaction ID
    errors: list[CreditsError]
    horizon: datetime.date | None  # last written transaction or balance
    reversed_ids: set[str]  # txn_ids that reversals name
    allowances: list[data.Custom]  # the credits-allowance directives
    wallets: dict[str, str]  # user_id -> the account of the open carrying it
    allowance_grants: dict[str, datetime.date]  # allowance grants in the text, by txn_id
    opened: datetime.date | None  # the first day after a closed period (its carried grants)


def scan(entries: Iterable[data.Directive]) -> Scan:
    """What the pass needs to know before it starts.

    The horizon is the date of the last transaction or balance assertion that
    was written in the text: the day the ledger has been kept up to.
    """
    recorded: dict[str, data.Transaction] = {}
    errors: list[CreditsError] = []
    horizon: datetime.date | None = None
    reversed_ids: set[str] = set()
    directives: list[data.Custom] = []
    wallets: dict[str, str] = {}
    allowance_grants: dict[str, datetime.date] = {}
    opened: datetime.date | None = None
    transaction, balance = data.Transaction, data.Balance
    prefix = allowances.PREFIX
    for entry in entries:
        if isinstance(entry, transaction):
            meta = entry.meta
            reverses = meta.get("reverses")
            if reverses is not None:
                reversed_ids.add(str(reverses))
            txn_id = meta.get("txn_id")
            if isinstance(txn_id, str) and txn_id.startswith(prefix) and not is_generated(entry):
                allowance_grants[txn_id] = entry.date
            tags = entry.tags
            if tags:
                if CARRIED_TAG in tags:
                    opened = entry.date  # the latest close's (an earlier opening may remain)
                if is_expiry_record(entry):  # called for tagged transactions only
                    key = txn_id_of(entry) or expiry_txn_id(str(meta["grant"]))
                    if key in recorded:
                        errors.append(
                            CreditsError(meta, f"Expiry {key!r} is recorded twice", entry)
                        )
                        continue
                    recorded[key] = entry
        elif not isinstance(entry, balance):
            if isinstance(entry, data.Custom):
                if entry.type == allowances.DIRECTIVE:
                    directives.append(entry)
            elif isinstance(entry, data.Open) and entry.meta and "user_id" in entry.meta:
                wallets[str(entry.meta["user_id"])] = entry.account
            continue
        # Dates first: entries come date-sorted, so most are not later than the horizon.
        if (horizon is None or entry.date > horizon) and not is_generated(entry):
            horizon = entry.date
    return Scan(
        recorded, errors, horizon, reversed_ids, directives, wallets, allowance_grants, opened
    )


def run(
    entries: list[data.Directive],
    config: CreditsConfig | None = None,
    through: datetime.date | None = None,
    record: bool = True,
    sort: bool = True,
) -> EngineResult:
    """Run the grant engine over date-sorted entries.

    Expiries are booked up to the ledger's horizon (its last written
    transaction or balance; a later expiry has not happened yet), or up to
    ``through`` if that is later, or all of them with ``future_expiries``.

    Returns the entries with generated expiries added (sorted the way Beancount
    sorts them) and draw-downs annotated, the errors, and the grant ledger.
    With ``record=False`` (the plugin) only the draw-downs that reversals name
    are kept, and ``EngineResult.drawdowns`` is empty. With ``sort=False`` (the
    plugin: Beancount sorts the entries after every plugin, with the same key)
    the generated entries are left where the pass made them.
    """
    config = config or CreditsConfig()
    found = scan(entries)
    horizon = found.horizon
    if through is not None and (horizon is None or through > horizon):
        horizon = through
    # Allowances are granted through the horizon, even with the whole expiry schedule.
    granted_through = horizon
    if config.future_expiries:
        horizon = NEVER
    state = Pass(config, found.recorded, None if record else found.reversed_ids)
    state.errors.extend(found.errors)
    if found.allowances:
        state.allowances, errors = allowances.build(
            found.allowances, found.wallets, config, found.allowance_grants, found.opened
        )
        state.errors.extend(errors)
    book = state.allowances
    out = state.out
    append = out.append
    after = state.after
    booked = state.transaction
    transaction, balance = data.Transaction, data.Balance
    # The next allowance boundary (book.due changes only in allowances.flush).
    next_due = (
        book.due[0][0] if book is not None and book.due and granted_through is not None else None
    )
    current: datetime.date | None = None
    for entry in entries:
        date = entry.date
        if date != current:
            current = date
            if horizon is not None:
                expiries.flush(state, min(current, horizon))
        if isinstance(entry, balance):  # most of a logged ledger: nothing to book
            append(entry)
            continue
        if (
            next_due is not None
            and next_due <= date
            and isinstance(entry, (transaction, data.Close))
            and book is not None
            and granted_through is not None
        ):
            # A period's allowance comes after its day's opens, before anything spends;
            # a period close's carried grants come before it (they are its pool).
            day = date
            if isinstance(entry, transaction) and CARRIED_TAG in entry.tags:
                day -= datetime.timedelta(days=1)
            allowances.flush(state, min(day, granted_through))
            next_due = book.due[0][0] if book.due else None
        if isinstance(entry, transaction):
            if entry.tags and is_expiry_record(entry):
                # Recorded expiries are applied when their grant comes due.
                append(entry)
                continue
            append(booked(entry))
            if after:
                out.extend(after)
                after.clear()
        elif isinstance(entry, data.Open):
            state.open(entry)
            append(entry)
        elif isinstance(entry, data.Close):
            append(entry)
            state.close(entry)
        else:
            append(entry)
    if horizon is not None:
        expiries.flush(state, horizon)
    if granted_through is not None and state.allowances is not None:
        allowances.flush(state, granted_through)
        expiries.flush(state, horizon)
    expiries.check_unused_records(state)
    if sort:
        out.sort(key=data.entry_sortkey)
    return state.result(out)


def open_grants(result: EngineResult, account: str | None = None) -> Iterator[Grant]:
    """Grants with credits left at the end of the pass, in consumption order."""
    for wallet in result.wallets.values():
        if account is not None and wallet.account != account:
            continue
        yield from sorted(
            (grant for _key, _seq, grant in wallet.heap if grant.remaining > 0),
            key=lambda grant: consumption_order(grant, wallet.order),
        )


def horizon(entries: Iterable[data.Directive]) -> datetime.date | None:
    """The last day the text records: its last written transaction or balance assertion."""
    return scan(entries).horizon
