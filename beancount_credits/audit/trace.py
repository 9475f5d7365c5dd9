"""Where credits came from and went: ``bean-credits trace`` and the Credit page's trace.

One question support is asked ("I didn't receive credits for my purchase",
"what paid for this session?") answered from the grant engine's record and
git, in one place the CLI and the page share:

- a **grant** (``--grant ID``, or a purchase found by ``--txn``/``--order``):
  every credit of it, granted, drawn down (date, ``txn_id``, amount, member,
  session or order), given back by a reversal, repaying an overdraft,
  expired, and what remains; each entry with the git commit that last
  changed it (:mod:`beancount_credits.audit.provenance`);
- a **redemption**, order or session (``--txn``, ``--order``, ``--session``):
  which grants paid for it, with their source, unit cost, value and purchase;
- an **order no entry mentions**: said so, with what is near (transactions of
  the same user, or of the same amount, within a few days) and the lines of
  the importer's rejects files (``*.rejects.*`` under the ledger's folder)
  that mention it; a rejected row's user, amount and time anchor "near".

:func:`trace` is a function of a loaded ledger (and git, through
:func:`beancount_credits.audit.git_history.blame`); it returns report tables.
Ledger text and rejects files are read, never echoed beyond the fields shown.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import io
import json
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from beancount.core import data

from beancount_credits import engine
from beancount_credits.audit.git_history import BlameMap, ProvenanceError, blame
from beancount_credits.audit.provenance import entry_provenance
from beancount_credits.ledger import Ledger, LedgerError
from beancount_credits.reports.statement import description
from beancount_credits.reports.table import Cell, Column, Filters, Table

NEAR_DAYS = 3
MODES = ("grant", "txn", "order", "session")

GRANT_COLUMNS = [
    Column("Date", "date"),
    Column("What"),
    Column("Transaction ID"),
    Column("Amount", "number"),
    Column("Member"),
    Column("Session/Order"),
    Column("File:line"),
    Column("Commit"),
]
PAID_COLUMNS = [
    Column("Date", "date"),
    Column("Transaction ID"),
    Column("Grant"),
    Column("Source"),
    Column("Granted", "date"),
    Column("Purchase"),
    Column("Amount", "number"),
    Column("Unit cost"),
    Column("Value"),
    Column("Restored", "number"),
    Column("Commit"),
]
NEAR_COLUMNS = [
    Column("Date", "date"),
    Column("Transaction ID"),
    Column("User"),
    Column("Amount", "number"),
    Column("Description"),
    Column("Why"),
]
REJECT_COLUMNS = [Column("File:line"), Column("Event id"), Column("User"), Column("Amount")]


@dataclasses.dataclass
class Trace:
    """What a trace found: its tables, and whether the ledger holds what was asked."""

    tables: list[Table]
    found: bool


@dataclasses.dataclass
class _Context:
    ledger: Ledger
    result: engine.EngineResult
    by_txn: dict[str, data.Transaction]
    reversals: dict[str, list[data.Transaction]]
    blame: BlameMap
    base: Path
    users: dict[str, str]  # wallet account -> user id

    def commit(self, entry: data.Directive | None) -> str | None:
        if entry is None:
            return None
        if engine.is_generated(entry):
            return "generated"
        found = entry_provenance(entry, self.blame)
        return None if found is None else found.last.short

    def where(self, entry: data.Directive | None) -> str | None:
        if entry is None or engine.is_generated(entry):
            return None
        path = Path(str(entry.meta.get("filename", "")))
        name = str(path.relative_to(self.base)) if path.is_relative_to(self.base) else str(path)
        return f"{name}:{entry.meta.get('lineno')}"


def record(ledger: Ledger) -> engine.EngineResult:
    """The grant engine's full record of the loaded ledger (every draw-down), once per load."""

    timeline = ledger.timeline
    if timeline.record:  # the CLI's load: its pass keeps every record already
        return timeline.base

    def run() -> engine.EngineResult:
        config = dataclasses.replace(ledger.config, annotate=False, future_expiries=False)
        return engine.run(engine.written_entries(ledger.entries), config, record=True)

    return timeline.memo("trace-record", run)


