"""Test kit for the notifier: the fixture ledger, real SMTP and HTTP servers on loopback."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import hashlib
import hmac
import http.server
import json
import shutil
import socket
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from click.testing import CliRunner
from conftest import git

from beancount_credits.cli import main
from beancount_credits.ledger import write

FIXTURE = Path(__file__).parent / "notify"
SECRET = "test-webhook-secret"


def copy_ledger(tmp_path: Path, webhook: str | None = None) -> Path:
    """The fixture ledger in a fresh git repository; ``webhook`` replaces the contacts' URL."""
    root = tmp_path / "ledger"
    shutil.copytree(FIXTURE, root)
    if webhook is not None:
        settings = root / "settings.beancount"
        settings.write_text(settings.read_text().replace("http://127.0.0.1:1/hook", webhook))
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "Fixture")
    return root / "main.beancount"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def append(ledger: Path, name: str, text: str, message: str = "test data") -> None:
    """Append entries to an included file through the write path (lock, check, rename)."""
    from beancount_credits.ledger import load

    with write.ledger_lock(ledger):
        loaded = load(ledger, cache=False)
        path = ledger.parent / name
        old = path.read_text()
        change = write.FileChange(path, old + ("" if old.endswith("\n") else "\n") + "\n" + text)
        write.apply(ledger, write.ledger_files(ledger, loaded.options), [change], message=message)


def topup_failed(day: str, user: str, request: str, reason: str, amount: str, txn: str) -> str:
    """A failure record in the importer's shape."""
    return (
        f'{day} custom "credits-topup" "{user}" "failed"\n'
        f'  txn_id: "{txn}"\n  request: "{request}"\n  reason: "{reason}"\n  amount: {amount}\n'
    )


def topup_succeeded(day: str, account: str, request: str, amount: str, txn: str) -> str:
    """A success grant in the importer's shape."""
    return (
        f'{day} * "Automatic top-up"\n  txn_id: "{txn}"\n  topup_request: "{request}"\n'
        f"  {account}   {amount}\n  Income:Credits:TopUp\n"
    )


def cli(*args: str, env: dict[str, str] | None = None, code: int | None = 0) -> str:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, result.output
    return result.output


# --- SMTP ----------------------------------------------------------------------------


class MailBox:
    """aiosmtpd handler that parses and keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.on_data: Callable[[EmailMessage], None] | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        if self.on_data is not None:
            self.on_data(message)
        return "250 OK"


def smtp_server(port: int | None = None, **kwargs: Any) -> tuple[Controller, MailBox]:
    box = MailBox()
    controller = Controller(box, hostname="127.0.0.1", port=port or free_port(), **kwargs)
    controller.start()
    return controller, box


def smtp_env(port: int, **extra: str) -> dict[str, str]:
    return {
        "BEAN_CREDITS_SMTP_HOST": "127.0.0.1",
        "BEAN_CREDITS_SMTP_PORT": str(port),
        "BEAN_CREDITS_SMTP_STARTTLS": "0",
        "BEAN_CREDITS_SMTP_FROM": "credits@example.com",
        "BEAN_CREDITS_SMTP_TIMEOUT": "2",
        **extra,
    }


# --- Webhook ----------------------------------------------------------------------------


@dataclasses.dataclass
class Hook:
    """What the webhook receiver got: headers, body, and whether the signature held."""

    headers: dict[str, str]
    body: bytes
    signed: bool

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class HookServer:
    """http.server on loopback; ``script`` says how to answer each request in turn.

    Each item: an HTTP status (int), or ``("sleep", seconds, status)``, or a
    callable run before answering 200. After the script, 200.
    """

    def __init__(self, script: list[Any] | None = None, secret: str = SECRET):
        self.script = list(script or [])
        self.secret = secret
        self.received: list[Hook] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                timestamp = self.headers.get("X-Credits-Timestamp", "")
                expected = hmac.new(
                    outer.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
                ).hexdigest()
                signed = hmac.compare_digest(
                    self.headers.get("X-Credits-Signature", ""), "sha256=" + expected
                )
                outer.received.append(Hook(dict(self.headers.items()), body, signed))
                action = outer.script.pop(0) if outer.script else 200
                if callable(action):
                    action()
                    action = 200
                if isinstance(action, tuple):
                    _sleep, seconds, action = action
                    time.sleep(seconds)
                try:
                    self.send_response(action)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up (timeout)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hook_env(**extra: str) -> dict[str, str]:
    return {
        "BEAN_CREDITS_WEBHOOK_SECRET": SECRET,
        "BEAN_CREDITS_WEBHOOK_TIMEOUT": "0.5",
        "BEAN_CREDITS_WEBHOOK_ATTEMPTS": "3",
        "BEAN_CREDITS_WEBHOOK_BACKOFF": "0.05",
        # The receiver listens on the loopback interface, which is refused by default.
        "BEAN_CREDITS_WEBHOOK_ALLOW_PRIVATE": "1",
        **extra,
    }


def records(ledger: Path) -> list[dict[str, Any]]:
    """The credits-notification records as dicts (user_id plus metadata)."""
    from beancount.core import data

    from beancount_credits.ledger import load

    loaded = load(ledger, cache=False)
    result = []
    for entry in loaded.entries:
        if isinstance(entry, data.Custom) and entry.type == "credits-notification":
            meta = {k: v for k, v in entry.meta.items() if k not in ("filename", "lineno")}
            result.append({"date": str(entry.date), "user_id": entry.values[0].value, **meta})
    return result
