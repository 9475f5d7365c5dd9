"""The ``bean-credits`` command line (click); logic lives in the modules it calls."""

from __future__ import annotations

import datetime
import sys
from decimal import Decimal
from pathlib import Path

import click
from beancount.core import data

from beancount_credits import __version__, daily, engine, period, provenance, verify, write
from beancount_credits.ledger import LedgerError, format_errors, load
from beancount_credits.reports import REPORTS, Filters, ReportError
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
@click.option(
    "--allow-errors", is_flag=True, help="Report even if the ledger has errors (they are listed)."
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
    allow_errors: bool,
) -> None:
    """Print report NAME of LEDGER (reports: audit, balances, statement).

    The audit report runs on a ledger with errors too: finding edits of
    recorded history, which make bean-check fail, is part of its job.
    """
    make = REPORTS.get(name)
    if make is None:
        raise click.UsageError(f"unknown report {name!r}; reports: {', '.join(sorted(REPORTS))}")
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
    )
    ledger = period.report_path(ledger, name, date_from, date_to)  # archive when reaching back
    loaded = load_or_fail(ledger, allow_errors or name == "audit")
    try:
        table = make(loaded, filters)
        render_text(table, sys.stdout)
    except (ReportError, LedgerError) as exc:
        raise click.ClickException(str(exc)) from None


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
            loaded = load_or_fail(ledger, allow_errors=False, cache=False)
            planned = daily.plan(loaded, day)
            changes = daily.changes(loaded, planned)
            message = f"close-day {day}: {planned.summary()}"
            result = write.apply(
                ledger,
                write.ledger_files(ledger, loaded.options),
                changes,
                message=message,
                commit=commit,
            )
    except write.WriteError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"close-day {day}: {planned.summary()}")
    root = ledger.resolve().parent
    for path in result.written:
        click.echo(f"  wrote {path.resolve().relative_to(root)}")
    if result.commit:
        click.echo(f"  committed {result.commit[:12]}")


def load_or_fail(path: Path, allow_errors: bool, cache: bool = True):  # type: ignore[no-untyped-def]
    """Load the ledger; its errors stop the command unless allowed."""
    try:
        loaded = load(path, cache=cache)
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


@main.command("close-period")
@LEDGER
@click.option(
    "--through", type=DATE, required=True, help="The last day of the period to close (inclusive)."
)
@click.option("--commit", is_flag=True, help="Commit the close to git.")
def close_period(ledger: Path, through: datetime.date, commit: bool) -> None:
    """Carry LEDGER's open grants forward past a day and archive the period up to it."""
    if through >= datetime.date.today():
        raise click.UsageError(f"--through {through} has not ended yet")
    try:
        with write.ledger_lock(ledger):
            loaded = load_or_fail(ledger, allow_errors=False, cache=False)
            planned = period.plan(loaded, through)
            result = period.apply(loaded, planned, commit=commit)
    except (period.PeriodError, write.WriteError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"close-period through {through}: {planned.summary()}")
    root = ledger.resolve().parent
    for path in result.written:
        click.echo(f"  wrote {path.resolve().relative_to(root)}")
    for path in planned.removed:
        click.echo(f"  moved {path.relative_to(root)} to the archive")
    if result.commit:
        click.echo(f"  committed {result.commit[:12]}")


if __name__ == "__main__":
    main()
