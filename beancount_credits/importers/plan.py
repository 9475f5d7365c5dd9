"""From validated events to ledger entries: the pure part of an import.

:func:`plan_batch` takes what the ledger already holds (a :class:`LedgerIndex`,
built from parsed or loaded entries) and a batch of rows, and returns the
:class:`Plan`: the new entries (wallet and account ``open``s, transactions,
``custom`` records), the edits of entries already in the text (a pending
redemption settled or cancelled, a grant's expiry moved), the events already
imported (by ``txn_id``) and every problem found, by row. It does no I/O.

What the rows become (docs/importing.md has the fields):

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

This module plans the new entries; three parts live in their own modules:
:mod:`beancount_credits.importers.index` (what the ledger holds, the
:class:`LedgerIndex`), :mod:`beancount_credits.importers.event_ids` (an event
id names one event) and :mod:`beancount_credits.importers.edits` (a pending
redemption settled or cancelled, a grant's expiry moved), the last two as
functions over the :class:`Planner`'s state.
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
from beancount_credits.importers import edits, event_ids
from beancount_credits.importers.edits import Edit
from beancount_credits.importers.events import Event, Problem, Row, parse_event
from beancount_credits.importers.index import USER_FIELDS, LedgerIndex, TxnRef, transaction_ref


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


class Planner:
    """The state of planning one batch, and its handler for each event type."""

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
            self.opens[account] = data.Open(self.meta(event), date, account, None, None)  # type: ignore[arg-type]
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
            meta = self.meta(event, user_id=event.user)
            self.opens[account] = data.Open(meta, event.date, account, None, None)  # type: ignore[arg-type]
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
        amount = event.get("amount")
        custom = data.Custom(
            self.meta(
                event,
                txn_id=event.id,
                request=request,
                reason=event.get("reason"),
                # With its credit type, as a hand-written record has it (200 CREDIT).
                amount=None if amount is None else amount_lib.Amount(amount, event.commodity),
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
            return edits.cancel(self, event, ref)
        if ref is not None:
            if status == "pending" or ref.flag != "!":
                self.already += 1
                return []
            return edits.settle(self, event, ref)
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
        return edits.expiry_change(self, event)


def plan_batch(
    index: LedgerIndex,
    rows: Iterable[Row | tuple[int, Problem]],
    timezone: Any = None,
    skip: frozenset[int] = frozenset(),
) -> Plan:
    """The entries and edits a batch of rows makes, or its problems by row.

    ``skip`` lists row lines to leave out (rows rejected by an earlier try).
    """
    planner = Planner(index, timezone)
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
        reused = event_ids.reused(planner, parsed)
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


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


_KIND_ORDER = {data.Open: 0, data.Custom: 1, data.Transaction: 2}


def _order(entry: data.Directive) -> tuple[datetime.date, int, int]:
    return (entry.date, _KIND_ORDER.get(type(entry), 3), entry.meta.get("lineno", 0))
