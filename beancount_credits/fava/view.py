"""The Credit Balance History page's figures, as report Tables (no Fava, no HTTP).

The Fava extension (:mod:`beancount_credits.fava`) is a thin layer over these
functions; they take a :class:`~beancount_credits.ledger.Ledger` and a
:class:`Period`, so the CLI or a test can call them on a ledger loaded the
usual way.

What comes from where:

- balances, open grants, "expiring within N days", last activity, the daily
  balance chart and the running balance of a statement need the *whole*
  history: they read the ledger as of the period's end, ``as_of``
  (:mod:`beancount_credits.engine.asof`: its entries with the expiries due by then
  booked, and the grant engine's state at its end);
- earned / redeemed / expired "in the period" and the per-member use of an
  organisation count the *activity* entries: the caller passes the entries its
  own filters kept (Fava's account and tag filters), and only transactions
  dated inside the period count.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from beancount.core import data

from beancount_credits import engine
from beancount_credits.engine import asof, loadstamp, settings
from beancount_credits.engine.config import CreditsConfig
from beancount_credits.jobs import alerts
from beancount_credits.ledger import Ledger, User, find_config, index_users
from beancount_credits.reports import common, statement
from beancount_credits.reports.table import Cell, Chart, Column, Filters, ReportError, Table

ZERO = Decimal(0)
ONE_DAY = datetime.timedelta(days=1)
EXPIRING_DAYS = 30
TOPUP_DIRECTIVE = "credits-topup"  # custom "credits-topup" "<user_id>" "failed" (importers)

USERS_COLUMNS = [
    Column("User ID"),
    Column("Segment"),
    Column("Credit type"),
    Column("Balance", "number"),
    Column("Earned", "number"),
    Column("Redeemed", "number"),
    Column("Expired", "number"),
    Column(f"Expiring in {EXPIRING_DAYS} days", "number"),
    Column("Last activity", "date"),
    Column("Low-balance threshold", "number"),
]


@dataclasses.dataclass(frozen=True)
class Period:
    """The days the page looks at: ``begin`` inclusive, ``end`` exclusive (None: open).

    ``as_of`` is the day balances and open grants are taken at (end of day).
    """

    begin: datetime.date | None
    end: datetime.date | None
    as_of: datetime.date

    @classmethod
    def make(
        cls, begin: datetime.date | None, end: datetime.date | None, today: datetime.date
    ) -> Period:
        """A period whose balances are taken at its last day, or today while it runs."""
        as_of = today
        if end is not None:
            last = end - ONE_DAY
            running = (begin is None or begin <= today) and today < last
            as_of = today if running else last
        return cls(begin, end, as_of)

    def __contains__(self, date: datetime.date) -> bool:
        return (self.begin is None or date >= self.begin) and (self.end is None or date < self.end)

    def counts(self, date: datetime.date) -> bool:
        """Whether activity on ``date`` counts: in the period and not after ``as_of``."""
        return date in self and date <= self.as_of

    def describe(self) -> str:
        if self.begin is None and self.end is None:
            return f"whole history, balances as of {self.as_of}"
        begin = self.begin or "start"
        end = (self.end - ONE_DAY) if self.end else "end"
        return f"{begin} to {end}, balances as of {self.as_of}"


def ledger_from_entries(
    path: str | Path, entries: Sequence[data.Directive], errors: list, options: dict
) -> Ledger:
    """A Ledger over entries someone else loaded (Fava): no second load of the file.

    Its grant state starts from the expire plugin's own result for this load
    (:func:`plugin_result`), so the page runs no second engine pass over the
    whole ledger; days come from :mod:`beancount_credits.engine.asof` like every tool's.
    """
    config = find_config(options)
    entries = list(entries)
    base = plugin_result(entries, options, config)
    return Ledger(
        path=Path(path),
        entries=entries,
        errors=list(errors),
        options=options,
        config=config,
        users=index_users(entries, config),
        timeline=asof.Timeline(entries, config, base=base, record=False),
    )


def plugin_result(
    entries: Sequence[data.Directive], options: dict, config: CreditsConfig
) -> engine.EngineResult | None:
    """The expire plugin's result for this load, if it agrees with the entries.

    The plugin keeps its result on the load's options map
    (:mod:`beancount_credits.engine.loadstamp`); it is used only when every wallet's
    balance in it equals what the loaded entries add up to, so a later plugin
    that changed wallet postings falls back to an engine pass. A load from
    Beancount's cache has none.
    """
    result = loadstamp.engine_result(options)
    if result is None:
        return None
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    is_user: dict[str, bool] = {}
    for entry in entries:
        if isinstance(entry, data.Transaction):
            for posting in entry.postings:
                account = posting.account
                user = is_user.get(account)
                if user is None:
                    user = is_user[account] = config.is_user_account(account)
                if user and posting.units is not None:
                    totals[account, posting.units.currency] += posting.units.number
    for key in set(totals) | set(result.wallets):
        wallet = result.wallets.get(key)
        if totals.get(key, ZERO) != (wallet.balance if wallet else ZERO):
            return None
    return result


# --- all users ----------------------------------------------------------------


@dataclasses.dataclass
class Activity:
    earned: Decimal = ZERO
    redeemed: Decimal = ZERO
    expired: Decimal = ZERO


def user_postings(
    entry: data.Transaction, ledger: Ledger, is_user: dict[str, bool]
) -> dict[tuple[str, str], Decimal]:
    """A transaction's net effect per (wallet, credit type)."""
    numbers: dict[tuple[str, str], Decimal] = {}
    for posting in entry.postings:
        account = posting.account
        user = is_user.get(account)
        if user is None:
            user = is_user[account] = ledger.config.is_user_account(account)
        if user and posting.units is not None:
            key = (account, posting.units.currency)
            numbers[key] = numbers.get(key, ZERO) + posting.units.number
    return numbers


