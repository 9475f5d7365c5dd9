"""Log every user's end-of-day balance as a ``balance`` assertion.

For each user wallet and commodity with any posting on day D, this plugin adds
``D+1 balance <wallet> <end-of-day balance> <commodity>`` (Beancount checks an
assertion at the start of its date, i.e. after all of day D). Quiet days get
none: a balance holds until the next logged change. Where the text already
records an assertion for that wallet, commodity and date (written by
``bean-credits close-day``), none is generated and Beancount checks the recorded
one, so an edit of past history that changes a logged balance fails the check.

Enable it after the grant engine, so expiries are logged too::

    plugin "beancount_credits.plugins.expire"
    plugin "beancount_credits.plugins.daily_balances"

It takes the same optional configuration dict as the other plugins (only the
``users`` root matters here).
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from beancount.core import amount as amount_lib
from beancount.core import data

from beancount_credits.engine import CreditsError, generated_meta, is_generated, loadstamp
from beancount_credits.engine.collector import paused_gc
from beancount_credits.engine.config import ConfigError, CreditsConfig, parse_config

__plugins__ = ("daily_balances",)

PLUGIN = "beancount_credits.plugins.daily_balances"
GENERATED_FILENAME = f"<{PLUGIN}>"
ONE_DAY = datetime.timedelta(days=1)
ZERO = Decimal(0)

BalanceKey = tuple[str, str, datetime.date]  # wallet, commodity, assertion date


def daily_balances(
    entries: list[data.Directive], options_map: dict[str, Any], config_str: str | None = None
) -> tuple[list[data.Directive], list[CreditsError]]:
    """Add the end-of-day balance assertions that the text does not record yet."""
    loadstamp.stamp(options_map)
    try:
        config = parse_config(config_str)
    except ConfigError as exc:
        meta = data.new_metadata(GENERATED_FILENAME, 0)
        return entries, [
            CreditsError(meta, f"beancount_credits.plugins.daily_balances: {exc}", None)
        ]
    with paused_gc():  # the assertions hold no reference cycles
        new_entries = missing_balances(entries, config)
        errors = last_day_errors(entries, config)
    if not new_entries:
        return entries, errors
    return entries + new_entries, errors


def last_day_errors(entries: list[data.Directive], config: CreditsConfig) -> list[CreditsError]:
    """A wallet posting on the last date Beancount knows: its balance cannot be logged.

    One error per such transaction, pointing at it (at its grant, for an expiry
    the grant engine made), instead of an overflow inside the plugin.
    """
    last = []
    for entry in reversed(entries):  # date-sorted (Beancount sorts after each plugin)
        if entry.date != datetime.date.max:
            break
        if isinstance(entry, data.Transaction) and any(
            config.is_user_account(posting.account) for posting in entry.postings
        ):
            last.append(entry)
    last.reverse()
    if not last:
        return []
    written = {
        entry.meta.get("txn_id"): entry
        for entry in entries
        if isinstance(entry, data.Transaction) and not is_generated(entry)
    }
    errors = []
    for entry in last:
        source = written.get(entry.meta.get("grant"), entry) if is_generated(entry) else entry
        errors.append(
            CreditsError(
                source.meta,
                f"{entry.date}: the end-of-day balance of {entry.narration!r} cannot be logged "
                "on the next day, which is past the last date a ledger can hold; date it earlier",
                source,
            )
        )
    return errors


def missing_balances(entries: list[data.Directive], config: CreditsConfig) -> list[data.Balance]:
    """The end-of-day assertions of active days that the entries do not hold yet.

    For each wallet and commodity with a posting on day D, its balance at the
    end of D, asserted on D+1; entries must be date-sorted. One walk: the
    recorded assertions and the wallets' closes are gathered on the way, and
    the candidates checked against them at the end (an assertion dated D+1
    sorts after day D's transactions).
    """
    recorded: set[BalanceKey] = set()
    closed: dict[str, datetime.date] = {}
    candidates: list[tuple[datetime.date, str, str, Decimal]] = []
    candidate = candidates.append
    balances: dict[tuple[str, str], Decimal] = {}
    touched: dict[tuple[str, str], None] = {}
    is_user: dict[str, bool] = {}
    day: datetime.date | None = None
    transaction, balance_type, close_type = data.Transaction, data.Balance, data.Close

    def close_day(day: datetime.date) -> None:
        """The day's touched wallets as candidates for an assertion on the next day."""
        if day != datetime.date.max:  # no next day (last_day_errors says so)
            date = day + ONE_DAY
            for key in touched:
                candidate((date, key[0], key[1], balances[key]))
        touched.clear()

    for entry in entries:
        if not isinstance(entry, transaction):
            if isinstance(entry, balance_type):
                recorded.add((entry.account, entry.amount.currency, entry.date))
            elif isinstance(entry, close_type) and config.is_user_account(entry.account):
                closed[entry.account] = entry.date
            continue
        if entry.date != day:
            if day is not None:
                close_day(day)
            day = entry.date
        for posting in entry.postings:
            account = posting.account
            user = is_user.get(account)
            if user is None:
                user = is_user[account] = config.is_user_account(account)
            if not user:
                continue
            units = posting.units
            if units is None:
                continue
            number = units.number
            if not isinstance(number, Decimal):
                continue
            key = (account, units.currency)
            balances[key] = balances.get(key, ZERO) + number
            touched[key] = None
    if day is not None:
        close_day(day)

    new_entries: list[data.Balance] = []
    append = new_entries.append
    amount_type = amount_lib.Amount
    template = generated_meta(PLUGIN, 0, GENERATED_FILENAME)
    template["generated"] = True  # shown in Fava; the mark is what the tools read
    amounts: dict[tuple[str, str], amount_lib.Amount] = {}
    for date, account, currency, balance in candidates:
        if recorded and (account, currency, date) in recorded:
            continue
        close_date = closed.get(account)
        if close_date is not None and date > close_date:
            continue  # a closed wallet takes no assertions after its close
        # Amounts are immutable: one object per distinct amount (a few
        # thousand for tens of thousands of assertions) is that many fewer
        # objects for the cyclic collector to walk for the rest of the load.
        # Keyed by the text, so 5 and 5.0 stay apart as the printer shows them.
        units = amounts.get((str(balance), currency))
        if units is None:
            units = amounts[(str(balance), currency)] = amount_type(balance, currency)
        # One metadata dict per assertion (a plugin downstream may edit one).
        append(balance_type(template.copy(), date, account, units, None, None))
    return new_entries
