"""What an import knows about the ledger it writes to: ids, wallets, transactions.

:class:`LedgerIndex` is built from the ledger's parsed (unbooked) or loaded
entries (:mod:`beancount_credits.importers.ingest` parses the files; no
booking, no plugins) and read by the planner
(:mod:`beancount_credits.importers.plan`): every id the ledger uses, its
accounts, each user's wallet and fields (their ``open``, then their
``custom "credits-user"`` changes in date order), and a :class:`TxnRef` per
credits transaction, which a later event may act on (settle or cancel a
pending redemption, reverse it, move a grant's expiry).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from beancount.core import data

from beancount_credits.engine.config import CreditsConfig

USER_FIELDS = ("segment", "email", "credit_limit")


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
            user_id = str(change.values[0][0]) if change.values else None  # type: ignore[assignment]
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
        flag=entry.flag,  # type: ignore[arg-type]
        wallet=wallet,
        number=number,
        currency=currency,
        counter=counter,
        filename=entry.meta.get("filename"),
        lineno=entry.meta.get("lineno"),
        posting_expires=posting_expires,
        expiry_changes=[part.strip() for part in changes.split(",") if part.strip()],
    )
