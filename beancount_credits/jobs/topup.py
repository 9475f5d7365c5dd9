"""Auto top-up: which users to request credits for, under guards against runaway charges.

``bean-credits topup LEDGER`` requests a top-up for every user whose
``credits-topup-rule`` (see :mod:`beancount_credits.engine.settings`) is on and whose
balance of the rule's credit type is below its threshold. A request is a
``credits-topup "requested"`` record in the ledger (see
:mod:`beancount_credits.jobs.records`) plus a JSON file in the outbox that the
payment side picks up; it stays *open* until the importer records its outcome
(a grant with ``topup_request:``, or a ``credits-topup "failed"`` record).

The guards, all computed from the ledger alone (so they hold however often the
job runs, and across machines):

- never two open requests for one user;
- at most ``max_per_day`` requests in any 24 hours;
- after a decline, wait ``backoff`` x 2^(n-1) after the n-th consecutive
  failure before asking again (``--retry`` skips this wait, nothing else);
- after ``max_failures`` consecutive failures the rule is disabled until a
  ``credits-topup-enable`` directive dated after the last failure.

A retry (automatic after the backoff, or ``--retry``) continues the failed
request's *family*: same ``tu-<user hash>-<date>-<n>`` prefix, the next attempt
number; the idempotency key is ``<family>.<attempt>``, so the payment provider
charges one attempt at most once however often it is sent.

:func:`plan` and :func:`state` are pure (a ledger and a time in, decisions
out); :func:`write_outbox` is the file edge.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from decimal import Decimal
from pathlib import Path

from beancount.core import amount as amount_lib
from beancount.core import data

from beancount_credits.engine import settings
from beancount_credits.jobs import records
from beancount_credits.jobs.alerts import balances_as_of
from beancount_credits.ledger import Ledger, write

DAY = datetime.timedelta(days=1)


class TopUpError(Exception):
    """A top-up that cannot be made; the message says why."""


@dataclasses.dataclass
class State:
    """A user's top-up situation at a moment."""

    user_id: str
    rule: settings.TopUpRule | None
    requests: list[records.TopUpRequest]
    outcomes: dict[str, records.TopUpOutcome]
    open: records.TopUpRequest | None
    consecutive_failures: int
    last_failure: records.TopUpOutcome | None
    disabled: bool
    next_allowed: datetime.datetime | None  # backoff: no automatic request before
    recent: int  # requests in the last 24 hours
    balance: Decimal | None

    @property
    def latest(self) -> records.TopUpRequest | None:
        return self.requests[-1] if self.requests else None


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the job does for one user: a request to make, or why not."""

    user_id: str
    request: records.TopUpRequest | None
    reason: str


def family_id(user_id: str, date: datetime.date, number: int) -> str:
    digest = hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:8]
    return f"tu-{digest}-{date:%Y%m%d}-{number}"


def state(
    ledger: Ledger,
    conf: settings.Settings,
    user_id: str,
    now: datetime.datetime,
    balances: dict[tuple[str, str], Decimal] | None = None,
) -> State:
    """The user's rule, requests, outcomes and guards as of ``now``."""
    today = now.date()
    accounts = {user.account: user.user_id for user in ledger.users.values()}
    all_requests, all_outcomes = records.topup_records(ledger.entries, accounts)
    requests = [
        item
        for item in all_requests
        if item.user_id == user_id and item.date <= today and item.requested_at <= now
    ]
    outcomes = {
        item.request: item
        for item in all_outcomes
        if item.user_id == user_id and item.date <= today
    }
    rule = settings.topup_rule(conf, user_id, today)
    open_request = next((item for item in requests if item.request not in outcomes), None)
    # Consecutive failures: the latest outcomes, newest first, up to a success
    # or a re-enable.
    enable = settings.last_enable(conf, user_id, today)
    done = sorted(
        (outcomes[item.request] for item in requests if item.request in outcomes),
        key=lambda outcome: outcome.date,
    )
    failures = 0
    last_failure = None
    for outcome in reversed(done):
        if outcome.succeeded or (enable is not None and outcome.date <= enable.date):
            break
        failures += 1
        last_failure = last_failure or outcome
    next_allowed = None
    if last_failure is not None and rule is not None:
        asked = next(item for item in requests if item.request == last_failure.request)
        # From the decline's own time (failed_at:); a record without one, from the
        # later of the request and the start of the decline's day.
        failed_at = max(
            asked.requested_at,
            last_failure.at
            or datetime.datetime.combine(last_failure.date, datetime.time(), datetime.UTC),
        )
        next_allowed = failed_at + rule.backoff * 2 ** (failures - 1)
    balance = None
    if rule is not None:
        user = ledger.user(user_id)
        if balances is None:
            balances = balances_as_of(ledger, today)
        balance = balances.get((user.account, rule.threshold.currency), Decimal(0))
    return State(
        user_id=user_id,
        rule=rule,
        requests=requests,
        outcomes=outcomes,
        open=open_request,
        consecutive_failures=failures,
        last_failure=last_failure,
        disabled=rule is not None and failures >= rule.max_failures,
        next_allowed=next_allowed,
        recent=sum(1 for item in requests if item.requested_at > now - DAY),
        balance=balance,
    )


