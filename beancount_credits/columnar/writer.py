"""The columnar export: a credits ledger as Parquet, partitioned by month, written by period.

``bean-credits export parquet LEDGER -o DIR`` writes six datasets under DIR,
each in Hive-style month folders (``DIR/<table>/month=YYYY-MM/part-<period>.parquet``)
that DuckDB, Spark and Trino read as they are (the ``month`` column comes from
the folder name):

- ``postings``: every posting of every transaction (generated expiries
  included), with the wallet's ``user_id`` and, for a wallet posting, its
  ``kind`` as the statement classifies it (earned, redeemed, expired);
- ``grants``: every grant as it was booked (amount, what it repaid of an
  overdraft, expiry, priority, unit cost, source); what became of it is in
  the three dated datasets that follow;
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
(10.50: 2), which a fixed-scale decimal loses: the reports on the export print
10.50 where the ledger path does.

**By period, bounded.** Each period of the ledger (:mod:`.columnar_periods`:
the closed periods in ``archive/``, then the active one) writes the rows dated
in it to files of its own, ``part-<its first day>.parquet``, and is loaded
alone: a closed period from its archive, the active period from the ledger.
Peak memory is that of the largest period, never the history's.

**Incremental.** ``DIR/manifest.json`` keeps, per period, a key of what its
rows depend on and a content hash of every file. A closed period whose key did
not change is neither loaded nor written again; the active period is loaded
every time and only its files whose rows changed are rewritten (to a temporary
file, then renamed). Rows stream through once, hashed and staged as JSON Lines
with exact decimal text, and DuckDB writes the Parquet file of a partition
that changed: no list of rows or Arrow table is held. Files no period
produces any more are removed. The manifest is written last, so an
interrupted export is redone next time.

**Staleness.** The manifest also records every ledger file the export was
made from (size, mtime, SHA-256; the archives' too) and the include patterns in
them; :func:`stale` says which files changed, went away or newly match an
include since, so ``report --source`` can warn that the export is older than
the ledger.
"""

from __future__ import annotations

import dataclasses
import datetime
import glob
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from beancount.core import data

from beancount_credits import engine
from beancount_credits.columnar import periods as columnar_periods
from beancount_credits.columnar.periods import Period
from beancount_credits.engine import asof
from beancount_credits.jobs import close_period as periods
from beancount_credits.ledger import Ledger, LedgerError, format_errors, incremental, load, write
from beancount_credits.reports import common, daily, liability
from beancount_credits.reports.statement import classify

FORMAT = "beancount-credits-parquet/4"  # bump when a schema changes: everything is rewritten
MANIFEST = "manifest.json"
PART_GLOB = "*.parquet"  # a month folder holds one file per period with rows in that month


class ColumnarError(Exception):
    """An export that cannot be written as asked; the message says why."""


COLUMNS: dict[str, list[tuple[str, str]]] = {
    "postings": [
        ("date", "date"),
        ("txn_id", "string"),
        ("flag", "string"),
        ("payee", "string"),
        ("narration", "string"),
        ("tags", "strings"),
        ("links", "strings"),
        ("account", "string"),
        ("user_id", "string"),
        ("commodity", "string"),
        ("number", "number"),
        ("places", "int8"),
        ("kind", "string"),
        ("member", "string"),
        ("session", "string"),
        ("order_id", "string"),
        ("reverses", "string"),
        ("generated", "bool"),
        ("filename", "string"),
        ("lineno", "int64"),
    ],
    "grants": [
        ("date", "date"),
        ("grant_id", "string"),
        ("txn_id", "string"),
        ("user_id", "string"),
        ("account", "string"),
        ("commodity", "string"),
        ("amount", "number"),
        ("amount_places", "int8"),
        ("repaid", "number"),
        ("repaid_places", "int8"),
        ("expires", "date"),
        ("priority", "int64"),
        ("unit_cost", "number"),
        ("unit_cost_places", "int32"),  # decimal places as written: 0.10 -> 2
        ("cost_currency", "string"),
        ("source", "string"),
    ],
    "consumption": [
        ("date", "date"),
        ("txn_id", "string"),
        ("user_id", "string"),
        ("account", "string"),
        ("commodity", "string"),
        ("grant_id", "string"),
        ("amount", "number"),
        ("places", "int8"),
        ("restored", "number"),
    ],
    "expiries": [
        ("date", "date"),
        ("txn_id", "string"),
        ("grant_id", "string"),
        ("user_id", "string"),
        ("account", "string"),
        ("commodity", "string"),
        ("amount", "number"),
        ("places", "int8"),
    ],
    "reversals": [
        ("date", "date"),
        ("txn_id", "string"),
        ("reverses", "string"),
        ("kind", "string"),
        ("grant_id", "string"),
        ("user_id", "string"),
        ("account", "string"),
        ("commodity", "string"),
        ("amount", "number"),
        ("places", "int8"),
    ],
    "balances": [
        ("date", "date"),
        ("user_id", "string"),
        ("account", "string"),
        ("commodity", "string"),
        ("change", "number"),
        ("change_places", "int8"),
        ("balance", "number"),
        ("balance_places", "int8"),
    ],
    "users": [
        ("user_id", "string"),
        ("account", "string"),
        ("segment", "string"),
        ("close_date", "date"),
    ],
}
PARTITIONED = ("postings", "grants", "consumption", "expiries", "reversals", "balances")
ENGINE_DATASETS = ("grants", "consumption", "expiries", "reversals")  # the grant engine's records

