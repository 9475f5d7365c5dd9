"""The audit commands: verify, history, amend."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import click
from beancount.core import data

from beancount_credits import engine
from beancount_credits.audit import git_history, provenance, verify
from beancount_credits.cli.common import (
    DATE,
    FINDINGS,
    LEDGER,
    CommandError,
    echo_write,
    load_or_fail,
    main,
)
from beancount_credits.jobs import close_period as periods
from beancount_credits.ledger import LedgerError, load, write
from beancount_credits.reports.render import render_text


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
    except (LedgerError, git_history.ProvenanceError) as exc:
        raise CommandError(str(exc)) from None
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
        raise CommandError(str(exc)) from None
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
        raise CommandError(str(exc)) from None
    records = verify.broken_records(loaded)
    state = seal.check(loaded.entries)
    try:
        in_git = verify.explain(loaded, records)
        history = seal_history.changes(loaded)
    except git_history.ProvenanceError as exc:
        raise CommandError(str(exc)) from None
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
            raise CommandError(str(exc)) from None
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
            note = f", {amended_later} amended later" if amended_later else ""
            click.echo(
                f"verify: {len(unamended)} change(s) of sealed days without an amendment{note}"
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
        raise SystemExit(FINDINGS)
