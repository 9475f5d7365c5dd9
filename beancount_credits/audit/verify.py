"""Find recorded history that the ledger no longer agrees with, and who changed it.

The daily job records end-of-day balances and expiries in the text. When a past
transaction is edited afterwards, a recorded balance or expiry no longer holds
and ``bean-check`` fails. :func:`broken_records` lists each such record (user,
day, recorded vs now) from the loaded ledger alone; :func:`explain` adds, from
git, the commits that changed the entries behind it after the record was
written (or that the change is not committed yet).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import defaultdict
from decimal import Decimal
from typing import Any

from beancount.core import data

from beancount_credits.audit import git_history, provenance
from beancount_credits.engine import is_generated
from beancount_credits.ledger import Ledger

ONE_DAY = datetime.timedelta(days=1)


@dataclasses.dataclass
class Culprit:
    """A written entry behind a broken record, and the change that touched it."""

    entry: data.Transaction
    commit: git_history.Commit | None  # None: the change is not committed yet


@dataclasses.dataclass
class BrokenRecord:
    kind: str  # "balance" or "expiry"
    user_id: str
    account: str
    commodity: str
    day: datetime.date  # the day the record speaks of
    recorded: Decimal
    now: Decimal
    entry: data.Directive  # the record in the text
    behind: list[data.Transaction]  # the wallet's written transactions up to that day
    recorded_by: git_history.Commit | None = None
    culprits: list[Culprit] = dataclasses.field(default_factory=list)
    # Changes of sealed entries git knows of that concern the user up to the day, the
    # ones culprits cannot find: an entry moved to another wallet, or removed.
    history: list[Any] = dataclasses.field(default_factory=list)


def broken_records(ledger: Ledger) -> list[BrokenRecord]:
    """Every recorded balance or expiry of a wallet that no longer holds."""
    config = ledger.config
    user_ids = {user.account: user.user_id for user in ledger.users.values()}
    running: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    written: dict[tuple[str, str], list[data.Transaction]] = defaultdict(list)
    broken: list[BrokenRecord] = []
    for entry in ledger.entries:
        if isinstance(entry, data.Transaction):
            for posting in entry.postings:
                if config.is_user_account(posting.account):
                    key = (posting.account, posting.units.currency)
                    running[key] += posting.units.number
                    if not is_generated(entry) and (
                        not written[key] or written[key][-1] is not entry
                    ):
                        written[key].append(entry)
        elif (
            isinstance(entry, data.Balance)
            and config.is_user_account(entry.account)
            and not is_generated(entry)
        ):
            key = (entry.account, entry.amount.currency)
            if running[key] != entry.amount.number:
                broken.append(
                    BrokenRecord(
                        "balance",
                        user_ids.get(entry.account, entry.account),
                        entry.account,
                        entry.amount.currency,
                        entry.date - ONE_DAY,
                        entry.amount.number,  # type: ignore[arg-type]
                        running[key],
                        entry,
                        list(written[key]),
                    )
                )
    for changed in ledger.grants.changed_records:
        if changed.account is None or changed.currency is None:
            continue
        key = (changed.account, changed.currency)
        day = changed.recorded.date
        broken.append(
            BrokenRecord(
                "expiry",
                user_ids.get(changed.account, changed.account),
                changed.account,
                changed.currency,
                day,
                changed.written,
                changed.now,
                changed.recorded,
                [entry for entry in written[key] if entry.date <= day],
            )
        )
    broken.sort(key=lambda record: (record.day, record.user_id, record.kind))
    return broken


def explain(ledger: Ledger, records: list[BrokenRecord]) -> bool:
    """Attach git provenance: who recorded each record and who changed what is behind it.

    A culprit is a written entry behind the record whose last change is newer
    than the commit that recorded it, or not committed yet. Returns False when
    the ledger is not in git (nothing could be attached).
    """
    if not records:
        return True
    files = {str(record.entry.meta["filename"]) for record in records}
    files |= {str(entry.meta["filename"]) for record in records for entry in record.behind}
    blame = git_history.blame(sorted(files))
    if not blame:
        return False
    repo = git_history.find_work_tree(str(records[0].entry.meta["filename"]))
    later: dict[tuple[str, str], bool] = {}  # (recording sha, other sha) -> other came after

    def after(recorded: str, other: str) -> bool:
        if (recorded, other) not in later:
            later[(recorded, other)] = (
                repo is not None
                and other != recorded
                and git_history.is_ancestor(repo, recorded, other)
            )
        return later[(recorded, other)]

    for record in records:
        found = provenance.entry_provenance(record.entry, blame)
        recorded_by = found.last if found is not None else None
        record.recorded_by = recorded_by if recorded_by and recorded_by.committed else None
        for entry in record.behind:
            origin = provenance.entry_provenance(entry, blame)
            if origin is None:
                continue
            last = origin.last
            if not last.committed:
                record.culprits.append(Culprit(entry, None))
            elif record.recorded_by is not None and after(record.recorded_by.sha, last.sha):
                record.culprits.append(Culprit(entry, last))
    return True


def attach_history(records: list[BrokenRecord], changes: list[Any]) -> None:
    """Give each broken record the sealed-history changes of its user up to its day.

    ``changes`` are :class:`beancount_credits.audit.seal_history.Change` values; a
    transaction change whose entry is already a culprit is not repeated, and
    what an amendment changed is not a culprit (it is the amendment's).
    """
    amending = {change.commit.sha for change in changes if change.made_by_amendment}
    changes = [change for change in changes if not change.made_by_amendment]
    for record in records:
        record.culprits = [
            culprit
            for culprit in record.culprits
            if culprit.commit is None or culprit.commit.sha not in amending
        ]
        known = {str(culprit.entry.meta.get("txn_id")) for culprit in record.culprits}
        record.history = [
            change
            for change in changes
            if change.kind == "transaction"
            and record.user_id in change.users
            and change.day <= record.day
            and change.key not in known
        ]


def where(meta: dict, root: str) -> str:
    """file:line of an entry, relative to the ledger's folder when inside it."""
    name = str(meta.get("filename", "?"))
    if name.startswith(root + "/"):
        name = name[len(root) + 1 :]
    return f"{name}:{meta.get('lineno', '?')}"


def describe(record: BrokenRecord, root: str) -> list[str]:
    """A broken record and its culprits as text lines."""

    head = (
        # The record's own date, as its line and bean-check give it (a balance
        # directive of D holds the balance at the end of D-1: record.day).
        f"{record.user_id} {record.entry.date}: recorded {record.kind} {record.recorded} "
        f"{record.commodity}, now {record.now} {record.commodity} "
        f"({where(record.entry.meta, root)})"
    )
    lines = [head]
    if record.recorded_by is not None:
        commit = record.recorded_by
        lines.append(
            f"  recorded in {commit.short} {commit.date} {commit.author}: {commit.summary}"
        )
    if not record.culprits and not record.history:
        lines.append("  no later change to its entries found in git")
    for change in record.history:
        commit = change.commit
        by = (
            f"{commit.short} {commit.date} {commit.author} <{commit.email}>: {commit.summary}"
            if commit.committed
            else "the working tree, not committed yet"
        )
        users = ", ".join(change.users)
        lines.append(f"  changed in {by} -- {change.path} {change.key} (concerns {users})")
    for culprit in record.culprits:
        entry = culprit.entry
        what = f"{where(entry.meta, root)} {entry.meta.get('txn_id', '')} {entry.narration}"
        what = what.rstrip()
        if culprit.commit is None:
            lines.append(f"  changed, not committed yet: {what}")
        else:
            commit = culprit.commit
            lines.append(
                f"  changed in {commit.short} {commit.date} {commit.author} <{commit.email}>: "
                f"{commit.summary} -- {what}"
            )
    return lines
