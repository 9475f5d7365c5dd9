"""``bean-credits trace``: where a grant's credits went, what paid for a redemption.

The logic is :mod:`beancount_credits.audit.trace`, which the Credit page's
trace links use too.
"""

from __future__ import annotations

import datetime
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from beancount_credits.audit import git_history
from beancount_credits.audit import trace as tracing
from beancount_credits.cli.common import DATE, LEDGER, CommandError, load_or_fail, main
from beancount_credits.ledger import LedgerError
from beancount_credits.reports.render import render_text


@main.command()
@LEDGER
@click.option("--grant", "grant", metavar="ID", help="A grant: where every credit of it went.")
@click.option("--txn", "txn", metavar="ID", help="A transaction (txn_id): a grant or a redemption.")
@click.option("--order", "order", metavar="ID", help="An order: its purchase or its redemption.")
@click.option("--session", "session", metavar="ID", help="A session: the grants that paid for it.")
@click.option("--user", "user", metavar="USER_ID", help="Not found: look near this user.")
@click.option("--amount", "amount", metavar="N", help="Not found: look near this amount.")
@click.option("--date", "day", type=DATE, help="Not found: look near this day.")
@click.option(
    "--days",
    type=click.IntRange(0, 366),
    default=tracing.NEAR_DAYS,
    show_default=True,
    help="Not found: how many days either side count as near.",
)
@click.option("--allow-errors", is_flag=True, help="Trace even if the ledger has errors.")
def trace(
    ledger: Path,
    grant: str | None,
    txn: str | None,
    order: str | None,
    session: str | None,
    user: str | None,
    amount: str | None,
    day: datetime.date | None,
    days: int,
    allow_errors: bool,
) -> None:
    """Trace a grant, a redemption, an order or a session in LEDGER.

    For a grant: every draw-down of it (date, txn_id, amount, member,
    session/order), reversals, expiry, what remains, and the git commit of
    each entry. For a redemption, order or session: the grants that paid for
    it, with their source, unit cost and purchase. For an order no entry
    mentions: says so, and shows what is near (the same user or amount within
    --days days) and the import rejects files that mention it.
    """
    asked = zip(tracing.MODES, (grant, txn, order, session), strict=True)
    given = [(mode, value.strip()) for mode, value in asked if value is not None]
    if len(given) != 1:
        raise click.UsageError("give one of --grant, --txn, --order or --session")
    if not given[0][1]:
        raise click.BadParameter("is empty", param_hint=f"--{given[0][0]}")
    number = None
    if amount is not None:
        try:
            number = Decimal(amount)
        except InvalidOperation:
            raise click.BadParameter(f"{amount!r} is not a number", param_hint="--amount") from None
    loaded = load_or_fail(ledger, allow_errors)
    mode, value = given[0]
    try:
        found = tracing.trace(
            loaded,
            mode,
            value,
            tracing.Anchor(user, number, day),
            days,
        )
    except (LedgerError, git_history.ProvenanceError) as exc:
        raise CommandError(str(exc)) from None
    for index, table in enumerate(found.tables):
        if index:
            click.echo()
        render_text(table, sys.stdout)
