"""Who may call the service: a bearer token, and optionally Standard Webhooks signatures.

- ``BEAN_CREDITS_SERVICE_TOKEN``: every endpoint but ``/v1/health`` asks for
  ``Authorization: Bearer <token>`` (compared in constant time). Without it
  the service listens on loopback only (:func:`check_listen`).
- ``BEAN_CREDITS_SERVICE_WEBHOOK_SECRET`` (``whsec_...``): ``POST /v1/events``
  also asks for a valid Standard Webhooks signature (``webhook-id``,
  ``webhook-timestamp``, ``webhook-signature``; the timestamp within five
  minutes), checked by the ``standardwebhooks`` library.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping

TOKEN_ENV = "BEAN_CREDITS_SERVICE_TOKEN"
WEBHOOK_ENV = "BEAN_CREDITS_SERVICE_WEBHOOK_SECRET"
LOOPBACK_NAMES = ("localhost",)


class AuthError(Exception):
    """A request without the right credentials (401), or a refused configuration."""


def token_from_env() -> str | None:
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


def webhook_secret_from_env() -> str | None:
    secret = os.environ.get(WEBHOOK_ENV, "").strip()
    return secret or None


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token."""
    if token is None and not is_loopback(host):
        raise AuthError(
            f"refusing to listen on {host} without a token: set {TOKEN_ENV} "
            "(every client then sends Authorization: Bearer <token>)"
        )


def check_bearer(header: str | None, token: str | None) -> None:
    """The request's ``Authorization`` header against the token (None: no token asked)."""
    if token is None:
        return
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8"), token.encode("utf-8")
    ):
        raise AuthError("missing or wrong bearer token")


def check_signature(body: bytes, headers: Mapping[str, str], secret: str | None) -> None:
    """A Standard Webhooks signature of ``body`` (None secret: none asked)."""
    if secret is None:
        return
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    wanted = ("webhook-id", "webhook-timestamp", "webhook-signature")
    try:
        Webhook(secret).verify(
            body, {name: headers.get(name, "") for name in wanted}, json_parse=False
        )
    except WebhookVerificationError as exc:
        raise AuthError(f"webhook signature: {exc}") from None
    except ValueError:  # a malformed header or body (UnicodeDecodeError is one too)
        raise AuthError("webhook signature: malformed") from None
