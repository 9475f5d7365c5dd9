"""``bean-credits notify``: deliver the due alerts and record every delivery in the ledger.

A run, under the ledger's writer lock (so two runs never send the same alert
at once):

1. load the ledger and its settings; compute the due alerts
   (:func:`beancount_credits.jobs.alerts.due`) and, from the
   ``credits-notification`` records, the deliveries still to make (one per
   alert and channel the user has and has not opted out of);
2. render every message from the templates (a broken template stops the run
   before anything is sent);
3. send: email, webhook, in-app (:mod:`beancount_credits.jobs.channels`);
4. record every attempt, delivered or failed and why, as
   ``credits-notification`` directives through the write path (one file per
   month under ``notify/``).

A delivered alert is never sent again on that channel; a failed one is tried
again on the next runs while it is still due (up to
:data:`~beancount_credits.jobs.alerts.MAX_FAILED_RUNS`). Each delivery is on its
own: one that fails for any reason (a refused address, a server error, a
surprise) is recorded as failed with its reason and the run goes on.

**What was sent is never sent again.** Each outcome is appended (and fsynced)
to the sent journal ``<ledger dir>/.bean-credits-sent.jsonl`` the moment the
channel returns, before the next delivery; the journal is folded into the
ledger's records at the end of the run and then removed. A run that dies after
sending (or whose record write fails) leaves the journal, and the next run
counts what it says as recorded: it sends none of it again, and records it.
Only a crash in the instant between the server's acceptance and the journal
line can resend; the resend carries the same notification id (the webhook's
``id`` and ``X-Credits-Notification-Id``, the email's ``Message-ID`` and
``X-Credits-Notification-Id``, the in-app line's ``id``), so a receiver that
de-duplicates on it shows it once. The in-app outbox does this itself.

Templates are ``string.Template`` files (``$name`` placeholders):
``<kind>.subject.txt`` and ``<kind>.body.txt`` for kind ``low-balance``,
``expiring`` and ``topup-failed``. The shipped defaults are in
``beancount_credits/templates/notify/``; a file of the same name in the
directory given by ``--templates`` replaces the default.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from beancount.core import data
from beancount.parser.grammar import ValueType

from beancount_credits.engine import settings
from beancount_credits.jobs import alerts, channels, records, topup
from beancount_credits.jobs.alerts import Alert, Delivery, Skipped
from beancount_credits.ledger import Ledger, write

SHIPPED_TEMPLATES = Path(__file__).resolve().parent / "templates" / "notify"
OUTBOX_NAME = "outbox"
INAPP_NAME = "notifications.jsonl"
SENT_NAME = ".bean-credits-sent.jsonl"


class NotifyError(Exception):
    """A run that cannot go ahead; the message says why."""


def default_outbox(ledger_path: Path) -> Path:
    return ledger_path.resolve().parent / OUTBOX_NAME


class Templates:
    """Message templates: a file in ``override`` beats the shipped default."""

    def __init__(self, override: Path | None = None):
        self.override = override

    def path(self, name: str) -> Path:
        if self.override is not None and (self.override / name).is_file():
            return self.override / name
        return SHIPPED_TEMPLATES / name

    def render(self, alert: alerts.Alert) -> tuple[str, str]:
        fields = {
            **alert.fields,
            "notification_id": alert.id,
            "kind": alert.kind,
            "user_id": alert.user_id,
        }
        rendered = []
        for part in ("subject", "body"):
            path = self.path(f"{alert.kind}.{part}.txt")
            try:
                text = string.Template(path.read_text(encoding="utf-8")).substitute(fields)
            except OSError as exc:
                raise NotifyError(f"template {path}: {exc.strerror}") from None
            except KeyError as exc:
                known = ", ".join(sorted(fields))
                raise NotifyError(
                    f"template {path}: unknown placeholder ${exc.args[0]} (known: {known})"
                ) from None
            except ValueError as exc:
                raise NotifyError(f"template {path}: {exc}") from None
            rendered.append(text)
        subject = " ".join(rendered[0].split())  # one line, whatever the file holds
        return subject, rendered[1]


@dataclasses.dataclass(frozen=True)
class Outcome:
    delivery: alerts.Delivery
    status: str  # delivered | failed
    reason: str | None
    attempts: int
    sent_at: str

    def record(self, date: datetime.date) -> dict[str, Any]:
        """What the ledger records of it (a line of the sent journal, then a directive)."""
        alert = self.delivery.alert
        return {
            "date": date.isoformat(),
            "user_id": alert.user_id,
            "notification": alert.id,
            "alert": alert.kind,
            "subject": alert.subject,
            "channel": self.delivery.channel,
            "status": self.status,
            "reason": self.reason,
            "attempts": self.attempts,
            "sent_at": self.sent_at,
        }


@dataclasses.dataclass
class Plan:
    date: datetime.date
    alerts: list[Alert]  # the field shadows the module here: the names are imported
    todo: list[Delivery]
    skipped: list[Skipped]


def prepare(
    ledger: Ledger, date: datetime.date, sent: Sequence[data.Custom] = ()
) -> tuple[settings.Settings, Plan]:
    """The due alerts and the deliveries to make; ``sent``: records not in the ledger yet."""
    conf = settings.of(ledger)
    if conf.errors:
        raise NotifyError(settings_errors(conf))
    due = alerts.due(ledger, conf, date)
    todo, skipped = alerts.to_deliver(ledger, conf, due, date, sent)
    return conf, Plan(date, due, todo, skipped)


def settings_errors(conf: settings.Settings) -> str:
    lines = [f"{len(conf.errors)} error(s) in the settings directives; nothing was sent"]
    for error in conf.errors:
        lines.append(
            f"{error.source.get('filename', '?')}:{error.source.get('lineno', '?')}: "
            f"{error.message}"
        )
    return "\n".join(lines)


Channel = channels.EmailChannel | channels.WebhookChannel | channels.InAppChannel


def open_channels(env: Mapping[str, str], inapp: Path) -> tuple[dict[str, Channel], dict[str, str]]:
    """The configured channels, and why the others are off."""
    opened: dict[str, Channel] = {"inapp": channels.InAppChannel(inapp)}
    off: dict[str, str] = {}
    try:
        smtp = channels.SmtpConfig.from_env(env)
        hook = channels.WebhookConfig.from_env(env)
    except ValueError as exc:
        raise NotifyError(str(exc)) from None
    if smtp is None:
        off["email"] = f"not configured ({channels.ENV}SMTP_HOST is not set)"
    else:
        opened["email"] = channels.EmailChannel(smtp)
    if hook is None:
        off["webhook"] = f"not configured ({channels.ENV}WEBHOOK_SECRET is not set)"
    else:
        opened["webhook"] = channels.WebhookChannel(hook)
    return opened, off


def deliver(
    plan: Plan,
    opened: Mapping[str, Channel],
    templates: Templates,
    now: datetime.datetime | None = None,
    journal: Path | None = None,
) -> list[Outcome]:
    """Send every planned delivery on an open channel; one outcome each.

    Each delivery is isolated: whatever goes wrong with one is its outcome
    (failed, with the reason) and the next one is tried. With ``journal`` each
    outcome is appended to it (fsynced) as soon as it is known.
    """
    messages = {}
    for delivery in plan.todo:
        alert = delivery.alert
        if alert.id not in messages:
            subject, body = templates.render(alert)
            created = (now or datetime.datetime.now(datetime.UTC)).isoformat(timespec="seconds")
            messages[alert.id] = channels.Message(
                alert.id, alert.kind, alert.user_id, subject, body, alert.fields, created
            )
    outcomes = []
    try:
        for delivery in plan.todo:
            channel = opened.get(delivery.channel)
            if channel is None:
                continue
            message = messages[delivery.alert.id]
            try:
                attempts = channel.send(message, delivery.address)
                status, reason = "delivered", None
            except channels.DeliveryError as exc:
                attempts, status, reason = exc.attempts, "failed", str(exc)
            except Exception as exc:  # one delivery's surprise must not stop the others
                attempts, status = 1, "failed"
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            sent_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            outcome = Outcome(delivery, status, reason, attempts, sent_at)
            outcomes.append(outcome)
            if journal is not None:
                append_sent(journal, outcome.record(plan.date))
    finally:
        for channel in opened.values():
            channel.close()
    return outcomes


_RECORD_KEYS = ("notification", "alert", "subject", "channel", "status", "reason", "attempts")


def delivery_record(record: Mapping[str, Any]) -> data.Custom:
    """The ``credits-notification`` directive that records one delivery attempt."""
    meta = {key: record.get(key) for key in (*_RECORD_KEYS, "sent_at")}
    meta["attempts"] = int(record.get("attempts") or 0)
    return data.Custom(
        meta,
        datetime.date.fromisoformat(str(record["date"])),
        records.NOTIFICATION,
        [ValueType(str(record["user_id"]), str)],
    )


def record_changes(
    ledger: Ledger, outcomes: list[Outcome], date: datetime.date, sent: Sequence[data.Custom] = ()
) -> list[write.FileChange]:
    """The record files: this run's outcomes, and ``sent`` (a dead run's journal) not yet in."""
    recorded = {_identity(entry) for entry in ledger.entries if _is_notification(entry)}  # type: ignore[arg-type]
    entries = [entry for entry in sent if _identity(entry) not in recorded]
    entries += [delivery_record(outcome.record(date)) for outcome in outcomes]
    return records.month_changes(ledger, records.NOTIFY_DIR, entries, "Notification deliveries")


def _is_notification(entry: data.Directive) -> bool:
    return isinstance(entry, data.Custom) and entry.type == records.NOTIFICATION


def _identity(entry: data.Custom) -> tuple[Any, ...]:
    return (entry.date, *(entry.meta.get(key) for key in (*_RECORD_KEYS, "sent_at")))


# --- The sent journal: outcomes on disk the moment they are known ----------------------


def sent_path(ledger_path: Path) -> Path:
    return ledger_path.resolve().parent / SENT_NAME


def append_sent(path: Path, record: Mapping[str, Any]) -> None:
    """One outcome, appended and fsynced before the next delivery is tried."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_sent(ledger_path: Path) -> list[data.Custom]:
    """The records a run that died (or could not write them) left in the sent journal."""
    return [
        delivery_record(line)
        for line in channels.read_lines(sent_path(ledger_path))
        if {"date", "user_id", "notification", "channel", "status"} <= set(line)
    ]


