"""The chart of accounts and the plugin configuration shared by every part.

Every plugin of this package takes the same optional configuration string, a
Python dict literal parsed with :func:`ast.literal_eval`, for example::

    plugin "beancount_credits.plugins.expire" "{'users': 'Assets:Wallets'}"

Keys (all optional; the defaults are the chart of accounts of docs/design.md):

- ``users``: root of the user wallets (``Assets:Credits:Users``)
- ``income``: root of the sources credits are earned from (``Income:Credits``)
- ``expenses``: root of what credits are spent on (``Expenses:Credits``)
- ``adjustments``: manual adjustments (``Equity:Credits:Adjustments``)
- ``breakage``: expired credits (``Equity:Credits:Breakage``)
- ``opening``: carried forward at a period close (``Equity:Credits:Opening``)
- ``annotate``: annotate draw-downs with the grants they consumed (``True``)
- ``future_expiries``: also book expiries dated after the ledger's last
  written transaction or balance, i.e. the whole schedule (``False``: an expiry
  is booked once the ledger has reached its date)
- ``order``: the draw-down order, a list of keys among ``priority``,
  ``expiry``, ``granted``, ``id``, ``cost`` (lowest unit cost first),
  ``cost_desc`` and ``source`` (default ``['priority', 'expiry', 'granted',
  'id']``; the grant id always ends it), see :func:`engine.consumption_order`
- ``sources``: the ranking of source accounts the ``source`` key uses, e.g.
  ``['Income:Credits:Promotion', 'Income:Credits:Purchase']``
"""

from __future__ import annotations

import ast
import dataclasses
from typing import Any

from beancount.core import account as account_lib

from beancount_credits.engine.model import DEFAULT_ORDER, ORDER_KEYS, DrawDownOrder


@dataclasses.dataclass(frozen=True)
class CreditsConfig:
    """Account roots and switches of the credits ledger."""

    users: str = "Assets:Credits:Users"
    income: str = "Income:Credits"
    expenses: str = "Expenses:Credits"
    adjustments: str = "Equity:Credits:Adjustments"
    breakage: str = "Equity:Credits:Breakage"
    opening: str = "Equity:Credits:Opening"
    annotate: bool = True
    future_expiries: bool = False
    order: tuple[str, ...] = DEFAULT_ORDER
    sources: tuple[str, ...] = ()

    @property
    def draw_down_order(self) -> DrawDownOrder | None:
        """The configured order (None: the default one)."""
        if self.order == DEFAULT_ORDER:
            return None
        return DrawDownOrder(self.order, self.sources)

    def is_user_account(self, account: str) -> bool:
        """True for a wallet: a direct child of the users root."""
        return account.startswith(self.users + ":") and ":" not in account[len(self.users) + 1 :]


EXPIRE_PLUGIN = "beancount_credits.plugins.expire"


def runs_expire_plugin(options_map: dict[str, Any]) -> bool:
    """True when the ledger lists the grant engine's plugin."""
    return any(name == EXPIRE_PLUGIN for name, _config in options_map.get("plugin") or ())


ACCOUNT_KEYS = ("users", "income", "expenses", "adjustments", "breakage", "opening")


class ConfigError(ValueError):
    """A plugin configuration string that cannot be used."""


def literal_dict(config_str: str | None) -> dict[Any, Any]:
    """A plugin configuration string as a dict ({} when empty); raises ConfigError."""
    if config_str is None or not config_str.strip():
        return {}
    try:
        raw: Any = ast.literal_eval(config_str)
    except (ValueError, SyntaxError) as exc:
        raise ConfigError(f"plugin configuration is not a Python dict literal: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"plugin configuration must be a dict, not {type(raw).__name__}")
    return raw


def parse_config(config_str: str | None) -> CreditsConfig:
    """Parse a plugin configuration string (a dict literal) into a CreditsConfig.

    Raises ConfigError with the reason when the string is not a dict literal,
    names an unknown key, or gives an invalid account name.
    """
    raw = literal_dict(config_str)
    known = {field.name for field in dataclasses.fields(CreditsConfig)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(
                f"unknown plugin configuration key {key!r} (known: {', '.join(sorted(known))})"
            )
        if key in ACCOUNT_KEYS:
            if not isinstance(value, str) or not account_lib.is_valid(value):
                raise ConfigError(f"configuration key {key!r}: {value!r} is not an account name")
        elif key in ("annotate", "future_expiries") and not isinstance(value, bool):
            raise ConfigError(f"configuration key {key!r} must be True or False, not {value!r}")
        elif key == "order":
            value = _order(value)
        elif key == "sources":
            if not isinstance(value, list | tuple) or not all(
                isinstance(item, str) and account_lib.is_valid(item) for item in value
            ):
                raise ConfigError(f"configuration key 'sources' must list accounts, not {value!r}")
            value = tuple(value)
        values[key] = value
    if "source" in values.get("order", ()) and not values.get("sources"):
        raise ConfigError("the order key 'source' needs 'sources': the source accounts, in order")
    return CreditsConfig(**values)


def _order(value: Any) -> tuple[str, ...]:
    """A draw-down order: known keys, each once; the grant id ends it (one order, always)."""
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(f"configuration key 'order' must list order keys, not {value!r}")
    for name in value:
        if name not in ORDER_KEYS:
            raise ConfigError(
                f"configuration key 'order': unknown key {name!r} (known: {', '.join(ORDER_KEYS)})"
            )
    if len(set(value)) != len(value):
        raise ConfigError(f"configuration key 'order' names a key twice: {value!r}")
    return tuple(value) if "id" in value else (*value, "id")
