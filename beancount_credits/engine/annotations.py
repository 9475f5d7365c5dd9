"""The draw-down annotations: written by the pass, read back by :func:`rewind`.

The expire plugin annotates each draw-down posting with the grants it consumed
(``consumed: "g-1 5, g-2 3"``) and the part beyond them on a credit limit
(``overdraft:``), a reversal with what it gave back (``restored:``) and a
grant with the overdraft it repaid (``repaid_overdraft:``), so an auditor sees
where every credit came from and went. Writer and reader live here together:
a change of the form changes both, and ``tests/test_asof.py`` holds
:func:`rewind` equal to a pass through the day.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import heapq
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from beancount.core import data

from beancount_credits.engine.allowances import rewound_expiry
from beancount_credits.engine.config import CreditsConfig
from beancount_credits.engine.metadata import is_expiry_record
from beancount_credits.engine.model import (
    CARRIED_TAG,
    ZERO,
    DrawDown,
    EngineResult,
    Grant,
    Wallet,
    consumption_order,
)


def grant_annotation(grant: Grant) -> dict[str, Any] | None:
    return {"repaid_overdraft": grant.repaid} if grant.repaid else None


def drawdown_annotation(drawdown: DrawDown) -> dict[str, Any]:
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
        grants[grant.id] = copy = dataclasses.replace(
            grant,
            remaining=remaining,
            queued=False,
            expires=rewound_expiry(end.allowances, grant, day),  # rollover moves it
        )
        key = (grant.account, grant.currency)
        wallet = wallets.get(key)
        if wallet is None:
            was = end.wallets.get(key)
            wallet = wallets[key] = Wallet(grant.account, grant.currency, ZERO)
            if was is not None:
                wallet.limit, wallet.order, wallet.scoped = was.limit, was.order, was.scoped
        if remaining > 0:
            seq += 1
            wallet.heap.append((consumption_order(copy, wallet.order), seq, copy))
            wallet.available += remaining
    for key, wallet in end.wallets.items():
        owed = wallet.debt + debt.get(key, ZERO)
        if owed < 0:
            return None
        if owed:
            if key not in wallets:
                wallets[key] = Wallet(key[0], key[1], wallet.limit, order=wallet.order)
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
