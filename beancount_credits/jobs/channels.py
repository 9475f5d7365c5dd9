"""Delivery channels: email (SMTP), webhook (signed JSON POST) and the in-app outbox.

The I/O edge of the notifier. Configuration comes from environment variables
only — credentials never from the ledger or the command line:

========================================  ===============================================
``BEAN_CREDITS_SMTP_HOST``                SMTP server; without it the email channel is off
``BEAN_CREDITS_SMTP_PORT``                port (default 587)
``BEAN_CREDITS_SMTP_STARTTLS``            ``1`` (default) upgrade with STARTTLS, ``0`` plain
``BEAN_CREDITS_SMTP_CAFILE``              CA bundle to verify the server (default: system)
``BEAN_CREDITS_SMTP_USER`` / ``_PASSWORD``  login (optional)
``BEAN_CREDITS_SMTP_FROM``                sender address (default ``credits@localhost``)
``BEAN_CREDITS_SMTP_TIMEOUT``             seconds (default 10)
``BEAN_CREDITS_WEBHOOK_SECRET``           HMAC-SHA256 key; without it the webhook channel is off
``BEAN_CREDITS_WEBHOOK_TIMEOUT``          seconds per attempt (default 5)
``BEAN_CREDITS_WEBHOOK_ATTEMPTS``         attempts per run (default 3)
``BEAN_CREDITS_WEBHOOK_BACKOFF``          seconds before the 2nd attempt, doubled after (default 1)
``BEAN_CREDITS_WEBHOOK_ALLOW_PRIVATE``    ``1``: allow loopback, private and link-local targets
========================================  ===============================================

A webhook POST carries ``X-Credits-Notification-Id``, ``X-Credits-Timestamp``
and ``X-Credits-Signature: sha256=<hex>``, the HMAC-SHA256 with the secret of
``<timestamp>.<body>``; the receiver recomputes it and may reject old
timestamps. A 2xx is delivered; a 5xx, 408, 429, a timeout or a refused
connection is retried with exponential backoff; another 4xx, a 3xx (redirects
are not followed) or a refused target fails at once. Only ``http``/``https``
URLs whose host resolves to public addresses are posted to (the connection
goes to the address checked), unless ``BEAN_CREDITS_WEBHOOK_ALLOW_PRIVATE=1``.
An email goes to one address, checked again before sending.

The in-app outbox is a JSON Lines file (one notification per line); an app
reads it and acknowledges notifications by appending ``{"ack": "<id>"}`` lines
to ``<outbox>.acks`` (:func:`acknowledge`, :func:`unread`). A notification
already in the file is not appended again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.message
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from beancount_credits.ledger.text import read_text, split_lines

ENV = "BEAN_CREDITS_"


class DeliveryError(Exception):
    """A delivery that failed; the message is the reason recorded."""

    def __init__(self, reason: str, attempts: int = 1):
        super().__init__(reason)
        self.attempts = attempts


@dataclasses.dataclass(frozen=True)
class Message:
    """What a channel sends: the rendered alert."""

    notification_id: str
    kind: str
    user_id: str
    subject: str
    body: str
    fields: dict[str, str]
    created_at: str


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(ENV + name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"environment variable {ENV}{name}={text!r} is not a number") from None
    if value < 0:
        raise ValueError(f"environment variable {ENV}{name}={text!r} is negative")
    return value


# --- Email -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    starttls: bool = True
    cafile: str | None = None
    user: str | None = None
    password: str | None = None
    sender: str = "credits@localhost"
    timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpConfig | None:
        host = env.get(ENV + "SMTP_HOST")
        if not host:
            return None
        starttls = env.get(ENV + "SMTP_STARTTLS", "1").strip().lower()
        if starttls not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"environment variable {ENV}SMTP_STARTTLS={starttls!r}: use 1 or 0")
        return cls(
            host=host,
            port=int(_number(env, "SMTP_PORT", 587)),
            starttls=starttls in ("1", "true", "yes"),
            cafile=env.get(ENV + "SMTP_CAFILE") or None,
            user=env.get(ENV + "SMTP_USER") or None,
            password=env.get(ENV + "SMTP_PASSWORD") or None,
            sender=env.get(ENV + "SMTP_FROM") or "credits@localhost",
            timeout=_number(env, "SMTP_TIMEOUT", 10.0),
        )


class EmailChannel:
    """Sends each message over one SMTP connection per run, opened on first use."""

    def __init__(self, config: SmtpConfig):
        self.config = config
        self._smtp: smtplib.SMTP | None = None
        self._down: str | None = None  # why connecting failed: the rest of the run fails fast

    def _connect(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        if self._down is not None:
            raise DeliveryError(self._down, attempts=0)
        config = self.config
        try:
            smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
            if config.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=config.cafile))
            if config.user:
                smtp.login(config.user, config.password or "")
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            self._down = f"SMTP {config.host}:{config.port}: {_describe(exc)}"
            raise DeliveryError(self._down) from None
        self._smtp = smtp
        return smtp

    def send(self, message: Message, address: str) -> int:
        from beancount_credits.engine.settings import check_email

        try:
            check_email(address)  # one address: no header injection, no extra recipients
        except ValueError as exc:
            raise DeliveryError(f"refused: {exc}", attempts=0) from None
        mail = email.message.EmailMessage()
        mail["From"] = self.config.sender
        mail["To"] = address
        mail["Subject"] = message.subject
        # A stable Message-ID: a resend after a crash is recognisably the same mail.
        mail["Message-ID"] = f"<{message.notification_id}@bean-credits>"
        mail["X-Credits-Notification-Id"] = message.notification_id
        mail["X-Credits-Alert"] = message.kind
        mail.set_content(message.body)
        smtp = self._connect()
        try:
            smtp.send_message(mail, to_addrs=[address])
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise DeliveryError(f"SMTP: {_describe(exc)}") from None
        return 1

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._smtp.quit()
            self._smtp = None


# --- Webhook ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WebhookConfig:
    secret: str
    timeout: float = 5.0
    attempts: int = 3
    backoff: float = 1.0
    allow_private: bool = False  # private, loopback and link-local targets (off: refused)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookConfig | None:
        secret = env.get(ENV + "WEBHOOK_SECRET")
        if not secret:
            return None
        allow = env.get(ENV + "WEBHOOK_ALLOW_PRIVATE", "0").strip().lower()
        if allow not in ("1", "0", "true", "false", "yes", "no", ""):
            raise ValueError(
                f"environment variable {ENV}WEBHOOK_ALLOW_PRIVATE={allow!r}: use 1 or 0"
            )
        return cls(
            secret=secret,
            timeout=_number(env, "WEBHOOK_TIMEOUT", 5.0),
            attempts=max(1, int(_number(env, "WEBHOOK_ATTEMPTS", 3))),
            backoff=_number(env, "WEBHOOK_BACKOFF", 1.0),
            allow_private=allow in ("1", "true", "yes"),
        )


class Refused(DeliveryError):
    """A webhook target that is not allowed (scheme, or a private address); never retried."""


def webhook_target(url: str, allow_private: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, resolved address) of a webhook URL, or :class:`Refused`.

    Only ``http`` and ``https``; the host's addresses must all be public
    unless ``allow_private`` (``BEAN_CREDITS_WEBHOOK_ALLOW_PRIVATE=1``): a
    URL in the ledger must not make the notifier reach the loopback, the
    private network, link-local (cloud metadata) or multicast addresses. The
    connection is made to the address checked here, so a second DNS answer
    cannot change it.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"webhook URL {url!r}: {exc}", attempts=0) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"webhook URL {url!r}: only http:// and https:// URLs", attempts=0)
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise DeliveryError(f"webhook host {host!r}: {_describe(exc)}") from None
    addresses = [str(info[4][0]) for info in found]
    if not allow_private:
        for address in addresses:
            why = _not_public(address)
            if why is not None:
                raise Refused(
                    f"webhook URL {url!r} resolves to {address}, {why}; refused "
                    f"(set {ENV}WEBHOOK_ALLOW_PRIVATE=1 to allow)",
                    attempts=0,
                )
    return parts.scheme, host, port, addresses[0]


def _not_public(address: str) -> str | None:
    """Why an IP address is not a public unicast one (None: it is)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for name in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{name}"):
            return f"a {name.replace('_', '-')} address"
    if not ip.is_global:
        return "not a public address"
    return None


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address checked by :func:`webhook_target`, not a new DNS answer."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        # The certificate is checked against the URL's host name (SNI too).
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Credits-Signature`` value for a body sent at ``timestamp``."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def webhook_body(message: Message) -> bytes:
    document = {
        "id": message.notification_id,
        "type": f"credits.{message.kind}",
        "user_id": message.user_id,
        "created_at": message.created_at,
        "subject": message.subject,
        "message": message.body,
        "data": message.fields,
    }
    return json.dumps(document, sort_keys=True).encode("utf-8")


