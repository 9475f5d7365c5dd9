"""Amendments: a legitimate change of sealed days, recorded, then the days sealed again.

A sealed day's entries change for good reasons too: a late event imported for a
day already closed, a pending redemption settled or cancelled, a grant's expiry
moved, a hand correction. Each goes through :func:`plan`, which takes the ledger
as it is *after* the change (its seals no longer hold) and works out:

1. **the log again**: the end-of-day balances and expiries every sealed day
   should record now (the grant engine and the balance log re-run over the
   written entries without the recorded ones), against what ``log/`` records:
   changed records are rewritten in place, stale ones removed, missing ones
   added;
2. **the seals again**: every seal recomputed over the new entries, in chain
   order; the seals that differ are rewritten in place (a removed one is
   written again), so the chain holds from the first changed day on;
3. **the record**: ``custom "credits-amend" <first changed day>`` dated the day
   the amendment is made (after the last sealed day, so the next close-day
   seals it), naming the last day sealed again (``through``), the first
   changed day's seal before and after (``old``, ``new``), the ``reason``,
   ``approved_by`` and the entries changed (``changed``).

``bean-credits amend LEDGER --reason ...`` does it for hand edits; the importer
(:mod:`beancount_credits.importers.ingest`) does it by itself for the events
that change sealed days. Entries of a closed period (dated on or before an
opening seal's day) cannot be amended: the archive's seals cover them.

Pure apart from reading the ledger's files to edit them; writing goes through
:mod:`beancount_credits.ledger.write`.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import defaultdict
from pathlib import Path
from typing import Any

from beancount.core import data
from beancount.parser.grammar import ValueType

from beancount_credits import engine
from beancount_credits.engine import broken_seals, canonical, seal
from beancount_credits.jobs import close_day
from beancount_credits.ledger import Ledger, write
from beancount_credits.ledger.render import render
from beancount_credits.ledger.text import entry_span, read_text
from beancount_credits.plugins import daily_balances

ONE_DAY = datetime.timedelta(days=1)
MAX_LISTED = 20  # entries named in the record's ``changed``; the rest are counted


class AmendError(Exception):
    """An amendment that cannot be made as asked; nothing was written."""


@dataclasses.dataclass
class Amendment:
    """What an amendment writes."""

    day: datetime.date  # the first sealed day that changed
    through: datetime.date  # the last sealed day (sealed again up to it)
    old: str  # the seal of ``day`` before ("" if it had been removed)
    new: str  # ... and after
    changed: list[str]  # the entries of sealed days that changed
    rewritten: dict[str, int]  # records rewritten: balances, expiries, seals
    record: data.Custom
    changes: list[write.FileChange]

    def summary(self) -> str:
        records = ", ".join(f"{count} {kind}" for kind, count in self.rewritten.items() if count)
        return (
            f"{len(self.changed)} change(s) to sealed days from {self.day} through "
            f"{self.through}; rewritten: {records or 'nothing'}"
        )


@dataclasses.dataclass(frozen=True)
class Edit:
    """Replace (``text``) or remove (None) the entry whose header is line ``lineno``."""

    lineno: int
    text: str | None


def is_log_file(filename: object, root: Path) -> bool:
    """A file close-day owns: ``<ledger folder>/log/...``."""
    return isinstance(filename, str) and Path(filename).is_relative_to(root / close_day.LOG_DIR)


def recorded_log(
    entries: list[data.Directive], root: Path
) -> tuple[dict[tuple[str, str, datetime.date], data.Balance], dict[str, data.Transaction]]:
    """The balances and expiries close-day recorded in the log, by key."""
    balances: dict[tuple[str, str, datetime.date], data.Balance] = {}
    expiries: dict[str, data.Transaction] = {}
    for entry in entries:
        if engine.is_generated(entry) or not is_log_file(entry.meta.get("filename"), root):
            continue
        if isinstance(entry, data.Balance):
            balances[(entry.account, entry.amount.currency, entry.date)] = entry
        elif isinstance(entry, data.Transaction) and engine.is_expiry_record(entry):
            expiries[str(entry.meta.get("txn_id"))] = entry
    return balances, expiries


def relog(
    ledger: Ledger, through: datetime.date
) -> tuple[list[data.Balance], list[data.Transaction], list[data.Directive]]:
    """The balances and expiries the log should hold through ``through``, and the base entries.

    The base is the written entries without the log's records: the grant engine
    and the balance log run over it as the plugins would over a ledger never
    logged, so what they generate is what close-day would record now.
    """
    root = ledger.path.resolve().parent
    balances, expiries = recorded_log(ledger.entries, root)
    logged = {id(entry) for entry in [*balances.values(), *expiries.values()]}
    base = [
        entry
        for entry in ledger.entries
        if not engine.is_generated(entry) and id(entry) not in logged
    ]
    config = dataclasses.replace(ledger.config, annotate=False)
    result = engine.run(base, config, through=through, record=False)
    new_balances = [
        balance
        for balance in daily_balances.missing_balances(result.entries, ledger.config)
        if balance.date <= through + ONE_DAY
    ]
    new_expiries = [
        entry
        for entry in result.entries
        if isinstance(entry, data.Transaction)
        and engine.is_generated(entry)
        and engine.is_expiry_record(entry)
        and entry.date <= through
    ]
    return new_balances, new_expiries, base


def plan(
    ledger: Ledger,
    *,
    reason: str,
    date: datetime.date,
    approved_by: str | None = None,
) -> Amendment | None:
    """The amendment that makes the changed ledger's seals hold again (None: they hold).

    ``date`` is the day the amendment is made; it must be after the last sealed
    day. Raises AmendError when the change cannot be amended.
    """
    if not reason.strip():
        raise AmendError("an amendment needs a reason")
    state = seal.check(ledger.entries)
    if not state.seals:
        return None
    root = ledger.path.resolve().parent
    through = state.seals[-1].day
    new_balances, new_expiries, base = relog(ledger, through)
    old_balances, old_expiries = recorded_log(ledger.entries, root)
    edits: dict[str, list[Edit]] = defaultdict(list)
    added: list[data.Directive] = []
    counts = {"balances": 0, "expiries": 0, "seals": 0}
    balance_changes: list[tuple[str, datetime.date, str]] = []  # user, date, what
    changed_records: list[str] = []
    touched: list[datetime.date] = [problem.day for problem in state.problems]
    users = {user.account: user.user_id for user in ledger.users.values()}

    def replace(entry: data.Directive, new: data.Directive | None, kind: str) -> None:
        counts[kind] += 1
        touched.append(day_of(entry))
        meta = entry.meta
        if new is not None and new.date.replace(day=1) == entry.date.replace(day=1):
            edits[meta["filename"]].append(Edit(meta["lineno"], render(close_day.record(new))))
        else:  # gone, or now in another month's file
            edits[meta["filename"]].append(Edit(meta["lineno"], None))
            if new is not None:
                added.append(close_day.record(new))

    new_balance_keys = {
        (balance.account, balance.amount.currency, balance.date): balance
        for balance in new_balances
    }
    for key, old in sorted(old_balances.items(), key=lambda item: item[0][2]):
        new = new_balance_keys.pop(key, None)
        if new is not None and new.amount.number == old.amount.number:
            continue
        replace(old, new, "balances")
        now = "removed" if new is None else f"{old.amount.number} -> {new.amount.number}"
        balance_changes.append((users.get(key[0], key[0]), key[2], now))
    for key, new in sorted(new_balance_keys.items(), key=lambda item: item[0][2]):
        counts["balances"] += 1
        added.append(close_day.record(new))
        balance_changes.append((users.get(key[0], key[0]), key[2], "added"))
    new_expiry_keys = {str(entry.meta["txn_id"]): entry for entry in new_expiries}
    for txn_id, old_expiry in sorted(old_expiries.items()):
        new_expiry = new_expiry_keys.pop(txn_id, None)
        if new_expiry is not None and same_sealed(old_expiry, new_expiry):
            continue
        replace(old_expiry, new_expiry, "expiries")
        what = "removed" if new_expiry is None else "changed"
        changed_records.append(f"{txn_id}: recorded expiry {what}")
    for txn_id, added_expiry in sorted(new_expiry_keys.items()):
        counts["expiries"] += 1
        added.append(close_day.record(added_expiry))
        changed_records.append(f"{txn_id}: recorded expiry added")

    # The entries as they will be written, then the chain over them.
    kept = [
        entry for entry in base if not (isinstance(entry, data.Custom) and entry.type == seal.SEAL)
    ]
    records = [close_day.record(entry) for entry in [*new_balances, *new_expiries]]  # type: ignore[arg-type]
    days = canonical.canonical(kept)
    for day, lines in canonical.canonical(records, _everything).items():
        days.setdefault(day, []).extend(lines)
    problems = [problem for problem in state.problems if problem.content_changed]
    touched += [day_of(entry) for entry in added]
    resealed, old_digest, new_digest, first_resealed = reseal(state.seals, days, edits, added)
    counts["seals"] = resealed
    if first_resealed is None and not any(edits.values()) and not added:
        return None
    day = min([*touched, *([first_resealed] if first_resealed else [])])
    opening = state.seals[0] if state.seals[0].closed is not None else None
    if opening is not None and day <= opening.day:
        raise AmendError(
            f"the change touches {day}, in the period closed through {opening.day}: entries "
            "of a closed period (and the opening file) cannot be amended; book the "
            "correction on a later day"
        )
    if date <= through:
        raise AmendError(
            f"--date {date} is not after the last sealed day {through}: an amendment is "
            "recorded on a day close-day has not sealed yet"
        )
    changed = [message for problem in problems for message in problem_messages(problem)]
    changed += balance_lines(balance_changes) + changed_records
    listed = changed[:MAX_LISTED]
    if len(changed) > MAX_LISTED:
        listed.append(f"and {len(changed) - MAX_LISTED} more")
    meta: dict[str, Any] = data.new_metadata("<credits-amend>", 0)
    meta.update(
        through=through,
        old=old_digest.get(day, ""),
        new=new_digest.get(day, ""),
        reason=reason,
    )
    if approved_by:
        meta["approved_by"] = approved_by
    meta["changed"] = "; ".join(listed)
    record = data.Custom(meta, date, canonical.AMEND, [ValueType(day, datetime.date)])
    changes = file_changes(ledger, edits, [*added, record])
    return Amendment(
        day,
        through,
        old_digest.get(day, ""),
        new_digest.get(day, ""),
        changed,
        counts,
        record,
        changes,
    )


def balance_lines(changes: list[tuple[str, datetime.date, str]]) -> list[str]:
    """Recorded balances rewritten, one line each, or one line a user when there are many."""
    by_user: dict[str, list[tuple[datetime.date, str]]] = defaultdict(list)
    for user, date, what in changes:
        by_user[user].append((date, what))
    lines = []
    for user, items in sorted(by_user.items()):
        if len(items) <= 3:
            lines += [f"{user} {date}: recorded balance {what}" for date, what in sorted(items)]
        else:
            dates = sorted(date for date, _what in items)
            lines.append(
                f"{user}: {len(items)} recorded balances rewritten ({dates[0]} .. {dates[-1]})"
            )
    return lines


def day_of(entry: data.Directive) -> datetime.date:
    """The sealed day an entry belongs to (a balance dated D+1: day D)."""
    return entry.date - ONE_DAY if isinstance(entry, data.Balance) else entry.date


def same_sealed(old: data.Directive, new: data.Directive) -> bool:
    """Whether two entries read the same in the canonical form."""
    return canonical.canonical([old], _everything) == canonical.canonical([new], _everything)


def _everything(_entry: data.Directive) -> bool:
    return True


def problem_messages(problem: broken_seals.Problem) -> list[str]:
    """The differences a seal problem lists (its message after the day)."""
    _head, _sep, rest = problem.message.partition(": ")
    return [part for part in rest.split("; ") if part and not part.startswith("and ")]


def reseal(
    seals: list[seal.Seal],
    days: dict[datetime.date, list[str]],
    edits: dict[str, list[Edit]],
    added: list[data.Directive],
) -> tuple[int, dict[datetime.date, str], dict[datetime.date, str], datetime.date | None]:
    """Recompute every seal in chain order; edit the ones that differ, add the missing.

    Returns the number of seals written, the old and new digest by day, and the
    first day whose seal changed.
    """
    old = {seal_.day: seal_ for seal_ in seals}
    first = seals[0]
    previous = first.closed if first.closed is not None else seal.GENESIS
    sorted_days = sorted(days)
    new_digests: dict[datetime.date, str] = {}
    old_digests = {day: item.digest for day, item in old.items()}
    count = 0
    first_changed: datetime.date | None = None
    day = first.day
    after: datetime.date | None = None
    while day <= seals[-1].day:
        lines = seal.lines_in(days, sorted_days, after, day)
        closed = first.closed if day == first.day else None
        entry = seal.seal_entry(day, previous, lines, closed=closed)
        digest = str(canonical.custom_value(entry.values[0]))
        new_digests[day] = digest
        current = old.get(day)
        if current is None or current.digest != digest or current.items != entry.meta["items"]:
            count += 1
            first_changed = first_changed or day
            if current is None:
                added.append(entry)
            else:
                meta = current.entry.meta
                edits[meta["filename"]].append(Edit(meta["lineno"], render(entry)))
        previous = closed if closed is not None else digest
        after = day
        day += ONE_DAY
    return count, old_digests, new_digests, first_changed


def file_changes(
    ledger: Ledger, edits: dict[str, list[Edit]], added: list[data.Directive]
) -> list[write.FileChange]:
    """The log files with the entries added (appended by month) and the edits made."""
    texts: dict[Path, str] = {}
    others: list[write.FileChange] = []
    for change in write.month_files(
        ledger.path,
        ledger.options,
        close_day.LOG_DIR,
        added,
        "Daily balance log and expiries for {month}, written by bean-credits close-day.",
        "The daily job's log (bean-credits close-day).",
    ):
        if change.text is not None and change.path.resolve() != ledger.path.resolve():
            texts[change.path.resolve()] = change.text
        else:
            others.append(change)
    for filename, file_edits in edits.items():
        path = Path(filename).resolve()
        text = texts.get(path)
        if text is None:
            text = read_text(path)
        texts[path] = apply_edits(text, file_edits)
    return [write.FileChange(path, text) for path, text in sorted(texts.items())] + others


def apply_edits(text: str, edits: list[Edit]) -> str:
    """The text with each edited entry replaced or removed (line numbers: the text's own)."""
    lines = text.split("\n")
    for edit in sorted(edits, key=lambda edit: edit.lineno, reverse=True):
        first, last = entry_span(lines, edit.lineno)
        if edit.text is None:
            # The blank line before a removed entry goes with it.
            if first >= 2 and not lines[first - 2].strip():
                first -= 1
            lines[first - 1 : last] = []
        else:
            lines[first - 1 : last] = edit.text.rstrip("\n").split("\n")
    return "\n".join(lines)
