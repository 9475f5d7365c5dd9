"""The ``bean-credits`` command line (click); logic lives in the modules it calls."""

from __future__ import annotations

import datetime
import shutil
import sys
import tempfile
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import click
from beancount.core import data

from beancount_credits import __version__, engine, exports
from beancount_credits.audit import provenance, verify
from beancount_credits.jobs import close_day
from beancount_credits.jobs import close_period as periods
from beancount_credits.ledger import Ledger, LedgerError, format_errors, load, write
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
    source: str | None = None,
    engine: str = "duckdb",
    raw_csv: bool = False,
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
            raise click.ClickException(str(exc)) from None
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


@main.command("close-day")
@LEDGER
@click.option(
    "--date",
    "day",
    type=DATE,
    help="The day to close (its activity is complete); default: yesterday.",
)
@click.option("--commit", is_flag=True, help="Commit what was written to git.")
def close_day_command(ledger: Path, day: datetime.date | None, commit: bool) -> None:
    """Write the expiries and end-of-day balances up to a day into LEDGER's log."""
    today = datetime.date.today()
    day = day or today - datetime.timedelta(days=1)
    if day >= today:
        raise click.UsageError(f"--date {day} has not ended yet (today is {today})")
    try:
        with write.ledger_lock(ledger):
            loaded = load_or_fail(ledger, allow_errors=False, for_write=True)
            planned = close_day.plan(loaded, day)
            changes = close_day.changes(loaded, planned)
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
    echo_write(ledger, result.written, result.commit)


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


@main.command()
@LEDGER
@click.option("--reason", required=True, help="Why the sealed days changed (recorded).")
@click.option("--approved-by", metavar="NAME", help="Who approved the change (recorded).")
@click.option(
    "--date", "day", type=DATE, help="The day the amendment is made (recorded); default: today."
)
@click.option("--commit", is_flag=True, help="Commit the amendment and the edits to git.")
def amend(
    ledger: Path, reason: str, approved_by: str | None, day: datetime.date | None, commit: bool
) -> None:
    """Record a change of sealed days in LEDGER and seal them again.

    Edit the text first (a correction of a closed day); amend then rewrites the
    daily log the change affects (end-of-day balances, expiries), renews the
    seals from the first changed day on, and records a credits-amend naming
    the day, the old and new seal, the reason, the approver and the entries
    changed. Any other error of the changed ledger stops it.
    """
    from beancount_credits.audit import amend as amendments

    day = day or datetime.date.today()
    try:
        with write.ledger_lock(ledger):
            loaded = load(ledger, for_write=True)  # its seal errors are what it amends
            planned = amendments.plan(loaded, reason=reason, approved_by=approved_by, date=day)
            if planned is None:
                click.echo(f"amend: nothing to amend: the seals of {ledger} hold")
                return
            files = write.ledger_files(ledger, loaded.options)
            # The hand corrections being amended go into the amendment's commit.
            edited = write.uncommitted_files(ledger, files) if commit else []
            result = write.apply(
                ledger,
                files,
                planned.changes,
                message=f"amend {planned.day}: {reason}",
                commit=commit,
                prepared=loaded.prepared,
                also_commit=edited,
            )
    except (amendments.AmendError, LedgerError, write.WriteError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"amend {planned.day}: {planned.summary()}")
    for line in planned.changed[:10]:
        click.echo(f"  {line}")
    if len(planned.changed) > 10:
        click.echo(f"  ... and {len(planned.changed) - 10} more")
    echo_write(ledger, result.written, result.commit)


