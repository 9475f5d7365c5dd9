"""From validated events to ledger entries: the pure part of an import.

:func:`plan_batch` takes what the ledger already holds (a :class:`LedgerIndex`,
built from parsed or loaded entries) and a batch of rows, and returns the
:class:`Plan`: the new entries (wallet and account ``open``s, transactions,
``custom`` records), the edits of entries already in the text (a pending
redemption settled or cancelled, a grant's expiry moved), the events already
imported (by ``txn_id``) and every problem found, by row. It does no I/O.

What the rows become (the README's event table has the fields):

- ``user``: a new user's wallet ``open`` (``user_id``, ``segment``, ``email``,
  ``credit_limit``); for a known user, the changed fields as ``custom
  "credits-user" "<user_id>"``. A credit limit change of a known user is
  refused: the grant engine reads ``credit_limit`` from the ``open`` only.
- ``purchase``, ``promotion``, ``referral``, ``loyalty``, ``topup``
  (succeeded): a grant from ``Income:Credits:<Source>``; a failed top-up is
  ``custom "credits-topup" "<user_id>" "failed"``.
- ``redeem``: a draw-down to ``Expenses:Credits:Sessions`` (or ``Orders``);
  ``pending`` is flagged ``!``, a later ``settled`` for the same id flips it to
  ``*`` (``settled:`` date), ``cancelled`` flips it and books a reversal
  ``<id>:cancelled``.
- ``adjust``: against ``Equity:Credits:Adjustments`` with ``reason`` and
  ``approved_by``; ``reverse``: ``reverses:`` the named entry;
  ``expiry_change``: sets the grant's ``expires:`` (and lists the event in its
  ``expiry_changes:``).

A wallet seen for the first time is opened on the day of its first event in
the batch; a source or use account the ledger lacks is opened likewise.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from beancount.core import amount as amount_lib
from beancount.core import data
from beancount.parser.grammar import ValueType

from beancount_credits.engine.accounts import user_account
from beancount_credits.engine.config import CreditsConfig
from beancount_credits.importers.events import Event, Problem, Row, parse_event

CANCELLED_SUFFIX = ":cancelled"
USER_FIELDS = ("segment", "email", "credit_limit")
SOURCES = {
    "purchase": "Purchase",
    "promotion": "Promotion",
    "referral": "Referral",
    "loyalty": "Loyalty",
    "topup": "TopUp",
}


@dataclasses.dataclass
class TxnRef:
    """A credits transaction the batch may act on (in the text or earlier in the batch)."""

    txn_id: str
    date: datetime.date
    flag: str
    wallet: str | None  # the first user-wallet posting's account
    number: Decimal | None  # ... and its number
    currency: str | None
    counter: str | None  # the first other posting's account
    filename: str | None = None  # None: an entry of this batch
    lineno: int | None = None
    posting_expires: bool = False  # the wallet posting sets its own expires:
    expiry_changes: list[str] = dataclasses.field(default_factory=list)
    entry: data.Transaction | None = None  # the batch's entry (for in-batch edits)


@dataclasses.dataclass(frozen=True)
class Recorded:
    """What an id names in the ledger other than a transaction (for the id-reuse check)."""

    kind: str  # "open", "credits-user", "credits-topup", "expiry change"
    user: str | None
    filename: str | None
    lineno: int | None


@dataclasses.dataclass
class UserState:
    user_id: str
    account: str
    fields: dict[str, Any]


@dataclasses.dataclass
class LedgerIndex:
    """What an import needs to know about the ledger it writes to."""

    config: CreditsConfig
    accounts: set[str]
    users: dict[str, UserState]
    ids: set[str]
    transactions: dict[str, TxnRef]
    recorded: dict[str, Recorded] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_entries(cls, entries: Iterable[data.Directive], config: CreditsConfig) -> LedgerIndex:
        """Index parsed (unbooked) or loaded entries; their order does not matter."""
        accounts: set[str] = set()
        users: dict[str, UserState] = {}
        ids: set[str] = set()
        transactions: dict[str, TxnRef] = {}
        recorded: dict[str, Recorded] = {}
        user_changes: list[data.Custom] = []
        for entry in entries:
            meta = entry.meta or {}
            txn_id = meta.get("txn_id")
            where = (meta.get("filename"), meta.get("lineno"))
            if txn_id is not None:
                ids.add(str(txn_id))
                if isinstance(entry, data.Open):
                    recorded[str(txn_id)] = Recorded("open", _user_of(meta), *where)
                elif isinstance(entry, data.Custom):
                    user = str(entry.values[0].value) if entry.values else None
                    recorded[str(txn_id)] = Recorded(entry.type, user, *where)
            if isinstance(entry, data.Transaction):
                if txn_id is not None:
                    transactions[str(txn_id)] = transaction_ref(entry, str(txn_id), config)
                    changes = meta.get("expiry_changes")
                    if changes:
                        for part in str(changes).split(","):
                            ids.add(part.strip())
                            recorded[part.strip()] = Recorded("expiry change", None, *where)
            elif isinstance(entry, data.Open):
                accounts.add(entry.account)
                if config.is_user_account(entry.account):
                    user_id = str(meta.get("user_id", entry.account.rpartition(":")[2]))
                    fields = {key: meta[key] for key in USER_FIELDS if key in meta}
                    users[user_id] = UserState(user_id, entry.account, fields)
            elif isinstance(entry, data.Custom) and entry.type == "credits-user":
                user_changes.append(entry)
        for change in sorted(user_changes, key=lambda entry: entry.date):
            user_id = str(change.values[0][0]) if change.values else None
            if user_id in users:
                for key in USER_FIELDS:
                    if key in change.meta:
                        users[user_id].fields[key] = change.meta[key]
        return cls(config, accounts, users, ids, transactions, recorded)


def _user_of(meta: dict[str, Any]) -> str | None:
    return None if meta.get("user_id") is None else str(meta["user_id"])


def transaction_ref(entry: data.Transaction, txn_id: str, config: CreditsConfig) -> TxnRef:
    wallet = number = currency = counter = None
    posting_expires = False
    for posting in entry.postings:
        if wallet is None and config.is_user_account(posting.account):
            wallet = posting.account
            if posting.units is not None and isinstance(posting.units.number, Decimal):
                number, currency = posting.units.number, posting.units.currency
            posting_expires = bool(posting.meta and "expires" in posting.meta)
        elif counter is None and not config.is_user_account(posting.account):
            counter = posting.account
    changes = str(entry.meta.get("expiry_changes", "") or "")
    return TxnRef(
        txn_id=txn_id,
        date=entry.date,
        flag=entry.flag,
        wallet=wallet,
        number=number,
        currency=currency,
        counter=counter,
        filename=entry.meta.get("filename"),
        lineno=entry.meta.get("lineno"),
        posting_expires=posting_expires,
        expiry_changes=[part.strip() for part in changes.split(",") if part.strip()],
    )


@dataclasses.dataclass(frozen=True)
class Edit:
    """A change to a transaction already in the text, at its header line."""

    filename: str
    lineno: int
    kind: str  # "settle", "cancel" or "expires"
    date: datetime.date  # settled/cancelled on; or the new expiry
    event_id: str
    line: int  # the row that asked for it
    expiry_changes: tuple[str, ...] = ()


@dataclasses.dataclass
class Plan:
    entries: list[data.Directive]  # new entries, each with meta "lineno" = its row's line
    edits: list[Edit]
    new: int
    already: int
    problems: dict[int, list[Problem]]  # by row line
    events: dict[int, Event]  # the parsed events by row line (for messages)
    users: dict[int, str | None]  # the user of each row, where known
    ids: dict[int, str | None] = dataclasses.field(default_factory=dict)  # each row's id

    @property
    def empty(self) -> bool:
        return not self.entries and not self.edits


class _Planner:
    def __init__(self, index: LedgerIndex, timezone: Any = None):
        self.index = index
        self.config = index.config
        self.tz = timezone
        self.entries: list[data.Directive] = []
        self.opens: dict[str, data.Open] = {}  # accounts this batch opens
        self.batch_refs: dict[str, TxnRef] = {}
        self.batch_ids: set[str] = set()
        self.edits: list[Edit] = []
        self.new_wallets: dict[str, str] = {}  # user id -> wallet this batch opens
        self.seen: dict[str, tuple[int, dict[str, Any]]] = {}  # event id -> first row, content
        self.new = 0
        self.already = 0

    # --- lookups ------------------------------------------------------------------

    def known(self, txn_id: str) -> bool:
        return txn_id in self.index.ids or txn_id in self.batch_ids

    def ref(self, txn_id: str) -> TxnRef | None:
        return self.batch_refs.get(txn_id) or self.index.transactions.get(txn_id)

    def meta(self, event: Event, **values: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"filename": "<import>", "lineno": event.line}
        meta.update({key: value for key, value in values.items() if value is not None})
        return meta

    def open_account(self, account: str, date: datetime.date, event: Event) -> None:
        if account in self.index.accounts:
            return
        existing = self.opens.get(account)
        if existing is None:
            self.opens[account] = data.Open(self.meta(event), date, account, None, None)
        elif date < existing.date:
            self.opens[account] = existing._replace(date=date)

    def wallet(self, event: Event) -> str:
        """The user's wallet, opened in this batch if the ledger has none."""
        assert event.user is not None
        state = self.index.users.get(event.user)
        if state is not None:
            return state.account
        account = self.new_wallets.get(event.user)
        if account is None:
            account = self.new_wallets[event.user] = user_account(event.user, self.config.users)
        if account not in self.opens:
            self.opens[account] = data.Open(
                self.meta(event, user_id=event.user), event.date, account, None, None
            )
        elif event.date < self.opens[account].date:
            self.opens[account] = self.opens[account]._replace(date=event.date)
        return account

    def add(self, event: Event, entry: data.Directive) -> None:
        self.entries.append(entry)
        self.batch_ids.add(event.id)
        if isinstance(entry, data.Transaction):
            ref = transaction_ref(entry, event.id, self.config)
            ref.filename = None
            ref.entry = entry
            self.batch_refs[event.id] = ref
        self.new += 1

    def transaction(
        self,
        event: Event,
        narration: str,
        number: Decimal,
        counter: str,
        flag: str = "*",
        **meta: Any,
    ) -> data.Transaction:
        wallet = self.wallet(event)
        self.open_account(counter, event.date, event)
        units = amount_lib.Amount(number, event.commodity)
        postings = [
            data.Posting(wallet, units, None, None, None, None),
            data.Posting(counter, -units, None, None, None, None),
        ]
        return data.Transaction(
            self.meta(event, txn_id=event.id, **meta),
            event.date,
            flag,
            None,
            event.get("description") or narration,
            frozenset(),
            frozenset(),
            postings,
        )

    # --- an event id names one event ------------------------------------------------

    def reused(self, event: Event) -> Problem | None:
        """A problem if the event's id already names a different event (batch or ledger).

        An id is an idempotency key: the same event sent again is fine (it is
        counted as already imported), but another event under the same id is an
        error naming both. A redemption's status and time may change (pending,
        then settled or cancelled); nothing else may.
        """
        content = _content(event)
        first = self.seen.setdefault(event.id, (event.line, content))
        if first[0] != event.line and first[1] != content:
            differ = sorted(
                name for name in {*first[1], *content} if first[1].get(name) != content.get(name)
            )
            return Problem(
                "id",
                f"{event.id!r} is also the id of line {first[0]}, a different event "
                f"({', '.join(differ)} differ); an event id names one event",
            )
        ref = self.index.transactions.get(event.id)
        if ref is not None:
            differ = self.differs_from(event, ref)
            if differ:
                return Problem(
                    "id",
                    f"{event.id!r} is already the id of the entry at {ref.filename}:"
                    f"{ref.lineno}, which differs ({'; '.join(differ)}); an event id names "
                    "one event",
                )
            return None
        recorded = self.index.recorded.get(event.id)
        if recorded is not None:
            kind = _recorded_kind(event, self.index)
            differ = []
            if kind is not None and kind != recorded.kind:
                differ.append(f"{recorded.kind} in the ledger, {kind} in this row")
            if None not in (recorded.user, event.user) and recorded.user != event.user:
                differ.append(f"user {recorded.user!r} in the ledger, {event.user!r} in this row")
            if differ:
                return Problem(
                    "id",
                    f"{event.id!r} is already the id of the entry at {recorded.filename}:"
                    f"{recorded.lineno}, which differs ({'; '.join(differ)}); an event id "
                    "names one event",
                )
        return None

    def differs_from(self, event: Event, ref: TxnRef) -> list[str]:
        """How the transaction the event would book differs from the ledger's ``ref``."""
        kind = event.type
        if kind == "topup" and event.get("status") == "failed":
            return ["a transaction in the ledger, a failed top-up in this row"]
        counter = number = date = None
        if kind in SOURCES:
            source = (event.get("source") or "TopUp") if kind == "topup" else SOURCES[kind]
            counter, number, date = f"{self.config.income}:{source}", event.get("amount"), True
        elif kind == "redeem":
            use = "Sessions" if event.get("session") else "Orders"
            counter, number = f"{self.config.expenses}:{use}", -event.get("amount")
        elif kind == "adjust":
            counter, number, date = self.config.adjustments, event.get("amount"), True
        elif kind == "reverse":
            date = True
        else:  # user, expiry_change: their ids never name a transaction
            return [f"a transaction in the ledger, a {kind} event in this row"]
        wallet = None
        if event.user is not None:
            state = self.index.users.get(event.user)
            wallet = state.account if state else user_account(event.user, self.config.users)
        checks = [
            ("wallet", ref.wallet, wallet),
            ("amount", ref.number, number),
            ("credit type", ref.currency, event.commodity if number is not None else None),
            ("account", ref.counter, counter),
            ("date", ref.date, event.date if date else None),
        ]
        return [
            f"{name} {have} in the ledger, {want} in this row"
            for name, have, want in checks
            if have is not None and want is not None and have != want
        ]

    # --- one handler per event type, each returns its problems ---------------------

    def handle(self, event: Event) -> list[Problem]:
        handler = getattr(self, f"on_{event.type}")
        result: list[Problem] = handler(event)
        return result

    def on_user(self, event: Event) -> list[Problem]:
        if self.known(event.id):
            self.already += 1
            return []
        assert event.user is not None
        given = {key: event.get(key) for key in USER_FIELDS if event.get(key) is not None}
        state = self.index.users.get(event.user)
        if state is None:
            account = self.wallet(event)
            opened = self.opens[account]
            meta = {**opened.meta, **given}
            meta.setdefault("txn_id", event.id)
            self.opens[account] = opened._replace(meta=meta)
            self.batch_ids.add(event.id)
            self.new += 1
            return []
        current = {"credit_limit": Decimal(0), **state.fields}  # no limit is a limit of 0
        changed = {key: value for key, value in given.items() if current.get(key) != value}
        if "credit_limit" in changed:
            return [
                Problem(
                    "credit_limit",
                    f"user {event.user!r} exists; the grant engine reads credit_limit from "
                    f"the wallet's open directive only, so change it there by hand "
                    f"(it is {current['credit_limit']})",
                )
            ]
        if not changed:
            self.already += 1
            return []
        state.fields.update(changed)
        custom = data.Custom(
            self.meta(event, txn_id=event.id, **changed),
            event.date,
            "credits-user",
            [ValueType(event.user, str)],
        )
        self.add(event, custom)
        return []

    def grant(self, event: Event, source: str, narration: str, **meta: Any) -> list[Problem]:
        if self.known(event.id):
            self.already += 1
            return []
        account = f"{self.config.income}:{source}"
        meta.update(
            expires=event.get("expires"),
            priority=event.get("priority"),
            unit_cost=meta.get("unit_cost") or event.get("unit_cost"),
        )
        if event.get("expires") is not None and event.get("expires") <= event.date:
            return [Problem("expires", f"{event.get('expires')} is not after {event.date}")]
        entry = self.transaction(event, narration, event.get("amount"), account, **meta)
        self.add(event, entry)
        return []

    def on_purchase(self, event: Event) -> list[Problem]:
        amount: Decimal = event.get("amount")
        price: amount_lib.Amount | None = event.get("price")
        unit_cost = None
        if price is not None:
            unit_cost = amount_lib.Amount((price.number / amount).normalize(), price.currency)
        order = event.get("order")
        narration = f"Purchase of {amount} {event.commodity}"
        if order:
            narration += f", order {order}"
        return self.grant(
            event, "Purchase", narration, order=order, paid=price, unit_cost=unit_cost
        )

    def on_promotion(self, event: Event) -> list[Problem]:
        campaign = event.get("campaign")
        narration = f"Promotion {campaign}" if campaign else "Promotion"
        return self.grant(event, "Promotion", narration, campaign=campaign)

    def on_referral(self, event: Event) -> list[Problem]:
        referred = event.get("referred")
        narration = f"Referral of {referred}" if referred else "Referral bonus"
        return self.grant(event, "Referral", narration, referred=referred)

    def on_loyalty(self, event: Event) -> list[Problem]:
        return self.grant(event, "Loyalty", "Loyalty reward")

    def on_topup(self, event: Event) -> list[Problem]:
        request = event.get("request")
        if event.get("status") == "succeeded":
            source = event.get("source") or "TopUp"
            return self.grant(event, source, "Top-up", topup_request=request)
        if self.known(event.id):
            self.already += 1
            return []
        self.wallet(event)
        custom = data.Custom(
            self.meta(
                event,
                txn_id=event.id,
                request=request,
                reason=event.get("reason"),
                amount=event.get("amount"),
                # The decline's own time: the top-up backoff counts from it.
                failed_at=event.timestamp.astimezone(datetime.UTC).isoformat(),
            ),
            event.date,
            "credits-topup",
            [ValueType(event.user, str), ValueType("failed", str)],
        )
        self.add(event, custom)
        return []

    def on_redeem(self, event: Event) -> list[Problem]:
        status = event.get("status") or "settled"
        ref = self.ref(event.id)
        if status == "cancelled":
            return self.cancel(event, ref)
        if ref is not None:
            if status == "pending" or ref.flag != "!":
                self.already += 1
                return []
            return self.settle(event, ref)
        if self.known(event.id):  # the id names something other than a transaction
            return [Problem("id", f"{event.id!r} is already used by another kind of entry")]
        session, order = event.get("session"), event.get("order")
        use = "Sessions" if session else "Orders"
        narration = f"Session {session}" if session else f"Order {order}"
        entry = self.transaction(
            event,
            narration,
            -event.get("amount"),
            f"{self.config.expenses}:{use}",
            flag="!" if status == "pending" else "*",
            session=session,
            order=order,
            member=event.get("member"),
            cash=event.get("cash"),
        )
        self.add(event, entry)
        return []

    def same_redemption(self, event: Event, ref: TxnRef) -> list[Problem]:
        problems = []
        if event.user is not None and ref.wallet is not None:
            expected = self.index.users.get(event.user)
            account = expected.account if expected else user_account(event.user, self.config.users)
            if account != ref.wallet:
                problems.append(Problem("user", f"redemption {event.id!r} is of {ref.wallet}"))
        if ref.number is not None and -ref.number != event.get("amount"):
            problems.append(
                Problem("amount", f"redemption {event.id!r} is pending for {-ref.number}")
            )
        if event.date < ref.date:
            problems.append(Problem("timestamp", f"before the pending redemption ({ref.date})"))
        return problems

    def settle(self, event: Event, ref: TxnRef) -> list[Problem]:
        problems = self.same_redemption(event, ref)
        if problems:
            return problems
        self.flip(event, ref, "settle", settled=event.date)
        self.new += 1
        return []

    def cancel(self, event: Event, ref: TxnRef | None) -> list[Problem]:
        reversal_id = event.id + CANCELLED_SUFFIX
        if self.known(reversal_id):
            self.already += 1
            return []
        if ref is None:
            return [
                Problem("id", f"cancels redemption {event.id!r}, which is not pending anywhere")
            ]
        if ref.flag != "!":
            return [
                Problem(
                    "status",
                    f"redemption {event.id!r} is settled; undo it with a reverse event",
                )
            ]
        problems = self.same_redemption(event, ref)
        if problems:
            return problems
        self.flip(event, ref, "cancel", cancelled=event.date)
        assert ref.wallet is not None and ref.counter is not None and ref.number is not None
        units = amount_lib.Amount(-ref.number, ref.currency or event.commodity)
        reversal = data.Transaction(
            self.meta(event, txn_id=reversal_id, reverses=event.id),
            event.date,
            "*",
            None,
            f"Cancelled redemption {event.id}",
            frozenset(),
            frozenset(),
            [
                data.Posting(ref.wallet, units, None, None, None, None),
                data.Posting(ref.counter, -units, None, None, None, None),
            ],
        )
        self.entries.append(reversal)
        self.batch_ids.add(reversal_id)
        self.new += 1
        return []

    def flip(self, event: Event, ref: TxnRef, kind: str, **meta: Any) -> None:
        ref.flag = "*"
        if ref.entry is not None:  # pending earlier in this batch: change it in place
            entry = ref.entry
            entry.meta.update(meta)
            index = self.entries.index(entry)
            ref.entry = self.entries[index] = entry._replace(flag="*")
            return
        assert ref.filename is not None and ref.lineno is not None
        self.edits.append(Edit(ref.filename, ref.lineno, kind, event.date, event.id, event.line))

    def on_adjust(self, event: Event) -> list[Problem]:
        if self.known(event.id):
            self.already += 1
            return []
        entry = self.transaction(
            event,
            "Adjustment",
            event.get("amount"),
            self.config.adjustments,
            reason=event.get("reason"),
            approved_by=event.get("approver"),
        )
        self.add(event, entry)
        return []

    def on_reverse(self, event: Event) -> list[Problem]:
        if self.known(event.id):
            self.already += 1
            return []
        target_id: str = event.get("reverses")
        ref = self.ref(target_id)
        if ref is None or ref.wallet is None or ref.counter is None or ref.number is None:
            what = "no credits transaction" if ref is None or ref.wallet is None else "no amount"
            return [Problem("reverses", f"{what} with txn_id {target_id!r} in the ledger")]
        if ref.flag == "!":
            return [Problem("reverses", f"{target_id!r} is pending; cancel it with a redeem event")]
        if event.user is not None:
            state = self.index.users.get(event.user)
            account = state.account if state else user_account(event.user, self.config.users)
            if account != ref.wallet:
                return [Problem("user", f"{target_id!r} is a transaction of {ref.wallet}")]
        size: Decimal = event.get("amount") or abs(ref.number)
        number = size if ref.number < 0 else -size
        units = amount_lib.Amount(number, ref.currency or event.commodity)
        entry = data.Transaction(
            self.meta(event, txn_id=event.id, reverses=target_id, reason=event.get("reason")),
            event.date,
            "*",
            None,
            event.get("description") or f"Reversal of {target_id}",
            frozenset(),
            frozenset(),
            [
                data.Posting(ref.wallet, units, None, None, None, None),
                data.Posting(ref.counter, -units, None, None, None, None),
            ],
        )
        self.add(event, entry)
        return []

    def on_expiry_change(self, event: Event) -> list[Problem]:
        if self.known(event.id):
            self.already += 1
            return []
        grant_id: str = event.get("grant")
        expires: datetime.date = event.get("expires")
        ref = self.ref(grant_id)
        if ref is None or ref.wallet is None or ref.number is None or ref.number <= 0:
            return [Problem("grant", f"no grant with txn_id {grant_id!r} in the ledger")]
        if ref.posting_expires:
            return [
                Problem("grant", f"{grant_id!r} sets expires: on its posting; change it by hand")
            ]
        if expires <= ref.date:
            return [Problem("expires", f"{expires} is not after the grant's date {ref.date}")]
        ref.expiry_changes.append(event.id)
        self.batch_ids.add(event.id)
        self.new += 1
        if ref.entry is not None:
            ref.entry.meta["expires"] = expires
            ref.entry.meta["expiry_changes"] = ", ".join(ref.expiry_changes)
            return []
        assert ref.filename is not None and ref.lineno is not None
        self.edits.append(
            Edit(
                ref.filename,
                ref.lineno,
                "expires",
                expires,
                event.id,
                event.line,
                tuple(ref.expiry_changes),
            )
        )
        return []


