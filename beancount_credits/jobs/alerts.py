"""Which alerts are due for whom on a date, and which deliveries are still to make.

Pure functions over a loaded :class:`~beancount_credits.ledger.Ledger` and its
:mod:`~beancount_credits.engine.settings`; sending and recording are
:mod:`beancount_credits.jobs.notify`'s job.

Three kinds of alert, each with a stable identity (its *key*) from which the
notification id is derived, so the same alert is never sent twice on a channel
across runs (the ``credits-notification`` records say what was delivered):

``low-balance``
    Edge-triggered: an *episode* starts on the day a wallet's end-of-day
    balance of a credit type is below the user's threshold after having been
    at or above it (or on the first day of activity); it ends when the balance
    is back at or above the threshold. The alert is due while the episode
    lasts; its key is (user, credit type, first day of the episode), so one
    crossing gives one alert, and only a recovery and a new crossing give
    another. A raised threshold can start an episode too.
``expiring``
    For a grant with credits left that expires within a warning window (30 and
    7 days by default, ``credits-expiry-warnings``): once per grant per window.
    When a run first sees a grant inside several windows it sends the
    narrowest only.
``topup-failed``
    Once per failed top-up record (``credits-topup "failed"``) dated within
    the last :data:`FAILED_TOPUP_MAX_AGE` days, with the reason and how to
    retry.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

from beancount.core import data

from beancount_credits import engine
from beancount_credits.engine import settings
from beancount_credits.jobs import records
from beancount_credits.ledger import Ledger, User

LOW_BALANCE = "low-balance"
EXPIRING = "expiring"
TOPUP_FAILED = "topup-failed"
KINDS = (LOW_BALANCE, EXPIRING, TOPUP_FAILED)
FAILED_TOPUP_MAX_AGE = 7  # days: an older failure is history, not news
MAX_FAILED_RUNS = 5  # a channel that failed this many runs for one alert is given up


@dataclasses.dataclass(frozen=True)
class Alert:
    kind: str
    user_id: str
    key: str  # stable identity
    subject: str  # one line, for the record and logs
    fields: dict[str, str]  # template variables

    @property
    def id(self) -> str:
        """The notification id: stable across runs, the receiver de-duplicates on it."""
        return "ntf-" + hashlib.sha256(self.key.encode("utf-8")).hexdigest()[:20]


@dataclasses.dataclass(frozen=True)
class Delivery:
    """A delivery to make: an alert on a channel to an address."""

    alert: Alert
    channel: str
    address: str  # email address, webhook URL, or the user id (in-app)
    previous_failures: int


@dataclasses.dataclass
class Skipped:
    alert: Alert
    channel: str
    reason: str


def balances_as_of(ledger: Ledger, date: datetime.date) -> dict[tuple[str, str], Decimal]:
    """End-of-day balance of every wallet and credit type on ``date`` (the ledger as of it)."""
    return ledger.as_of(date).balances()


def balance_history(
    entries: list[data.Directive], accounts: set[str]
) -> dict[tuple[str, str], list[tuple[datetime.date, Decimal]]]:
    """(wallet, credit type) -> [(day, end-of-day balance)] for each day it changed."""
    running: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    history: dict[tuple[str, str], list[tuple[datetime.date, Decimal]]] = defaultdict(list)
    for entry in entries:
        if not isinstance(entry, data.Transaction):
            continue
        for posting in entry.postings:
            if posting.account not in accounts or posting.units is None:
                continue
            key = (posting.account, posting.units.currency)
            running[key] += posting.units.number
            days = history[key]
            if days and days[-1][0] == entry.date:
                days[-1] = (entry.date, running[key])
            else:
                days.append((entry.date, running[key]))
    return history


def low_balance_episode(
    conf: settings.Settings,
    user: User,
    commodity: str,
    days: list[tuple[datetime.date, Decimal]],
    date: datetime.date,
) -> tuple[datetime.date, Decimal, settings.Threshold] | None:
    """The low-balance episode under way on ``date``: (first day, balance, threshold)."""
    if not days:
        return None
    change_days = [day for day, _balance in days]
    threshold_days = [
        item.date
        for items in conf.thresholds.values()
        for item in items
        if item.amount.currency == commodity and days[0][0] < item.date <= date
    ]
    checkpoints = sorted({*change_days, *threshold_days})
    balance_at = dict(days)
    balance = Decimal(0)
    start = None
    threshold = None
    for day in checkpoints:
        if day > date:
            break
        balance = balance_at.get(day, balance)
        threshold = settings.low_balance_threshold(conf, user, commodity, day)
        below = threshold is not None and balance < threshold.amount.number
        if below and start is None:
            start = day
        elif not below:
            start = None
    if start is None or threshold is None:
        return None
    return start, balance, threshold


def due(ledger: Ledger, conf: settings.Settings, date: datetime.date) -> list[Alert]:
    """Every alert due on ``date``, in a stable order."""
    view = ledger.as_of(date)
    result = view.result
    live = {
        user.account: user
        for user in ledger.users.values()
        if user.close_date is None or user.close_date > date
    }
    alerts: list[Alert] = []
    commodities = settings.threshold_commodities(conf)
    history = balance_history(view.entries, set(live))
    for (account, commodity), days in sorted(history.items()):
        if commodity not in commodities:
            continue
        user = live[account]
        episode = low_balance_episode(conf, user, commodity, days, date)
        if episode is None:
            continue
        start, balance, threshold = episode
        alerts.append(
            Alert(
                kind=LOW_BALANCE,
                user_id=user.user_id,
                key=f"{LOW_BALANCE}|{user.user_id}|{commodity}|{start}",
                subject=f"{commodity} balance below {threshold.amount} since {start}",
                fields={
                    "user_id": user.user_id,
                    "commodity": commodity,
                    "balance": f"{balance}",
                    "threshold": f"{threshold.amount.number}",
                    "since": start.isoformat(),
                },
            )
        )
    windows = settings.expiry_windows(conf, date)
    for grant in sorted(
        result.grants.values(), key=lambda grant: (grant.expires or engine.NEVER, grant.id)
    ):
        user = live.get(grant.account)  # type: ignore[assignment]
        if user is None or grant.expires is None or grant.remaining <= 0:
            continue
        days_left = (grant.expires - date).days
        inside = [window for window in windows if 0 < days_left <= window]
        if not inside:
            continue
        window = min(inside)
        alerts.append(
            Alert(
                kind=EXPIRING,
                user_id=user.user_id,
                key=f"{EXPIRING}|{user.user_id}|{grant.id}|{window}",
                subject=f"{grant.remaining} {grant.currency} of grant {grant.id} expire on "
                f"{grant.expires} ({window}-day warning)",
                fields={
                    "user_id": user.user_id,
                    "grant": grant.id,
                    "amount": f"{grant.remaining}",
                    "commodity": grant.currency,
                    "expires": grant.expires.isoformat(),
                    "days_left": str(days_left),
                    "window": str(window),
                },
            )
        )
    alerts.extend(failed_topup_alerts(ledger, conf, date))
    return alerts


def failed_topup_alerts(
    ledger: Ledger, conf: settings.Settings, date: datetime.date
) -> list[Alert]:
    from beancount_credits.jobs import topup  # topup builds on this module

    accounts = {user.account: user.user_id for user in ledger.users.values()}
    _requests, outcomes = records.topup_records(ledger.entries, accounts)
    oldest = date - datetime.timedelta(days=FAILED_TOPUP_MAX_AGE)
    alerts = []
    now = datetime.datetime.combine(date, datetime.time(23, 59, 59), datetime.UTC)
    for outcome in outcomes:
        if outcome.succeeded or not oldest < outcome.date <= date:
            continue
        if outcome.user_id not in ledger.users:
            continue
        current = topup.state(ledger, conf, outcome.user_id, now)
        rule = current.rule
        if current.disabled and rule is not None:
            retry = (
                f"Automatic top-ups are paused after {current.consecutive_failures} failed "
                "attempts. Update your payment method and ask support to re-enable them."
            )
        elif current.next_allowed is not None:
            retry = (
                "We will try again automatically after "
                f"{current.next_allowed:%Y-%m-%d %H:%M} UTC if your balance is still low; "
                "to retry now, update your payment method and ask support to run "
                f"`bean-credits topup --retry {outcome.user_id}`."
            )
        else:
            retry = f"To retry now, run `bean-credits topup --retry {outcome.user_id}`."
        amount = "" if outcome.amount is None else str(outcome.amount)
        reason = outcome.reason or "no reason given"
        alerts.append(
            Alert(
                kind=TOPUP_FAILED,
                user_id=outcome.user_id,
                key=f"{TOPUP_FAILED}|{outcome.user_id}|{outcome.request}",
                subject=f"top-up {outcome.request} of {amount} failed: {reason}",
                fields={
                    "user_id": outcome.user_id,
                    "request": outcome.request,
                    "amount": amount,
                    "reason": reason,
                    "retry": retry,
                    "failed_on": outcome.date.isoformat(),
                },
            )
        )
    return alerts


def to_deliver(
    ledger: Ledger,
    conf: settings.Settings,
    alerts: list[Alert],
    date: datetime.date,
    sent: Sequence[data.Custom] = (),
) -> tuple[list[Delivery], list[Skipped]]:
    """For each due alert and channel: deliver it, or why not (sent already, opted out...).

    ``sent``: delivery records not in the ledger yet (a dead run's sent journal).
    """
    history = records.deliveries([*ledger.entries, *sent])
    delivered = {
        (item.notification, item.channel) for item in history if item.status == "delivered"
    }
    failures: dict[tuple[str, str], int] = defaultdict(int)
    for item in history:
        if item.status == "failed":
            failures[(item.notification, item.channel)] += 1
    todo: list[Delivery] = []
    skipped: list[Skipped] = []
    for alert in alerts:
        user = ledger.users[alert.user_id]
        contact = settings.contact(conf, user, date)
        unused = contact.channels()
        for channel in settings.CHANNELS:
            if channel in unused:
                skipped.append(Skipped(alert, channel, unused[channel]))
                continue
            if (alert.id, channel) in delivered:
                skipped.append(Skipped(alert, channel, "already delivered"))
                continue
            failed = failures[(alert.id, channel)]
            if failed >= MAX_FAILED_RUNS:
                skipped.append(Skipped(alert, channel, f"gave up after {failed} failed runs"))
                continue
            address = {
                "email": contact.email,
                "webhook": contact.webhook,
                "inapp": alert.user_id,
            }[channel]
            todo.append(Delivery(alert, channel, address or "", failed))
    return todo, skipped