Row = tuple[Any, ...]


@dataclasses.dataclass
class ExportResult:
    """What an export wrote, skipped and removed (paths relative to the export folder)."""

    written: list[str]
    skipped: list[str]
    removed: list[str]
    loaded: list[str] = dataclasses.field(default_factory=list)  # periods loaded, by name

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


def posting_rows(ledger: Ledger, period: Period) -> Iterable[Row]:
    users = {user.account: user.user_id for user in ledger.users.values()}
    config = ledger.config
    for entry in ledger.entries:
        if not isinstance(entry, data.Transaction) or not period.holds(entry.date):
            continue  # a carry-forward is dated in the period before: not activity
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


def grant_rows(ledger: Ledger, result: engine.EngineResult, period: Period) -> Iterable[Row]:
    """The grants booked in the period (a carried grant belongs to the period that granted it)."""
    users = {user.account: user.user_id for user in ledger.users.values()}
    for grant in result.grants.values():
        if not period.holds(grant.date):
            continue
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
            grant.repaid,
            places(grant.repaid),
            grant.expires,
            grant.priority,
            None if cost is None else cost[0],
            None if cost is None else places(cost[0]),
            None if cost is None else cost[1],
            grant.source,
        )


def consumption_rows(ledger: Ledger, result: engine.EngineResult, period: Period) -> Iterable[Row]:
    """The period's draw-downs (what a carried grant lost before the close is not one)."""
    users = {user.account: user.user_id for user in ledger.users.values()}
    for drawdown in result.drawdowns:
        if not period.holds(drawdown.date):
            continue
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


def reversal_rows(ledger: Ledger, result: engine.EngineResult, period: Period) -> Iterable[Row]:
    users = {user.account: user.user_id for user in ledger.users.values()}
    for move in liability.reversal_moves(result, ledger.entries):
        if not period.holds(move.date):
            continue
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


def expiry_rows(ledger: Ledger, result: engine.EngineResult, period: Period) -> Iterable[Row]:
    users = {user.account: user.user_id for user in ledger.users.values()}
    for expiry in result.expiries:
        if not period.holds(expiry.date):
            continue
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


def balance_rows(ledger: Ledger, period: Period) -> Iterable[Row]:
    """The balance log: the daily report's rows on the days of the period a balance changed.

    Summed from the postings (:func:`daily.daily_rows`): a closed period's
    archive lacks the assertion of its last day (dated the day after, it stays
    with the next period), and the carry-forward it opened with gives each
    wallet its opening balance.
    """
    span = transactions_span(ledger, period)
    if span is None:
        return
    start, end = span
    users = {user.account: user.user_id for user in ledger.users.values()}
    accounts = {user_id: account for account, user_id in users.items()}
    for day, user_id, currency, change, balance in daily.daily_rows(
        ledger, users, None, start, end
    ):
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


def transactions_span(ledger: Ledger, period: Period) -> tuple[datetime.date, datetime.date] | None:
    """The first and last date of the period's transactions (generated expiries included)."""
    dated = (entry for entry in ledger.entries if isinstance(entry, data.Transaction))
    first = next((entry.date for entry in dated if period.holds(entry.date)), None)
    backwards = (entry for entry in reversed(ledger.entries) if isinstance(entry, data.Transaction))
    last = next((entry.date for entry in backwards if period.holds(entry.date)), None)
    return None if first is None or last is None else (first, last)


def user_rows(ledger: Ledger) -> Iterable[Row]:
    for user in sorted(ledger.users.values(), key=lambda user: user.user_id):
        yield (user.user_id, user.account, user.segment, user.close_date)


# --- Writing --------------------------------------------------------------------------------