@main.command("verify")
@LEDGER
def verify_command(ledger: Path) -> None:
    """Check LEDGER's recorded history: seals, recorded balances and expiries, and git.

    Lists the first broken seal (what differs), each recorded balance or expiry
    the ledger no longer agrees with (user, day, recorded vs now, and from git
    the commits that changed the entries behind it), every line of a sealed day
    that a commit removed or rewrote without an amendment (user, day, commit),
    and the amendments with their git author. Exit status 1 when anything is
    broken or changed without an amendment.
    """
    from beancount_credits.audit import seal_history
    from beancount_credits.engine import seal

    try:
        loaded = load(ledger)  # its errors are what verify explains, not a reason to stop
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from None
    records = verify.broken_records(loaded)
    state = seal.check(loaded.entries)
    try:
        in_git = verify.explain(loaded, records)
        history = seal_history.changes(loaded)
    except provenance.ProvenanceError as exc:
        raise click.ClickException(str(exc)) from None
    if history is not None:
        verify.attach_history(records, history.changes)
    recorded = sum(
        1
        for entry in loaded.entries
        if isinstance(entry, data.Balance) and not engine.is_generated(entry)
    )
    root = str(ledger.resolve().parent)
    unamended = history.unamended if history is not None else []
    broken = bool(records or state.problems or unamended)
    if state.problems:
        first = state.problems[0]
        later = sum(1 for problem in state.problems[1:] if problem.content_changed)
        more = f" ({later} later sealed day(s) changed too)" if later else ""
        click.echo(
            f"verify: the seals do not hold from {first.day}{more}: "
            f"{verify.where(first.entry.meta, root)}: {first.message}"
        )
    elif state.seals:
        click.echo(f"verify: {len(state.seals)} seals hold, through {state.seals[-1].day}")
    if periods.archives(ledger):
        # The closed periods' seals, checked over the whole history (archive included).
        try:
            whole = load(periods.history_path(ledger))
        except LedgerError as exc:
            raise click.ClickException(str(exc)) from None
        archived = seal.check(whole.entries)
        if archived.problems:
            broken = True
            first = archived.problems[0]
            click.echo(
                f"verify: the whole history's seals do not hold from {first.day}: "
                f"{verify.where(first.entry.meta, root)}: {first.message}"
            )
        elif archived.seals:
            click.echo(
                f"verify: the whole history's {len(archived.seals)} seals hold (closed periods "
                "in archive/ included)"
            )
    if not records:
        click.echo(f"verify: all {recorded} recorded balances and the recorded expiries hold")
    else:
        click.echo(f"verify: {len(records)} recorded record(s) no longer hold")
        for record in records:
            click.echo("\n".join(verify.describe(record, root)))
    if history is not None:
        listed = [change for change in history.changes if not change.made_by_amendment]
        if listed:
            amended_later = len(listed) - len(unamended)
            later = f", {amended_later} amended later" if amended_later else ""
            click.echo(
                f"verify: {len(unamended)} change(s) of sealed days without an amendment{later}"
            )
            for change in listed:
                click.echo("\n".join(seal_history.describe(change)))
        if history.amendments:
            click.echo(f"verify: {len(history.amendments)} amendment(s)")
            for amendment in history.amendments:
                lines = sum(
                    len(change.removed) + len(change.added)
                    for change in history.changes
                    if change.amendment is amendment and change.made_by_amendment
                )
                what = seal_history.describe_amendment(amendment)
                click.echo(f"  {what} ({lines} line(s) of sealed days)")
    if not in_git or history is None:
        click.echo("(git provenance unavailable: the ledger is not in a git repository)")
    if broken:
        raise SystemExit(1)


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


