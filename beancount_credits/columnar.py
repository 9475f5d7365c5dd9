"""The columnar export: a credits ledger as Parquet, partitioned by month, written incrementally.

``bean-credits export parquet LEDGER -o DIR`` writes five datasets under DIR,
each in Hive-style month folders (``DIR/<table>/month=YYYY-MM/part-0.parquet``)
that DuckDB, Spark and Trino read as they are (the ``month`` column comes from
the folder name):

- ``postings``: every posting of every transaction (generated expiries
  included), with the wallet's ``user_id`` and, for a wallet posting, its
  ``kind`` as the statement classifies it (earned, redeemed, expired);
- ``grants``: every grant as the grant engine left it at the end of the ledger
  (amount, consumed, expired, remaining, repaid, reversed, expiry, priority,
  unit cost, source);
- ``consumption``: every part of every draw-down (``grant_id`` empty for the
  overdraft part), with what reversals restored of it in all;
- ``expiries``: every expiry and forfeiture (grant, date, amount);
- ``reversals``: what each reversal did to each grant, on its own date:
  ``kind`` "grant" removed ``amount`` of the grant, "redemption" gave back
  ``amount`` the draw-down ``reverses`` had consumed of it. A grant or
  redemption reversed in several parts has a row per part, so a report as of
  a day between them counts only the parts made by then;
- ``balances``: the daily balance log: every wallet's end-of-day balance on
  each day it changed (quiet days are carried forward by readers);

and ``users/users.parquet`` (user id, wallet, segment, close date), not
partitioned. Grants, consumption and expiries are the engine's records
(:attr:`Ledger.grants`), not a re-derivation.

Numbers are ``decimal(38, 9)``: exact, and a type every engine reads. A
number with more than nine decimal places is refused with an error. The
``*places`` columns keep how many decimal places the ledger's number has
(10.50: 2), which a fixed-scale decimal loses: the DuckDB reports print 10.50
where the ledger path does.

**Incremental.** ``DIR/manifest.json`` keeps a content hash of every
partition. A partition whose rows did not change is not written again (its
file, if present, is left as is); a month that changed is rewritten (to a
temporary file, then renamed); a month that no longer has rows is removed. The
manifest is written last, so an interrupted export is redone next time.

**Staleness.** The manifest also records every ledger file the export was
made from (size, mtime, SHA-256) and the include patterns in them;
:func:`stale` says which files changed, went away or newly match an include
since, so ``report --source`` can warn that the export is older than the
ledger.
"""

from __future__ import annotations

import dataclasses
import datetime
import glob
import hashlib
import json
import os
import shutil
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from beancount.core import data

from beancount_credits import engine, incremental, write
from beancount_credits.ledger import Ledger
from beancount_credits.reports import common, daily, liability
from beancount_credits.reports.statement import classify

FORMAT = "beancount-credits-parquet/3"  # bump when a schema changes: everything is rewritten
MANIFEST = "manifest.json"
PART = "part-0.parquet"
NUMBER = pa.decimal128(38, 9)


class ColumnarError(Exception):
    """An export that cannot be written as asked; the message says why."""


