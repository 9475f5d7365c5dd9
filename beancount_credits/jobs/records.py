"""Records the notifier and the top-up job write into the ledger, and reading them back.

Two kinds of ``custom`` directive, each written through :mod:`beancount_credits.ledger.write`
into one file per month under its own folder (included from the main file by a
glob the first write adds):

- ``credits-notification`` (folder ``notify/``): one delivery attempt of an
  alert on a channel::

      2026-03-02 custom "credits-notification" "org-acme"
        notification: "ntf-5c1d0e9a7b3f4a21e6d0"   ; stable id: the receiver de-duplicates on it
        alert: "low-balance"                       ; low-balance, expiring, topup-failed
        subject: "CREDIT below 2000 CREDIT since 2026-03-02"
        channel: "webhook"                         ; email, webhook, inapp
        status: "delivered"                        ; or "failed"
        reason: "HTTP 500 Internal Server Error"   ; why it failed (failed only)
        attempts: 2
        sent_at: "2026-03-02T07:00:03+00:00"

- ``credits-topup`` (folder ``topup/``): a top-up request and its outcome.
  ``bean-credits topup`` writes the request::

      2026-03-02 custom "credits-topup" "org-acme" "requested"
        request: "tu-3f2a9c1d-20260302-1.1"       ; <family>.<attempt>
        idempotency_key: "tu-3f2a9c1d-20260302-1.1"
        attempt: 1
        amount: 5000 CREDIT
        source: "card-on-file"
        expire_after: "12m"                        ; optional
        requested_at: "2026-03-02T07:00:00+00:00"

  and the importer the outcome: a grant transaction from ``Income:Credits:TopUp``
  with ``topup_request:`` (succeeded), or ``custom "credits-topup" "<user_id>"
  "failed"`` with ``txn_id``, ``request``, ``reason``, ``amount`` and
  ``failed_at`` (the decline's timestamp; the backoff counts from it).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from beancount.core import amount as amount_lib
from beancount.core import data

from beancount_credits.ledger import write

NOTIFICATION = "credits-notification"
TOPUP = "credits-topup"
NOTIFY_DIR = "notify"
TOPUP_DIR = "topup"


def month_changes(
    ledger: Any, folder: str, entries: Sequence[data.Custom], what: str
) -> list[write.FileChange]:
    """Append records to ``<folder>/YYYY/MM.beancount`` (:func:`write.month_files`)."""
    return write.month_files(
        ledger.path,
        ledger.options,
        folder,
        entries,
        what + " for {month}, written by bean-credits.",
        f"{what} (bean-credits).",
    )


# --- Reading back -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One recorded delivery attempt (a ``credits-notification`` directive)."""

    user_id: str
    notification: str
    alert: str
    subject: str
    channel: str
    status: str
    reason: str | None
    attempts: int
    sent_at: str
    date: datetime.date
    meta: data.Meta


def deliveries(entries: Iterable[data.Directive]) -> list[Delivery]:
    result = []
    for entry in entries:
        if not isinstance(entry, data.Custom) or entry.type != NOTIFICATION or not entry.values:
            continue
        meta = entry.meta
        attempts = meta.get("attempts", 1)
        result.append(
            Delivery(
                user_id=str(entry.values[0].value),
                notification=str(meta.get("notification", "")),
                alert=str(meta.get("alert", "")),
                subject=str(meta.get("subject", "")),
                channel=str(meta.get("channel", "")),
                status=str(meta.get("status", "")),
                reason=None if meta.get("reason") is None else str(meta["reason"]),
                attempts=int(attempts) if isinstance(attempts, Decimal | int) else 1,
                sent_at=str(meta.get("sent_at", "")),
                date=entry.date,
                meta=meta,
            )
        )
    return result


@dataclasses.dataclass(frozen=True)
class TopUpRequest:
    user_id: str
    request: str
    family: str
    attempt: int
    amount: amount_lib.Amount
    source: str
    expire_after: str | None
    requested_at: datetime.datetime
    date: datetime.date
    meta: data.Meta


@dataclasses.dataclass(frozen=True)
class TopUpOutcome:
    user_id: str
    request: str
    succeeded: bool
    reason: str | None
    amount: amount_lib.Amount | None
    txn_id: str | None
    date: datetime.date
    meta: data.Meta
    at: datetime.datetime | None = None  # when it happened (failed_at:), if recorded


def family_of(request: str) -> str:
    return request.rpartition(".")[0] or request


def parse_time(value: Any, date: datetime.date) -> datetime.datetime:
    """An ISO timestamp from metadata (UTC if naive); the date's midnight UTC without one."""
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)
    return datetime.datetime.combine(date, datetime.time(), datetime.UTC)


def topup_records(
    entries: Iterable[data.Directive], users_by_account: dict[str, str]
) -> tuple[list[TopUpRequest], list[TopUpOutcome]]:
    """Top-up requests and outcomes (success grants and failure records), in date order.

    ``users_by_account``: wallet account -> user id, to tell whose grant a
    success is.
    """
    requests: list[TopUpRequest] = []
    outcomes: list[TopUpOutcome] = []
    for entry in entries:
        if isinstance(entry, data.Custom) and entry.type == TOPUP and len(entry.values) >= 2:
            user_id = str(entry.values[0].value)
            status = entry.values[1].value
            meta = entry.meta
            if status == "requested" and "request" in meta:
                attempt = meta.get("attempt", 1)
                amount = meta.get("amount")
                expire_after = meta.get("expire_after")
                requests.append(
                    TopUpRequest(
                        user_id=user_id,
                        request=str(meta["request"]),
                        family=family_of(str(meta["request"])),
                        attempt=int(attempt) if isinstance(attempt, Decimal | int) else 1,
                        amount=amount if isinstance(amount, amount_lib.Amount) else None,  # type: ignore[arg-type]
                        source=str(meta.get("source", "")),
                        expire_after=None if expire_after is None else str(expire_after),
                        requested_at=parse_time(meta.get("requested_at"), entry.date),
                        date=entry.date,
                        meta=meta,
                    )
                )
            elif status == "failed" and "request" in meta:
                amount = meta.get("amount")
                outcomes.append(
                    TopUpOutcome(
                        user_id=user_id,
                        request=str(meta["request"]),
                        succeeded=False,
                        reason=None if meta.get("reason") is None else str(meta["reason"]),
                        amount=amount if isinstance(amount, amount_lib.Amount) else None,
                        txn_id=None if meta.get("txn_id") is None else str(meta["txn_id"]),
                        date=entry.date,
                        meta=meta,
                        at=parse_time(meta["failed_at"], entry.date)
                        if "failed_at" in meta
                        else None,
                    )
                )
        elif isinstance(entry, data.Transaction) and "topup_request" in entry.meta:
            for posting in entry.postings:
                user_id = users_by_account.get(posting.account)  # type: ignore[assignment]
                if user_id is not None and posting.units and posting.units.number > 0:
                    outcomes.append(
                        TopUpOutcome(
                            user_id=user_id,
                            request=str(entry.meta["topup_request"]),
                            succeeded=True,
                            reason=None,
                            amount=posting.units,
                            txn_id=None
                            if entry.meta.get("txn_id") is None
                            else str(entry.meta["txn_id"]),
                            date=entry.date,
                            meta=entry.meta,
                        )
                    )
                    break
    return requests, outcomes