# The DuckDB type of each column kind (DuckDB writes the Parquet files).
DUCKDB_TYPES = {
    "date": "DATE",
    "string": "VARCHAR",
    "strings": "VARCHAR[]",
    "number": "DECIMAL(38,9)",
    "int8": "TINYINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "bool": "BOOLEAN",
}
STAGING = ".bean-credits-staging"  # a run's temporaries, under the export folder


def sql_text(value: str) -> str:
    """A string as an SQL literal (DuckDB: quotes doubled, no backslash escapes)."""
    return "'" + value.replace("'", "''") + "'"


def json_value(name: str, value: object) -> object:
    """A row's value as JSON: exact decimal text, ISO dates, lists."""
    if isinstance(value, Decimal):
        if places(value) > 9:
            raise ColumnarError(
                f"{name}: {value} has more than 9 decimal places (the export keeps 9)"
            )
        return format(value, "f")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def empty_select(name: str) -> str:
    """A query with a dataset's columns and no rows (an empty dataset's view)."""
    columns = ", ".join(
        f'CAST(NULL AS {DUCKDB_TYPES[kind]}) AS "{column}"' for column, kind in COLUMNS[name]
    )
    return f"SELECT {columns} WHERE false"


def read_manifest(out: Path) -> dict[str, Any]:
    """The export's manifest, or {} when there is none of this format."""
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if check_manifest(manifest) else {}


def check_manifest(manifest: object) -> bool:
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def part_name(name: str, month: str, period: Period) -> str:
    return f"{name}/month={month}/part-{period.tag}.parquet"


def period_rows(
    ledger: Ledger, period: Period, release: bool
) -> Iterator[tuple[str, Iterable[Row]]]:
    """Each dataset's rows of one period of a loaded ledger, one dataset at a time.

    With ``release`` the engine's records are dropped from the ledger once
    their rows are written, before the postings' rows are made, so the peak
    stays near the load's own (``bench/bench_columnar.py``).
    """
    result = ledger.grants
    yield "grants", grant_rows(ledger, result, period)
    yield "consumption", consumption_rows(ledger, result, period)
    yield "expiries", expiry_rows(ledger, result, period)
    yield "reversals", reversal_rows(ledger, result, period)
    del result
    if release:  # memory the rows of the postings can reuse
        ledger.__dict__.pop("grants", None)  # functools.cached_property keeps it there
        ledger.timeline = asof.Timeline(ledger.entries, ledger.config)  # and its owner
    yield "postings", posting_rows(ledger, period)
    yield "balances", balance_rows(ledger, period)


