"""Where each ledger entry comes from: git history as the audit trail.

Operators change the ledger by committing its text to git (docs/design.md), so the
question an auditor asks about an entry -- who wrote it, when, and why -- is
answered by git, not by the ledger. :mod:`beancount_credits.audit.git_history`
asks git (blame, ``log -L``) and returns plain values; this module says what
they mean for the entries:

- :func:`entry_provenance`: the newest commit among an entry's lines (who last
  changed it) and the commit of its header line;
- :func:`history_table`: every entry of a user with the commit that last
  changed it (the ``history`` command); :func:`history` blames the files
  those entries are in first.

Both are pure functions of the loaded ledger and a blame, so they are cheap
to test and reuse (the ``history`` command, the audit report, ``verify``). A
ledger outside git is not an error: provenance is simply unavailable. Lines
git has not recorded yet are *uncommitted* -- exactly what an auditor needs to
see.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Final

from beancount.core import data

from beancount_credits.audit.git_history import BlameMap, Commit, blame
from beancount_credits.engine import is_generated
from beancount_credits.ledger import Ledger
from beancount_credits.reports.statement import description
from beancount_credits.reports.table import Cell, Column, Filters, Table, format_cell


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a written entry's text comes from."""

    filename: str
    lineno: int  # header line
    end_lineno: int  # last line of the entry
    last: Commit  # the newest commit among the entry's lines: who last changed it
    header: Commit  # the commit the header line comes from (see entry_provenance)


def _recency(commit: Commit, header: Commit) -> tuple[bool, int, bool]:
    # Uncommitted is newer than anything; then commit time. Two commits made
    # in the same second are told apart by the one thing blame still says:
    # an entry's header usually comes from the commit that added it, so the
    # other one is the later edit.
    return (not commit.committed, commit.committer_time, commit != header)


def entry_provenance(entry: data.Directive, blame_map: BlameMap) -> Provenance | None:
    """Who last changed a written entry, and where its header line comes from.

    ``last`` is the newest commit among all the entry's lines (header,
    metadata, postings): an edit to any of them changes what the entry says.
    ``header`` is the commit that wrote the header line as it reads now --
    the commit that added the entry unless the header itself was rewritten
    later; ``line_history(filename, lineno, lineno)[-1]`` is the exact first
    one. None for entries a plugin generated and for files outside git.
    """
    filename = entry.meta.get("filename")
    lineno = entry.meta.get("lineno")
    if not isinstance(filename, str) or not isinstance(lineno, int) or is_generated(entry):
        return None
    blamed = blame_map.get(os.path.abspath(filename))
    if blamed is None:
        return None
    first, last = blamed.entry_span(lineno)
    header = blamed.commit_at(first)
    commits = [blamed.commit_at(number) for number in range(first, last + 1)]
    newest = max(commits, key=lambda commit: _recency(commit, header))
    return Provenance(filename, first, last, newest, header)


def user_entries(ledger: Ledger, account: str) -> Iterator[data.Directive]:
    """A wallet's entries in date order: its open/close, notes, pads, every
    transaction with a posting on it (generated ones included) and the balance
    assertions written in the text (the daily_balances plugin's are derived
    from the transactions, so they add nothing to an audit)."""
    for entry in ledger.entries:
        if isinstance(entry, data.Transaction):
            if any(posting.account == account for posting in entry.postings):
                yield entry
        elif isinstance(entry, data.Balance):
            if entry.account == account and not is_generated(entry):
                yield entry
        elif isinstance(entry, data.Open | data.Close | data.Note | data.Pad) and (
            entry.account == account
        ):
            yield entry


def _amount(entry: data.Directive, account: str) -> str | None:
    def text(number: Decimal, currency: str) -> str:
        return f"{format_cell(number)} {currency}"

    if isinstance(entry, data.Transaction):
        totals: dict[str, Decimal] = {}
        for posting in entry.postings:
            if posting.account == account and posting.units is not None:
                currency = posting.units.currency
                totals[currency] = totals.get(currency, Decimal(0)) + posting.units.number
        return ", ".join(text(number, currency) for currency, number in totals.items()) or None
    if isinstance(entry, data.Balance):
        return text(entry.amount.number, entry.amount.currency)  # type: ignore[arg-type]
    return None


def _description(entry: data.Directive) -> str:
    if isinstance(entry, data.Transaction):
        return description(entry)
    if isinstance(entry, data.Open):
        return "Open wallet"
    if isinstance(entry, data.Close):
        return "Close wallet"
    if isinstance(entry, data.Balance):
        return "Balance assertion"
    if isinstance(entry, data.Note):
        return f"Note: {entry.comment}"
    if isinstance(entry, data.Pad):
        return f"Pad from {entry.source_account}"
    return type(entry).__name__


def _relative(filename: str, base: Path) -> str:
    """A ledger file as readers know it: relative to the main ledger's folder when inside it."""
    path = Path(filename)
    return str(path.relative_to(base)) if path.is_relative_to(base) else filename


HISTORY_COLUMNS: Final = [
    Column("Date", "date"),
    Column("Transaction ID"),
    Column("Description"),
    Column("Amount"),
    Column("File:line"),
    Column("Commit"),
    Column("Author"),
    Column("Committed", "date"),
    Column("Message"),
]


def history_table(ledger: Ledger, user_id: str, blame_map: BlameMap) -> Table:
    """Every entry of a user with the commit that last changed it.

    Entries a plugin generated show the plugin as their file and
    ``generated`` as their commit; entries in files outside git show no
    provenance, and a note says why. Raises LedgerError for an unknown user.
    """
    user = ledger.user(user_id)
    base = ledger.path.resolve().parent
    rows: list[list[Cell]] = []
    unavailable: set[str] = set()
    uncommitted = False
    for entry in user_entries(ledger, user.account):
        filename = str(entry.meta.get("filename", ""))
        txn_id = entry.meta.get("txn_id")
        cells: list[Cell] = [
            entry.date,
            None if txn_id is None else str(txn_id),
            _description(entry),
            _amount(entry, user.account),
        ]
        if is_generated(entry):
            rows.append([*cells, filename, "generated", None, None, None])
            continue
        cells.append(f"{_relative(filename, base)}:{entry.meta.get('lineno')}")
        found = entry_provenance(entry, blame_map)
        if found is None:
            unavailable.add(filename)
            rows.append([*cells, None, None, None, None])
            continue
        commit = found.last
        uncommitted = uncommitted or not commit.committed
        rows.append(
            [*cells, commit.short, commit.author or None, commit.day, commit.summary or None]
        )
    notes = ["Commit: the last commit that changed any line of the entry"]
    if uncommitted:
        notes.append("uncommitted: changed in the working tree since the last commit")
    if len(unavailable) == 1:
        (filename,) = unavailable
        notes.append(
            f"provenance unavailable: {_relative(filename, base)} is not in a git work tree"
        )
    elif unavailable:
        notes.append(f"provenance unavailable for {len(unavailable)} files outside a git work tree")
    return Table(
        f"History of {user.user_id}", HISTORY_COLUMNS, rows, Filters(user=user.user_id), notes
    )


def history(ledger: Ledger, user_id: str) -> Table:
    """:func:`history_table` with git asked about the files the user's entries are in.

    Only those files are blamed: a large ledger's other files (other months'
    logs) cost nothing. The user is looked up first, so an unknown id fails
    before any git work.
    """
    account = ledger.user(user_id).account
    files = {
        str(entry.meta["filename"])
        for entry in user_entries(ledger, account)
        if not is_generated(entry) and entry.meta.get("filename")
    }
    return history_table(ledger, user_id, blame(sorted(files)))
