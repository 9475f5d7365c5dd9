"""An import that changes sealed days writes its amendment by itself.

A late event dated on a day ``close-day`` already sealed, a pending redemption
of a sealed day settled or cancelled, a grant of a sealed day whose expiry
moves: each changes what a seal covers. :func:`touching` finds the events of a
planned batch that do; :func:`amended` loads the ledger as the batch would
leave it and adds to the batch's file changes the amendment
(:mod:`beancount_credits.audit.amend`): the daily log rewritten where the events
change it, the seals renewed from the first changed day, and a
``custom "credits-amend"`` record whose reason names the import and its events.
The write path then checks it all together, as for any import.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

from beancount.core import data

from beancount_credits.audit import amend
from beancount_credits.engine import seal
from beancount_credits.importers import plan as planning
from beancount_credits.importers.index import LedgerIndex
from beancount_credits.ledger import Ledger, find_config, index_users, write

SHOWN = 5  # event ids the amendment's reason names; the rest are counted


def sealed_day(entries: Sequence[data.Directive]) -> datetime.date | None:
    """The last sealed day of the parsed ledger (None: not sealed)."""
    last = seal.sealed_through(entries)
    return None if last is None else last.day


def touching(planned: planning.Plan, index: LedgerIndex, sealed: datetime.date | None) -> list[str]:
    """What in the batch changes a sealed day: ``<event id> (<what>)``, in row order."""
    if sealed is None:
        return []
    found: list[tuple[int, str]] = []
    for entry in planned.entries:
        if isinstance(entry, data.Transaction | data.Open) and entry.date <= sealed:
            name = entry.meta.get("txn_id") or getattr(entry, "account", "")
            found.append((entry.meta.get("lineno", 0), f"{name} ({entry.date}, late)"))
    dates = {
        (ref.filename, ref.lineno): ref.date
        for ref in index.transactions.values()
        if ref.filename is not None
    }
    for edit in planned.edits:
        date = dates.get((edit.filename, edit.lineno))
        if date is not None and date <= sealed:
            what = {"settle": "settled", "cancel": "cancelled"}.get(edit.kind, "expiry changed")
            found.append((edit.line, f"{edit.event_id} ({what})"))
    return [text for _line, text in sorted(found)]


def amended(
    main: Path,
    files: Sequence[Path],
    changes: list[write.FileChange],
    source: str,
    touching: list[str],
) -> list[write.FileChange]:
    """The batch's changes and the amendment they make of the sealed days (or AmendError)."""
    entries, errors, options = write.staged_load(main, files, changes)
    config = find_config(options)
    ledger = Ledger(main, entries, errors, options, config, index_users(entries, config))
    shown = ", ".join(touching[:SHOWN])
    if len(touching) > SHOWN:
        shown += f" and {len(touching) - SHOWN} more"
    reason = f"import {Path(source).name}: {len(touching)} event(s) of sealed days: {shown}"
    # The edge of the system decides what "today" is; the amendment is dated on it.
    planned = amend.plan(ledger, reason=reason, date=datetime.date.today())
    if planned is None:
        return changes
    ours = {change.path.resolve() for change in changes}
    extra = [change for change in planned.changes if change.path.resolve() not in ours]
    clash = [change.path for change in planned.changes if change.path.resolve() in ours]
    if clash:
        raise amend.AmendError(
            f"the amendment of sealed days would change {clash[0]}, which the import changes too"
        )
    return [*changes, *extra]
