"""Audit rules for a credits ledger: report entries that break the bookkeeping policy.

This plugin changes nothing: it returns the entries as they are, plus one error
per broken rule, whose source is the offending entry's metadata (so
``bean-check`` prints ``file:line: message``). The rules, each with its switch:

``require_txn_id``
    Every credit transaction (a transaction with a posting on a user wallet, a
    direct child of the users root) has a ``txn_id:``.
``require_user_id``
    Every ``open`` of a user wallet has a ``user_id:``.
``require_reason``
    Every adjustment (a transaction with a posting on the adjustments account
    or below it) has a non-empty ``reason:``.
``approval_above``
    An adjustment whose size (the absolute wallet postings summed per credit
    type) is above this number also has a non-empty ``approved_by:``. Default
    1000; ``None`` disables the rule.
``no_posting_after_close``
    No posting to a user wallet is dated after the wallet's ``close`` (the
    close date itself is allowed). Beancount reports the inactive account too;
    this error names the user and both dates.
``unique_txn_id``
    No ``txn_id`` is used twice. The grant engine
    (``beancount_credits.plugins.expire``) reports the same error, so when that
    plugin is in the ledger this rule is left to it and reported once; the rule
    is for ledgers that run the policy without the grant engine.
``whole_numbers``
    A posting on a user wallet has no more decimal places than its credit type
    allows: the ``precision:`` metadata of the commodity's ``commodity``
    directive, else 0 (whole credits). ``10.00 CREDIT`` is whole.

Every rule is on by default. Enable the plugin after the other two::

    plugin "beancount_credits.plugins.expire"
    plugin "beancount_credits.plugins.daily_balances"
    plugin "beancount_credits.plugins.policy"

It takes the same configuration dict as the other plugins (the account roots
``users``, ``income``, ``expenses``, ``adjustments``, ``breakage``,
``opening``; see :mod:`beancount_credits.engine.config`) plus the switches above; any
other key is an error. A dict written for the other plugins works here too
(their ``annotate`` and ``future_expiries`` are accepted and mean nothing to the
policy), but theirs reject the policy's switches. For example::

    plugin "beancount_credits.plugins.policy" "{'approval_above': 500, 'whole_numbers': False}"

Entries a plugin generated (their file name is ``<...>``, e.g. the expiries the
grant engine books, or accounts opened by ``auto_accounts``) are not checked:
they have no line to fix. So the order does not change the outcome: listed
before the grant engine the policy never sees its expiries, listed after it
skips them. (Beancount's ``pad`` runs after every listed plugin, so padding
into a wallet is not seen either.)

One pass over the date-sorted entries (Beancount sorts them after every
plugin), with constant work per posting.
"""

from __future__ import annotations

import dataclasses
import datetime
from decimal import Decimal
from typing import Any

from beancount.core import amount as amount_lib
from beancount.core import data

from beancount_credits.engine import CreditsError, is_generated, loadstamp, meta_int
from beancount_credits.engine.config import (
    ConfigError,
    CreditsConfig,
    literal_dict,
    parse_config,
    runs_expire_plugin,
)

__plugins__ = ("policy",)

PLUGIN = "beancount_credits.plugins.policy"
GENERATED_FILENAME = f"<{PLUGIN}>"

SWITCHES = (
    "require_txn_id",
    "require_user_id",
    "require_reason",
    "no_posting_after_close",
    "unique_txn_id",
    "whole_numbers",
)
DEFAULT_APPROVAL_ABOVE = Decimal(1000)

# Account roles, cached per account name.
OTHER, WALLET, ADJUSTMENT = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """Which rules are on, and the account roots they apply to."""

    accounts: CreditsConfig = dataclasses.field(default_factory=CreditsConfig)
    require_txn_id: bool = True
    require_user_id: bool = True
    require_reason: bool = True
    approval_above: Decimal | None = DEFAULT_APPROVAL_ABOVE
    no_posting_after_close: bool = True
    unique_txn_id: bool = True
    whole_numbers: bool = True


def parse_policy_config(config_str: str | None) -> PolicyConfig:
    """Parse the plugin's configuration dict literal; raises ConfigError."""
    raw = literal_dict(config_str)
    if not raw:
        return PolicyConfig()
    shared = {field.name for field in dataclasses.fields(CreditsConfig)}
    known = shared | set(SWITCHES) | {"approval_above"}
    rest: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            names = ", ".join(sorted(str(name) for name in known))
            raise ConfigError(f"unknown plugin configuration key {key!r} (known: {names})")
        if key in shared:
            rest[key] = value
        elif key == "approval_above":
            values[key] = parse_threshold(value)
        elif not isinstance(value, bool):
            raise ConfigError(f"configuration key {key!r} must be True or False, not {value!r}")
        else:
            values[key] = value
    # The shared keys are validated by the shared parser (a dict of literals
    # round-trips through repr).
    return PolicyConfig(accounts=parse_config(repr(rest)), **values)