SCHEMAS: dict[str, pa.Schema] = {
    "postings": pa.schema(
        [
            ("date", pa.date32()),
            ("txn_id", pa.string()),
            ("flag", pa.string()),
            ("payee", pa.string()),
            ("narration", pa.string()),
            ("tags", pa.list_(pa.string())),
            ("links", pa.list_(pa.string())),
            ("account", pa.string()),
            ("user_id", pa.string()),
            ("commodity", pa.string()),
            ("number", NUMBER),
            ("places", pa.int8()),
            ("kind", pa.string()),
            ("member", pa.string()),
            ("session", pa.string()),
            ("order_id", pa.string()),
            ("reverses", pa.string()),
            ("generated", pa.bool_()),
            ("filename", pa.string()),
            ("lineno", pa.int64()),
        ]
    ),
    "grants": pa.schema(
        [
            ("date", pa.date32()),
            ("grant_id", pa.string()),
            ("txn_id", pa.string()),
            ("user_id", pa.string()),
            ("account", pa.string()),
            ("commodity", pa.string()),
            ("amount", NUMBER),
            ("amount_places", pa.int8()),
            ("consumed", NUMBER),
            ("expired", NUMBER),
            ("remaining", NUMBER),
            ("repaid", NUMBER),
            ("repaid_places", pa.int8()),
            ("reversed", NUMBER),
            ("expires", pa.date32()),
            ("priority", pa.int64()),
            ("unit_cost", NUMBER),
            ("unit_cost_places", pa.int32()),  # decimal places as written: 0.10 -> 2
            ("cost_currency", pa.string()),
            ("source", pa.string()),
        ]
    ),
    "consumption": pa.schema(
        [
            ("date", pa.date32()),
            ("txn_id", pa.string()),
            ("user_id", pa.string()),
            ("account", pa.string()),
            ("commodity", pa.string()),
            ("grant_id", pa.string()),
            ("amount", NUMBER),
            ("places", pa.int8()),
            ("restored", NUMBER),
        ]
    ),
    "expiries": pa.schema(
        [
            ("date", pa.date32()),
            ("txn_id", pa.string()),
            ("grant_id", pa.string()),
            ("user_id", pa.string()),
            ("account", pa.string()),
            ("commodity", pa.string()),
            ("amount", NUMBER),
            ("places", pa.int8()),
        ]
    ),
    "reversals": pa.schema(
        [
            ("date", pa.date32()),
            ("txn_id", pa.string()),
            ("reverses", pa.string()),
            ("kind", pa.string()),
            ("grant_id", pa.string()),
            ("user_id", pa.string()),
            ("account", pa.string()),
            ("commodity", pa.string()),
            ("amount", NUMBER),
            ("places", pa.int8()),
        ]
    ),
    "balances": pa.schema(
        [
            ("date", pa.date32()),
            ("user_id", pa.string()),
            ("account", pa.string()),
            ("commodity", pa.string()),
            ("change", NUMBER),
            ("change_places", pa.int8()),
            ("balance", NUMBER),
            ("balance_places", pa.int8()),
        ]
    ),
    "users": pa.schema(
        [
            ("user_id", pa.string()),
            ("account", pa.string()),
            ("segment", pa.string()),
            ("close_date", pa.date32()),
        ]
    ),
}
PARTITIONED = ("postings", "grants", "consumption", "expiries", "reversals", "balances")

Row = tuple[Any, ...]


@dataclasses.dataclass
class ExportResult:
    """What an export wrote, skipped and removed (paths relative to the export folder)."""

    written: list[str]
    skipped: list[str]
    removed: list[str]

    def summary(self) -> str:
        return (
            f"{len(self.written)} partition(s) written, {len(self.skipped)} unchanged, "
            f"{len(self.removed)} removed"
        )


def month_of(date: datetime.date) -> str:
    return f"{date.year:04d}-{date.month:02d}"


def text(value: object) -> str | None:
    return None if value is None else str(value)


# --- Rows from the ledger (pure) ----------------------------------------------------------


def posting_rows(ledger: Ledger) -> Iterable[Row]:
    users = {user.account: user.user_id for user in ledger.users.values()}
    config = ledger.config
    for entry in ledger.entries:
        if not isinstance(entry, data.Transaction):
            continue
        meta = entry.meta or {}
        head = (
            entry.date,
            text(meta.get("txn_id")),
            entry.flag,
            entry.payee,
            entry.narration,
            sorted(entry.tags or ()),
            sorted(entry.links or ()),
        )
        tail = (
            text(meta.get("member")),
            text(meta.get("session")),
            text(meta.get("order")),
            text(meta.get("reverses")),
            engine.generated_by(entry) == engine.EXPIRE_PLUGIN_NAME,
            meta.get("filename"),
            meta.get("lineno"),
        )
        for posting in entry.postings:
            if posting.units is None or not isinstance(posting.units.number, Decimal):
                continue
            user_id = users.get(posting.account)
            number = posting.units.number
            kind = None if user_id is None else classify(entry, posting.account, config, number)
            yield (
                *head,
                posting.account,
                user_id,
                posting.units.currency,
                number,
                places(number),
                kind,
                *tail,
            )