def plan_batch(
    index: LedgerIndex,
    rows: Iterable[Row | tuple[int, Problem]],
    timezone: Any = None,
    skip: frozenset[int] = frozenset(),
) -> Plan:
    """The entries and edits a batch of rows makes, or its problems by row.

    ``skip`` lists row lines to leave out (rows rejected by an earlier try).
    """
    planner = _Planner(index, timezone)
    problems: dict[int, list[Problem]] = {}
    events: dict[int, Event] = {}
    users: dict[int, str | None] = {}
    ids: dict[int, str | None] = {}
    for row in rows:
        if isinstance(row, tuple):
            line, problem = row
            if line not in skip:
                problems.setdefault(line, []).append(problem)
            continue
        if row.line in skip:
            continue
        users[row.line] = _text_or_none(row.fields.get("user"))
        ids[row.line] = _text_or_none(row.fields.get("id"))
        parsed = parse_event(row, timezone)
        if isinstance(parsed, list):
            problems[row.line] = parsed
            continue
        events[row.line] = parsed
        reused = planner.reused(parsed)
        found = [reused] if reused is not None else planner.handle(parsed)
        if found:
            problems[row.line] = found
    entries = [*planner.opens.values(), *planner.entries]
    return Plan(
        entries=sorted(entries, key=_order),
        edits=planner.edits,
        new=planner.new,
        already=planner.already,
        problems=problems,
        events=events,
        users=users,
        ids=ids,
    )


def _content(event: Event) -> dict[str, Any]:
    """What must be the same whenever an event id comes again (as text, for messages)."""
    fields = {name: str(value) for name, value in event.fields.items()}
    content: dict[str, Any] = {
        "type": event.type,
        "user": event.user,
        "commodity": event.commodity,
        **fields,
    }
    if event.type == "redeem":
        content.pop("status", None)  # pending, then settled or cancelled, on later days
    else:
        content["date"] = event.date
    return content


def _recorded_kind(event: Event, index: LedgerIndex) -> str | None:
    """The kind of non-transaction entry the event makes (None: a transaction)."""
    if event.type == "user":
        return "open" if event.user not in index.users else None
    if event.type == "topup" and event.get("status") == "failed":
        return "credits-topup"
    if event.type == "expiry_change":
        return "expiry change"
    return "transaction"


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


_KIND_ORDER = {data.Open: 0, data.Custom: 1, data.Transaction: 2}


def _order(entry: data.Directive) -> tuple[datetime.date, int, int]:
    return (entry.date, _KIND_ORDER.get(type(entry), 3), entry.meta.get("lineno", 0))
