"""The columnar export: a credits ledger as Parquet, partitioned by month, written by period.

``bean-credits export parquet LEDGER -o DIR`` writes six datasets under DIR,
each in Hive-style month folders (``DIR/<table>/month=YYYY-MM/part-<period>.parquet``)
that DuckDB, Spark and Trino read as they are (the ``month`` column comes from
the folder name), and ``users/users.parquet``, not partitioned. What the
datasets hold, and their rows from a loaded ledger, is
:mod:`beancount_credits.columnar.datasets`; this module writes them and the
manifest.

Numbers are ``decimal(38, 9)``: exact, and a type every engine reads. A
number with more than nine decimal places is refused with an error.

**By period, bounded.** Each period of the ledger (:mod:`beancount_credits.columnar.periods`:
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
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from beancount.core import data

from beancount_credits.columnar import periods as columnar_periods
from beancount_credits.columnar.datasets import (
    COLUMNS,
    PARTITIONED,
    Row,
    month_of,
    period_rows,
    places,
    transactions_span,
    user_rows,
)
from beancount_credits.columnar.periods import Period
from beancount_credits.engine import asof
from beancount_credits.jobs import close_period as periods
from beancount_credits.ledger import Ledger, LedgerError, format_errors, incremental, load, write

FORMAT = "beancount-credits-parquet/5"  # bump when a schema changes: everything is rewritten
MANIFEST = "manifest.json"
PART_GLOB = "*.parquet"  # a month folder holds one file per period with rows in that month


class ColumnarError(Exception):
    """An export that cannot be written as asked; the message says why."""


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
        # Staged partitions to turn into Parquet once their ledger is released:
        # (dataset, staged rows, destination).
        self.pending: list[tuple[str, Path, Path]] = []

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
                staged.unlink()
            else:
                self.pending.append((name, staged, self.out / relative))
                self.written.append(relative)
        self.hashes.update(hashes)
        return hashes

    def flush(self) -> None:
        """Write the pending partitions as Parquet.

        Called once every period's ledger is released: DuckDB and its writer's
        buffers then take memory the loads gave back, and the export's peak
        stays near the largest period's load. The staged rows wait on disk
        (JSON Lines under the export's staging folder) until then.
        """
        for name, staged, path in self.pending:
            self.write_parquet(name, staged, path)
            staged.unlink()
        self.pending.clear()

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


def export(
    ledger: Ledger | Path, out: Path, step: Callable[[str], None] | None = None
) -> ExportResult:
    """Export the ledger's whole history under ``out``, period by period (module docstring).

    ``ledger`` is the active ledger's main file (loaded here, then released
    before the closed periods are loaded) or that file already loaded.
    ``step(name)`` is told of each period as its turn comes (the active one,
    then each closed one): a progress bar's hook.
    """
    step = step or (lambda _name: None)
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
        step(f"period {active.name} (active)")
        active_ledger.grants  # noqa: B018 -- books through the horizon, which the manifest keeps
        horizon = active_ledger.timeline.horizon
        pending = pending_record(*active_ledger.timeline.upcoming())
        hashes = writer.period(active_ledger, active, release=owned)
        active_record = period_record(
            active, None, hashes, transactions_span(active_ledger, active)
        )
        writer.dataset("users", user_rows(active_ledger), None)
        del active_ledger  # the caller's reference aside, the active load is released here
        loaded_chart: columnar_periods.Chart | None = None
        for period in closed:
            step(f"period {period.name}")
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
        # Parquet last, every period's ledger released: DuckDB (its library, its
        # connection, its writer's buffers) never sits beside a loaded period.
        writer.flush()
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
        "pending": pending,
        "periods": records,
        "partitions": writer.hashes,
        "sources": sources,
    }
    manifest_text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    if writer.written or removed or old != json.loads(manifest_text):
        write.write_atomic(out / MANIFEST, manifest_text)
    return ExportResult(writer.written, writer.skipped, removed, loaded)


def pending_record(
    upcoming: tuple[data.Transaction, ...], through: datetime.date | None
) -> dict[str, Any]:
    """What the engine books past the horizon, tallied by day, kind and commodity.

    ``days``: ``[date, kind, commodity, count, credits]`` rows (credits as exact
    text); ``through``: the day they are complete through (None: every one
    to come). A report for a day past the horizon says from it what the
    export leaves out, as the ledger path's notice does.
    """
    rows: dict[tuple[str, str, str], list[Any]] = {}
    for entry in upcoming:
        for index, (currency, number) in enumerate(asof.pending_credits(entry)):
            key = (entry.date.isoformat(), asof.pending_kind(entry), currency)
            row = rows.setdefault(key, [0, Decimal(0)])
            row[0] += 1 if index == 0 else 0  # an entry is counted once
            row[1] += number
    return {
        "through": None if through is None else through.isoformat(),
        "days": [[*key, count, str(number)] for key, (count, number) in sorted(rows.items())],
    }


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
