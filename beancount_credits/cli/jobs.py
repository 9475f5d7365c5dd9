"""The commands that write the ledger: close-day, import, notify, topup, close-period, recover."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import click

from beancount_credits.cli.common import (
    DATE,
    LEDGER,
    CommandError,
    Findings,
    MomentType,
    echo_write,
    load_or_fail,
    main,
    progress,
    say_as_of,
)
from beancount_credits.jobs import close_day
from beancount_credits.jobs import close_period as periods
from beancount_credits.ledger import LedgerError, write


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
        with progress(f"close-day {day}", 4) as step, write.ledger_lock(ledger):
            step("loading the ledger")
            loaded = load_or_fail(ledger, allow_errors=False, for_write=True)
            step("booking through the day")
            planned = close_day.plan(loaded, day)
            changes = close_day.changes(loaded, planned)
            step("checking and writing")
            message = f"close-day {day}: {planned.summary()}"
            files = write.ledger_files(ledger, loaded.options)
            # The log a close-day without --commit wrote goes into this commit.
            earlier, reason = (
                write.uncommitted_output(ledger, files, close_day.LOG_DIR) if commit else ([], "")
            )
            result = write.apply(
                ledger,
                files,
                changes,
                message=message,
                commit=commit,
                prepared=loaded.prepared,
                also_commit=earlier,
            )
            if commit and not changes and earlier:
                result.commit = write.commit_only(
                    ledger, earlier, f"close-day {day}: the log written without --commit"
                )
    except write.WriteError as exc:
        raise CommandError(str(exc)) from None
    click.echo(f"close-day {day}: {planned.summary()}")
    echo_write(ledger, result.written, result.commit)
    root = ledger.resolve().parent
    if result.commit and earlier:
        for path in earlier:
            if path not in [p.resolve() for p in result.written]:
                click.echo(f"  committed earlier output {path.relative_to(root)}")
    if reason:
        click.echo(
            f"  not committed: {reason}; commit {ledger.name} yourself "
            f"(git -C {root} add {ledger.name} && git -C {root} commit)"
        )


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
        raise CommandError(str(exc)) from None
    for outcome in outcomes:
        why = f": {outcome.reason}" if outcome.reason else ""
        click.echo(
            f"  {outcome.status} {outcome.delivery.alert.kind} {outcome.delivery.alert.id} to "
            f"{outcome.delivery.alert.user_id} by {outcome.delivery.channel}{why}"
        )
    if result.commit:
        click.echo(f"  committed {result.commit[:12]}")
    if failed:
        raise Findings(f"{failed} delivery(ies) failed (recorded; tried again on the next run)")


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
                raise notifier.NotifyError(notifier.settings_errors(conf))
            decisions = topup.plan(loaded, conf, now, retry_user)
            requests = [item.request for item in decisions if item.request is not None]
            if retry_user is not None and not requests:
                raise CommandError(f"topup --retry {retry_user}: {decisions[0].reason}")
            for item in decisions:
                if item.request is None:
                    click.echo(f"  {item.user_id}: no request: {item.reason}")
                else:
                    click.echo(
                        f"  {item.user_id}: {'would request' if dry_run else 'requested'} "
                        f"{item.request.amount} ({item.request.request}): {item.reason}"
                    )
            if dry_run:
                click.echo(
                    f"topup {now.isoformat(timespec='minutes')}: {len(requests)} request(s) "
                    "would be made (dry run: nothing written, nothing sent)"
                )
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
        raise CommandError(str(exc)) from None
    click.echo(f"topup {now.isoformat(timespec='minutes')}: {len(requests)} request(s)")
    echo_write(ledger, result.written, None)  # the request records in the ledger
    for path in files:
        click.echo(f"  wrote {path}")  # the requests for the payment side
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
    # Four phases a file: reading it, the ledger, planning, checking and writing.
    with progress("import", 4 * len(files)) as step:
        for name in files:
            import_file(ledger, name, fmt, commit, skip_invalid, rejects, timezone, step)


def import_file(
    ledger: Path,
    name: str,
    fmt: str | None,
    commit: bool,
    skip_invalid: bool,
    rejects: Path | None,
    timezone: str | None,
    step: Callable[[str], None],
) -> None:
    """One FILE of ``import``: a batch, all or nothing."""
    from beancount_credits.importers import ImportFailed, import_events

    try:
        result = import_events(
            ledger,
            name,
            fmt=fmt,
            commit=commit,
            skip_invalid=skip_invalid,
            rejects=rejects,
            timezone=timezone,
            step=step,
        )
    except ImportFailed as exc:
        raise CommandError(str(exc)) from None
    click.echo(result.summary())
    for line in result.rejected:
        click.echo(f"  rejected {line}")
    if result.rejects_file is not None:
        click.echo(f"  wrote rejects to {result.rejects_file}")
    echo_write(ledger, result.written, result.commit)


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
        with progress(f"close-period through {through}", 3) as step, write.ledger_lock(ledger):
            step("loading the ledger")
            loaded = load_or_fail(ledger, allow_errors=False, for_write=True)
            step("planning the carry-forward")
            planned = periods.plan(loaded, through)
            step("checking, writing and archiving")
            result = periods.apply(loaded, planned, commit=commit)
    except (periods.PeriodError, write.WriteError) as exc:
        raise CommandError(str(exc)) from None
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
        raise CommandError(str(exc)) from None
    if finished is None:
        click.echo(f"no interrupted write in {ledger.resolve().parent}")