@main.command()
@LEDGER
@click.option("--date", "day", type=DATE, help="Alerts as of this day; default: today.")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; send and write nothing.")
@click.option("--explain", "explain_user", metavar="USER_ID", help="Why a user got each alert.")
@click.option(
    "--outbox",
    type=click.Path(file_okay=False, path_type=Path),
    help="Outbox folder (in-app notifications.jsonl); default: LEDGER's folder/outbox.",
)
@click.option(
    "--templates",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of message templates replacing the shipped ones of the same name.",
)
@click.option("--commit", is_flag=True, help="Commit the delivery records to git.")
def notify(
    ledger: Path,
    day: datetime.date | None,
    dry_run: bool,
    explain_user: str | None,
    outbox: Path | None,
    templates: Path | None,
    commit: bool,
) -> None:
    """Send the due low-balance, expiry and failed top-up alerts; record each delivery."""
    import os

    from beancount_credits.jobs import notify as notifier

    day = day or datetime.date.today()
    inapp = (outbox or notifier.default_outbox(ledger)) / notifier.INAPP_NAME
    try:
        opened, off = notifier.open_channels(os.environ, inapp)
        if explain_user is not None:
            loaded = load_or_fail(ledger, allow_errors=False, cache=False)
            say_as_of(loaded, day)
            click.echo("\n".join(notifier.explain(loaded, explain_user, day, off)))
            return
        with write.ledger_lock(ledger):
            loaded = load_or_fail(ledger, allow_errors=False, for_write=True)
            say_as_of(loaded, day)
            # Sent by a run that died before recording: never sent again, recorded now.
            sent = notifier.read_sent(ledger)
            conf, plan = notifier.prepare(loaded, day, sent)
            sendable = [item for item in plan.todo if item.channel not in off]
            click.echo(
                f"notify {day}: {len(plan.alerts)} alert(s) due, {len(sendable)} delivery(ies) "
                f"to make" + (" (dry run)" if dry_run else "")
            )
            if sent:
                click.echo(f"  {len(sent)} delivery(ies) of an interrupted run: recorded now")
            for error in conf.address_errors:
                click.echo(f"  {write.error_messages([error])[0]} (no email to this user)")
            for channel, reason in sorted(off.items()):
                if any(item.channel == channel for item in plan.todo):
                    click.echo(f"  {channel}: channel {reason}; its deliveries wait")
            if dry_run:
                for item in sendable:
                    click.echo(
                        f"  would send {item.alert.kind} {item.alert.id} to "
                        f"{item.alert.user_id} by {item.channel}: {item.alert.subject}"
                    )
                return
            outcomes = notifier.deliver(
                plan, opened, notifier.Templates(templates), journal=notifier.sent_path(ledger)
            )
            changes = notifier.record_changes(loaded, outcomes, day, sent)
            delivered = sum(1 for item in outcomes if item.status == "delivered")
            failed = len(outcomes) - delivered
            result = write.apply(
                ledger,
                write.ledger_files(ledger, loaded.options),
                changes,
                message=f"notify {day}: {delivered} delivered, {failed} failed",
                commit=commit,
                prepared=loaded.prepared,
            )
            notifier.clear_sent(ledger)
    except (notifier.NotifyError, LedgerError, write.WriteError) as exc:
        raise click.ClickException(str(exc)) from None
    for item in outcomes:
        why = f": {item.reason}" if item.reason else ""
        click.echo(
            f"  {item.status} {item.delivery.alert.kind} {item.delivery.alert.id} to "
            f"{item.delivery.alert.user_id} by {item.delivery.channel}{why}"
        )
    if result.commit:
        click.echo(f"  committed {result.commit[:12]}")
    if failed:
        raise click.ClickException(
            f"{failed} delivery(ies) failed (recorded; tried again on the next run)"
        )


@main.command("topup")
@LEDGER
@click.option(
    "--date",
    "moment",
    type=MomentType(),
    help="Run as of this date (00:00 UTC) or date and time; default: now.",
)
@click.option(
    "--retry", "retry_user", metavar="USER_ID", help="Re-issue this user's failed request."
)
@click.option("--dry-run", is_flag=True, help="Show the decisions; write nothing.")
@click.option(
    "--outbox",
    type=click.Path(file_okay=False, path_type=Path),
    help="Outbox folder (requests go to topup/<request>.json); default: LEDGER's folder/outbox.",
)
@click.option("--commit", is_flag=True, help="Commit the request records to git.")
def topup_command(
    ledger: Path,
    moment: datetime.datetime | None,
    retry_user: str | None,
    dry_run: bool,
    outbox: Path | None,
    commit: bool,
) -> None:
    """Request auto top-ups for users below their rule's threshold (or --retry one)."""
    from beancount_credits.engine import settings
    from beancount_credits.jobs import notify as notifier
    from beancount_credits.jobs import records, topup

    now = moment or datetime.datetime.now(datetime.UTC)
    folder = outbox or notifier.default_outbox(ledger)
    try:
        with write.ledger_lock(ledger):
            loaded = load_or_fail(ledger, allow_errors=False, for_write=True)
            say_as_of(loaded, now.date())
            conf = settings.of(loaded)
            if conf.errors:
                raise notifier.NotifyError(notifier._settings_errors(conf))
            decisions = topup.plan(loaded, conf, now, retry_user)
            requests = [item.request for item in decisions if item.request is not None]
            if retry_user is not None and not requests:
                raise click.ClickException(f"topup --retry {retry_user}: {decisions[0].reason}")
            for item in decisions:
                if item.request is None:
                    click.echo(f"  {item.user_id}: no request: {item.reason}")
                else:
                    click.echo(
                        f"  {item.user_id}: {'would request' if dry_run else 'requested'} "
                        f"{item.request.amount} ({item.request.request}): {item.reason}"
                    )
            if dry_run:
                return
            changes = records.month_changes(
                loaded,
                records.TOPUP_DIR,
                [topup.request_record(r) for r in requests],
                "Top-up requests",
            )
            result = write.apply(
                ledger,
                write.ledger_files(ledger, loaded.options),
                changes,
                message=f"topup {now:%Y-%m-%d %H:%M}: {len(requests)} request(s)",
                commit=commit,
                prepared=loaded.prepared,
            )
            # Every open request has its outbox file, including one whose file a
            # crash after the ledger write kept from being written.
            pending = topup.open_requests(loaded, now) + requests
            files = topup.write_outbox(folder, pending)
    except (notifier.NotifyError, LedgerError, write.WriteError, topup.TopUpError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"topup {now.isoformat(timespec='minutes')}: {len(requests)} request(s)")
    for path in files:
        click.echo(f"  wrote {path}")
    if result.commit:
        click.echo(f"  committed {result.commit[:12]}")


