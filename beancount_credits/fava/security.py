"""What ``bean-credits serve`` adds to Fava so hostile ledger text and hostile pages do no harm.

Ledger strings (descriptions, metadata, user ids) come from outside, and a
browser that has the page open is an attack surface of its own. Around Fava's
app, :func:`secure` adds:

- **Content-Security-Policy** on every response (:data:`CSP`): scripts only
  from the server's own files — no inline ``<script>``, no ``onerror=``
  handlers, no ``javascript:`` URLs, no ``eval`` — no plugins, no ``<base>``,
  forms only to the server, and no framing (``frame-ancestors 'none'``, plus
  ``X-Frame-Options: DENY``); with ``X-Content-Type-Options: nosniff`` and
  ``Referrer-Policy: same-origin``. Fava's own pages work under it (its
  scripts are files; its inline ``<script type="application/json">`` blocks
  are data, which CSP does not run). Styles may be inline (Fava sets them).
- **Host check**: only the names it serves (the loopback names, the
  ``--host`` it listens on, and ``--allow-host`` names) get an answer; any
  other ``Host`` header is refused, so a DNS-rebinding page cannot talk to it.
  A request that changes anything must come from the page itself (its
  ``Origin``, when the browser sends one, is the host and port asked).
- **Escaped journal**: Fava 1.30 renders the journal (``/journal/``, account
  pages) with Jinja's autoescape off; the same template is served with it on,
  so ``<img onerror=...>`` in a narration is shown as text.
- **Import folders only**: Fava's ``extract`` endpoint reads a file only if
  it lies (symlinks resolved) inside one of the ledger's ``import-dirs``
  (403 otherwise), so ``filename=/etc/passwd`` or ``/proc/self/environ``
  reaches no importer.
- **No 500 for a parameter**: Fava's filters (``time``, ``filter``) are
  parsed before a page or endpoint uses them, and a period reaching outside
  :data:`EARLIEST` .. :data:`LATEST` is refused (Fava's own code overflows
  there); Fava's user errors (a query that does not parse, an importer that
  refuses a file) are answered 400, not 500; ``/jump`` without a Referer is 400.
- **Writes like the CLI's** (with ``--edit``): every request that can change
  the ledger (Fava's source editor, entry forms, document uploads...) holds
  the ledger's writer lock (:func:`beancount_credits.ledger.write.ledger_lock`, the
  one ``import``, ``close-day`` and ``notify`` take), and the ledger as it
  would be is loaded with the full loader first: a change that would give a
  ledger without errors some is refused (HTTP 422, the errors listed) and
  nothing stays written. A ledger that already has errors can be edited (to
  fix it).
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import BaseLoader, Environment

from beancount_credits.ledger import write
from beancount_credits.ledger.text import read_text

CSP = "; ".join(
    [
        "default-src 'self'",
        # WebAssembly (the editor's syntax highlighting) may compile; JavaScript eval may not.
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = [
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    # Same-origin only: Fava's /jump needs its own pages' Referer; no other site gets one.
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
]
# The dates a time filter may reach: Fava computes a day before and a year after them.
EARLIEST = datetime.date(2, 1, 1)
LATEST = datetime.date(9998, 12, 31)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Fava templates rendered with autoescape off; served with it on.
UNESCAPED_TEMPLATES = ("_journal_table.html",)


def served_hosts(host: str, allow: Iterable[str] = ()) -> frozenset[str]:
    """The Host names answered: loopback, the address listened on (unless a wildcard), ``allow``."""
    names = {*LOOPBACK, *allow}
    if host not in WILDCARDS:
        names.add(host)
    return frozenset(name.strip().lower().strip("[]") for name in names if name.strip())


def host_name(value: str) -> str:
    """The name part of a Host header (``[::1]:5000`` -> ``::1``), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def same_origin(origin: str, environ: dict[str, Any]) -> bool:
    """Whether a request's ``Origin`` is the server it was sent to (host and port)."""
    netloc = urlsplit(origin).netloc.lower()
    return bool(netloc) and netloc == str(environ.get("HTTP_HOST", "")).strip().lower()


