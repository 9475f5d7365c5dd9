"""The ``bean-credits`` command line (click); logic lives in the modules it calls."""

from __future__ import annotations

import datetime
import shutil
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import click
from beancount.core import data

from beancount_credits import __version__, daily, engine, exports, provenance, verify, write
from beancount_credits.ledger import LedgerError, format_errors, load
from beancount_credits.reports import REPORTS, Filters, ReportError
from beancount_credits.reports import run as run_report
from beancount_credits.reports.render import render_text


class DateType(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, datetime.date):
            return value
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD)", param, ctx)


DATE = DateType()
LEDGER = click.argument(
    "ledger", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="LEDGER"
)


@click.group()
@click.version_option(__version__, prog_name="bean-credits")
def main() -> None:
    """A ledger of user credits kept as plain Beancount text."""


@main.command()
@click.argument("name", metavar="NAME")
@LEDGER
@click.option("--user", "user", metavar="USER_ID", help="Only this user (by user_id).")
@click.option("--segment", help="Only users of this segment.")
@click.option("--commodity", help="Only this credit type (e.g. CREDIT, SESSION).")
@click.option("--from", "date_from", type=DATE, help="From this date (inclusive).")
@click.option("--to", "date_to", type=DATE, help="Through this date (inclusive); default: today.")
@click.option(
    "--factor",
    type=click.FloatRange(min=1),
    help="audit: flag a day's draw-down above FACTOR x the user's median day (default 5).",
)
@click.option("--member", metavar="MEMBER", help="Only this team member's transactions.")
@click.option("--period", type=click.Choice(["day", "week", "month"]), help="Default: month.")
@click.option("--days", type=click.IntRange(min=1), help="expiring: within this many days (30).")
@click.option("--sort", "sort_field", metavar="FIELD", help="Sort the rows by this column.")
@click.option("--desc", is_flag=True, help="Sort in descending order.")
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
def report(
    name: str,
    ledger: Path,
    user: str | None,
    segment: str | None,
    commodity: str | None,
    date_from: datetime.date | None,
    date_to: datetime.date | None,
    factor: float | None,
    member: str | None,
    period: str | None,
    days: int | None,
    sort_field: str | None,
    desc: bool,
    allow_errors: bool,
    fmt: str | None,
    output: Path | None,
) -> None:
    """Print report NAME of LEDGER.

    Reports: audit, balances, daily, expiring, statement, usage (README,
    "Reports"). --sort takes a column name as the report prints it.

    The audit report runs on a ledger with errors too: finding edits of
    recorded history, which make bean-check fail, is part of its job.
    """
    if name not in REPORTS:
        raise click.UsageError(f"unknown report {name!r}; reports: {', '.join(sorted(REPORTS))}")
    fmt = check_output(fmt, output)
    if date_to is None:
        # The edge of the system decides what "now" is; the engine never does.
        date_to = datetime.date.today()
    if date_from is not None and date_from > date_to:
        raise click.UsageError(f"--from {date_from} is after --to {date_to}")
    filters = Filters(
        user=user,
        segment=segment,
        commodity=commodity,
        date_from=date_from,
        date_to=date_to,
        factor=None if factor is None else Decimal(str(factor)),
        member=member,
        period=period,  # type: ignore[arg-type]
        days=days,
        sort=sort_field,
        desc=desc,
    )
    loaded = load_or_fail(ledger, allow_errors or name == "audit")
    try:
        table = run_report(name, loaded, filters)
        write_report(table, fmt, output, exports.ledger_name(ledger, loaded.options))
    except (ReportError, LedgerError, exports.ExportError) as exc:
        raise click.ClickException(str(exc)) from None


def check_output(fmt: str | None, output: Path | None) -> str:
    """The export format asked for (explicitly, or by the -o suffix); refuse bad ones early."""
    if fmt is None:
        fmt = (exports.format_of(output) if output else None) or "text"
    try:
        exports.check_format(fmt)
    except exports.ExportError as exc:
        raise click.ClickException(str(exc)) from None
    if output is None and exports.is_binary(fmt) and sys.stdout.isatty():
        raise click.ClickException(
            f"{fmt} is a binary format: not writing it to a terminal; use -o FILE"
        )
    return fmt


