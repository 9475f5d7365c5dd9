"""Notification and auto top-up settings: dated ``custom`` directives in the ledger.

Settings that change over time live in the ledger text, so their history is in
git like everything else. Each directive takes effect on its date; for a given
day the latest directive dated on or before it applies.

Low-balance threshold (per credit type; the most specific scope wins: the user,
else the user's ``segment:``, else the default)::

    2025-09-01 custom "credits-low-balance" "default" 100 CREDIT
    2025-09-01 custom "credits-low-balance" "segment" "enterprise" 2000 CREDIT
    2026-01-15 custom "credits-low-balance" "user" "org-acme" 5000 CREDIT

Contact and per-channel opt-outs (the latest directive for a user replaces the
previous one; without ``email:`` the wallet's ``open`` ``email:`` is used; the
in-app channel needs no address)::

    2025-09-01 custom "credits-contact" "org-acme"
      email: "billing@acme.example"
      webhook: "https://hooks.acme.example/credits"
      opt_out: "email"            ; any of: email, webhook, inapp

Auto top-up rule (when the balance is below ``threshold``, request ``amount``
from the payment ``source``)::

    2025-09-01 custom "credits-topup-rule" "org-acme"
      threshold: 1000 CREDIT
      amount: 5000 CREDIT
      source: "card-on-file"
      expire_after: "12m"         ; optional: the granted credits expire
      max_per_day: 1              ; at most N requests in any 24 hours (default 1)
      max_failures: 3             ; disabled after K consecutive failures (default 3)
      backoff: "1d"               ; wait after a decline, doubled each time (h or d; default 1d)
    2026-02-01 custom "credits-topup-rule" "org-acme" "off"     ; switches the rule off
    2026-03-01 custom "credits-topup-enable" "org-acme"         ; re-enables after K failures
      reason: "new card on file"

Expiry warning windows, in days before a grant expires (default 30 and 7)::

    2025-09-01 custom "credits-expiry-warnings" 30 7

:func:`parse` reads them from loaded entries and reports every malformed one as
a Beancount error tuple naming file, line, user, field and reason; the plugin
:mod:`beancount_credits.plugins.settings` runs the same check under
``bean-check``. :func:`low_balance_threshold`, :func:`contact`,
:func:`topup_rule` and :func:`expiry_windows` resolve them as of a date.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import email_validator
from beancount.core import amount as amount_lib
from beancount.core import data

from beancount_credits.engine import CreditsError, parse_period

LOW_BALANCE = "credits-low-balance"
CONTACT = "credits-contact"
TOPUP_RULE = "credits-topup-rule"
TOPUP_ENABLE = "credits-topup-enable"
EXPIRY_WARNINGS = "credits-expiry-warnings"
USER_CHANGE = "credits-user"  # an imported change of a known user's segment or email
SETTINGS_TYPES = (LOW_BALANCE, CONTACT, TOPUP_RULE, TOPUP_ENABLE, EXPIRY_WARNINGS)

CHANNELS = ("email", "webhook", "inapp")
DEFAULT_EXPIRY_WINDOWS = (30, 7)
_HOURS_RE = re.compile(r"^\s*(\d+)\s*([hd])\s*$")


@dataclasses.dataclass(frozen=True)
class Threshold:
    """A low-balance threshold and where it comes from."""

    amount: amount_lib.Amount
    scope: str  # "user", "segment" or "default"
    key: str | None  # the user id or segment name
    date: datetime.date
    meta: data.Meta

    def describe(self) -> str:
        where = f"{self.meta.get('filename', '?')}:{self.meta.get('lineno', '?')}"
        scope = self.scope if self.key is None else f"{self.scope} {self.key}"
        return f"{self.amount} ({scope}, since {self.date}, {where})"


@dataclasses.dataclass(frozen=True)
class Contact:
    """How to reach a user: addresses and the channels they opted out of."""

    user_id: str
    email: str | None
    webhook: str | None
    opt_out: frozenset[str]
    date: datetime.date | None  # None: no contact directive, only the wallet's email
    meta: data.Meta
    email_error: str | None = None  # why the address given was refused (email is then None)

    def channels(self) -> dict[str, str]:
        """Channel -> why it is not used; channels missing from the dict are used."""
        reasons = {}
        for channel in CHANNELS:
            if channel in self.opt_out:
                reasons[channel] = "opted out"
            elif channel == "email" and self.email_error:
                reasons[channel] = f"email address refused: {self.email_error}"
            elif channel == "email" and not self.email:
                reasons[channel] = "no email address"
            elif channel == "webhook" and not self.webhook:
                reasons[channel] = "no webhook URL"
        return reasons


@dataclasses.dataclass(frozen=True)
class TopUpRule:
    """An auto top-up rule in force for a user (``enabled`` False: switched off)."""

    user_id: str
    threshold: amount_lib.Amount
    amount: amount_lib.Amount
    source: str
    expire_after: str | None
    max_per_day: int
    max_failures: int
    backoff: datetime.timedelta
    enabled: bool
    date: datetime.date
    meta: data.Meta


@dataclasses.dataclass
class Settings:
    """Every settings directive of a ledger, by kind, each list in date order."""

    thresholds: dict[tuple[str, str | None], list[Threshold]] = dataclasses.field(
        default_factory=lambda: defaultdict(list)
    )  # (scope, key) -> thresholds of every commodity
    contacts: dict[str, list[Contact]] = dataclasses.field(
        default_factory=lambda: defaultdict(list)
    )
    rules: dict[str, list[TopUpRule]] = dataclasses.field(default_factory=lambda: defaultdict(list))
    enables: dict[str, list[data.Custom]] = dataclasses.field(
        default_factory=lambda: defaultdict(list)
    )
    windows: list[tuple[datetime.date, tuple[int, ...], data.Meta]] = dataclasses.field(
        default_factory=list
    )
    errors: list[CreditsError] = dataclasses.field(default_factory=list)
    # A user's email address that is not one (wallet open, credits-user, credits-contact):
    # an error for that user only; notify skips their email and goes on with the rest.
    address_errors: list[CreditsError] = dataclasses.field(default_factory=list)


class _Invalid(Exception):
    """One malformed field; the message names it."""


def _latest(items: Iterable[Any], date: datetime.date) -> Any:
    found = None
    for item in items:
        if item.date <= date:
            found = item
    return found


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) or value is None else str(value)


def _amount(value: Any, field: str) -> amount_lib.Amount:
    if not isinstance(value, amount_lib.Amount) or value.number is None:
        raise _Invalid(f"{field} must be an amount like 100 CREDIT, not {_show(value)}")
    return value


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"{field} must be a non-empty string, not {value!r}")
    return value


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise _Invalid(f"{field} must be a whole number, not {_show(value)}")
    if value != int(value) or int(value) < 1:
        raise _Invalid(f"{field} must be a whole number of at least 1, not {value}")
    return int(value)


def check_email(value: Any) -> str:
    """``value`` if it is one email address (no display name, no list), else ValueError.

    Checked by ``email-validator`` (syntax only: no DNS look-up, the ledger is
    read offline), so a line break, a comma or a second ``@`` (header
    injection, extra recipients) never reaches an email header. The address is
    kept as written.
    """
    if not isinstance(value, str):
        raise ValueError(f"{_show(value)} is not an email address")
    problem = _email_problem(value)
    if problem is not None:
        raise ValueError(f"{value!r} is not an email address: {problem}")
    return value


@functools.lru_cache(maxsize=65536)
def _email_problem(value: str) -> str | None:
    """Why ``value`` is not one address (cached: ~50 us a check, and every load re-reads them)."""
    try:
        email_validator.validate_email(value, check_deliverability=False, allow_display_name=False)
    except email_validator.EmailNotValidError as exc:
        return str(exc)
    return None


def parse_hours(text: str) -> datetime.timedelta:
    """``"6h"`` or ``"2d"`` as a timedelta; raises ValueError."""
    match = _HOURS_RE.match(text)
    if not match or int(match.group(1)) < 1:
        raise ValueError(f'{text!r} is not a period like "6h" or "1d"')
    count, unit = int(match.group(1)), match.group(2)
    return datetime.timedelta(hours=count) if unit == "h" else datetime.timedelta(days=count)


def _values(entry: data.Custom) -> list[Any]:
    return [value.value for value in entry.values]


def _user_label(user_id: str | None) -> str:
    return "" if user_id is None else f" {user_id!r}"


def parse(
    entries: Iterable[data.Directive], users: Iterable[str] | Mapping[str, Any] | None = None
) -> Settings:
    """Read the settings directives; malformed ones become errors and are skipped.

    ``users``: the known user ids (or ids -> :class:`~beancount_credits.ledger.User`,
    which also checks each wallet's ``email:``); a directive naming another
    user is an error. A user's email address that is not one is an
    ``address_errors`` item: that user's problem, not the run's.
    """
    known = None if users is None else set(users)
    # The wallets' opens (when ``users`` maps ids to Users): their email: is the user's.
    wallets = {id(user.open) for user in users.values()} if isinstance(users, Mapping) else set()
    settings = Settings()
    for entry in entries:
        email = entry.meta.get("email") if entry.meta else None
        if email is not None and (
            id(entry) in wallets or (isinstance(entry, data.Custom) and entry.type == USER_CHANGE)
        ):
            _check_user_email(settings, entry, email)
        if not isinstance(entry, data.Custom) or entry.type not in SETTINGS_TYPES:
            continue
        values = _values(entry)
        user_id = values[0] if entry.type != EXPIRY_WARNINGS and values else None
        try:
            if entry.type == LOW_BALANCE:
                _parse_threshold(settings, entry, values, known)
                continue
            if entry.type == EXPIRY_WARNINGS:
                _parse_windows(settings, entry, values)
                continue
            if not isinstance(user_id, str) or not user_id:
                raise _Invalid("the first value must be the user id (a string)")
            if known is not None and user_id not in known:
                raise _Invalid(f"unknown user id {user_id!r} (no wallet open with that user_id)")
            if entry.type == CONTACT:
                _parse_contact(settings, entry, values, user_id)
            elif entry.type == TOPUP_RULE:
                _parse_rule(settings, entry, values, user_id)
            else:
                if len(values) != 1:
                    raise _Invalid("takes only the user id")
                settings.enables[user_id].append(entry)
        except _Invalid as exc:
            label = (
                ""
                if entry.type == LOW_BALANCE
                else _user_label(user_id if isinstance(user_id, str) else None)
            )
            settings.errors.append(CreditsError(entry.meta, f"{entry.type}{label}: {exc}", entry))
    return settings


def _check_user_email(settings: Settings, entry: data.Directive, email: Any) -> None:
    try:
        check_email(email)
    except ValueError as exc:
        user_id = entry.meta.get("user_id") if isinstance(entry, data.Open) else None
        if isinstance(entry, data.Custom) and entry.values:
            user_id = entry.values[0].value
        what = "open" if isinstance(entry, data.Open) else entry.type
        settings.address_errors.append(
            CreditsError(entry.meta, f"{what} of user {user_id!r}: email: {exc}", entry)
        )


def _parse_threshold(
    settings: Settings, entry: data.Custom, values: list[Any], known: set[str] | None
) -> None:
    if values[:1] == ["default"] and len(values) == 2:
        scope, key, value = "default", None, values[1]
    elif values[:1] in (["segment"], ["user"]) and len(values) == 3:
        scope, key, value = values[0], _string(values[1], values[0]), values[2]
        if scope == "user" and known is not None and key not in known:
            raise _Invalid(f"unknown user id {key!r} (no wallet open with that user_id)")
    else:
        raise _Invalid(
            'expected "default" AMOUNT, "segment" "NAME" AMOUNT or "user" "USER_ID" AMOUNT, '
            f"not {' '.join(_show(value) for value in values)}"
        )
    threshold = _amount(value, "threshold")
    settings.thresholds[(scope, key)].append(
        Threshold(threshold, scope, key, entry.date, entry.meta)
    )


def _parse_windows(settings: Settings, entry: data.Custom, values: list[Any]) -> None:
    if not values:
        raise _Invalid("expected one or more numbers of days, e.g. 30 7")
    days = tuple(sorted({_positive_int(value, "warning window") for value in values}, reverse=True))
    settings.windows.append((entry.date, days, entry.meta))


def _parse_contact(settings: Settings, entry: data.Custom, values: list[Any], user_id: str) -> None:
    if len(values) != 1:
        raise _Invalid("takes only the user id; addresses go in metadata (email:, webhook:)")
    email = entry.meta.get("email")
    email_error = None
    if email is not None:
        try:
            check_email(email)
        except ValueError as exc:
            # The user's problem alone: listed, and their email is not sent (see address_errors).
            email_error = str(exc)
            settings.address_errors.append(
                CreditsError(entry.meta, f"{entry.type} {user_id!r}: email: {exc}", entry)
            )
            email = None
    webhook = entry.meta.get("webhook")
    if webhook is not None and (
        not isinstance(webhook, str) or not re.fullmatch(r"https?://[^\s\"]+", webhook)
    ):
        raise _Invalid(f"webhook: {webhook!r} is not an http(s) URL")
    opt_out_text = entry.meta.get("opt_out", "")
    if not isinstance(opt_out_text, str):
        raise _Invalid(f'opt_out: must be a string like "email, webhook", not {opt_out_text!r}')
    opt_out = frozenset(part for part in re.split(r"[\s,]+", opt_out_text) if part)
    unknown = opt_out - set(CHANNELS)
    if unknown:
        raise _Invalid(
            f"opt_out: unknown channel(s) {', '.join(sorted(unknown))} "
            f"(channels: {', '.join(CHANNELS)})"
        )
    settings.contacts[user_id].append(
        Contact(user_id, email, webhook, opt_out, entry.date, entry.meta, email_error)
    )


def _parse_rule(settings: Settings, entry: data.Custom, values: list[Any], user_id: str) -> None:
    meta = entry.meta
    if values[1:] == ["off"]:
        previous = settings.rules[user_id][-1] if settings.rules[user_id] else None
        if previous is None:
            raise _Invalid('"off" with no earlier rule to switch off')
        settings.rules[user_id].append(
            dataclasses.replace(previous, enabled=False, date=entry.date, meta=meta)
        )
        return
    if len(values) != 1:
        raise _Invalid('takes the user id, then optionally "off"; the rule goes in metadata')
    threshold = _amount(meta.get("threshold"), "threshold")
    amount = _amount(meta.get("amount"), "amount")
    if amount.currency != threshold.currency:
        raise _Invalid(
            f"amount: {amount} is not in the threshold's credit type {threshold.currency}"
        )
    if amount.number <= 0:
        raise _Invalid(f"amount: must be positive, not {amount}")
    source = _string(meta.get("source"), "source")
    expire_after = meta.get("expire_after")
    if expire_after is not None:
        try:
            parse_period(_string(expire_after, "expire_after"))
        except ValueError as exc:
            raise _Invalid(f"expire_after: {exc}") from None
    try:
        backoff = parse_hours(str(meta.get("backoff", "1d")))
    except ValueError as exc:
        raise _Invalid(f"backoff: {exc}") from None
    settings.rules[user_id].append(
        TopUpRule(
            user_id=user_id,
            threshold=threshold,
            amount=amount,
            source=source,
            expire_after=expire_after,
            max_per_day=_positive_int(meta.get("max_per_day", 1), "max_per_day"),
            max_failures=_positive_int(meta.get("max_failures", 3), "max_failures"),
            backoff=backoff,
            enabled=True,
            date=entry.date,
            meta=meta,
        )
    )


# --- Resolution as of a date ------------------------------------------------------


def low_balance_threshold(
    settings: Settings, user: Any, commodity: str, date: datetime.date
) -> Threshold | None:
    """The threshold in force for a user and credit type on a date, or None.

    ``user`` is a :class:`beancount_credits.ledger.User` (its ``user_id`` and
    ``segment`` pick the scope); the user's own setting beats the segment's,
    which beats the default.
    """
    scopes = [("user", user.user_id)]
    if user.segment is not None:
        scopes.append(("segment", user.segment))
    scopes.append(("default", None))
    for scope in scopes:
        found = _latest(
            (
                item
                for item in settings.thresholds.get(scope, ())
                if item.amount.currency == commodity
            ),
            date,
        )
        if found is not None:
            return found
    return None


def threshold_commodities(settings: Settings) -> set[str]:
    """Every credit type some threshold is set for."""
    return {item.amount.currency for items in settings.thresholds.values() for item in items}


def contact(settings: Settings, user: Any, date: datetime.date) -> Contact:
    """The user's contact as of a date (falls back to the wallet's ``email:``)."""
    found: Contact | None = _latest(settings.contacts.get(user.user_id, ()), date)
    if found is not None and (found.email is not None or found.email_error is not None):
        return found
    wallet_email = user.open.meta.get("email")
    wallet_error = None
    if wallet_email is not None:
        try:
            check_email(wallet_email)
        except ValueError as exc:
            wallet_email, wallet_error = None, str(exc)
    if found is None:
        return Contact(user.user_id, wallet_email, None, frozenset(), None, {}, wallet_error)
    return dataclasses.replace(found, email=wallet_email, email_error=wallet_error)


def topup_rule(settings: Settings, user_id: str, date: datetime.date) -> TopUpRule | None:
    """The user's top-up rule as of a date (possibly switched off), or None."""
    return _latest(settings.rules.get(user_id, ()), date)


def last_enable(settings: Settings, user_id: str, date: datetime.date) -> data.Custom | None:
    """The latest ``credits-topup-enable`` on or before a date."""
    return _latest(settings.enables.get(user_id, ()), date)


def expiry_windows(settings: Settings, date: datetime.date) -> tuple[int, ...]:
    """Warning windows in days, widest first, as of a date."""
    found = None
    for when, days, _meta in settings.windows:
        if when <= date:
            found = days
    return found or DEFAULT_EXPIRY_WINDOWS


def of(ledger: Any) -> Settings:
    """The settings of a loaded :class:`beancount_credits.ledger.Ledger`."""
    return parse(ledger.entries, ledger.users)