_RETRY_STATUS = {408, 429}


class WebhookChannel:
    def __init__(self, config: WebhookConfig, sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self.sleep = sleep

    def send(self, message: Message, address: str) -> int:
        body = webhook_body(message)
        reason = ""
        for attempt in range(1, self.config.attempts + 1):
            if attempt > 1:
                self.sleep(self.config.backoff * 2 ** (attempt - 2))
            # Checked (and resolved) on every attempt: the answer may change between them.
            scheme, host, port, resolved = webhook_target(address, self.config.allow_private)
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "bean-credits",
                "X-Credits-Notification-Id": message.notification_id,
                "X-Credits-Timestamp": timestamp,
                "X-Credits-Signature": signature(self.config.secret, timestamp, body),
            }
            kind = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
            connection = kind(host, port, resolved, self.config.timeout)
            try:
                parts = urllib.parse.urlsplit(address)
                path = parts.path or "/"
                connection.request(
                    "POST", path + (f"?{parts.query}" if parts.query else ""), body, headers
                )
                response = connection.getresponse()
                response.read()
                status = response.status
                reason = f"HTTP {status} {response.reason}"
            except (OSError, http.client.HTTPException) as exc:
                reason = _describe(exc)
                continue
            finally:
                connection.close()
            if 200 <= status < 300:
                return attempt
            # Redirects are not followed: a 3xx could point anywhere, the check above included.
            if status < 500 and status not in _RETRY_STATUS:
                raise DeliveryError(reason, attempt) from None
        raise DeliveryError(
            f"{reason} (after {self.config.attempts} attempts)", self.config.attempts
        )

    def close(self) -> None:
        pass