def clear_sent(ledger_path: Path) -> None:
    """Drop the journal once its records are in the ledger."""
    sent_path(ledger_path).unlink(missing_ok=True)


# --- explain -------------------------------------------------------------------------


def explain(ledger: Ledger, user_id: str, date: datetime.date, off: Mapping[str, str]) -> list[str]:
    """Why a user got (or did not get) each alert: settings, alerts, deliveries."""
    user = ledger.user(user_id)
    conf, plan = prepare(ledger, date)
    lines = [f"notify --explain {user_id} as of {date}"]
    lines.append(f"  wallet {user.account}, segment {user.segment or '(none)'}")
    balances = alerts.balances_as_of(ledger, date)
    commodities = sorted(
        {currency for account, currency in balances if account == user.account}
        | settings.threshold_commodities(conf)
    )
    lines.append("low-balance thresholds:")
    for commodity in commodities:
        balance = balances.get((user.account, commodity))
        threshold = settings.low_balance_threshold(conf, user, commodity, date)
        have = "no balance" if balance is None else f"balance {balance} {commodity}"
        if threshold is None:
            lines.append(f"  {commodity}: no threshold set ({have})")
            continue
        state = ""
        if balance is not None:
            state = "below" if balance < threshold.amount.number else "not below"
        lines.append(f"  {commodity}: {threshold.describe()}; {have}, {state}".rstrip(", "))
    contact = settings.contact(conf, user, date)
    origin = (
        "no credits-contact directive"
        if contact.date is None
        else f"credits-contact of {contact.date} ({contact.meta.get('filename')}:"
        f"{contact.meta.get('lineno')})"
    )
    lines.append(f"contact: {origin}")
    unused = contact.channels()
    for channel in settings.CHANNELS:
        address = {"email": contact.email, "webhook": contact.webhook, "inapp": "in-app outbox"}
        if channel in unused:
            lines.append(f"  {channel}: not used: {unused[channel]}")
        elif channel in off:
            lines.append(f"  {channel}: {address[channel]}, but the channel is {off[channel]}")
        else:
            lines.append(f"  {channel}: {address[channel]}")
    rule = settings.topup_rule(conf, user_id, date)
    if rule is None:
        lines.append("auto top-up: no rule")
    else:
        now = datetime.datetime.combine(date, datetime.time(23, 59, 59), datetime.UTC)
        decision = topup.decide(topup.state(ledger, conf, user_id, now), now)
        lines.append(
            f"auto top-up: {rule.amount} from {rule.source!r} below {rule.threshold} "
            f"(since {rule.date}, max_per_day {rule.max_per_day}, max_failures "
            f"{rule.max_failures}); now: "
            + (decision.reason if decision.request is None else "a request is due")
        )
    mine = [alert for alert in plan.alerts if alert.user_id == user_id]
    lines.append(f"alerts due on {date}: {len(mine) or 'none'}")
    for alert in mine:
        lines.append(f"  {alert.kind} {alert.id}: {alert.subject}")
        for delivery in plan.todo:
            if delivery.alert is alert:
                state = (
                    f"channel {off[delivery.channel]}"
                    if delivery.channel in off
                    else "to send on the next run"
                )
                if delivery.previous_failures:
                    state += f" (failed {delivery.previous_failures} run(s) so far)"
                lines.append(f"    {delivery.channel}: {state}")
        for skipped in plan.skipped:
            if skipped.alert is alert:
                lines.append(f"    {skipped.channel}: {skipped.reason}")
    history = [item for item in records.deliveries(ledger.entries) if item.user_id == user_id]
    lines.append(f"deliveries recorded: {len(history) or 'none'}")
    for item in history:
        why = f": {item.reason}" if item.reason else ""
        lines.append(
            f"  {item.date} {item.alert} {item.notification} {item.channel} "
            f"{item.status}{why} ({item.subject})"
        )
    return lines
