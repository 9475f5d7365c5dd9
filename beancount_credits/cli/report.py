"""``bean-credits report`` and ``export``: tables of the ledger, and the columnar export."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import click

from beancount_credits import exports
from beancount_credits.cli.common import (
    LEDGER,
    CommandError,
    load_or_fail,
    main,
    progress,
    report_filters,
    say_as_of,
)
from beancount_credits.jobs import close_period as periods
from beancount_credits.ledger import LedgerError
from beancount_credits.reports import REPORTS, Filters, ReportError
from beancount_credits.reports import run as run_report
from beancount_credits.reports.render import render_text


@main.command(epilog="Reports: " + ", ".join(sorted(REPORTS)) + " (docs/reports.md).")
@click.argument("name", metavar="NAME")
@LEDGER
@report_filters
@click.option(
    "--allow-errors", is_flag=True, help="Report even if the ledger has errors (they are listed)."
)
@click.option(
    "--format",
    "fmt",
    metavar="|".join(exports.FORMATS),
    help="Output format (default: from the -o suffix, else text).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to FILE (atomically) instead of standard output.",
)
@click.option(
    "--source",
    metavar="DIR|URI",
    help="usage, rates, liability, daily, balances: read a parquet export, not the ledger "
    "(a folder; with --engine spark also s3a://, hdfs://... URIs).",
)
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="What runs the queries on --source: DuckDB, or Apache Spark (local or spark-submit).",
)
@click.option(
    "--raw-csv",
    is_flag=True,
    help="CSV: write text cells as they are (no ' before a leading =, +, -, @, tab or CR).",
)
def report(
    name: str,
    ledger: Path,
    filters: Filters,
    allow_errors: bool,
    fmt: str | None,
    output: Path | None,
    source: str | None = None,
    engine: str = "duckdb",
    raw_csv: bool = False,
) -> None:
    """Print report NAME of LEDGER.

    NAME is one of the reports listed below. --sort takes a column name as
    the report prints it.

    The audit report runs on a ledger with errors too: finding edits of
    recorded history, which make bean-check fail, is part of its job.
    """
    if name not in REPORTS:
        raise click.UsageError(f"unknown report {name!r}; reports: {', '.join(sorted(REPORTS))}")
    fmt = check_output(fmt, output)
    date_from, date_to = filters.date_from, filters.date_to
    assert date_to is not None  # report_filters defaults it to today
    if source is not None:
        # duckdb, spark only when asked
        from beancount_credits import columnar
        from beancount_credits.columnar import reports as columnar_reports

        try:
            opened = columnar_reports.open_source(source, engine)
            stale = columnar.stale(opened.manifest, ledger)
            if stale:
                more = f" (and {len(stale) - 3} more)" if len(stale) > 3 else ""
                click.echo(
                    f"warning: the export in {source} is older than {ledger}: "
                    f"{'; '.join(stale[:3])}{more}. Re-run: bean-credits export parquet "
                    f"{ledger} -o {source}",
                    err=True,
                )
            notice = columnar_reports.horizon_notice(opened, date_to)
            if notice is not None:
                click.echo(notice, err=True)
            table = columnar_reports.run(name, opened, filters)
            write_report(table, fmt, output, exports.ledger_name(ledger, {}), raw_csv)
        except (ReportError, exports.ExportError) as exc:
            raise CommandError(str(exc)) from None
        return
    if engine != "duckdb":
        raise click.UsageError("--engine applies to reports on an export (--source)")
    ledger = periods.report_path(ledger, name, date_from, date_to)  # archive when reaching back
    loaded = load_or_fail(ledger, allow_errors or name == "audit")
    try:
        say_as_of(loaded, date_to)
        table = run_report(name, loaded, filters)
        write_report(table, fmt, output, exports.ledger_name(ledger, loaded.options), raw_csv)
    except (ReportError, LedgerError, exports.ExportError) as exc:
        raise CommandError(str(exc)) from None


def check_output(fmt: str | None, output: Path | None) -> str:
    """The export format asked for (explicitly, or by the -o suffix); refuse bad ones early."""
    if output is not None and not output.parent.is_dir():
        raise CommandError(f"-o {output}: no such folder {output.parent}")
    if fmt is None:
        fmt = (exports.format_of(output) if output else None) or "text"
    try:
        exports.check_format(fmt)
    except exports.ExportError as exc:
        raise CommandError(str(exc)) from None
    if output is None and exports.is_binary(fmt) and sys.stdout.isatty():
        raise CommandError(f"{fmt} is a binary format: not writing it to a terminal; use -o FILE")
    return fmt


def write_report(
    table, fmt: str, output: Path | None, ledger_name: str, raw_csv: bool = False
) -> None:  # type: ignore[no-untyped-def]
    """The report to ``output``, or to standard output once it is complete."""
    if output is not None:
        exports.export_file(table, fmt, output, ledger_name=ledger_name, raw_csv=raw_csv)
    elif fmt == "text":
        render_text(table, sys.stdout)
    else:
        # Spool to disk first: a report that fails half-way prints nothing.
        with tempfile.TemporaryFile() as spool:
            exports.export(table, fmt, spool, ledger_name=ledger_name, raw_csv=raw_csv)
            spool.seek(0)
            sys.stdout.flush()
            shutil.copyfileobj(spool, sys.stdout.buffer)
            sys.stdout.buffer.flush()


@main.group("export")
def export_group() -> None:
    """Export the ledger for other tools (parquet: a columnar export for DuckDB, Spark, Trino)."""


@export_group.command("parquet")
@LEDGER
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The export folder (created; unchanged months are not rewritten).",
)
def export_parquet(ledger: Path, output: Path) -> None:
    """Export LEDGER's whole history as Parquet, partitioned by month, into a folder.

    Closed periods are exported once, from their archive; each run loads the
    active period only (and a closed period whose archive changed).
    """
    from beancount_credits import columnar  # duckdb only when asked for
    from beancount_credits.columnar import periods as columnar_periods

    try:
        closed = columnar_periods.closed_periods(ledger)
    except columnar_periods.PeriodError as exc:
        raise CommandError(str(exc)) from None
    try:
        with progress(f"export parquet {output}", 2 + len(closed)) as step:
            step("loading the ledger")
            result = columnar.export(ledger, output, step)  # loads one period at a time
    except columnar.ColumnarError as exc:
        raise CommandError(str(exc)) from None
    click.echo(f"export parquet {output}: {result.summary()}")
    for name in result.loaded:
        click.echo(f"  loaded period {name}" + (" (active)" if name.endswith("--") else ""))
    for relative in result.written:
        click.echo(f"  wrote {relative}")
    for relative in result.removed:
        click.echo(f"  removed {relative}")
