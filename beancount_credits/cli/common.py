"""What every ``bean-credits`` command shares: the group, argument types, loading, output."""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from beancount_credits import __version__
from beancount_credits.ledger import Ledger, LedgerError, format_errors, load
from beancount_credits.reports.table import Filters

# Exit statuses, the same for every command (the README): 0 done; 1 done, with
# findings to look at (verify's broken records, notify's failed deliveries);
# 2 not done: a usage or input error (click's UsageError is 2 too).
FINDINGS = 1
ERROR = 2


class CommandError(click.ClickException):
    """The command could not do what was asked (bad input, unknown user, a refused write)."""

    exit_code = ERROR


class Findings(click.ClickException):
    """The command ran and found something to look at (one line on stderr)."""

    exit_code = FINDINGS


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
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log what the command does on stderr (-vv: in detail). Warnings show always.",
)
def main(verbose: int) -> None:
    """A ledger of user credits kept as plain Beancount text."""
    setup_logging(verbose)


class EchoHandler(logging.Handler):
    """Log records on the current stderr (click's, so a test runner captures them)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:
            self.handleError(record)


def setup_logging(verbose: int) -> None:
    """The package's diagnostics (stdlib logging) on stderr: warnings, -v info, -vv debug."""
    logger = logging.getLogger("beancount_credits")
    for handler in [h for h in logger.handlers if isinstance(h, EchoHandler)]:
        logger.removeHandler(handler)
    handler = EchoHandler()
    handler.setFormatter(logging.Formatter("bean-credits: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(
        logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    )
    logger.propagate = False


def on_terminal() -> bool:
    """Whether stderr is a person's terminal: not a pipe, a file or a CI log."""
    return sys.stderr.isatty() and not os.environ.get("CI")


@contextlib.contextmanager
def progress(label: str, steps: int) -> Iterator[Callable[[str], None]]:
    """A progress bar on stderr over a long command's ``steps``, on a terminal only.

    The yielded ``step(name)`` finishes the step under way and shows ``name``
    as the one running. In a pipe or a CI log it does nothing: the output
    stays what the command prints.
    """
    if not on_terminal():
        yield lambda _name: None
        return
    started = False
    with click.progressbar(
        length=steps,
        label=label,
        file=sys.stderr,
        show_eta=False,
        item_show_func=lambda name: name,
    ) as bar:

        def step(name: str) -> None:
            nonlocal started
            bar.update(1 if started else 0, name)
            started = True

        yield step


def echo_write(
    ledger: Path,
    written: Sequence[Path],
    commit: str | None,
    removed: Sequence[Path] = (),
    removed_as: str = "removed {}",
) -> None:
    """What a write did: files written and removed (relative to the ledger's folder), the commit."""
    root = ledger.resolve().parent
    for path in written:
        click.echo(f"  wrote {path.resolve().relative_to(root)}")
    for path in removed:
        click.echo("  " + removed_as.format(path.resolve().relative_to(root)))
    if commit:
        click.echo(f"  committed {commit[:12]}")


def say_as_of(ledger: Ledger, day: datetime.date) -> None:
    """On stderr, one line when ``day`` is past what the ledger's text records."""
    notice = ledger.as_of(day).notice()
    if notice is not None:
        click.echo(notice, err=True)


def load_or_fail(  # type: ignore[no-untyped-def]
    path: Path, allow_errors: bool, cache: bool = True, for_write: bool = False
):
    """Load the ledger; its errors stop the command unless allowed."""
    try:
        loaded = load(path, cache=cache, for_write=for_write)
    except LedgerError as exc:
        raise CommandError(str(exc)) from None
    if loaded.errors:
        click.echo(format_errors(loaded.errors), err=True)
        if not allow_errors:
            raise CommandError(
                f"{len(loaded.errors)} error(s) in {path}; fix them (bean-check lists them) "
                "or pass --allow-errors"
            )
    return loaded


class MomentType(click.ParamType):
    """A date (that day at 00:00 UTC) or an ISO date and time (UTC unless it says)."""

    name = "YYYY-MM-DD[THH:MM]"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, datetime.datetime):
            return value
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a date or a date and time", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def report_filters(command: Callable[..., Any]) -> Callable[..., Any]:
    """The report filters as options, handed to ``command`` as one ``filters`` (Filters).

    ``--to`` defaults to today: the edge of the system decides what "now" is,
    the engine never does. ``--from`` after ``--to`` is a usage error.
    """

    @functools.wraps(command)
    def with_filters(
        *args: Any,
        user: str | None,
        segment: str | None,
        commodity: str | None,
        date_from: datetime.date | None,
        date_to: datetime.date | None,
        factor: float | None,
        member: str | None,
        period: str | None,
        days: int | None,
        search: str | None,
        sort_field: str | None,
        desc: bool,
        **kwargs: Any,
    ) -> Any:
        date_to = date_to or datetime.date.today()
        if date_from is not None and date_from > date_to:
            raise click.UsageError(f"--from {date_from} is after --to {date_to}")
        if desc and sort_field is None:
            raise click.UsageError("--desc sorts by --sort FIELD: give the column to sort by")
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
            search=search,
            sort=sort_field,
            desc=desc,
        )
        return command(*args, filters=filters, **kwargs)

    options = [
        click.option("--user", "user", metavar="USER_ID", help="Only this user (by user_id)."),
        click.option("--segment", help="Only users of this segment."),
        click.option("--commodity", help="Only this credit type (e.g. CREDIT, SESSION)."),
        click.option("--from", "date_from", type=DATE, help="From this date (inclusive)."),
        click.option(
            "--to", "date_to", type=DATE, help="Through this date (inclusive); default: today."
        ),
        click.option(
            "--factor",
            type=click.FloatRange(min=1),
            help="audit: flag a day's draw-down above FACTOR x the user's median day (default 5).",
        ),
        click.option("--member", metavar="MEMBER", help="Only this team member's transactions."),
        click.option(
            "--period", type=click.Choice(["day", "week", "month"]), help="Default: month."
        ),
        click.option(
            "--days", type=click.IntRange(min=1), help="expiring: within this many days (30)."
        ),
        click.option(
            "--search", metavar="TEXT", help="users: user ids containing TEXT (any case)."
        ),
        click.option("--sort", "sort_field", metavar="FIELD", help="Sort the rows by this column."),
        click.option("--desc", is_flag=True, help="Sort in descending order."),
    ]
    for option in reversed(options):
        with_filters = option(with_filters)
    return with_filters
