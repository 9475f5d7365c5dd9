"""Broken seals: what differs between a seal's entries and the ledger's now.

:func:`beancount_credits.engine.seal.check` calls :func:`diagnose` for a seal
whose digest does not match (never on a clean load). The seal's ``items`` hold
a fingerprint of every entry it sealed (:mod:`beancount_credits.engine.canonical`),
so without the text it replaced the diagnosis names each entry added, changed
(accounts, amount, or date, flag and terms), removed (or generated again by a
plugin) or re-dated ("r-000869: amount changed", "u-1008 2026-03-01: recorded
balance removed"), or says that the entries are unchanged and a seal was
rewritten. :class:`Problem` is what the check reports for a seal that does not hold.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from beancount.core import data

from beancount_credits import engine
from beancount_credits.engine.canonical import (
    Item,
    canonical,
    decode_items,
    parse_line,
    short_hash,
)

if TYPE_CHECKING:
    from beancount_credits.engine.seal import Seal


@dataclasses.dataclass
class Problem:
    """A seal that does not hold: where it is, the day it names, and what differs."""

    day: datetime.date
    entry: data.Directive  # the seal the error points at
    message: str
    content_changed: bool = True  # False: only the chain after an earlier break differs
    rewritten: bool = False  # the entries are as sealed: the seal (or the one before) was edited


class Context:
    """What a diagnosis looks up, built once on the first broken seal (never on a clean load)."""

    def __init__(
        self,
        entries: Sequence[data.Directive],
        seals: Sequence[Seal],
        days: dict[datetime.date, list[str]],
    ):
        self.users: dict[str, str] = {}
        for entry in entries:
            if isinstance(entry, data.Open) and entry.meta and "user_id" in entry.meta:
                self.users[entry.account] = str(entry.meta["user_id"])
        # Every current line by identity fingerprint: a sealed entry that is gone from
        # its day may be on another one.
        self.current: dict[bytes, list[Item]] = defaultdict(list)
        for lines in days.values():
            for line in lines:
                item = parse_line(line)
                self.current[short_hash(item.identity, 3)].append(item)
        # What the plugins generated: a removed record is generated again.
        self.generated: dict[bytes, Item] = {}
        for lines in canonical(entries, engine.is_generated).values():
            for line in lines:
                item = parse_line(line)
                self.generated.setdefault(short_hash(item.identity, 3), item)
        self.sealed_on: dict[bytes, datetime.date] = {}
        for seal in seals:
            for fingerprint in decode_items(seal.items) or ():
                self.sealed_on.setdefault(fingerprint[:3], seal.day)

    def who(self, account: str) -> str:
        return self.users.get(account, account)

    def say(self, item: Item, what: str) -> str:
        """A message about an entry: ``r-000869: amount changed``, ``u-1008 2026-03-01: ...``."""
        if item.kind == "txn":
            return f"{item.key or 'a transaction without txn_id'}: {what}"
        if item.kind == "balance":
            return f"{self.who(item.accounts[0])} {item.date}: recorded balance {what}"
        if item.kind in ("open", "close"):
            return f"{item.kind} {item.key}: {what}"
        return f"amendment record of {item.date}: {what}"


def diagnose(seal: Seal, lines: Sequence[str], context: Context, after_rewritten: bool) -> Problem:
    """A broken seal's problem: what differs between the sealed entries and the current ones."""
    stored = decode_items(seal.items)
    where = f"sealed history changed on {seal.day}"
    if stored is None:
        return Problem(seal.day, seal.entry, f"{where}: the seal's items were edited")
    items = [parse_line(line) for line in sorted(lines)]
    prints = [item.fingerprint() for item in items]
    if prints == stored:
        if after_rewritten:
            return Problem(
                seal.day,
                seal.entry,
                f"seal of {seal.day} no longer chains: the seal before it was rewritten",
                content_changed=False,
                rewritten=True,
            )
        return Problem(
            seal.day,
            seal.entry,
            f"{where}: the seal does not match its entries, which are unchanged: this seal "
            "or the one before it was rewritten",
            rewritten=True,
        )
    differences = differences_of(stored, items, prints, seal, context)
    shown = "; ".join(differences[:6])
    more = f"; and {len(differences) - 6} more" if len(differences) > 6 else ""
    return Problem(seal.day, seal.entry, f"{where}: {shown}{more}")


def differences_of(
    stored: list[bytes],
    items: list[Item],
    prints: list[bytes],
    seal: Seal,
    context: Context,
) -> list[str]:
    """Messages for the entries added, changed and removed since the seal was made."""
    unmatched = list(stored)
    for fingerprint in prints:
        if fingerprint in unmatched:
            unmatched.remove(fingerprint)
    by_identity: dict[bytes, list[bytes]] = defaultdict(list)
    for fingerprint in unmatched:
        by_identity[fingerprint[:3]].append(fingerprint)
    exact = [fingerprint for fingerprint in stored if fingerprint not in unmatched]
    messages: list[str] = []
    for item, fingerprint in zip(items, prints, strict=True):
        if fingerprint in exact:
            exact.remove(fingerprint)
            continue
        olds = by_identity.get(fingerprint[:3])
        if olds:
            messages.append(changed(item, olds.pop(0), fingerprint, context))
            continue
        sealed_on = context.sealed_on.get(fingerprint[:3])
        if item.kind == "txn" and sealed_on is not None and sealed_on != seal.day:
            what = f"re-dated (sealed on {sealed_on}, now {item.date})"
        else:
            what = f"added ({item.date})" if item.kind == "txn" else "added"
        messages.append(context.say(item, what))
    for key, olds in by_identity.items():
        for _old in olds:
            messages.append(removed(key, seal, context))
    return messages


def changed(item: Item, old: bytes, new: bytes, context: Context) -> str:
    what = []
    if old[3] != new[3]:
        accounts = ", ".join(context.who(account) for account in item.accounts)
        what.append(f"accounts changed (now {accounts})")
    if old[4] != new[4]:
        if item.kind == "balance":
            what.append(f"changed (now {item.amounts[0]})")
        else:
            wallets = [
                amount
                for account, amount in zip(item.accounts, item.amounts, strict=True)
                if account in context.users
            ]
            what.append(f"amount changed (now {', '.join(wallets or item.amounts)})")
    if old[5] != new[5]:
        what.append("date, flag or terms (expires, priority, unit_cost, ...) changed")
    return context.say(item, " and ".join(what) or "changed")


def removed(key: bytes, seal: Seal, context: Context) -> str:
    """Name a sealed entry that is gone: regenerated by a plugin, moved, or unknown."""
    regenerated = context.generated.get(key)
    if regenerated is not None:
        if regenerated.kind == "balance":
            return context.say(regenerated, "removed")
        return f"{regenerated.key}: recorded expiry removed"
    for item in context.current.get(key, ()):
        if item.kind == "txn" and item.date != seal.day.isoformat():
            return context.say(item, f"re-dated to {item.date}")
    return f"an entry sealed on {seal.day} was removed"