def horizon(ledger: Ledger) -> datetime.date | None:
    """The last day the ledger's text records."""
    ledger.timeline.base  # noqa: B018 (prepares the timeline, which finds the horizon)
    return ledger.timeline.horizon


def _index(
    ledger: Ledger,
) -> tuple[dict[str, data.Transaction], dict[str, list[data.Transaction]]]:
    """Transactions by ``txn_id``, and reversals by the ``txn_id`` they reverse (once per load)."""

    def build() -> tuple[dict[str, data.Transaction], dict[str, list[data.Transaction]]]:
        by_txn: dict[str, data.Transaction] = {}
        reversals: dict[str, list[data.Transaction]] = {}
        for entry in ledger.entries:
            if isinstance(entry, data.Transaction) and entry.meta:
                txn_id = entry.meta.get("txn_id")
                if txn_id is not None:
                    by_txn.setdefault(str(txn_id), entry)
                reverses = entry.meta.get("reverses")
                if reverses is not None:
                    reversals.setdefault(str(reverses), []).append(entry)
        return by_txn, reversals

    return ledger.timeline.memo("trace-index", build)


def _context(ledger: Ledger, entries: Iterable[data.Directive | None]) -> _Context:
    """The context of a trace, with git asked about the files of ``entries`` only."""
    bare = _bare(ledger, record(ledger))
    files = sorted(
        {
            str(entry.meta["filename"])
            for entry in entries
            if entry is not None and not engine.is_generated(entry) and entry.meta.get("filename")
        }
    )
    try:
        bare.blame = blame(files)
    except ProvenanceError:
        bare.blame = {}
    return bare


def _use(entry: data.Transaction | None) -> str | None:
    if entry is None:
        return None
    for key in ("session", "order"):
        value = entry.meta.get(key)
        if value is not None:
            return f"{key} {value}"
    return None


def _member(entry: data.Transaction | None) -> str | None:
    value = None if entry is None else entry.meta.get("member")
    return None if value is None else str(value)


def _value(amount: Decimal, grant: engine.Grant) -> str | None:
    if grant.unit_cost is None:
        return None
    return f"{amount * grant.unit_cost.number} {grant.unit_cost.currency}"


def _purchase(ctx: _Context, grant: engine.Grant) -> str | None:
    entry = ctx.by_txn.get(grant.txn_id) if grant.txn_id else None
    if entry is None:
        return grant.txn_id
    parts = [grant.txn_id or ""]
    for key in ("order", "paid"):
        value = entry.meta.get(key)
        if value is not None:
            parts.append(f"{key} {value}")
    return ", ".join(part for part in parts if part)


# --- A grant: where every credit went ------------------------------------------------


def _grant_entries(ctx: _Context, grant: engine.Grant) -> Iterator[data.Directive | None]:
    yield ctx.by_txn.get(grant.txn_id) if grant.txn_id else None
    for drawdown in ctx.result.drawdowns:
        if any(part.grant is not None and part.grant.id == grant.id for part in drawdown.parts):
            yield ctx.by_txn.get(drawdown.txn_id) if drawdown.txn_id else None
            for reversal in ctx.reversals.get(drawdown.txn_id or "", ()):
                yield reversal
    for expiry in ctx.result.expiries:
        if expiry.grant.id == grant.id:
            yield ctx.by_txn.get(expiry.txn_id)
    for reversal in ctx.reversals.get(grant.txn_id or "", ()):
        yield reversal