# --- In-app outbox -----------------------------------------------------------------


class InAppChannel:
    """Appends to a JSON Lines file; a notification already there is not appended again."""

    def __init__(self, path: Path):
        self.path = path
        self._ids: set[str] | None = None

    def _known(self) -> set[str]:
        if self._ids is None:
            self._ids = {line.get("id") for line in read_lines(self.path)}  # type: ignore[misc]
        return self._ids

    def send(self, message: Message, address: str) -> int:
        if message.notification_id in self._known():
            return 1  # written by a run that crashed before recording it
        line = {
            "id": message.notification_id,
            "type": f"credits.{message.kind}",
            "user_id": message.user_id,
            "created_at": message.created_at,
            "subject": message.subject,
            "message": message.body,
            "data": message.fields,
        }
        try:
            _append_line(self.path, line)
        except OSError as exc:
            raise DeliveryError(f"outbox {self.path}: {_describe(exc)}") from None
        self._known().add(message.notification_id)
        return 1

    def close(self) -> None:
        pass


def _append_line(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(document, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSON Lines file ([] if there is none; a torn last line is skipped)."""
    if not path.exists():
        return []
    result = []
    # "\n" only: a U+2028 inside a JSON string is not a line end (split_lines).
    for line in split_lines(read_text(path)):
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if isinstance(document, dict):
            result.append(document)
    return result


def acks_path(outbox: Path) -> Path:
    return outbox.with_name(outbox.name + ".acks")


def acknowledge(outbox: Path, ids: Iterable[str]) -> None:
    """Mark in-app notifications as read (appends to ``<outbox>.acks``)."""
    for notification_id in ids:
        _append_line(acks_path(outbox), {"ack": notification_id})


def unread(outbox: Path, user_id: str | None = None) -> list[dict[str, Any]]:
    """In-app notifications not acknowledged yet (of one user, or everyone's)."""
    acked = {line.get("ack") for line in read_lines(acks_path(outbox))}
    return [
        line
        for line in read_lines(outbox)
        if line.get("id") not in acked and (user_id is None or line.get("user_id") == user_id)
    ]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
