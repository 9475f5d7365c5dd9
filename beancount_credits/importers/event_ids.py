"""An event id names one event: the same event sent again, or another one under its id.

An event's id is its idempotency key (it becomes the ``txn_id`` of what it
books). The planner (:mod:`beancount_credits.importers.plan`) asks
:func:`reused` before it handles a row: the same event again (in the batch or
already in the ledger) is counted as already imported, while a different event
under an id the batch or the ledger already uses is a problem naming both and
what differs. A redemption's status and time may change (pending, then
settled or cancelled); nothing else may.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from beancount_credits.engine.accounts import user_account
from beancount_credits.importers.events import SOURCES, Event, Problem
from beancount_credits.importers.index import LedgerIndex, TxnRef

if TYPE_CHECKING:
    from beancount_credits.importers.plan import Planner


def reused(planner: Planner, event: Event) -> Problem | None:
    """A problem if the event's id already names a different event (batch or ledger).

    An id is an idempotency key: the same event sent again is fine (it is
    counted as already imported), but another event under the same id is an
    error naming both. A redemption's status and time may change (pending,
    then settled or cancelled); nothing else may.
    """
    content = content_of(event)
    first = planner.seen.setdefault(event.id, (event.line, content))
    if first[0] != event.line and first[1] != content:
        differ = sorted(
            name for name in {*first[1], *content} if first[1].get(name) != content.get(name)
        )
        return Problem(
            "id",
            f"{event.id!r} is also the id of line {first[0]}, a different event "
            f"({', '.join(differ)} differ); an event id names one event",
        )
    ref = planner.index.transactions.get(event.id)
    if ref is not None:
        differ = differs_from(planner, event, ref)
        if differ:
            return Problem(
                "id",
                f"{event.id!r} is already the id of the entry at {ref.filename}:"
                f"{ref.lineno}, which differs ({'; '.join(differ)}); an event id names "
                "one event",
            )
        return None
    recorded = planner.index.recorded.get(event.id)
    if recorded is not None:
        kind = recorded_kind(event, planner.index)
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


def differs_from(planner: Planner, event: Event, ref: TxnRef) -> list[str]:
    """How the transaction the event would book differs from the ledger's ``ref``."""
    kind = event.type
    if kind == "topup" and event.get("status") == "failed":
        return ["a transaction in the ledger, a failed top-up in this row"]
    counter = number = date = None
    if kind in SOURCES:
        source = (event.get("source") or "TopUp") if kind == "topup" else SOURCES[kind]
        counter, number, date = f"{planner.config.income}:{source}", event.get("amount"), True
    elif kind == "redeem":
        use = "Sessions" if event.get("session") else "Orders"
        counter, number = f"{planner.config.expenses}:{use}", -event.get("amount")
    elif kind == "adjust":
        counter, number, date = planner.config.adjustments, event.get("amount"), True
    elif kind == "reverse":
        date = True
    else:  # user, expiry_change: their ids never name a transaction
        return [f"a transaction in the ledger, a {kind} event in this row"]
    wallet = None
    if event.user is not None:
        state = planner.index.users.get(event.user)
        wallet = state.account if state else user_account(event.user, planner.config.users)
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


def content_of(event: Event) -> dict[str, Any]:
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


def recorded_kind(event: Event, index: LedgerIndex) -> str | None:
    """The kind of non-transaction entry the event makes (None: a transaction)."""
    if event.type == "user":
        return "open" if event.user not in index.users else None
    if event.type == "topup" and event.get("status") == "failed":
        return "credits-topup"
    if event.type == "expiry_change":
        return "expiry change"
    return "transaction"