def grant_table(ctx: _Context, grant: engine.Grant) -> Table:
    """Every credit of a grant: granted, drawn, restored, repaid, expired, remaining."""
    rows: list[list[Cell]] = []
    granted = ctx.by_txn.get(grant.txn_id) if grant.txn_id else None
    terms = [f"from {grant.source}"] if grant.source else []
    if grant.unit_cost is not None:
        terms.append(f"unit cost {grant.unit_cost}")
    if grant.expires is not None:
        terms.append(f"expires {grant.expires}")
    if grant.applies_to:
        terms.append(f"for {', '.join(grant.applies_to)}")
    rows.append(
        [
            grant.date,
            "granted " + "; ".join(terms),
            grant.txn_id,
            grant.amount,
            None,
            _use(granted),
            ctx.where(granted),
            ctx.commit(granted),
        ]
    )
    if grant.repaid:
        rows.append(
            [
                grant.date,
                "repaid an earlier overdraft",
                grant.txn_id,
                -grant.repaid,
                None,
                None,
                None,
                None,
            ]
        )
    for drawdown in ctx.result.drawdowns:
        for part in drawdown.parts:
            if part.grant is None or part.grant.id != grant.id:
                continue
            entry = ctx.by_txn.get(drawdown.txn_id) if drawdown.txn_id else None
            what = "drawn down" if entry is not None else "consumed before a period close"
            rows.append(
                [
                    drawdown.date,
                    what,
                    drawdown.txn_id,
                    -part.amount,
                    _member(entry),
                    _use(entry),
                    ctx.where(entry),
                    ctx.commit(entry),
                ]
            )
            if part.restored:
                for reversal in ctx.reversals.get(drawdown.txn_id or "", ())[:1]:
                    rows.append(
                        [
                            reversal.date,
                            f"given back by the reversal of {drawdown.txn_id}",
                            reversal.meta.get("txn_id"),
                            part.restored,
                            None,
                            _use(reversal),
                            ctx.where(reversal),
                            ctx.commit(reversal),
                        ]
                    )
    if grant.reversed:
        for reversal in ctx.reversals.get(grant.txn_id or "", ())[:1]:
            rows.append(
                [
                    reversal.date,
                    "grant reversed",
                    reversal.meta.get("txn_id"),
                    -grant.reversed,
                    None,
                    None,
                    ctx.where(reversal),
                    ctx.commit(reversal),
                ]
            )
    for expiry in ctx.result.expiries:
        if expiry.grant.id != grant.id:
            continue
        entry = ctx.by_txn.get(expiry.txn_id)
        what = "forfeited" if entry is not None and "Forfeited" in entry.narration else "expired"
        rows.append(
            [
                expiry.date,
                what,
                expiry.txn_id,
                -expiry.amount,
                None,
                None,
                ctx.where(entry),
                ctx.commit(entry),
            ]
        )

    # A day's expiry comes first (at the start of its day), unless a reversal
    # caused it (it follows the reversal); otherwise the order of the pass.
    def at_start(row: list[Cell]) -> bool:
        what, txn_id = row[1], str(row[2] or "")
        cause = txn_id.rpartition(":expiry")[2].lstrip(":")
        return what == "expired" and (not cause or cause[:4].isdigit())

    rows[1:] = sorted(rows[1:], key=lambda row: (row[0], not at_start(row)))
    last = horizon(ctx.ledger)
    until = f" until {grant.expires}" if grant.expires is not None and grant.remaining else ""
    rows.append([last, f"remaining{until}", None, grant.remaining, None, None, None, None])
    user = ctx.users.get(grant.account, grant.account)
    notes = [
        f"{grant.amount} {grant.currency} granted to {user}: {grant.consumed} consumed, "
        f"{grant.expired} expired, {grant.remaining} remaining (ledger recorded through "
        f"{last})",
        "Commit: the last commit that changed any line of the entry "
        "(generated: booked by the plugins, not written yet)",
    ]
    return Table(f"Grant {grant.id}", GRANT_COLUMNS, rows, Filters(user=user), notes)


# --- A redemption: which grants paid -------------------------------------------------


def paid_table(ctx: _Context, title: str, drawdowns: list[engine.DrawDown]) -> Table:
    """The grants that paid for draw-downs, with their source, unit cost and purchase."""
    rows: list[list[Cell]] = []
    user = None
    for drawdown in drawdowns:
        user = ctx.users.get(drawdown.account, drawdown.account)
        entry = ctx.by_txn.get(drawdown.txn_id) if drawdown.txn_id else None
        for part in drawdown.parts:
            grant = part.grant
            if grant is None:
                rows.append(
                    [
                        drawdown.date,
                        drawdown.txn_id,
                        "overdraft (credit limit)",
                        None,
                        None,
                        None,
                        part.amount,
                        None,
                        None,
                        part.restored or None,
                        ctx.commit(entry),
                    ]
                )
                continue
            rows.append(
                [
                    drawdown.date,
                    drawdown.txn_id,
                    grant.id,
                    grant.source,
                    grant.date,
                    _purchase(ctx, grant),
                    part.amount,
                    None if grant.unit_cost is None else str(grant.unit_cost),
                    _value(part.amount, grant),
                    part.restored or None,
                    ctx.commit(entry),
                ]
            )
    notes = ["Value: the amount at the grant's unit cost (free credits have none)"]
    return Table(title, PAID_COLUMNS, rows, Filters(user=user), notes)