def period_activity(
    ledger: Ledger, activity_entries: Iterable[data.Directive], period: Period
) -> dict[tuple[str, str], Activity]:
    """Earned / redeemed / expired per (wallet, credit type) in the period.

    The columns follow the statement report (reversals count negative in the
    column of what they undo), so a user's row adds up to their statement.
    """
    result: dict[tuple[str, str], Activity] = defaultdict(Activity)
    is_user: dict[str, bool] = {}
    for entry in activity_entries:
        if not isinstance(entry, data.Transaction) or not period.counts(entry.date):
            continue
        for (account, currency), number in user_postings(entry, ledger, is_user).items():
            kind = statement.classify(entry, account, ledger.config, number)
            row = result[account, currency]
            if kind == "earned":
                row.earned += number
            elif kind == "redeemed":
                row.redeemed -= number
            else:
                row.expired -= number
    return result


def balances_and_last_activity(
    ledger: Ledger, as_of: datetime.date
) -> tuple[dict[tuple[str, str], Decimal], dict[str, datetime.date]]:
    """Balance per (wallet, credit type) at the end of ``as_of`` (every wallet with a
    transaction by then), and each wallet's last day with a transaction other than
    an expiry."""
    found = index(ledger)
    return found.balances_at(as_of), found.last_activity(as_of)


@dataclasses.dataclass
class WalletHistory:
    """One wallet's transactions in one credit type: for each (in ledger order) its
    date and the running totals after it (balance; earned, redeemed and expired as
    :func:`period_activity` counts them)."""

    dates: list[datetime.date] = dataclasses.field(default_factory=list)
    balance: list[Decimal] = dataclasses.field(default_factory=list)
    earned: list[Decimal] = dataclasses.field(default_factory=list)
    redeemed: list[Decimal] = dataclasses.field(default_factory=list)
    expired: list[Decimal] = dataclasses.field(default_factory=list)

    def activity(self, period: Period) -> Activity | None:
        """What moved in the period (None: no transaction in it)."""
        dates = self.dates
        low = 0 if period.begin is None else bisect.bisect_left(dates, period.begin)
        # Through ``as_of``: the index also holds the expiries still to come.
        high = bisect.bisect_right(dates, period.as_of)
        if period.end is not None:
            high = min(high, bisect.bisect_left(dates, period.end))
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
    """What the page reads per wallet, from one walk over the entries (per load).

    With it a view costs a binary search per wallet instead of a walk over every
    entry; a user's tables walk only that user's transactions.
    """

    wallets: dict[tuple[str, str], WalletHistory]
    transactions: dict[str, list[data.Transaction]]  # wallet account -> its transactions
    active_days: dict[str, list[datetime.date]]  # wallet account -> days with non-expiries
    topups: list[data.Custom]  # credits-topup records, in date order
    settings: settings.Settings

    def balances_at(self, as_of: datetime.date) -> dict[tuple[str, str], Decimal]:
        balances = {}
        for key, history in self.wallets.items():
            count = bisect.bisect_right(history.dates, as_of)
            if count:
                balances[key] = history.balance[count - 1]
        return balances

    def last_activity(self, as_of: datetime.date) -> dict[str, datetime.date]:
        last = {}
        for account, days in self.active_days.items():
            count = bisect.bisect_right(days, as_of)
            if count:
                last[account] = days[count - 1]
        return last

    def activity(self, period: Period) -> dict[tuple[str, str], Activity]:
        result = {}
        for key, history in self.wallets.items():
            moved = history.activity(period)
            if moved is not None:
                result[key] = moved
        return result

    def ledger_of(self, ledger: Ledger, account: str) -> Ledger:
        """The ledger narrowed to one wallet's transactions (for its statement)."""
        return dataclasses.replace(ledger, entries=self.transactions.get(account, []))


