"""Grants: a positive posting to a user wallet booked as a credit block.

Part of the pass (:mod:`beancount_credits.engine.booking`), which calls
:func:`grant_ids` once per transaction and :func:`grant` for each of its grant
postings (:mod:`beancount_credits.engine.reversals` for the credits a reversal
gives back beyond what it restores). A grant's terms come from the posting's
metadata, else the transaction's, else its source account's policy (expiry
period, priority, unit cost); a grant carried forward by a period close keeps
the original's date, Transaction ID, source and amount. :func:`settle` repays
the wallet's overdraft from a new grant first and opens the rest for
draw-downs.
"""

from __future__ import annotations

import collections
import datetime
import heapq
from decimal import Decimal
from typing import TYPE_CHECKING

from beancount.core import amount as amount_lib
from beancount.core import data

from beancount_credits.engine import allowances
from beancount_credits.engine.metadata import (
    add_period,
    meta_amount,
    meta_date,
    meta_decimal,
    meta_int,
    parse_accounts,
)
from beancount_credits.engine.model import (
    CARRIED_TAG,
    DEFAULT_PRIORITY,
    Consumption,
    DrawDown,
    Grant,
    Wallet,
    index_by_txn,
)

if TYPE_CHECKING:
    from beancount_credits.engine.booking import Pass


def grant_ids(state: Pass, entry: data.Transaction, txn_id: str | None) -> dict[int, str]:
    """Ids of a transaction's grant postings, by posting index.

    A single grant is named by the txn_id; several are qualified by wallet
    and/or commodity (``t-1/Alice``, ``p-7/SESSION``), then by their rank
    if still alike. A posting's own ``grant:`` metadata wins.
    """
    positions = [
        (index, posting)
        for index, posting in enumerate(entry.postings)
        if state.is_user(posting.account)
        and posting.units is not None
        and isinstance(posting.units.number, Decimal)
        and posting.units.number > 0
    ]
    if len(positions) == 1 and txn_id is not None:
        # One grant posting (most grant transactions): its own grant: or the txn_id.
        index, posting = positions[0]
        explicit = posting.meta.get("grant") if posting.meta else None
        return {index: txn_id if explicit is None else str(explicit)}
    if txn_id is None:
        # A missing txn_id is the policy plugin's error; keep a stable id anyway.
        txn_id = f"{entry.date.isoformat()}@{entry.meta.get('filename')}:{entry.meta.get('lineno')}"
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
    if len(ids) < 2:
        return ids  # one grant posting: no id to tell apart (most grant transactions)
    counts = collections.Counter(ids.values())
    rank: collections.Counter[str] = collections.Counter()
    for index, grant_id in list(ids.items()):
        if counts[grant_id] > 1:
            rank[grant_id] += 1
            ids[index] = f"{grant_id}/{rank[grant_id]}"
    return ids


def grant(
    state: Pass,
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
            state.error(entry.meta, f"granted of carried grant {grant_id!r}: {exc}", entry)
        if pmeta.get("grant_txn") is not None:
            txn_id = str(pmeta["grant_txn"])
        source = None if pmeta.get("source") is None else str(pmeta["source"])
    policy = state.policy(None if carried else source)
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
        state.error(entry.meta, f"expires of grant {grant_id!r}: {exc}", entry)
    try:
        raw = pmeta.get("priority", tmeta.get("priority"))
        if raw is not None:
            priority = meta_int(raw)
        elif policy.priority is not None:
            priority = policy.priority
    except (ValueError, ArithmeticError) as exc:
        state.error(entry.meta, f"priority of grant {grant_id!r}: {exc}", entry)
    try:
        raw = pmeta.get("unit_cost", tmeta.get("unit_cost"))
        unit_cost = meta_amount(raw) if raw is not None else policy.unit_cost
    except (ValueError, ArithmeticError) as exc:
        state.error(entry.meta, f"unit_cost of grant {grant_id!r}: {exc}", entry)
    applies_to = policy.applies_to
    try:
        raw = pmeta.get("applies_to", tmeta.get("applies_to"))
        if raw is not None:
            applies_to = parse_accounts(raw)
    except ValueError as exc:
        state.error(entry.meta, f"applies_to of grant {grant_id!r}: {exc}", entry)

    amount = posting.units.number
    original = amount
    if carried and pmeta.get("granted_amount") is not None:
        try:
            original = meta_decimal(pmeta["granted_amount"])
        except ValueError as exc:
            state.error(entry.meta, f"granted_amount of grant {grant_id!r}: {exc}", entry)
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
        applies_to=applies_to,
    )
    if grant_id in state.grants:
        if txn_id is None or state.seen_txn_ids.get(txn_id) is entry.meta:
            state.error(entry.meta, f"Duplicate grant id {grant_id!r}", entry)
        # Keep the duplicate reachable under a unique key so totals still add up.
        grant_id = grant.id = f"{grant_id}#{entry.meta.get('lineno')}"
    state.grants[grant_id] = grant
    if grant.consumed and state.keep is None:
        # What a carried grant lost before the close, as one draw-down on
        # the carry's date, so the grant ledger adds up (amount = consumed +
        # expired + remaining) and money roll-forwards open right.
        part = Consumption(grant, grant.consumed)
        state.drawdowns.append(
            DrawDown(None, wallet.account, wallet.currency, entry.date, grant.consumed, [part])
        )
    if txn_id is not None and (state.keep is None or txn_id in state.keep):
        index_by_txn(state.grants_by_txn, txn_id, grant)
    if (
        txn_id is not None
        and txn_id.startswith(allowances.PREFIX)
        and allowances.adopt(state, grant, entry)
    ):
        pass  # its plan's period boundaries expire it, with rollover
    elif expires is not None:
        if expires <= entry.date:
            state.error(
                entry.meta,
                f"Grant {grant_id!r} of user {state.user_label(wallet.account)!r} expires on "
                f"{expires}, not after its own date {entry.date}: it can never be spent",
                entry,
            )
        heapq.heappush(state.due, (expires, len(state.grants), grant))
    settle(state, wallet, grant)
    return grant


def settle(state: Pass, wallet: Wallet, grant: Grant) -> None:
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
        state.push(wallet, grant)
