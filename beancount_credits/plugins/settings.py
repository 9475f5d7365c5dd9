"""Check the notification and auto top-up settings directives.

This plugin changes nothing: it returns the entries unchanged plus one error
per malformed ``credits-*`` settings directive (``credits-low-balance``,
``credits-contact``, ``credits-topup-rule``, ``credits-topup-enable``,
``credits-expiry-warnings``; see :mod:`beancount_credits.engine.settings` for their
syntax), so ``bean-check`` prints ``file:line: credits-contact 'alice': email:
'x' is not an email address: ...``. A directive naming a user id that no
wallet's ``open`` carries is an error too, and so is a user's ``email:`` (on
the wallet's ``open``, a ``credits-user`` change or a ``credits-contact``) that
is not one email address.

Enable it with::

    plugin "beancount_credits.plugins.settings"

It takes the shared configuration dict (the account roots, see
:mod:`beancount_credits.engine.config`): the users root tells it where the wallets are.
"""

from __future__ import annotations

from typing import Any

from beancount.core import data

from beancount_credits.engine import CreditsError, loadstamp, settings
from beancount_credits.engine.config import ConfigError, parse_config
from beancount_credits.engine.users import index_users

__plugins__ = ("check_settings",)

PLUGIN = "beancount_credits.plugins.settings"


def check_settings(
    entries: list[data.Directive], options_map: dict[str, Any], config_str: str | None = None
) -> tuple[list[data.Directive], list[CreditsError]]:
    """Parse the settings directives; the entries are returned unchanged."""
    loadstamp.stamp(options_map)
    try:
        config = parse_config(config_str)
    except ConfigError as exc:
        meta = data.new_metadata(f"<{PLUGIN}>", 0)
        return entries, [CreditsError(meta, f"{PLUGIN}: {exc}", None)]
    users = index_users(entries, config)
    parsed = settings.parse(entries, users)
    return entries, parsed.errors + parsed.address_errors