def index(ledger: Ledger) -> Index:
    """The page's per-wallet index of the ledger, built once per load (thread-safe)."""
    return ledger.timeline.memo("page-index", lambda: _build_index(ledger))


def _build_index(ledger: Ledger) -> Index:
    """One walk over the ledger with every expiry still to come booked
    (:meth:`asof.Timeline.schedule`): cut at any day it is that day's ledger."""
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
        numbers = user_postings(entry, ledger, is_user)
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
            earned = history.earned[-1] if history.dates else ZERO
            redeemed = history.redeemed[-1] if history.dates else ZERO
            expired = history.expired[-1] if history.dates else ZERO
            kind = statement.classify(entry, account, config, number)
            if kind == "earned":
                earned += number
            elif kind == "redeemed":
                redeemed -= number
            else:
                expired -= number
            history.dates.append(entry.date)
            history.balance.append((history.balance[-1] if history.balance else ZERO) + number)
            history.earned.append(earned)
            history.redeemed.append(redeemed)
            history.expired.append(expired)
    return Index(
        wallets,
        dict(transactions),
        dict(active_days),
        topups,
        settings.parse(ledger.entries, ledger.users),
    )


def expiring(
    result: engine.EngineResult, as_of: datetime.date, days: int = EXPIRING_DAYS
) -> list[engine.Grant]:
    """Open grants with credits left that expire within ``days`` after ``as_of``,
    soonest first (a grant due but not yet booked counts too)."""
    limit = as_of + datetime.timedelta(days=days)
    grants = [
        grant
        for grant in engine.open_grants(result)
        if grant.expires is not None and grant.expires <= limit
    ]
    grants.sort(key=lambda grant: (grant.expires, grant.account, grant.id))
    return grants


@dataclasses.dataclass(frozen=True)
class View:
    """What the all-users table is narrowed to and sorted by (the page's controls)."""

    segment: str | None = None
    credit_type: str | None = None
    search: str | None = None  # a case-insensitive part of the user id
    sort: str | None = None  # a column name
    desc: bool = False