class Writer:
    """Writes partitions whose rows changed; remembers what it wrote, skipped and kept.

    A dataset's rows stream through once: each partition's rows are hashed and
    staged as JSON Lines (exact decimal text), and DuckDB turns a staged file
    whose hash changed into the partition's Parquet file. No list of rows, no
    Arrow table: the export's memory is the loaded period's.
    """

    def __init__(self, out: Path, old: dict[str, Any]) -> None:
        self.out = out
        self.old_hashes: dict[str, str] = old.get("partitions", {})
        self.hashes: dict[str, str] = {}
        self.written: list[str] = []
        self.skipped: list[str] = []
        self.staging = out / STAGING
        shutil.rmtree(self.staging, ignore_errors=True)  # an interrupted run's
        self.staged = 0
        self.db: Any = None

    def dataset(self, name: str, rows: Iterable[Row], period: Period | None) -> dict[str, str]:
        """Write one dataset of one period (None: the unpartitioned ``users``)."""
        columns = [column for column, _kind in COLUMNS[name]]
        partitions: dict[str, tuple[Any, Any, Path]] = {}
        if period is None:
            partitions[f"{name}/{name}.parquet"] = self.stage()
        try:
            for row in rows:
                relative = (
                    f"{name}/{name}.parquet"
                    if period is None
                    else part_name(name, month_of(row[0]), period)
                )
                state = partitions.get(relative) or partitions.setdefault(relative, self.stage())
                hasher, handle, _path = state
                hasher.update(repr(row).encode())
                hasher.update(b"\n")
                values = {
                    column: json_value(name, value)
                    for column, value in zip(columns, row, strict=True)
                }
                handle.write(json.dumps(values, ensure_ascii=False))
                handle.write("\n")
        finally:
            for _hasher, handle, _path in partitions.values():
                handle.close()
        hashes = {}
        for relative in sorted(partitions):
            hasher, _handle, staged = partitions[relative]
            hashes[relative] = hasher.hexdigest()
            unchanged = self.old_hashes.get(relative) == hashes[relative]
            if unchanged and (self.out / relative).is_file():
                self.skipped.append(relative)
            else:
                self.write_parquet(name, staged, self.out / relative)
                self.written.append(relative)
            staged.unlink()
        self.hashes.update(hashes)
        return hashes

    def stage(self) -> tuple[Any, Any, Path]:
        """A new staged file: (hash of its rows, its handle, its path)."""
        self.staging.mkdir(parents=True, exist_ok=True)
        self.staged += 1
        path = self.staging / f"{self.staged}.jsonl"
        return hashlib.sha256(), path.open("w", encoding="utf-8"), path

    def write_parquet(self, name: str, staged: Path, path: Path) -> None:
        """The staged rows as a Parquet file, written atomically (a temporary, then rename)."""
        if self.db is None:
            import duckdb  # only when a file is written

            self.db = duckdb.connect()
            self.db.execute("SET preserve_insertion_order = true")  # the rows' order is theirs
            self.db.execute("SET threads = 1")  # one file at a time: a thread's buffers, not two
        types = ", ".join(
            f"{sql_text(column)}: {sql_text(DUCKDB_TYPES[kind])}" for column, kind in COLUMNS[name]
        )
        select = ", ".join(f'"{column}"' for column, _kind in COLUMNS[name])
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        self.db.execute(
            f"COPY (SELECT {select} FROM read_json({sql_text(str(staged))}, "
            f"format = 'newline_delimited', columns = {{{types}}})) "
            f"TO {sql_text(str(temporary))} "
            # Smaller row groups than DuckDB's default: less buffered per file.
            "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 16384)"
        )
        os.replace(temporary, path)

    def period(self, ledger: Ledger, period: Period, release: bool) -> dict[str, str]:
        """Every dataset of one period, from its loaded ledger (one dataset at a time)."""
        hashes: dict[str, str] = {}
        for name, rows in period_rows(ledger, period, release):
            hashes.update(self.dataset(name, rows, period))
        return hashes

    def keep(self, hashes: dict[str, str]) -> None:
        """A closed period exported before and unchanged: its files stay as they are."""
        self.hashes.update(hashes)
        self.skipped.extend(sorted(hashes))

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
        shutil.rmtree(self.staging, ignore_errors=True)


def sweep(out: Path, keep: Iterable[str]) -> list[str]:
    """Remove the files under the datasets' month folders that no period writes any more.

    That includes an older export format's files and an interrupted write's
    temporaries: DuckDB and Spark would read every ``*.parquet`` they find.
    """
    kept = set(keep)
    removed = []
    for name in PARTITIONED:
        for folder in sorted((out / name).glob("month=*")):
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                relative = path.relative_to(out).as_posix()
                if relative in kept or not path.is_file():
                    continue
                path.unlink()
                if not path.name.startswith("."):
                    removed.append(relative)
            if not any(folder.iterdir()):
                folder.rmdir()
    return removed