def places(number: Decimal) -> int:
    """The decimal places a number is written with (10.50: 2, 42: 0)."""
    exponent = number.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def grant_rows(ledger: Ledger, result: engine.EngineResult) -> Iterable[Row]:
    users = {user.account: user.user_id for user in ledger.users.values()}
    for grant in result.grants.values():
        cost = common.unit_cost(grant)
        yield (
            grant.date,
            grant.id,
            grant.txn_id,
            users.get(grant.account),
            grant.account,
            grant.currency,
            grant.amount,
            places(grant.amount),
            grant.consumed,
            grant.expired,
            grant.remaining,
            grant.repaid,
            places(grant.repaid),
            grant.reversed,
            grant.expires,
            grant.priority,
            None if cost is None else cost[0],
            None if cost is None else places(cost[0]),
            None if cost is None else cost[1],
            grant.source,
        )


def consumption_rows(ledger: Ledger, result: engine.EngineResult) -> Iterable[Row]:
    users = {user.account: user.user_id for user in ledger.users.values()}
    for drawdown in result.drawdowns:
        for part in drawdown.parts:
            yield (
                drawdown.date,
                drawdown.txn_id,
                users.get(drawdown.account),
                drawdown.account,
                drawdown.currency,
                None if part.grant is None else part.grant.id,
                part.amount,
                places(part.amount),
                part.restored,
            )


def reversal_rows(ledger: Ledger, result: engine.EngineResult) -> Iterable[Row]:
    users = {user.account: user.user_id for user in ledger.users.values()}
    for move in liability.reversal_moves(result, ledger.entries):
        grant = move.grant
        yield (
            move.date,
            move.txn_id,
            move.reverses,
            move.kind,
            grant.id,
            users.get(grant.account),
            grant.account,
            grant.currency,
            move.amount,
            places(move.amount),
        )


def expiry_rows(ledger: Ledger, result: engine.EngineResult) -> Iterable[Row]:
    users = {user.account: user.user_id for user in ledger.users.values()}
    for expiry in result.expiries:
        grant = expiry.grant
        yield (
            expiry.date,
            expiry.txn_id,
            grant.id,
            users.get(grant.account),
            grant.account,
            grant.currency,
            expiry.amount,
            places(expiry.amount),
        )


def balance_rows(ledger: Ledger) -> Iterable[Row]:
    """The balance log: the daily report's rows on the days a wallet's balance changed."""
    first, last = common.first_date(ledger), common.last_date(ledger)
    if first is None or last is None:
        return
    users = {user.account: user.user_id for user in ledger.users.values()}
    accounts = {user_id: account for account, user_id in users.items()}
    make = daily.rows_from_log if daily.keeps_balance_log(ledger) else daily.daily_rows
    for day, user_id, currency, change, balance in make(ledger, users, None, first, last):
        if change is not None:
            yield (
                day,
                user_id,
                accounts[str(user_id)],
                currency,
                change,
                places(change),
                balance,
                places(balance),
            )


def user_rows(ledger: Ledger) -> Iterable[Row]:
    for user in sorted(ledger.users.values(), key=lambda user: user.user_id):
        yield (user.user_id, user.account, user.segment, user.close_date)


# --- Writing --------------------------------------------------------------------------------


def digest(rows: list[Row]) -> str:
    hasher = hashlib.sha256()
    for row in rows:
        hasher.update(repr(row).encode())
        hasher.update(b"\n")
    return hasher.hexdigest()


