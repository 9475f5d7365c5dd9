"""Reversals: a redemption's credits restored, a grant's remainder removed.

Part of the pass (:mod:`beancount_credits.engine.booking`), which calls
:func:`reversal` for a posting whose transaction says ``reverses:``. Undoing a
redemption gives its credits back to the grants it consumed, last consumed
first; credits of a grant that expired meanwhile go straight to breakage, and
an overdraft part cancels the debt it made or undoes later repayments
(:func:`restore_part` recurses through them). Undoing a grant removes what is
left of it. Amounts that do not match are errors naming both transactions.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from beancount.core import amount as amount_lib
from beancount.core import data

from beancount_credits.engine import grants
from beancount_credits.engine.annotations import drawdown_annotation
from beancount_credits.engine.model import ZERO, Consumption, DrawDown, Grant, Wallet, by_txn

if TYPE_CHECKING:
    from beancount_credits.engine.booking import Pass


def reversal(
    state: Pass,
    entry: data.Transaction,
    posting: data.Posting,
    wallet: Wallet,
    reverses: str,
    txn_id: str | None,
) -> dict[str, Any] | None:
    number = posting.units.number
    user = state.user_label(wallet.account)
    if number > 0:
        drawdowns = [
            drawdown
            for drawdown in by_txn(state.drawdowns_by_txn, reverses)
            if drawdown.account == wallet.account and drawdown.currency == wallet.currency
        ]
        if not drawdowns:
            kind = "a grant" if reverses in state.grants_by_txn else state.unknown()
            state.error(
                entry.meta,
                f"Reversal {txn_id!r} gives {number} {wallet.currency} back to user "
                f"{user!r}, but {reverses!r} is {kind}: no draw-down of that user "
                "to restore",
                entry,
            )
            grants.grant(
                state, entry, posting, wallet, txn_id or f"{reverses}:reversal", txn_id, None
            )
            return None
        restorable = sum((d.amount - d.restored for d in drawdowns), ZERO)
        if number > restorable:
            state.error(
                entry.meta,
                f"Reversal {txn_id!r} gives back {number} {wallet.currency} to user "
                f"{user!r} but only {restorable} of {reverses!r} is left to restore",
                entry,
            )
        restored = restore(state, entry, wallet, drawdowns, min(number, restorable), txn_id)
        if number > restorable:
            extra = number - restorable
            grants.grant(
                state,
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
    removable = [
        grant
        for grant in by_txn(state.grants_by_txn, reverses)
        if grant.account == wallet.account and grant.currency == wallet.currency
    ]
    if not removable:
        kind = "a draw-down" if reverses in state.drawdowns_by_txn else state.unknown()
        state.error(
            entry.meta,
            f"Reversal {txn_id!r} takes {asked} {wallet.currency} from user {user!r}, "
            f"but {reverses!r} is {kind}: no grant of that user to remove",
            entry,
        )
        return drawdown_annotation(state.draw(entry, posting, wallet, asked, txn_id))
    parts: list[Consumption] = []
    left = asked
    for grant in removable:
        part = min(left, grant.remaining)
        if part > 0:
            state.take(wallet, grant, part)
            grant.reversed += part
            parts.append(Consumption(grant, part))
            left -= part
    if left > 0:
        remaining = asked - left
        state.error(
            entry.meta,
            f"Reversal {txn_id!r} removes {asked} {wallet.currency} of grant "
            f"{reverses!r} from user {user!r}, but only {remaining} of it is left "
            "(the rest was spent or expired); the difference is drawn from other grants",
            entry,
        )
        extra = state.draw(
            entry,
            posting._replace(units=amount_lib.Amount(-left, wallet.currency)),
            wallet,
            left,
            txn_id,
        )
        parts.extend(extra.parts)
    drawdown = DrawDown(txn_id, wallet.account, wallet.currency, entry.date, asked, parts)
    return drawdown_annotation(drawdown)


def restore(
    state: Pass,
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
            restore_part(state, entry, wallet, part.grant, portion, txn_id)
            restored.append(f"{part.grant.id if part.grant else 'overdraft'} {portion}")
    return ", ".join(restored)


def restore_part(
    state: Pass,
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
            restore_part(state, entry, wallet, repayment.grant, undo, txn_id)
            portion -= undo
        return
    grant.consumed -= portion
    if grant.expires is not None and grant.expires <= entry.date:
        # The grant expired meanwhile: its credits go straight to breakage
        # (booked once per grant when the transaction is done).
        state.restored_expired[grant] = state.restored_expired.get(grant, ZERO) + portion
        return
    grant.remaining += portion
    settle_restored(state, wallet, grant, portion)


def settle_restored(state: Pass, wallet: Wallet, grant: Grant, portion: Decimal) -> None:
    if wallet.debt > 0:
        repay = min(wallet.debt, portion)
        wallet.debt -= repay
        grant.remaining -= repay
        grant.consumed += repay
        grant.repaid += repay
        wallet.repayments.append(Consumption(grant, repay))
        portion -= repay
    wallet.available += portion
    state.push(wallet, grant)