@main.command("import")
@LEDGER
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: from the file."
)
@click.option("--skip-invalid", is_flag=True, help="Import the good rows; write the rejects.")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where --skip-invalid writes rejected rows (default: <input>.rejects.<ext>).",
)
@click.option("--timezone", help="Ledger dates are days in this zone (default: UTC).")
@click.option("--commit", is_flag=True, help="Commit each batch to git.")
def import_command(
    ledger: Path,
    files: tuple[str, ...],
    fmt: str | None,
    skip_invalid: bool,
    rejects: Path | None,
    timezone: str | None,
    commit: bool,
) -> None:
    """Import platform event exports (CSV or JSON Lines; - reads stdin) into LEDGER.

    Each FILE is one batch, all or nothing: a bad row and nothing of that
    file is written (every bad row is listed). Events already in the ledger
    (by id) are skipped.
    """
    from beancount_credits.importers import ImportFailed, import_events

    for name in files:
        try:
            result = import_events(
                ledger,
                name,
                fmt=fmt,
                commit=commit,
                skip_invalid=skip_invalid,
                rejects=rejects,
                timezone=timezone,
            )
        except ImportFailed as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(result.summary())
        for line in result.rejected:
            click.echo(f"  rejected {line}")
        if result.rejects_file is not None:
            click.echo(f"  wrote rejects to {result.rejects_file}")
        echo_write(ledger, result.written, result.commit)


@main.command()
@LEDGER
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", "-p", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--edit", is_flag=True, help="Allow editing in Fava (default: read-only).")
@click.option("--prefix", metavar="PATH", help="Serve under this URL prefix (e.g. /credits).")
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests for this host name (a proxy's, or this machine's name).",
)
def serve(
    ledger: Path,
    host: str,
    port: int,
    edit: bool,
    prefix: str | None,
    allow_hosts: tuple[str, ...],
) -> None:
    """Open LEDGER in Fava with the Credit Balance History page.

    It answers only requests whose Host is a loopback name, --host or an
    --allow-host name, and sends a Content-Security-Policy (README, "Security").
    """
    from beancount_credits.fava import server

    try:
        app, path = server.make_app(
            ledger, edit=edit, prefix=prefix, host=host, allow_hosts=allow_hosts
        )
        click.echo(f"Credit Balance History: http://{host}:{port}{path}", err=True)
        click.echo("read-only" if not edit else "editing allowed", err=True)
        server.serve(app, host, port)
    except server.ServeError as exc:
        raise click.ClickException(str(exc)) from None


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
            loaded = load_or_fail(ledger, allow_errors=False, for_write=True)
            planned = periods.plan(loaded, through)
            result = periods.apply(loaded, planned, commit=commit)
    except (periods.PeriodError, write.WriteError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"close-period through {through}: {planned.summary()}")
    echo_write(ledger, result.written, result.commit, result.removed, "moved {} to the archive")


@main.command()
@LEDGER
def recover(ledger: Path) -> None:
    """Complete a write to LEDGER that a crash interrupted (every writer does this first)."""
    try:
        with write.ledger_lock(ledger) as finished:
            pass
    except write.WriteError as exc:
        raise click.ClickException(str(exc)) from None
    if finished is None:
        click.echo(f"no interrupted write in {ledger.resolve().parent}")


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

    try:
        result = columnar.export(ledger, output)  # loads one period at a time
    except columnar.ColumnarError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"export parquet {output}: {result.summary()}")
    for name in result.loaded:
        click.echo(f"  loaded period {name}" + (" (active)" if name.endswith("--") else ""))
    for relative in result.written:
        click.echo(f"  wrote {relative}")
    for relative in result.removed:
        click.echo(f"  removed {relative}")


if __name__ == "__main__":
    main()
