"""The edits an import makes to transactions already written, and what comes with them.

Part of the planner (:mod:`beancount_credits.importers.plan`), as functions over
its state: a ``redeem`` event for a pending redemption settles it
(:func:`settle`: the ``!`` flag flipped to ``*``, ``settled:`` its date) or
cancels it (:func:`cancel`: flipped, ``cancelled:``, and a reversal
``<id>:cancelled`` booked), and an ``expiry_change`` event moves a grant's
``expires:`` (:func:`expiry_change`, listing the event in its
``expiry_changes:``). A transaction of the same batch is changed in place; one
in the text becomes an :class:`Edit` at its header line, which
:func:`beancount_credits.importers.ingest.apply_edits` makes in the file.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import TYPE_CHECKING, Any

from beancount.core import amount as amount_lib
from beancount.core import data

from beancount_credits.engine.accounts import user_account
from beancount_credits.importers.events import Event, Problem
from beancount_credits.importers.index import TxnRef

if TYPE_CHECKING:
    from beancount_credits.importers.plan import Planner

CANCELLED_SUFFIX = ":cancelled"


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


def same_redemption(planner: Planner, event: Event, ref: TxnRef) -> list[Problem]:
    problems = []
    if event.user is not None and ref.wallet is not None:
        expected = planner.index.users.get(event.user)
        account = expected.account if expected else user_account(event.user, planner.config.users)
        if account != ref.wallet:
            problems.append(Problem("user", f"redemption {event.id!r} is of {ref.wallet}"))
    if ref.number is not None and -ref.number != event.get("amount"):
        problems.append(Problem("amount", f"redemption {event.id!r} is pending for {-ref.number}"))
    if event.date < ref.date:
        problems.append(Problem("timestamp", f"before the pending redemption ({ref.date})"))
    return problems


def settle(planner: Planner, event: Event, ref: TxnRef) -> list[Problem]:
    problems = same_redemption(planner, event, ref)
    if problems:
        return problems
    flip(planner, event, ref, "settle", settled=event.date)
    planner.new += 1
    return []


def cancel(planner: Planner, event: Event, ref: TxnRef | None) -> list[Problem]:
    reversal_id = event.id + CANCELLED_SUFFIX
    if planner.known(reversal_id):
        planner.already += 1
        return []
    if ref is None:
        return [Problem("id", f"cancels redemption {event.id!r}, which is not pending anywhere")]
    if ref.flag != "!":
        return [
            Problem(
                "status",
                f"redemption {event.id!r} is settled; undo it with a reverse event",
            )
        ]
    problems = same_redemption(planner, event, ref)
    if problems:
        return problems
    flip(planner, event, ref, "cancel", cancelled=event.date)
    assert ref.wallet is not None and ref.counter is not None and ref.number is not None
    units = amount_lib.Amount(-ref.number, ref.currency or event.commodity)
    reversal = data.Transaction(
        planner.meta(event, txn_id=reversal_id, reverses=event.id),
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
    planner.entries.append(reversal)
    planner.batch_ids.add(reversal_id)
    planner.new += 1
    return []


def flip(planner: Planner, event: Event, ref: TxnRef, kind: str, **meta: Any) -> None:
    ref.flag = "*"
    if ref.entry is not None:  # pending earlier in this batch: change it in place
        entry = ref.entry
        entry.meta.update(meta)
        index = planner.entries.index(entry)
        ref.entry = planner.entries[index] = entry._replace(flag="*")
        return
    assert ref.filename is not None and ref.lineno is not None
    planner.edits.append(Edit(ref.filename, ref.lineno, kind, event.date, event.id, event.line))


def expiry_change(planner: Planner, event: Event) -> list[Problem]:
    if planner.known(event.id):
        planner.already += 1
        return []
    grant_id: str = event.get("grant")
    expires: datetime.date = event.get("expires")
    ref = planner.ref(grant_id)
    if ref is None or ref.wallet is None or ref.number is None or ref.number <= 0:
        return [Problem("grant", f"no grant with txn_id {grant_id!r} in the ledger")]
    if ref.posting_expires:
        return [Problem("grant", f"{grant_id!r} sets expires: on its posting; change it by hand")]
    if expires <= ref.date:
        return [Problem("expires", f"{expires} is not after the grant's date {ref.date}")]
    ref.expiry_changes.append(event.id)
    planner.batch_ids.add(event.id)
    planner.new += 1
    if ref.entry is not None:
        ref.entry.meta["expires"] = expires
        ref.entry.meta["expiry_changes"] = ", ".join(ref.expiry_changes)
        return []
    assert ref.filename is not None and ref.lineno is not None
    planner.edits.append(
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