# --- Nothing found: what is near ------------------------------------------------------


@dataclasses.dataclass
class Anchor:
    user: str | None = None
    amount: Decimal | None = None
    day: datetime.date | None = None


def _rejects(ledger: Ledger, needle: str) -> tuple[list[list[Cell]], Anchor]:
    """Rows of the importer's rejects files under the ledger's folder that mention ``needle``."""
    rows: list[list[Cell]] = []
    anchor = Anchor()
    base = ledger.path.resolve().parent
    for path in sorted(base.rglob("*.rejects.*")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        records: list[tuple[int, dict[str, Any]]] = []
        if path.suffix == ".csv":
            reader = csv.DictReader(io.StringIO(text))
            records = [(number + 2, dict(row)) for number, row in enumerate(reader)]
        else:
            for number, line in enumerate(text.split("\n"), start=1):
                try:
                    fields = json.loads(line)
                except ValueError:
                    continue
                if isinstance(fields, dict):
                    records.append((number, fields))
        for number, fields in records:
            if not any(str(value) == needle for value in fields.values()):
                continue
            user = fields.get("user")
            amount = fields.get("amount")
            rows.append(
                [
                    f"{path.relative_to(base)}:{number}",
                    None if fields.get("id") is None else str(fields.get("id")),
                    None if user is None else str(user),
                    None if amount is None else str(amount),
                ]
            )
            if anchor.user is None and user is not None:
                anchor.user = str(user)
            if anchor.amount is None and amount is not None:
                with contextlib.suppress(InvalidOperation):
                    anchor.amount = Decimal(str(amount))
            stamp = str(fields.get("timestamp") or "")[:10]
            if anchor.day is None and stamp:
                with contextlib.suppress(ValueError):
                    anchor.day = datetime.date.fromisoformat(stamp)
    return rows, anchor


def near_table(ctx: _Context, anchor: Anchor, days: int) -> Table:
    """Transactions of the same user, or of the same amount, within ``days`` of the day."""
    day = anchor.day or horizon(ctx.ledger) or datetime.date.today()
    start, end = day - datetime.timedelta(days=days), day + datetime.timedelta(days=days)
    account = None
    if anchor.user is not None and anchor.user in ctx.ledger.users:
        account = ctx.ledger.users[anchor.user].account
    rows: list[list[Cell]] = []
    for entry in ctx.ledger.entries:
        if not isinstance(entry, data.Transaction) or not start <= entry.date <= end:
            continue
        if engine.is_generated(entry):
            continue
        for posting in entry.postings:
            if posting.account not in ctx.users or posting.units is None:
                continue
            why = []
            if account is not None and posting.account == account:
                why.append("same user")
            number = posting.units.number
            if anchor.amount is not None and number is not None and abs(number) == anchor.amount:
                why.append("same amount")
            if why:
                rows.append(
                    [
                        entry.date,
                        entry.meta.get("txn_id"),
                        ctx.users[posting.account],
                        posting.units.number,
                        description(entry),
                        " and ".join(why),
                    ]
                )
    looked = [f"{days} days either side of {day}"]
    if anchor.user:
        looked.append(f"user {anchor.user}")
    if anchor.amount is not None:
        looked.append(f"amount {anchor.amount}")
    return Table("Near it", NEAR_COLUMNS, rows, Filters(), ["looked at: " + ", ".join(looked)])


# --- The entry point ------------------------------------------------------------------


def _matching(ledger: Ledger, key: str, value: str) -> list[data.Transaction]:
    found = []
    for entry in ledger.entries:
        if not isinstance(entry, data.Transaction) or not entry.meta:
            continue
        found_value = entry.meta.get(key)
        if (found_value is not None and str(found_value) == value) or (
            key != "txn_id" and value in entry.links
        ):
            found.append(entry)
    return found


def trace(
    ledger: Ledger,
    mode: str,
    value: str,
    near: Anchor | None = None,
    days: int = NEAR_DAYS,
) -> Trace:
    """Trace a grant, a transaction, an order or a session (``mode`` in :data:`MODES`).

    Raises LedgerError for an unknown grant id (a grant is asked for by id).
    """
    if mode not in MODES:
        raise LedgerError(f"trace: unknown mode {mode!r} (one of {', '.join(MODES)})")
    value = value.strip()  # as pasted, spaces around it (the Credit page strips too)
    if not value:
        raise LedgerError(f"trace: the {mode} id is empty")
    result = record(ledger)
    if mode == "grant":
        grant = result.grants.get(value)
        if grant is None:
            raise LedgerError(f"unknown grant id {value!r}: no grant of the ledger has that id")
        ctx = _context(ledger, _grant_entries(_bare(ledger, result), grant))
        return Trace([grant_table(ctx, grant)], True)
    key = {"txn": "txn_id", "order": "order", "session": "session"}[mode]
    entries = _matching(ledger, key, value)
    txn_ids = {str(entry.meta["txn_id"]) for entry in entries if entry.meta.get("txn_id")}
    grants = [grant for grant in result.grants.values() if grant.txn_id in txn_ids]
    if mode == "txn" and ":expiry" in value:
        # An expiry (written, or still to be written by close-day): its grant's trace.
        expired = result.grants.get(value.partition(":expiry")[0])
        if expired is not None and expired not in grants:
            grants.append(expired)
    drawdowns = [dd for dd in result.drawdowns if dd.txn_id in txn_ids]
    if not grants and not drawdowns:
        return _missing(ledger, mode, value, entries, near, days)
    bare = _bare(ledger, result)
    involved: list[data.Directive | None] = list(entries)
    for grant in grants:
        involved.extend(_grant_entries(bare, grant))
    ctx = _context(ledger, involved)
    tables = [grant_table(ctx, grant) for grant in grants]
    if drawdowns:
        label = {"txn": "Transaction", "order": "Order", "session": "Session"}[mode]
        tables.append(paid_table(ctx, f"{label} {value}: the grants that paid", drawdowns))
    return Trace(tables, True)


def _bare(ledger: Ledger, result: engine.EngineResult) -> _Context:
    """A context without git, to find the entries a trace involves (then blamed at once)."""
    by_txn, reversals = _index(ledger)
    users = {user.account: user.user_id for user in ledger.users.values()}
    return _Context(ledger, result, by_txn, reversals, {}, ledger.path.resolve().parent, users)


def _missing(
    ledger: Ledger,
    mode: str,
    value: str,
    entries: list[data.Transaction],
    near: Anchor | None,
    days: int,
) -> Trace:
    label = {"txn": "transaction", "order": "order", "session": "session"}[mode]
    reject_rows, anchor = _rejects(ledger, value)
    given = near or Anchor()
    anchor = Anchor(
        given.user or anchor.user,
        given.amount if given.amount is not None else anchor.amount,
        given.day or anchor.day,
    )
    if entries:
        head = (
            f"No grant or draw-down of the ledger is {label} {value!r}: "
            f"{len(entries)} entry(ies) mention it without moving credits"
        )
    else:
        head = f"No entry of the ledger mentions {label} {value!r}"
    ctx = _context(ledger, ())
    notes = [head]
    if reject_rows:
        notes.append(
            f"{len(reject_rows)} row(s) of the importer's rejects files mention it: "
            "it was refused at import (fix the row and import it again)"
        )
    else:
        notes.append("no rejects file under the ledger's folder mentions it")
    tables = [near_table(ctx, anchor, days)]
    tables[0].notes[:0] = notes
    tables[0].title = f"{label.capitalize()} {value}: not in the ledger; near it"
    if reject_rows:
        tables.append(Table("Rejected at import", REJECT_COLUMNS, reject_rows, Filters(), []))
    return Trace(tables, False)
