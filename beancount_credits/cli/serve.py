"""``bean-credits serve``: the ledger in Fava with the Credit Balance History page."""

from __future__ import annotations

from pathlib import Path

import click

from beancount_credits.cli.common import (
    LEDGER,
    CommandError,
    main,
)


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
    --allow-host name, and sends a Content-Security-Policy (docs/security.md).
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
        raise CommandError(str(exc)) from None
