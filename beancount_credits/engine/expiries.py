"""Expiries: grants' remainders moved to breakage, and the recorded ones checked.

Part of the pass (:mod:`beancount_credits.engine.booking`), which calls
:func:`flush` at each new date (a grant expires at the start of its expiry
date), :func:`expire` when a wallet closes or a reversal restores credits of a
grant that has expired meanwhile, and :func:`check_unused_records` at its end.
An expiry already written in the ledger (a recorded one, found by
:func:`beancount_credits.engine.booking.scan`) is checked against what the
ledger now expires instead of being generated again; a difference is an error
and a :class:`ChangedRecord`. :func:`expiry_transaction` is the one shape of
an ``#expired`` transaction, and :func:`book_through` continues a finished
pass to a later day (what :mod:`beancount_credits.engine.asof` asks for).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import heapq
from decimal import Decimal
from typing import TYPE_CHECKING

from beancount.core import amount as amount_lib
from beancount.core import data

from beancount_credits.engine import allowances
from beancount_credits.engine.metadata import (
    EXPIRE_PLUGIN_NAME,
    GENERATED_FILENAME,
    expiry_txn_id,
    generated_meta,
)
from beancount_credits.engine.model import (
    EXPIRED_TAG,
    FIRST_LINE,
    NEVER,
    ZERO,
    ChangedRecord,
    EngineResult,
    Expiry,
    Grant,
)

if TYPE_CHECKING:
    from beancount_credits.engine.booking import Pass

EXPIRED_TAGS = frozenset({EXPIRED_TAG})  # the tags of every expiry (one shared set)


def flush(state: Pass, through: datetime.date) -> None:
    """Expire every grant due on or before ``through`` (at the start of its date)."""
    due = state.due
    while due and due[0][0] <= through:
        expires, _, grant = heapq.heappop(due)
        if grant.remaining > 0:
            expire(state, grant, max(expires, grant.date), FIRST_LINE, None)


def expire(
    state: Pass,
    grant: Grant,
    date: datetime.date,
    lineno: int,
    cause: str | None,
    amount: Decimal | None = None,
    forfeited: bool = False,
    key: str | None = None,
    narration: str | None = None,
) -> None:
    """Move a grant's remainder (or ``amount`` of it) to breakage on ``date``.

    ``key`` and ``narration``: the expiry's Transaction ID and text when not the
    usual ones (an allowance's pool at a period boundary).
    """
    amount = grant.remaining if amount is None else amount
    wallet = state.wallets[(grant.account, grant.currency)]
    grant.remaining -= amount
    grant.expired += amount
    if cause is None:
        wallet.available -= amount
    key = key or expiry_txn_id(grant.id, cause)
    state.expiries.append(Expiry(key, grant, date, amount))
    recorded = state.recorded.get(key)
    if recorded is not None:
        state.used_records.add(key)
        check_record(state, recorded, grant, date, amount)
        return
    target = state.out if cause is None else state.after
    if narration is None:
        narration = (
            f"Forfeited credits of grant {grant.id} (wallet closed)"
            if forfeited
            else f"Expired credits of grant {grant.id}"
        )
    target.append(
        expiry_transaction(key, grant, date, amount, lineno, narration, state.config.breakage)
    )


def check_record(
    state: Pass, recorded: data.Transaction, grant: Grant, date: datetime.date, amount: Decimal
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
        state.changed_records.append(
            ChangedRecord(recorded, grant.account, grant.currency, written, amount, date)
        )
        state.error(
            recorded.meta,
            f"Recorded expiry of grant {grant.id!r} of user "
            f"{state.user_label(grant.account)!r} says {written} {grant.currency} on "
            f"{recorded.date}, but the ledger now expires {amount} {grant.currency} on "
            f"{date}: history was changed",
            recorded,
        )


def check_unused_records(state: Pass) -> None:
    for key, recorded in state.recorded.items():
        if key not in state.used_records:
            account = currency = None
            written = ZERO
            for posting in recorded.postings:
                if state.is_user(posting.account):
                    account, currency = posting.account, posting.units.currency
                    written -= posting.units.number
            state.changed_records.append(
                ChangedRecord(recorded, account, currency, written, ZERO, None)
            )
            state.error(
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
        EXPIRED_TAGS,
        data.EMPTY_SET,
        postings,
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
    A ledger with allowances goes on with :func:`allowances.book_through`.
    """
    book = result.allowances
    if book is not None and book.due_by(day):
        return allowances.book_through(result, day)
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
