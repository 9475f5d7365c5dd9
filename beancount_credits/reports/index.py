"""A per-wallet index of a loaded ledger, so a report for any day costs a lookup per wallet.

One walk over the ledger with every expiry still to come booked
(:meth:`engine.asof.Timeline.schedule`): cut at any day D it is the ledger as
of D, so each wallet's running balance, earned, redeemed and expired after each
of its transactions, and its days of activity, answer any day by a binary
search. Built once per load (:meth:`Timeline.memo`, thread-safe) and shared by
the reports the Credit page shows and the CLI prints.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from beancount.core import data

from beancount_credits import engine
from beancount_credits.engine import settings
from beancount_credits.engine.config import CreditsConfig
from beancount_credits.ledger import Ledger
from beancount_credits.reports.kinds import classify

ZERO = Decimal(0)
TOPUP_DIRECTIVE = "credits-topup"  # custom "credits-topup" "<user_id>" "failed" (importers)


@dataclasses.dataclass
class Activity:
    """Earned, redeemed and expired over some days, as the statement counts them."""

    earned: Decimal = ZERO
    redeemed: Decimal = ZERO
    expired: Decimal = ZERO


def user_postings(
    entry: data.Transaction, config: CreditsConfig, is_user: dict[str, bool]
) -> dict[tuple[str, str], Decimal]:
    """A transaction's net effect per (wallet, credit type)."""
    numbers: dict[tuple[str, str], Decimal] = {}
    for posting in entry.postings:
        account = posting.account
        user = is_user.get(account)
        if user is None:
            user = is_user[account] = config.is_user_account(account)
        if user and posting.units is not None:
            key = (account, posting.units.currency)
            numbers[key] = numbers.get(key, ZERO) + posting.units.number
    return numbers


def count(activity: Activity, kind: str, number: Decimal) -> None:
    """Add a wallet posting to earned, redeemed or expired (reversals count negative)."""
    if kind == "earned":
        activity.earned += number
    elif kind == "redeemed":
        activity.redeemed -= number
    else:
        activity.expired -= number


def activity_of(
    entries: Iterable[data.Directive],
    config: CreditsConfig,
    begin: datetime.date | None,
    as_of: datetime.date,
) -> dict[tuple[str, str], Activity]:
    """Earned / redeemed / expired per (wallet, credit type) from ``begin`` through ``as_of``,
    counting only the given entries (e.g. those Fava's account or tag filter kept)."""
    result: dict[tuple[str, str], Activity] = defaultdict(Activity)
    is_user: dict[str, bool] = {}
    for entry in entries:
        if not isinstance(entry, data.Transaction) or entry.date > as_of:
            continue
        if begin is not None and entry.date < begin:
            continue
        for (account, currency), number in user_postings(entry, config, is_user).items():
            count(result[account, currency], classify(entry, account, config, number), number)
    return result


@dataclasses.dataclass
class WalletHistory:
    """One wallet's transactions in one credit type: for each (in ledger order) its
    date and the running totals after it (balance; earned, redeemed and expired)."""

    dates: list[datetime.date] = dataclasses.field(default_factory=list)
    balance: list[Decimal] = dataclasses.field(default_factory=list)
    earned: list[Decimal] = dataclasses.field(default_factory=list)
    redeemed: list[Decimal] = dataclasses.field(default_factory=list)
    expired: list[Decimal] = dataclasses.field(default_factory=list)

    def balance_at(self, as_of: datetime.date) -> Decimal | None:
        """The balance at the end of ``as_of`` (None: no transaction by then)."""
        found = bisect.bisect_right(self.dates, as_of)
        return self.balance[found - 1] if found else None

    def activity(self, begin: datetime.date | None, as_of: datetime.date) -> Activity | None:
        """What moved from ``begin`` through ``as_of`` (None: no transaction then)."""
        dates = self.dates
        low = 0 if begin is None else bisect.bisect_left(dates, begin)
        high = bisect.bisect_right(dates, as_of)
        if high <= low:
            return None
        if low == 0:
            return Activity(self.earned[high - 1], self.redeemed[high - 1], self.expired[high - 1])
        return Activity(
            self.earned[high - 1] - self.earned[low - 1],
            self.redeemed[high - 1] - self.redeemed[low - 1],
            self.expired[high - 1] - self.expired[low - 1],
        )