def users_table(
    ledger: Ledger,
    activity_entries: Iterable[data.Directive] | None,
    period: Period,
    *,
    view: View = View(),
    only_active: bool = False,
) -> Table:
    """Every user, one row per credit type they hold or used.

    ``activity_entries``: the entries whose transactions count as the period's
    activity (None: all of them, read from the :class:`Index`). ``only_active``
    keeps the users with activity among them (the caller's account or tag
    filter is on).
    """
    if activity_entries is None:
        activity = index(ledger).activity(period)
    else:
        activity = period_activity(ledger, activity_entries, period)
    balances, last = balances_and_last_activity(ledger, period.as_of)
    soon: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for grant in expiring(common.grants_as_of(ledger, period.as_of), period.as_of):
        soon[grant.account, grant.currency] += grant.remaining
    by_account: dict[str, set[str]] = defaultdict(set)
    for account, currency in [*balances, *activity]:
        by_account[account].add(currency)
    default = main_credit_type(balances)
    active = {account for account, _currency in activity}
    conf = index(ledger).settings
    with_thresholds = settings.threshold_commodities(conf)
    rows: list[list[Cell]] = []
    for user in ledger.users.values():
        if only_active and user.account not in active:
            continue
        for currency in sorted(by_account.get(user.account) or {default}):
            key = (user.account, currency)
            moved = activity.get(key, Activity())
            rows.append(
                [
                    user.user_id,
                    user.segment,
                    currency,
                    balances.get(key, ZERO),
                    moved.earned,
                    moved.redeemed,
                    moved.expired,
                    soon.get(key, ZERO),
                    last.get(user.account),
                    threshold_number(conf, user, currency, period.as_of)
                    if currency in with_thresholds
                    else None,
                ]
            )
    rows = narrow(rows, view)
    filters = Filters(
        segment=view.segment,
        commodity=view.credit_type,
        date_from=period.begin,
        date_to=period.as_of,
        sort=view.sort,
        desc=view.desc,
    )
    notes = [f"Period: {period.describe()}"]
    if view.search:
        notes.append(f"User ID contains: {view.search}")
    return Table("Credit balances", list(USERS_COLUMNS), rows, filters, notes)


def threshold_number(
    conf: settings.Settings, user: User, currency: str, as_of: datetime.date
) -> Decimal | None:
    """The user's low-balance threshold of a credit type on a day (None: none set)."""
    threshold = settings.low_balance_threshold(conf, user, currency, as_of)
    return None if threshold is None else threshold.amount.number


def main_credit_type(balances: dict[tuple[str, str], Decimal]) -> str:
    """The credit type most wallets hold (shown for users without any activity)."""
    counts: dict[str, int] = defaultdict(int)
    for _account, currency in balances:
        counts[currency] += 1
    return max(sorted(counts), key=lambda currency: counts[currency], default="CREDIT")


def narrow(rows: list[list[Cell]], view: View) -> list[list[Cell]]:
    """Apply the page's segment, credit type, search and sort to all-users rows."""
    if view.segment:
        rows = [row for row in rows if row[1] == view.segment]
    if view.credit_type:
        rows = [row for row in rows if row[2] == view.credit_type]
    if view.search:
        needle = view.search.casefold()
        rows = [row for row in rows if needle in str(row[0]).casefold()]
    if view.sort:
        names = [column.name for column in USERS_COLUMNS]
        if view.sort not in names:
            raise ReportError(f"unknown sort column {view.sort!r}; columns: {', '.join(names)}")
        index = names.index(view.sort)
        present = [row for row in rows if row[index] is not None]
        missing = [row for row in rows if row[index] is None]
        present.sort(key=lambda row: row[index], reverse=view.desc)  # type: ignore[arg-type,return-value]
        rows = present + missing
    else:
        rows.sort(key=lambda row: (str(row[0]), str(row[2])))
    return rows


# --- one user -----------------------------------------------------------------


def statement_table(ledger: Ledger, user_id: str, period: Period) -> Table:
    """The user's statement over the period (the ``statement`` report)."""
    filters = Filters(user=user_id, date_from=period.begin, date_to=period.as_of)
    return statement.report(index(ledger).ledger_of(ledger, ledger.user(user_id).account), filters)


def daily_balance_table(ledger: Ledger, user_id: str, period: Period) -> Table:
    """End-of-day balance per credit type on each day it changed, over the period.

    The first row of each credit type is its balance at the start of the period
    and the last is its balance on ``as_of``, so a step chart spans the period.
    """
    user = ledger.user(user_id)
    lines = statement.statement_lines(
        index(ledger).ledger_of(ledger, user.account),
        user.account,
        Filters(date_from=period.begin, date_to=period.as_of),
    )
    days: dict[str, dict[datetime.date, Decimal]] = defaultdict(dict)
    for line in lines:
        days[line.commodity][line.date] = line.balance
    rows: list[list[Cell]] = []
    for currency in sorted(days):
        points = days[currency]
        if period.as_of not in points:
            points[period.as_of] = points[max(points)]
        rows.extend([day, currency, points[day]] for day in sorted(points))
    return Table(
        f"Daily balance of {user.user_id}",
        [Column("Date", "date"), Column("Credit type"), Column("Balance", "number")],
        rows,
        Filters(user=user_id, date_from=period.begin, date_to=period.as_of),
        chart=Chart("step", "Date", ["Balance"], series="Credit type", title="Daily balance"),
    )