def guard(wsgi_app: Callable[..., Any], hosts: frozenset[str]) -> Callable[..., Any]:
    """WSGI middleware: the host check, the origin check, and the headers on every response."""

    def respond(start_response: Callable[..., Any], status: str, text: str) -> list[bytes]:
        body = text.encode("utf-8")
        length = str(len(body))
        start_response(
            status,
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", length), *HEADERS],
        )
        return [body]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        host = host_name(environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""))
        if host not in hosts:
            return respond(
                start_response,
                "421 Misdirected Request",
                "This server answers only for the host names it serves.\n",
            )
        origin = environ.get("HTTP_ORIGIN")
        writes = environ.get("REQUEST_METHOD", "GET") not in SAFE_METHODS
        if writes and origin is not None and not same_origin(origin, environ):
            return respond(start_response, "403 Forbidden", "Cross-origin write refused.\n")

        def with_headers(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            present = {name.lower() for name, _value in headers}
            extra = [(name, value) for name, value in HEADERS if name.lower() not in present]
            return start_response(status, headers + extra, *args)

        return wsgi_app(environ, with_headers)

    return app


class EscapingLoader(BaseLoader):
    """Fava's template loader, with autoescape switched on where Fava switched it off."""

    def __init__(self, inner: BaseLoader):
        self.inner = inner

    def get_source(self, environment: Environment, template: str) -> tuple[str, Any, Any]:
        source, filename, uptodate = self.inner.get_source(environment, template)
        if template in UNESCAPED_TEMPLATES:
            source = source.replace("{% autoescape false %}", "{% autoescape true %}")
        return source, filename, uptodate

    def list_templates(self) -> list[str]:
        return self.inner.list_templates()


def import_folders(ledger: Any) -> list[Path]:
    """The ledger's ``import-dirs`` (Fava option), resolved."""
    return [Path(ledger.join_path(folder)).resolve() for folder in ledger.fava_options.import_dirs]


def in_import_folder(filename: str, ledger: Any) -> bool:
    """Whether ``filename`` (symlinks resolved) is a file inside an import folder."""
    if not filename:
        return False
    try:
        path = Path(filename).resolve()
        is_file = path.is_file()
    except (OSError, RuntimeError, ValueError):  # too long, a loop, a NUL...
        return False
    return is_file and any(path.is_relative_to(folder) for folder in import_folders(ledger))


def json_error(message: str, status: HTTPStatus) -> Any:
    from flask import jsonify

    response = jsonify({"error": message})
    response.status = status
    return response


def confine_imports() -> Any:
    """before_request: Fava's extract reads only files in the import folders."""
    from flask import g, request

    if request.endpoint != "json_api.get_extract":
        return None
    ledger = getattr(g, "ledger", None)
    if ledger is None or not in_import_folder(request.args.get("filename", ""), ledger):
        return json_error(
            "only files inside the ledger's import folders can be extracted",
            HTTPStatus.FORBIDDEN,
        )
    return None


def check_filters() -> Any:
    """before_request: a parameter Fava would choke on is a 400 with a message, never a 500.

    Fava's filters (``time``, ``filter``, ``account``) are parsed as Fava
    parses them, before a page or endpoint uses them.
    """
    from flask import g, request

    if any("\x00" in value for value in request.args.values()):
        return bad_request("a parameter holds a NUL character")
    if request.endpoint == "jump" and not request.referrer:
        return bad_request("jump: no page to jump from (the request has no Referer)")
    if request.endpoint == "json_api.get_journal_page":
        page = request.args.get("page", "1")
        if not page.strip().isdigit() or int(page) < 1:
            return bad_request(f"page {page!r} is not a page number (they count from 1)")
    ledger = getattr(g, "ledger", None)
    return None if ledger is None else filter_problem(ledger, request.args)


def filter_problem(ledger: Any, args: Any) -> Any:
    """A 400 for a ``time``, ``filter`` or ``account`` Fava cannot apply; None if all fine."""
    from beancount.core.account import has_component
    from fava.core.filters import AdvancedFilter, FilterError, TimeFilter

    time = (args.get("time") or "").strip()
    try:
        dates = TimeFilter(ledger.options, ledger.fava_options, time).date_range if time else None
    except FilterError as exc:
        return bad_request(f"time filter: {exc.message}")
    except (ValueError, OverflowError) as exc:  # Fava's date parser lets month 13 through
        return bad_request(f"time filter: Failed to parse date: {time} ({exc})")
    if dates is not None and (dates.begin < EARLIEST or dates.end > LATEST):
        return bad_request(
            f"time filter: {time!r} reaches outside {EARLIEST} .. {LATEST}, "
            "the dates this server answers for"
        )
    advanced = (args.get("filter") or "").strip()
    try:
        if advanced:
            AdvancedFilter(advanced)
    except FilterError as exc:
        return bad_request(f"filter: {exc.message}")
    account = args.get("account") or ""
    try:
        if account:
            has_component("Assets", account)  # the account filter's own pattern
    except re.error as exc:
        return bad_request(f"account filter: {account!r} is not an account or a pattern ({exc})")
    return None


def bad_request(message: str) -> Any:
    from flask import request

    if request.blueprint == "json_api" or "/extension/" in request.path:
        return json_error(message, HTTPStatus.BAD_REQUEST)
    return message + "\n", HTTPStatus.BAD_REQUEST, {"Content-Type": "text/plain; charset=utf-8"}


def user_error(error: Any) -> Any:
    """Fava's FavaAPIError (a query that does not parse, an importer that refuses a
    file, a file changed meanwhile...): the request's fault, so 400 with its message."""
    return bad_request(error.message)


def ledger_files(ledger: Any) -> list[Path]:
    return [Path(name) for name in ledger.options.get("include", [])] or [
        Path(ledger.beancount_file_path)
    ]


def checked_write(view: Callable[..., Any]) -> Callable[..., Any]:
    """A Fava view that may write, under the ledger lock and the write path's check."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from flask import g, request

        ledger = getattr(g, "ledger", None)
        if ledger is None or request.method not in WRITE_METHODS:
            return view(*args, **kwargs)
        main = Path(ledger.beancount_file_path)
        try:
            with write.ledger_lock(main, timeout=10):
                return _checked(ledger, main, request, view, args, kwargs)
        except write.WriteError as exc:
            return json_error(str(exc), HTTPStatus.SERVICE_UNAVAILABLE)

    return wrapper


def _checked(
    ledger: Any,
    main: Path,
    request: Any,
    view: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
) -> Any:
    ledger.changed()  # a CLI writer may have changed the text since Fava last looked
    files = ledger_files(ledger)
    had_errors = bool(ledger.load_errors)
    if request.endpoint == "json_api.put_source" and not had_errors:
        # The editor's whole file: checked before Fava writes it.
        data = request.get_json(silent=True)
        if isinstance(data, dict) and isinstance(data.get("source"), str):
            path = Path(str(data.get("file_path", "")))
            if path in files:
                errors = write.staged_check(main, files, [write.FileChange(path, data["source"])])
                if errors:
                    return _refused(errors)
    before = {path: path.read_bytes() for path in files if path.is_file()}
    response = view(*args, **kwargs)
    changed = [
        path for path, old in before.items() if not path.is_file() or path.read_bytes() != old
    ]
    if not changed or had_errors:
        return response
    changes = [write.FileChange(path, read_text(path)) for path in changed]
    errors = write.staged_check(main, files, changes)
    if not errors:
        return response
    # Put back what Fava wrote, as the CLI writers never write it.
    for path in changed:
        write.write_atomic(path, before[path].decode("utf-8"))
    ledger.load_file()
    return _refused(errors)


def _refused(errors: list[str]) -> Any:
    shown = "\n".join(errors[:20])
    return json_error(
        f"the ledger would have {len(errors)} error(s) after this change; nothing was "
        f"written:\n{shown}",
        HTTPStatus.UNPROCESSABLE_ENTITY,
    )


WRITE_METHODS = frozenset({"PUT", "POST", "DELETE", "PATCH"})


def secure(app: Any, hosts: frozenset[str]) -> None:
    """Apply everything in this module to Fava's Flask ``app`` (before any request)."""
    app.jinja_env.loader = EscapingLoader(app.jinja_env.loader)
    if app.jinja_env.cache is not None:
        app.jinja_env.cache.clear()  # nothing compiled with the old loader stays
    from fava.helpers import FavaAPIError

    app.before_request(check_filters)
    app.before_request(confine_imports)
    # Fava answers its own user errors with 500, in the app and in its JSON API.
    app.register_error_handler(FavaAPIError, user_error)
    if "json_api" in app.blueprints:
        app.error_handler_spec["json_api"][None][FavaAPIError] = user_error
    for rule in app.url_map.iter_rules():
        if rule.methods and rule.methods & WRITE_METHODS and rule.endpoint in app.view_functions:
            app.view_functions[rule.endpoint] = checked_write(app.view_functions[rule.endpoint])
    app.wsgi_app = guard(app.wsgi_app, hosts)