@dataclasses.dataclass
class Index:
    """Per wallet: its running totals, its transactions and its days of activity."""

    wallets: dict[tuple[str, str], WalletHistory]
    transactions: dict[str, list[data.Transaction]]  # wallet account -> its transactions
    active_days: dict[str, list[datetime.date]]  # wallet account -> days with non-expiries
    topups: list[data.Custom]  # credits-topup records, in date order
    settings: settings.Settings

    def balances_at(self, as_of: datetime.date) -> dict[tuple[str, str], Decimal]:
        """Balance per (wallet, credit type) with a transaction by the end of ``as_of``."""
        balances = {}
        for key, history in self.wallets.items():
            balance = history.balance_at(as_of)
            if balance is not None:
                balances[key] = balance
        return balances

    def last_activity(self, as_of: datetime.date) -> dict[str, datetime.date]:
        """Each wallet's last day by ``as_of`` with a transaction other than an expiry."""
        last = {}
        for account, days in self.active_days.items():
            found = bisect.bisect_right(days, as_of)
            if found:
                last[account] = days[found - 1]
        return last

    def activity(
        self, begin: datetime.date | None, as_of: datetime.date
    ) -> dict[tuple[str, str], Activity]:
        result = {}
        for key, history in self.wallets.items():
            moved = history.activity(begin, as_of)
            if moved is not None:
                result[key] = moved
        return result

    def ledger_of(self, ledger: Ledger, account: str) -> Ledger:
        """The ledger narrowed to one wallet's transactions (what its statement reads)."""
        return dataclasses.replace(ledger, entries=self.transactions.get(account, []))  # type: ignore[arg-type]


def index(ledger: Ledger) -> Index:
    """The ledger's per-wallet index, built once per load (thread-safe)."""
    return ledger.timeline.memo("wallet-index", lambda: _build(ledger))


def _build(ledger: Ledger) -> Index:
    wallets: dict[tuple[str, str], WalletHistory] = {}
    transactions: dict[str, list[data.Transaction]] = defaultdict(list)
    active_days: dict[str, list[datetime.date]] = defaultdict(list)
    topups: list[data.Custom] = []
    config = ledger.config
    is_user: dict[str, bool] = {}
    for entry in ledger.timeline.schedule():
        if isinstance(entry, data.Custom):
            if entry.type == TOPUP_DIRECTIVE:
                topups.append(entry)
            continue
        if not isinstance(entry, data.Transaction):
            continue
        numbers = user_postings(entry, config, is_user)
        if not numbers:
            continue
        expiry = engine.EXPIRED_TAG in entry.tags
        for account in {account for account, _currency in numbers}:
            transactions[account].append(entry)
            if not expiry:
                days = active_days[account]
                if not days or days[-1] != entry.date:
                    days.append(entry.date)
        for (account, currency), number in numbers.items():
            history = wallets.get((account, currency))
            if history is None:
                history = wallets[account, currency] = WalletHistory()
            moved = Activity(
                history.earned[-1] if history.dates else ZERO,
                history.redeemed[-1] if history.dates else ZERO,
                history.expired[-1] if history.dates else ZERO,
            )
            count(moved, classify(entry, account, config, number), number)
            history.dates.append(entry.date)
            history.balance.append((history.balance[-1] if history.balance else ZERO) + number)
            history.earned.append(moved.earned)
            history.redeemed.append(moved.redeemed)
            history.expired.append(moved.expired)
    return Index(
        wallets,
        dict(transactions),
        dict(active_days),
        topups,
        settings.parse(ledger.timeline.entries, ledger.users),
    )
