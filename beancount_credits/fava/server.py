"""``bean-credits serve``: Fava with the Credit Balance History page.

The same server as the ``fava`` command (Fava's Flask app on cheroot), loaded
before it listens so the address it prints answers at once, read-only unless
asked otherwise, bound to the loopback interface by default, and hardened by
:mod:`beancount_credits.fava.security` (Content-Security-Policy and the other
headers, the Host check, the escaped journal, extraction from the import
folders only, writes under the ledger lock and check).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from beancount_credits.fava import security

EXTENSION = "beancount_credits.fava"
EXTENSION_CLASS = "CreditBalanceHistory"


class ServeError(Exception):
    """The server cannot start; the message says why."""


def make_app(
    ledger: Path,
    *,
    edit: bool = False,
    prefix: str | None = None,
    host: str = "127.0.0.1",
    allow_hosts: Iterable[str] = (),
) -> tuple[Any, str]:
    """Fava's app for LEDGER (loaded now) and the path of the credits page.

    It answers the loopback names, ``host`` and ``allow_hosts`` only.
    """
    from fava.application import create_app

    app = create_app([str(ledger.resolve())], load=True, read_only=not edit)
    slug, fava_ledger = next(iter(app.config["LEDGERS"].items()))
    if fava_ledger.extensions.get_extension(EXTENSION_CLASS) is None:
        raise ServeError(
            f"{ledger} does not enable the credits page; add this line to it:\n"
            f'  2000-01-01 custom "fava-extension" "{EXTENSION}"'
        )
    path = f"/{slug}/extension/{EXTENSION_CLASS}/"
    if prefix:
        from fava.util import simple_wsgi
        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        prefix = "/" + prefix.strip("/")
        app.wsgi_app = DispatcherMiddleware(simple_wsgi, {prefix: app.wsgi_app})  # type: ignore[method-assign]
        path = prefix + path
    security.secure(app, security.served_hosts(host, allow_hosts))
    return app, path


def serve(app: Any, host: str, port: int) -> None:
    """Serve until interrupted (cheroot, as ``fava`` does)."""
    from cheroot.wsgi import Server

    server = Server((host, port), app)
    try:
        server.start()
    except KeyboardInterrupt:
        server.stop()
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc}") from None