def export(ledger: Ledger | Path, out: Path) -> ExportResult:
    """Export the ledger's whole history under ``out``, period by period (module docstring).

    ``ledger`` is the active ledger's main file (loaded here, then released
    before the closed periods are loaded) or that file already loaded.
    """
    if out.exists() and not out.is_dir():
        raise ColumnarError(f"{out} exists and is not a folder")
    main = ledger.path if isinstance(ledger, Ledger) else ledger
    old = read_manifest(out)
    try:
        closed = columnar_periods.closed_periods(main)
    except columnar_periods.PeriodError as exc:
        raise ColumnarError(str(exc)) from None
    active_ledger = ledger if isinstance(ledger, Ledger) else load_active(main)
    start = periods.period_start(main.read_text(encoding="utf-8")) if closed else None
    active = Period(start or columnar_periods.first_day(active_ledger))
    try:
        if closed:
            columnar_periods.check_contiguous(closed, active)
    except columnar_periods.PeriodError as exc:
        raise ColumnarError(str(exc)) from None

    # What each closed period's rows depend on, and which of them changed.
    chart = columnar_periods.chart_lines(active_ledger.entries)
    plugins = list(active_ledger.options.get("plugin") or ())
    old_periods = {entry.get("name"): entry for entry in old.get("periods", [])}
    sources = ledger_sources(active_ledger)
    keys: dict[Period, str] = {}
    for period in closed:
        files = {
            str(path): columnar_periods.file_record(path)
            for path in columnar_periods.archive_files(period)
        }
        sources["files"].update(files)
        index = period.archive / periods.INDEX_NAME  # type: ignore[operator]
        sources["includes"] = sorted(
            {*sources["includes"], *incremental.include_patterns(str(index), index.read_bytes())}
        )
        keys[period] = columnar_periods.period_key(FORMAT, period, files, chart, plugins)

    writer = Writer(out, old)
    try:
        records: list[dict[str, Any]] = []
        loaded = [active.name]
        owned = not isinstance(ledger, Ledger)
        active_ledger.grants  # noqa: B018 -- books through the horizon, which the manifest keeps
        horizon = active_ledger.timeline.horizon
        hashes = writer.period(active_ledger, active, release=owned)
        active_record = period_record(
            active, None, hashes, transactions_span(active_ledger, active)
        )
        writer.dataset("users", user_rows(active_ledger), None)
        del active_ledger  # the caller's reference aside, the active load is released here
        loaded_chart: columnar_periods.Chart | None = None
        for period in closed:
            before = old_periods.get(period.name)
            if (
                before is not None
                and before.get("key") == keys[period]
                and all((out / relative).is_file() for relative in before.get("partitions", {}))
            ):
                writer.keep(before["partitions"])
                records.append(before)
                continue
            try:
                if loaded_chart is None:
                    loaded_chart = columnar_periods.parse_chart(main)
                period_ledger = columnar_periods.load_closed(period, loaded_chart)
            except columnar_periods.PeriodError as exc:
                raise ColumnarError(str(exc)) from None
            loaded.append(period.name)
            hashes = writer.period(period_ledger, period, release=True)
            span = transactions_span(period_ledger, period)
            del period_ledger  # one closed period in memory at a time
            records.append(period_record(period, keys[period], hashes, span))
        records.append(active_record)
    finally:
        writer.close()
    removed = sorted({*(set(writer.old_hashes) - set(writer.hashes)), *sweep(out, writer.hashes)})
    spans = [(record["first_date"], record["last_date"]) for record in records]
    firsts = [first for first, _last in spans if first is not None]
    lasts = [last for _first, last in spans if last is not None]
    manifest = {
        "format": FORMAT,
        "ledger": str(main),
        "first_date": min(firsts, default=None),
        "last_date": max(lasts, default=None),
        # The last day the ledger text recorded: a report for a later day says
        # what the export leaves out (columnar_reports.horizon_notice).
        "horizon": None if horizon is None else horizon.isoformat(),
        "periods": records,
        "partitions": writer.hashes,
        "sources": sources,
    }
    manifest_text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    if writer.written or removed or old != json.loads(manifest_text):
        write.write_atomic(out / MANIFEST, manifest_text)
    return ExportResult(writer.written, writer.skipped, removed, loaded)


def load_active(main: Path) -> Ledger:
    """The active ledger, as bean-check loads it (no pickle cache: its load peaks higher)."""
    try:
        loaded = load(main, cache=False)
    except LedgerError as exc:
        raise ColumnarError(str(exc)) from None
    if loaded.errors:
        raise ColumnarError(
            f"{len(loaded.errors)} error(s) in {main}; fix them (bean-check lists them):\n"
            + format_errors(loaded.errors)
        )
    return loaded


def period_record(
    period: Period,
    key: str | None,
    hashes: dict[str, str],
    span: tuple[datetime.date, datetime.date] | None,
) -> dict[str, Any]:
    """A period as the manifest keeps it: its days, key, files and transactions' span."""
    return {
        "name": period.name,
        "first": None if period.first is None else period.first.isoformat(),
        "last": None if period.last is None else period.last.isoformat(),
        "key": key,
        "partitions": dict(sorted(hashes.items())),
        "first_date": None if span is None else span[0].isoformat(),
        "last_date": None if span is None else span[1].isoformat(),
    }


# --- Staleness --------------------------------------------------------------------------


def ledger_sources(ledger: Ledger) -> dict[str, Any]:
    """The ledger's files (size, mtime, SHA-256) and the include patterns they hold."""
    files: dict[str, dict[str, Any]] = {}
    patterns: set[str] = set()
    for name in ledger.options.get("include") or [str(ledger.path)]:
        path = Path(name).resolve()
        files[str(path)] = columnar_periods.file_record(path)
        patterns.update(incremental.include_patterns(str(path), path.read_bytes()))
    return {"files": files, "includes": sorted(patterns)}


def stale(manifest: dict[str, Any] | Path, ledger_path: Path) -> list[str]:
    """Why the export (its folder or manifest) no longer matches the ledger (empty: it does)."""
    if isinstance(manifest, Path):
        manifest = read_manifest(manifest)
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