def write_report(table, fmt: str, output: Path | None, ledger_name: str) -> None:  # type: ignore[no-untyped-def]
    """The report to ``output``, or to standard output once it is complete."""
    if output is not None:
        exports.export_file(table, fmt, output, ledger_name=ledger_name)
    elif fmt == "text":
        render_text(table, sys.stdout)
    else:
        # Spool to disk first: a report that fails half-way prints nothing.
        with tempfile.TemporaryFile() as spool:
            exports.export(table, fmt, spool, ledger_name=ledger_name)
            spool.seek(0)
            sys.stdout.flush()
            shutil.copyfileobj(spool, sys.stdout.buffer)
            sys.stdout.buffer.flush()


@main.command("close-day")
@LEDGER
@click.option(
    "--date",
    "day",
    type=DATE,
    help="The day to close (its activity is complete); default: yesterday.",
)
@click.option("--commit", is_flag=True, help="Commit what was written to git.")
def close_day(ledger: Path, day: datetime.date | None, commit: bool) -> None:
    """Write the expiries and end-of-day balances up to a day into LEDGER's log."""
    today = datetime.date.today()
    day = day or today - datetime.timedelta(days=1)
    if day >= today:
        raise click.UsageError(f"--date {day} has not ended yet (today is {today})")
    try:
        with write.ledger_lock(ledger):
            loaded = load_or_fail(ledger, allow_errors=False, for_write=True)
            planned = daily.plan(loaded, day)
            changes = daily.changes(loaded, planned)
            message = f"close-day {day}: {planned.summary()}"
            result = write.apply(
                ledger,
                write.ledger_files(ledger, loaded.options),
                changes,
                message=message,
                commit=commit,
                prepared=loaded.prepared,
            )
    except write.WriteError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"close-day {day}: {planned.summary()}")
    root = ledger.resolve().parent
    for path in result.written:
        click.echo(f"  wrote {path.resolve().relative_to(root)}")
    if result.commit:
        click.echo(f"  committed {result.commit[:12]}")


def load_or_fail(  # type: ignore[no-untyped-def]
    path: Path, allow_errors: bool, cache: bool = True, for_write: bool = False
):
    """Load the ledger; its errors stop the command unless allowed."""
    try:
        loaded = load(path, cache=cache, for_write=for_write)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from None
    if loaded.errors:
        click.echo(format_errors(loaded.errors), err=True)
        if not allow_errors:
            raise click.ClickException(
                f"{len(loaded.errors)} error(s) in {path}; fix them (bean-check lists them) "
                "or pass --allow-errors"
            )
    return loaded


@main.command()
@LEDGER
@click.option("--user", "user", required=True, metavar="USER_ID", help="The user (by user_id).")
@click.option(
    "--allow-errors", is_flag=True, help="Show history even if the ledger has errors (listed)."
)
def history(ledger: Path, user: str, allow_errors: bool) -> None:
    """Print every entry of a user in LEDGER with the git commit that last changed it."""
    loaded = load_or_fail(ledger, allow_errors)
    try:
        table = provenance.history(loaded, user)
    except (LedgerError, provenance.ProvenanceError) as exc:
        raise click.ClickException(str(exc)) from None
    render_text(table, sys.stdout)


@main.command("verify")
@LEDGER
def verify_command(ledger: Path) -> None:
    """List recorded balances and expiries that LEDGER no longer agrees with, and why.

    Each broken record names the user, the day, what was recorded and what
    the ledger says now, and from git the commits that changed the entries
    behind it since it was recorded. Exit status 1 when any record is broken.
    """
    try:
        loaded = load(ledger)  # its errors are what verify explains, not a reason to stop
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from None
    records = verify.broken_records(loaded)
    try:
        in_git = verify.explain(loaded, records)
    except provenance.ProvenanceError as exc:
        raise click.ClickException(str(exc)) from None
    recorded = sum(
        1
        for entry in loaded.entries
        if isinstance(entry, data.Balance) and not engine.is_generated(entry)
    )
    if not records:
        click.echo(f"verify: all {recorded} recorded balances and the recorded expiries hold")
        return
    root = str(ledger.resolve().parent)
    click.echo(f"verify: {len(records)} recorded record(s) no longer hold")
    for record in records:
        click.echo("\n".join(verify.describe(record, root)))
    if not in_git:
        click.echo("(git provenance unavailable: the ledger is not in a git repository)")
    raise SystemExit(1)


if __name__ == "__main__":
    main()