def _new_request(current: State, now: datetime.datetime, retry: bool) -> records.TopUpRequest:
    rule = current.rule
    assert rule is not None
    latest = current.latest
    if retry and latest is not None:
        family, attempt = latest.family, latest.attempt + 1
    else:
        today = now.date()
        started = {item.family for item in current.requests if item.date == today}
        family, attempt = family_id(current.user_id, today, len(started) + 1), 1
    request = f"{family}.{attempt}"
    return records.TopUpRequest(
        user_id=current.user_id,
        request=request,
        family=family,
        attempt=attempt,
        amount=rule.amount,
        source=rule.source,
        expire_after=rule.expire_after,
        requested_at=now,
        date=now.date(),
        meta={},
    )


def decide(current: State, now: datetime.datetime, manual_retry: bool = False) -> Decision:
    """Apply the guards to one user's state."""
    rule = current.rule
    user = current.user_id
    if rule is None:
        return Decision(user, None, "no top-up rule")
    if not rule.enabled:
        return Decision(user, None, f"top-up rule switched off on {rule.date}")
    if current.open is not None:
        return Decision(
            user, None, f"request {current.open.request} of {current.open.date} is still open"
        )
    if current.disabled:
        return Decision(
            user,
            None,
            f"disabled after {current.consecutive_failures} consecutive failures "
            f'(max_failures {rule.max_failures}); re-enable with: custom "{settings.TOPUP_ENABLE}" '
            f'"{user}"',
        )
    if current.recent >= rule.max_per_day:
        return Decision(
            user,
            None,
            f"{current.recent} request(s) in the last 24 hours (max_per_day {rule.max_per_day})",
        )
    failed_last = current.last_failure is not None
    if manual_retry:
        if not failed_last:
            latest = current.latest
            state_text = "no request yet" if latest is None else f"{latest.request} did not fail"
            return Decision(user, None, f"nothing to retry: {state_text}")
        return Decision(user, _new_request(current, now, retry=True), "retry requested")
    if current.next_allowed is not None and now < current.next_allowed:
        return Decision(
            user,
            None,
            f"backing off after {current.consecutive_failures} failure(s) "
            f"until {current.next_allowed.isoformat()}",
        )
    assert current.balance is not None
    if current.balance >= rule.threshold.number:
        return Decision(
            user,
            None,
            f"balance {current.balance} {rule.threshold.currency} is not below {rule.threshold}",
        )
    reason = f"balance {current.balance} {rule.threshold.currency} below {rule.threshold}" + (
        f"; retry {current.consecutive_failures + 1}" if failed_last else ""
    )
    return Decision(user, _new_request(current, now, retry=failed_last), reason)


def plan(
    ledger: Ledger,
    conf: settings.Settings,
    now: datetime.datetime,
    retry_user: str | None = None,
) -> list[Decision]:
    """One decision per user with a rule (or for ``retry_user`` only)."""
    balances = balances_as_of(ledger, now.date())
    if retry_user is not None:
        ledger.user(retry_user)  # an unknown id is an error, not "no rule"
        users = [retry_user]
    else:
        users = sorted(user for user, rules in conf.rules.items() if rules)
    decisions = []
    for user_id in users:
        current = state(ledger, conf, user_id, now, balances)
        decisions.append(decide(current, now, manual_retry=retry_user is not None))
    return decisions


def request_meta(request: records.TopUpRequest) -> dict[str, object]:
    return {
        "request": request.request,
        "idempotency_key": request.request,
        "attempt": request.attempt,
        "amount": request.amount,
        "source": request.source,
        "expire_after": request.expire_after,
        "requested_at": request.requested_at.isoformat(timespec="seconds"),
    }


def request_record(request: records.TopUpRequest) -> data.Custom:
    """The ``credits-topup ... "requested"`` directive that records a request."""
    return data.Custom(
        request_meta(request), request.date, records.TOPUP, [request.user_id, "requested"]
    )


def outbox_document(request: records.TopUpRequest) -> dict[str, object]:
    amount: amount_lib.Amount = request.amount
    return {
        "type": "topup.requested",
        "request": request.request,
        "idempotency_key": request.request,
        "family": request.family,
        "attempt": request.attempt,
        "user_id": request.user_id,
        "amount": str(amount.number),
        "commodity": amount.currency,
        "source": request.source,
        "expire_after": request.expire_after,
        "requested_at": request.requested_at.isoformat(timespec="seconds"),
    }


def write_outbox(outbox: Path, requests: list[records.TopUpRequest]) -> list[Path]:
    """One JSON file per request (``<outbox>/topup/<request>.json``); existing ones are kept."""
    written = []
    for request in requests:
        path = outbox / "topup" / f"{request.request}.json"
        if path.exists():
            continue
        text = json.dumps(outbox_document(request), indent=2, sort_keys=True) + "\n"
        write.write_atomic(path, text)
        written.append(path)
    return written


def open_requests(ledger: Ledger, now: datetime.datetime) -> list[records.TopUpRequest]:
    """Every request without an outcome (their outbox files are re-written if missing)."""
    accounts = {user.account: user.user_id for user in ledger.users.values()}
    requests, outcomes = records.topup_records(ledger.entries, accounts)
    done = {outcome.request for outcome in outcomes}
    return [item for item in requests if item.request not in done and item.date <= now.date()]