def arrow_table(name: str, rows: list[Row]) -> pa.Table:
    schema = SCHEMAS[name]
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    try:
        return pa.Table.from_arrays(
            [
                pa.array(column, type=field.type)
                for column, field in zip(columns, schema, strict=True)
            ],
            schema=schema,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ColumnarError(f"{name}: {exc}") from None


def write_parquet(path: Path, table: pa.Table) -> None:
    """Write atomically: a temporary sibling, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, temporary, compression="zstd")
    os.replace(temporary, path)


def read_manifest(out: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if manifest.get("format") == FORMAT else {}


def export(ledger: Ledger, out: Path) -> ExportResult:
    """Write the ledger's datasets under ``out``, rewriting only the partitions that changed."""
    if out.exists() and not out.is_dir():
        raise ColumnarError(f"{out} exists and is not a folder")
    result = ledger.grants
    tables: dict[str, Iterable[Row]] = {
        "postings": posting_rows(ledger),
        "grants": grant_rows(ledger, result),
        "consumption": consumption_rows(ledger, result),
        "expiries": expiry_rows(ledger, result),
        "reversals": reversal_rows(ledger, result),
        "balances": balance_rows(ledger),
    }
    tables["users"] = user_rows(ledger)
    old = read_manifest(out)
    old_hashes: dict[str, str] = old.get("partitions", {})
    hashes: dict[str, str] = {}
    written: list[str] = []
    skipped: list[str] = []
    for name, rows in tables.items():  # one dataset in memory at a time
        partitions: dict[str, list[Row]] = defaultdict(list)
        if name in PARTITIONED:
            for row in rows:
                partitions[f"{name}/month={month_of(row[0])}/{PART}"].append(row)
        else:
            partitions[f"{name}/{name}.parquet"] = list(rows)
        for relative in sorted(partitions):
            month_rows = partitions.pop(relative)
            hashes[relative] = digest(month_rows)
            if old_hashes.get(relative) == hashes[relative] and (out / relative).is_file():
                skipped.append(relative)
                continue
            write_parquet(out / relative, arrow_table(name, month_rows))
            written.append(relative)
    removed = []
    for relative in sorted(set(old_hashes) - set(hashes)):
        path = out / relative
        if path.is_file():
            path.unlink()
            if path.parent.name.startswith("month=") and not any(path.parent.iterdir()):
                shutil.rmtree(path.parent)
        removed.append(relative)
    first, last = common.first_date(ledger), common.last_date(ledger)
    manifest = {
        "format": FORMAT,
        "ledger": str(ledger.path),
        "first_date": None if first is None else first.isoformat(),
        "last_date": None if last is None else last.isoformat(),
        "partitions": hashes,
        "sources": ledger_sources(ledger),
    }
    manifest_text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    if written or removed or old != manifest:
        write.write_atomic(out / MANIFEST, manifest_text)
    return ExportResult(written, skipped, removed)


# --- Staleness --------------------------------------------------------------------------


def ledger_sources(ledger: Ledger) -> dict[str, Any]:
    """The ledger's files (size, mtime, SHA-256) and the include patterns they hold."""
    files: dict[str, dict[str, Any]] = {}
    patterns: set[str] = set()
    for name in ledger.options.get("include") or [str(ledger.path)]:
        path = Path(name).resolve()
        content = path.read_bytes()
        stat = path.stat()
        files[str(path)] = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": hashlib.sha256(content).hexdigest(),
        }
        patterns.update(incremental.include_patterns(str(path), content))
    return {"files": files, "includes": sorted(patterns)}


def stale(out: Path, ledger_path: Path) -> list[str]:
    """Why the export in ``out`` no longer matches the ledger ``ledger_path`` (empty: it does)."""
    manifest = read_manifest(out)
    sources = manifest.get("sources")
    if not sources:
        return ["the export does not record the ledger files it was made from"]
    reasons = []
    if Path(manifest.get("ledger", "")).resolve() != ledger_path.resolve():
        reasons.append(f"it was made from {manifest.get('ledger')}, not {ledger_path}")
    for name, key in sorted(sources["files"].items()):
        path = Path(name)
        try:
            stat = path.stat()
        except OSError:
            reasons.append(f"{name} is gone")
            continue
        if (stat.st_size, stat.st_mtime_ns) == (key["size"], key["mtime_ns"]):
            continue
        if hashlib.sha256(path.read_bytes()).hexdigest() != key["sha256"]:
            reasons.append(f"{name} changed")
    matched = {
        str(Path(found).resolve())
        for pattern in sources["includes"]
        for found in glob.glob(pattern, recursive=True)
    }
    reasons += [f"{name} is new" for name in sorted(matched - set(sources["files"]))]
    return reasons
