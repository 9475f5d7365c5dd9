"""``bean-credits service``: the ledger kept warm behind an HTTP API (docs/service.md)."""

from __future__ import annotations

from pathlib import Path

import click

from beancount_credits.cli.common import LEDGER, CommandError, main


@main.command()
@LEDGER
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", "-p", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--verify-every",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(0),
    metavar="SECONDS",
    help="Prove the warm state equal to a full load this often (0: only on request).",
)
@click.option("--timezone", metavar="ZONE", help="Date events in this time zone (default UTC).")
def service(ledger: Path, host: str, port: int, verify_every: float, timezone: str | None) -> None:
    """Take events and answer balances over HTTP, the ledger kept warm in memory.

    POST /v1/events writes each accepted event into the ledger's files (the
    write path: lock, escaping, fsync) before it answers; GET
    /v1/users/ID/balance answers from memory. Every endpoint but /v1/health
    asks for the bearer token in BEAN_CREDITS_SERVICE_TOKEN; without one it
    listens on loopback only.
    """
    import zoneinfo

    import uvicorn

    from beancount_credits.ledger import LedgerError
    from beancount_credits.service import auth
    from beancount_credits.service.app import create_app
    from beancount_credits.service.state import WarmLedger

    token = auth.token_from_env()
    try:
        auth.check_listen(host, token)
    except auth.AuthError as exc:
        raise CommandError(str(exc)) from None
    try:
        warm = WarmLedger(ledger, timezone=timezone)
    except (LedgerError, zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    if warm.errors:
        click.echo(
            f"bean-credits service: {ledger} has {len(warm.errors)} error(s) (run bean-check); "
            "events are refused until they are fixed",
            err=True,
        )
    if token is None:
        click.echo(
            f"bean-credits service: no {auth.TOKEN_ENV}: any local process may call it", err=True
        )
    app = create_app(
        warm, token=token, webhook_secret=auth.webhook_secret_from_env(), verify_every=verify_every
    )
    click.echo(f"bean-credits service: http://{host}:{port}/v1/ ({ledger})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