def open_grants_table(ledger: Ledger, user_id: str, period: Period) -> Table:
    """The user's grants with credits left at ``as_of``, in the order they are spent."""
    user = ledger.user(user_id)
    result = common.grants_as_of(ledger, period.as_of)
    rows: list[list[Cell]] = [
        [
            grant.id,
            grant.date,
            grant.currency,
            short_source(grant.source, ledger),
            grant.amount,
            grant.remaining,
            grant.expires,
        ]
        for grant in engine.open_grants(result, user.account)
    ]
    return Table(
        f"Open grants of {user.user_id} as of {period.as_of}",
        [
            Column("Grant"),
            Column("Date", "date"),
            Column("Credit type"),
            Column("Source"),
            Column("Granted", "number"),
            Column("Remaining", "number"),
            Column("Expires", "date"),
        ],
        rows,
        Filters(user=user_id, date_to=period.as_of),
    )


def short_source(source: str | None, ledger: Ledger) -> str | None:
    """A grant's source without the income root (``Purchase``); other accounts in full."""
    prefix = ledger.config.income + ":"
    if source is not None and source.startswith(prefix):
        return source[len(prefix) :]
    return source


def member_usage_table(
    ledger: Ledger,
    user_id: str,
    activity_entries: Iterable[data.Directive] | None,
    period: Period,
) -> Table:
    """An organisation's use per team member (redemptions' ``member:``) in the period.

    ``activity_entries``: the entries that count (None: all). Empty for a user
    whose redemptions name no member.
    """
    user = ledger.user(user_id)
    if activity_entries is None:
        activity_entries = index(ledger).transactions.get(user.account, [])
    used: dict[tuple[str, str], list[Any]] = {}
    for entry in activity_entries:
        if not isinstance(entry, data.Transaction) or entry.date not in period:
            continue
        for posting in entry.postings:
            if posting.account != user.account or posting.units is None:
                continue
            member = (posting.meta or {}).get("member") or entry.meta.get("member")
            if member is None:
                continue
            kind = statement.classify(entry, user.account, ledger.config, posting.units.number)
            if kind != "redeemed":
                continue
            row = used.setdefault((str(member), posting.units.currency), [ZERO, 0, entry.date])
            row[0] -= posting.units.number
            row[1] += 1
            row[2] = max(row[2], entry.date)
    rows: list[list[Cell]] = [
        [member, currency, total, Decimal(count), last]
        for (member, currency), (total, count, last) in sorted(
            used.items(), key=lambda item: (-item[1][0], item[0])
        )
    ]
    return Table(
        f"Use per team member of {user.user_id}",
        [
            Column("Member"),
            Column("Credit type"),
            Column("Redeemed", "number"),
            Column("Redemptions", "number"),
            Column("Last use", "date"),
        ],
        rows,
        Filters(user=user_id, date_from=period.begin, date_to=period.as_of),
    )


def statement_last_balance(table: Table) -> Decimal | None:
    """The Balance cell of a statement's last line (None for an empty statement)."""
    rows = list(table.rows)
    return rows[-1][-1] if rows else None  # type: ignore[return-value]


# --- alerts ---------------------------------------------------------------------