def parse_threshold(value: Any) -> Decimal | None:
    """``approval_above``: a non-negative number, or None (no approval needed)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"configuration key 'approval_above' must be a number or None: {value!r}")
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError:
        number = Decimal("NaN")
    if not number.is_finite() or number < 0:
        raise ConfigError(
            f"configuration key 'approval_above' must be a non-negative number or None: {value!r}"
        )
    return number


def account_role(account: str, config: CreditsConfig) -> int:
    if config.is_user_account(account):
        return WALLET
    root = config.adjustments
    if account == root or account.startswith(root + ":"):
        return ADJUSTMENT
    return OTHER


def text_value(meta: data.Meta, key: str) -> str | None:
    """A metadata value as text, or None when it is missing or blank."""
    value = meta.get(key)
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def decimal_places(number: Decimal) -> int:
    """Decimal places a number needs: 10.50 needs 1, 10.00 and 1E+2 none."""
    exponent = number.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def format_amounts(sizes: dict[str, Decimal]) -> str:
    return ", ".join(f"{number} {currency}" for currency, number in sizes.items())


class _Checker:
    """State of the one pass; use :func:`check`."""

    def __init__(self, config: PolicyConfig, unique_txn_id: bool):
        self.config = config
        self.accounts = config.accounts
        self.unique_txn_id = unique_txn_id
        self.errors: list[tuple[int, CreditsError]] = []
        self.roles: dict[str, int] = {}
        self.user_ids: dict[str, str] = {}  # wallet -> user_id of its open
        self.closed: dict[str, datetime.date] = {}  # wallet -> close date
        self.first_use: dict[str, data.Meta] = {}  # txn_id -> where first used
        self.precisions: dict[str, int] = {}  # commodity -> declared precision
        # Wallet postings with a fractional part, checked once every
        # commodity's precision is known (a commodity may be declared late).
        self.fractional: list[tuple[int, data.Transaction, str, amount_lib.Amount]] = []

    def error(self, index: int, entry: data.Directive, message: str) -> None:
        self.errors.append((index, CreditsError(entry.meta, message, entry)))

    def user(self, account: str) -> str:
        user_id = self.user_ids.get(account)
        return f"user {user_id!r}" if user_id is not None else f"wallet {account}"

    def users(self, accounts: list[str]) -> str:
        return " and ".join(self.user(account) for account in accounts)

    def open(self, index: int, entry: data.Open) -> None:
        if self.role(entry.account) != WALLET:
            return
        user_id = text_value(entry.meta, "user_id")
        if user_id is not None:
            self.user_ids[entry.account] = user_id
        elif self.config.require_user_id:
            self.error(
                index,
                entry,
                f"Wallet {entry.account} has no user_id: on its open (every user account "
                "carries the platform's user id; tools look users up by it)",
            )

    def close(self, entry: data.Close) -> None:
        if self.role(entry.account) == WALLET:
            self.closed[entry.account] = entry.date

    def commodity(self, index: int, entry: data.Commodity) -> None:
        value = entry.meta.get("precision")
        if value is None:
            return
        try:
            precision = meta_int(value)
        except (ValueError, ArithmeticError):
            precision = -1
        if precision < 0:
            self.error(
                index,
                entry,
                f"Commodity {entry.currency} has precision: {value}; it must be a whole "
                "number of decimal places, 0 or more (checked as whole credits meanwhile)",
            )
            return
        self.precisions[entry.currency] = precision

    def role(self, account: str) -> int:
        role = self.roles.get(account)
        if role is None:
            role = self.roles[account] = account_role(account, self.accounts)
        return role

    def transaction(self, index: int, entry: data.Transaction) -> None:
        config = self.config
        meta = entry.meta
        txn_id = text_value(meta, "txn_id")
        wallets: list[str] = []
        adjustment = False
        roles = self.roles
        for posting in entry.postings:
            account = posting.account
            role = roles.get(account)
            if role is None:
                role = self.role(account)
            if role == OTHER:
                continue
            if role == ADJUSTMENT:
                adjustment = True
                continue
            if account not in wallets:
                wallets.append(account)
                close_date = self.closed.get(account)
                if (
                    close_date is not None
                    and entry.date > close_date
                    and config.no_posting_after_close
                ):
                    self.error(
                        index,
                        entry,
                        f"Posting to {account} ({self.user(account)}) on {entry.date}, "
                        f"after the wallet was closed on {close_date}",
                    )
            units = posting.units
            if config.whole_numbers and units is not None:
                number = units.number
                if isinstance(number, Decimal) and number != number.to_integral_value():
                    self.fractional.append((index, entry, account, units))

        if txn_id is None:
            if wallets and config.require_txn_id:
                self.error(
                    index,
                    entry,
                    f"Credit transaction for {self.users(wallets)} has no txn_id: (every "
                    "credit transaction needs a Transaction ID, its idempotency key)",
                )
        elif self.unique_txn_id:
            first = self.first_use.get(txn_id)
            if first is None:
                self.first_use[txn_id] = meta
            else:
                whose = f" for {self.users(wallets)}" if wallets else ""
                self.error(
                    index,
                    entry,
                    f"Duplicate txn_id {txn_id!r}{whose} (first used at "
                    f"{first.get('filename')}:{first.get('lineno')}); txn_id is the "
                    "idempotency key and must be unique",
                )

        if adjustment:
            self.adjustment(index, entry, wallets)

    def adjustment(self, index: int, entry: data.Transaction, wallets: list[str]) -> None:
        """``reason:`` on every adjustment, ``approved_by:`` above the threshold."""
        config = self.config
        sizes: dict[str, Decimal] = {}
        for posting in entry.postings:
            units = posting.units
            if (
                units is None
                or not isinstance(units.number, Decimal)
                or self.role(posting.account) != WALLET
            ):
                continue
            sizes[units.currency] = sizes.get(units.currency, Decimal(0)) + abs(units.number)
        what = "Adjustment"
        if sizes:
            what += f" of {format_amounts(sizes)}"
        if wallets:
            what += f" for {self.users(wallets)}"
        if config.require_reason and text_value(entry.meta, "reason") is None:
            self.error(index, entry, f"{what} needs reason: (why the credits were adjusted)")
        threshold = config.approval_above
        if (
            threshold is not None
            and any(size > threshold for size in sizes.values())
            and text_value(entry.meta, "approved_by") is None
        ):
            self.error(index, entry, f"{what} needs approved_by: (above {threshold})")

    def check_fractional(self) -> None:
        for index, entry, account, units in self.fractional:
            allowed = self.precisions.get(units.currency, 0)
            places = decimal_places(units.number)
            if places <= allowed:
                continue
            plural = "" if places == 1 else "s"
            if allowed:
                hint = f"its commodity declares precision: {allowed}"
            else:
                hint = "credits are whole unless its commodity declares a precision:"
            self.error(
                index,
                entry,
                f"Amount {units} for {self.user(account)} has {places} decimal place{plural}; "
                f"{units.currency} allows {allowed} ({hint})",
            )


def check(
    entries: list[data.Directive], config: PolicyConfig, unique_txn_id: bool | None = None
) -> list[CreditsError]:
    """The policy errors of date-sorted entries, in entry order.

    ``unique_txn_id`` overrides the configuration's switch (the plugin turns it
    off when the grant engine already reports duplicates).
    """
    checker = _Checker(config, config.unique_txn_id if unique_txn_id is None else unique_txn_id)
    for index, entry in enumerate(entries):
        if not entry.meta or is_generated(entry):
            continue  # a plugin made it: there is no line to fix
        if isinstance(entry, data.Transaction):
            checker.transaction(index, entry)
        elif isinstance(entry, data.Open):
            checker.open(index, entry)
        elif isinstance(entry, data.Close):
            checker.close(entry)
        elif isinstance(entry, data.Commodity) and config.whole_numbers:
            checker.commodity(index, entry)
    checker.check_fractional()
    checker.errors.sort(key=lambda pair: pair[0])  # stable: rule order within an entry
    return [error for _index, error in checker.errors]


def policy(
    entries: list[data.Directive], options_map: dict[str, Any], config_str: str | None = None
) -> tuple[list[data.Directive], list[CreditsError]]:
    """Check the entries against the policy; the entries are returned unchanged."""
    loadstamp.stamp(options_map)
    try:
        config = parse_policy_config(config_str)
    except ConfigError as exc:
        meta = data.new_metadata(GENERATED_FILENAME, 0)
        return entries, [CreditsError(meta, f"{PLUGIN}: {exc}", None)]
    unique = config.unique_txn_id and not runs_expire_plugin(options_map)
    return entries, check(entries, config, unique_txn_id=unique)