def low_balance_table(ledger: Ledger, period: Period) -> Table:
    """Users whose balance of a credit type is below their low-balance threshold at
    the end of ``as_of`` (``custom "credits-low-balance"``, see
    :mod:`beancount_credits.engine.settings`), the furthest below first.

    As the notifications see it (:mod:`beancount_credits.jobs.alerts`): wallets open
    on that day with a transaction by then; "Below since" is the first day of
    the episode (the day the balance, or a raised threshold, put it below).
    """
    found = index(ledger)
    conf = found.settings
    as_of = period.as_of
    commodities = settings.threshold_commodities(conf)
    users = {
        user.account: user
        for user in ledger.users.values()
        if user.close_date is None or user.close_date > as_of
    }
    rows: list[list[Cell]] = []
    for (account, currency), history in found.wallets.items():
        user = users.get(account)
        if user is None or currency not in commodities:
            continue
        count = bisect.bisect_right(history.dates, as_of)
        if not count:
            continue
        balance = history.balance[count - 1]
        threshold = settings.low_balance_threshold(conf, user, currency, as_of)
        if threshold is None or balance >= threshold.amount.number:
            continue
        days: dict[datetime.date, Decimal] = {}
        for day, running in zip(history.dates[:count], history.balance[:count], strict=True):
            days[day] = running  # the end-of-day balance: the day's last transaction
        episode = alerts.low_balance_episode(conf, user, currency, list(days.items()), as_of)
        rows.append(
            [
                user.user_id,
                user.segment,
                currency,
                balance,
                threshold.amount.number,
                threshold.scope,
                None if episode is None else episode[0],
            ]
        )
    rows.sort(key=lambda row: (row[3] - row[4], str(row[0]), str(row[2])))  # type: ignore[operator]
    return Table(
        f"Users below their low-balance threshold on {as_of}",
        [
            Column("User ID"),
            Column("Segment"),
            Column("Credit type"),
            Column("Balance", "number"),
            Column("Threshold", "number"),
            Column("Set for"),
            Column("Below since", "date"),
        ],
        rows,
        Filters(date_to=as_of),
    )


def expiring_table(ledger: Ledger, period: Period, days: int = EXPIRING_DAYS) -> Table:
    """Credits expiring within ``days`` after ``as_of``, soonest first."""
    users = {user.account: user for user in ledger.users.values()}
    rows: list[list[Cell]] = []
    for grant in expiring(common.grants_as_of(ledger, period.as_of), period.as_of, days):
        user = users.get(grant.account)
        rows.append(
            [
                grant.expires,
                user.user_id if user else grant.account,
                user.segment if user else None,
                grant.id,
                grant.currency,
                grant.remaining,
            ]
        )
    return Table(
        f"Credits expiring within {days} days of {period.as_of}",
        [
            Column("Expires", "date"),
            Column("User ID"),
            Column("Segment"),
            Column("Grant"),
            Column("Credit type"),
            Column("Remaining", "number"),
        ],
        rows,
        Filters(date_to=period.as_of, days=days),
    )


def overdraft_table(ledger: Ledger, period: Period) -> Table:
    """Users whose balance is below zero at the end of ``as_of`` (within their credit limit)."""
    balances, _last = balances_and_last_activity(ledger, period.as_of)
    users = {user.account: user for user in ledger.users.values()}
    rows: list[list[Cell]] = []
    for (account, currency), balance in sorted(balances.items(), key=lambda item: item[1]):
        user = users.get(account)
        if balance < 0 and user is not None:
            limit = user.credit_limit
            rows.append(
                [
                    user.user_id,
                    user.segment,
                    currency,
                    balance,
                    None if limit is None else str(limit),
                ]
            )
    return Table(
        f"Users in overdraft on {period.as_of}",
        [
            Column("User ID"),
            Column("Segment"),
            Column("Credit type"),
            Column("Balance", "number"),
            Column("Credit limit"),
        ],
        rows,
        Filters(date_to=period.as_of),
    )


def failed_topups_table(ledger: Ledger, period: Period) -> Table:
    """Failed top-ups recorded in the period, newest first.

    The importers record them as ``custom "credits-topup" "<user_id>" "failed"``
    with ``request:``, ``reason:`` and ``amount:`` metadata.
    """
    rows: list[list[Cell]] = []
    for entry in index(ledger).topups:
        if entry.date > period.as_of:
            break
        values = [value.value for value in entry.values]
        if len(values) < 2 or str(values[1]) != "failed" or entry.date not in period:
            continue
        meta = entry.meta
        amount = meta.get("amount")
        rows.append(
            [
                entry.date,
                str(values[0]),
                None if meta.get("request") is None else str(meta["request"]),
                None if amount is None else str(amount),
                None if meta.get("reason") is None else str(meta["reason"]),
            ]
        )
    rows.reverse()
    return Table(
        "Failed top-ups",
        [
            Column("Date", "date"),
            Column("User ID"),
            Column("Request"),
            Column("Amount"),
            Column("Reason"),
        ],
        rows,
        Filters(date_from=period.begin, date_to=period.as_of),
    )
