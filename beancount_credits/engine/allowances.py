"""Recurring allowances: a plan's credits granted every period, with rollover.

A dated directive gives a user an allowance from its date::

    2024-01-01 custom "credits-allowance" "alice" 100 CREDIT
      every: "1m"                       ; a period: "1w", "1m", "3m", "1y" (any "<n>d/w/m/y")
      source: "Income:Credits:Plan"     ; default <income root>:Allowance
      rollover_max: 30                  ; default 0
    2024-06-01 custom "credits-allowance" "alice" "off"

At the start of every period (counted from the directive's date) the engine
grants ``amount`` to the user's wallet (Transaction ID
``allowance:<user_id>:<start>``), expiring at the next period's start. At that
moment up to ``rollover_max`` of what is left of the ending period's allowance
(rollover included) carries into the new period and expires at its end; the
rest goes to breakage (``<grant>:expiry`` when a grant ends there,
``<grant>:expiry:<date>`` when part of it carries on). The carried part is
taken from the newest grants and, being older than the new allowance, is
spent before it. A later directive for the same user replaces the earlier
one from its date (the running period ends there); ``"off"`` stops it.

Part of the pass (:mod:`beancount_credits.engine.booking`): :func:`build`
reads the directives before it starts, :func:`flush` books the period
boundaries due by a day (like the expiries: only up to the ledger's horizon),
and :func:`adopt` recognises an allowance grant the text records (written by
``close-day``: by its Transaction ID, never twice; one that no longer matches
the directives is an error). :func:`book_through` continues a finished pass
past its horizon (what :mod:`beancount_credits.engine.asof` asks for).
"""

from __future__ import annotations

import dataclasses
import datetime
import heapq
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from beancount.core import account as account_lib
from beancount.core import amount as amount_lib
from beancount.core import data

# These modules import this one: each is imported whole, and used only once the pass runs.
from beancount_credits.engine import annotations as engine_annotations
from beancount_credits.engine import expiries, grants
from beancount_credits.engine.accounts import UserIdError, user_account
from beancount_credits.engine.config import CreditsConfig
from beancount_credits.engine.metadata import (
    EXPIRE_PLUGIN_NAME,
    GENERATED_FILENAME,
    add_period,
    expiry_txn_id,
    generated_meta,
    meta_decimal,
    parse_period,
)
from beancount_credits.engine.model import CARRIED_TAG, ZERO, CreditsError, EngineResult, Grant

if TYPE_CHECKING:
    from beancount_credits.engine.booking import Pass

DIRECTIVE = "credits-allowance"
PREFIX = "allowance:"  # Transaction IDs of allowance grants (reserved)
GRANT_LINE = 1  # a period's grant follows the ending period's expiries (line 0)


def allowance_txn_id(user_id: str, start: datetime.date) -> str:
    return f"{PREFIX}{user_id}:{start.isoformat()}"


@dataclasses.dataclass(frozen=True)
class Rule:
    """One ``credits-allowance`` directive (``units`` None: "off")."""

    user_id: str
    date: datetime.date
    units: amount_lib.Amount | None
    every: tuple[int, str]
    source: str
    rollover_max: Decimal
    meta: data.Meta


class Period(NamedTuple):  # a named tuple: one is made at every period boundary
    rule: int  # index in the plan's rules
    step: int  # period number within the rule
    start: datetime.date
    end: datetime.date  # the next period's start, or the next directive's date


@dataclasses.dataclass
class Plan:
    """One wallet's allowances: its rules, the running period and its pool."""

    account: str
    rules: list[Rule]
    current: Period | None = None
    upcoming: Period | None = None
    pool: list[Grant] = dataclasses.field(default_factory=list)

    def period(self, rule: int, step: int, start: datetime.date | None = None) -> Period | None:
        """The ``step``-th period of rule ``rule``, if the rule is on and still in force.

        ``start``: the previous period's end, when known (the same date unless
        the next directive cut that period short, and then this one is None).
        """
        found = self.rules[rule]
        if found.units is None:
            return None
        stop = self.rules[rule + 1].date if rule + 1 < len(self.rules) else None
        count, unit = found.every
        if start is None:
            start = add_period(found.date, (count * step, unit))
        if stop is not None and start >= stop:
            return None
        end = add_period(found.date, (count * (step + 1), unit))
        if stop is not None and end > stop:
            end = stop
        return Period(rule, step, start, end)

    def following(self, period: Period | None) -> Period | None:
        if period is not None:
            found = self.period(period.rule, period.step + 1, period.end)
            if found is not None:
                return found
        for rule in range(0 if period is None else period.rule + 1, len(self.rules)):
            found = self.period(rule, 0)
            if found is not None:
                return found
        return None

    @property
    def next(self) -> datetime.date | None:
        """The next boundary: the running period's end, else the next period's start."""
        if self.current is not None:
            return self.current.end
        return None if self.upcoming is None else self.upcoming.start

    def at(self, day: datetime.date) -> Period | None:
        """The period running at the end of ``day`` (for reading an earlier day back)."""
        period = self.following(None)
        while period is not None and period.end <= day:
            period = self.following(period)
        return period if period is not None and period.start <= day else None


@dataclasses.dataclass
class Book:
    """The allowances of one pass: every wallet's plan and the boundaries due."""

    config: CreditsConfig
    plans: dict[str, Plan] = dataclasses.field(default_factory=dict)
    due: list[tuple[datetime.date, str]] = dataclasses.field(default_factory=list)
    # Grants a boundary opened, by Transaction ID: (plan, period, generated).
    expected: dict[str, tuple[Plan, Period, bool]] = dataclasses.field(default_factory=dict)
    recorded: dict[str, datetime.date] = dataclasses.field(default_factory=dict)
    ids: set[str] = dataclasses.field(default_factory=set)  # every allowance grant's id
    # The first day after a closed period: earlier periods' grants are in the
    # archive, and what is left of them comes back as carried grants.
    opened: datetime.date | None = None

    def copy(self) -> Book:
        plans = {
            account: dataclasses.replace(plan, pool=list(plan.pool))
            for account, plan in self.plans.items()
        }
        return dataclasses.replace(
            self, plans=plans, due=list(self.due), expected=dict(self.expected), ids=set(self.ids)
        )

    def schedule(self, plan: Plan) -> None:
        day = plan.next
        if day is not None:
            heapq.heappush(self.due, (day, plan.account))

    def dates(self) -> list[datetime.date]:
        """The dates of the directives."""
        return [rule.date for plan in self.plans.values() for rule in plan.rules]

    def due_by(self, day: datetime.date) -> bool:
        return bool(self.due) and self.due[0][0] <= day


# --- The directives -------------------------------------------------------------


def parse(entry: data.Custom, config: CreditsConfig) -> Rule:
    """A ``credits-allowance`` directive as a Rule; raises ValueError naming the field."""
    values = [value.value for value in entry.values]
    user_id = values[0] if values else None
    if not isinstance(user_id, str) or not user_id:
        raise ValueError("the first value must be the user id (a string)")
    meta = entry.meta or {}
    if len(values) == 2 and isinstance(values[1], str) and values[1] == "off":
        return Rule(user_id, entry.date, None, (1, "m"), "", ZERO, meta)
    if len(values) != 2 or not isinstance(values[1], amount_lib.Amount):
        raise ValueError('takes the user id and an amount (100 CREDIT), or the user id and "off"')
    units: amount_lib.Amount = values[1]
    if units.number is None or units.number <= 0:
        raise ValueError(f"amount must be positive, not {units}")
    every = meta.get("every")
    if every is None:
        raise ValueError('every: missing (a period such as "1w", "1m", "3m" or "1y")')
    try:
        period = parse_period(str(every))
    except ValueError:
        raise ValueError(
            f'every: {every!r} is not a period such as "1w", "1m", "3m" or "1y"'
        ) from None
    if period[0] < 1:
        raise ValueError(f"every: {every!r} must be at least one day")
    source = meta.get("source", f"{config.income}:Allowance")
    if not isinstance(source, str) or not account_lib.is_valid(source):
        raise ValueError(f"source: {source!r} is not an account name")
    try:
        rollover = meta_decimal(meta.get("rollover_max", 0))
    except ValueError as exc:
        raise ValueError(f"rollover_max: {exc}") from None
    if rollover < 0:
        raise ValueError(f"rollover_max: must not be negative, not {rollover}")
    return Rule(user_id, entry.date, units, period, source, rollover, meta)


def build(
    directives: Iterable[data.Custom],
    wallets: dict[str, str],
    config: CreditsConfig,
    recorded: dict[str, datetime.date],
    opened: datetime.date | None = None,
) -> tuple[Book | None, list[CreditsError]]:
    """The Book of the allowance directives (None when there are none), and their errors.

    ``wallets``: user id -> wallet account, from the wallets' ``open``;
    ``recorded``: the allowance grants the text records, by Transaction ID.
    """
    errors: list[CreditsError] = []
    rules: dict[str, list[Rule]] = {}
    for entry in directives:
        try:
            rule = parse(entry, config)
            account = wallets.get(rule.user_id)
            if account is None:
                try:
                    account = user_account(rule.user_id, config.users)
                except UserIdError as exc:
                    raise ValueError(str(exc)) from None
                if account not in wallets.values():
                    raise ValueError(
                        f"unknown user id {rule.user_id!r} (no wallet open with that user_id)"
                    )
            plan_rules = rules.setdefault(account, [])
            if rule.units is None and not plan_rules:
                raise ValueError('"off" with no earlier allowance to switch off')
            plan_rules.append(rule)
        except ValueError as exc:
            who = entry.values[0].value if entry.values else None
            label = f" {who!r}" if isinstance(who, str) else ""
            errors.append(CreditsError(entry.meta, f"{DIRECTIVE}{label}: {exc}", entry))
    if not rules:
        return None, errors
    book = Book(config, recorded=recorded, opened=opened)
    for account, plan_rules in rules.items():
        plan_rules.sort(key=lambda rule: rule.date)  # stable: file order within a day
        plan = book.plans[account] = Plan(account, plan_rules)
        plan.upcoming = plan.following(None)
        book.schedule(plan)
    return book, errors


# --- Part of the pass -------------------------------------------------------------


def flush(state: Pass, through: datetime.date) -> None:
    """Book every period boundary due on or before ``through``: rollover, then the new grant."""
    book = state.allowances
    if book is None:
        return
    due = book.due
    while due and due[0][0] <= through:
        day, account = heapq.heappop(due)
        plan = book.plans[account]
        if plan.next != day:
            continue  # the wallet closed
        boundary(state, book, plan, day)
        book.schedule(plan)


def boundary(state: Pass, book: Book, plan: Plan, day: datetime.date) -> None:
    upcoming = plan.upcoming
    starts = upcoming is not None and upcoming.start == day
    if plan.current is not None and plan.current.end == day:
        carry = plan.rules[plan.current.rule].rollover_max if starts else ZERO
        rollover(state, plan, day, carry, upcoming.end if starts and upcoming else day)
        plan.current = None
    if starts and upcoming is not None:
        plan.current = upcoming
        plan.upcoming = plan.following(upcoming)
        if book.opened is None or upcoming.start >= book.opened:
            open_period(state, book, plan, upcoming)


def rollover(
    state: Pass, plan: Plan, day: datetime.date, carry: Decimal, until: datetime.date
) -> None:
    """End the pool: up to ``carry`` stays (newest first) until ``until``; the rest expires."""
    kept: list[Grant] = []
    left = carry
    for grant in reversed(plan.pool):
        if grant.remaining <= 0:
            continue
        keep = min(grant.remaining, left)
        left -= keep
        gone = grant.remaining - keep
        if gone > 0:
            note = f" ({keep} {grant.currency} carried until {until})" if keep else ""
            expiries.expire(
                state,
                grant,
                day,
                0,
                None,
                amount=gone,
                key=expiry_txn_id(grant.id, day.isoformat() if keep else None),
                narration=f"Expired credits of allowance {grant.id}{note}",
            )
        if keep > 0:
            grant.expires = until
            kept.append(grant)
    kept.reverse()
    plan.pool = kept
    if kept:
        # The carried grants' expiry moved: their place in the consumption order too.
        wallets = {(grant.account, grant.currency) for grant in kept}
        for key in wallets:
            state.reorder(state.wallets[key])


def open_period(state: Pass, book: Book, plan: Plan, period: Period) -> None:
    rule = plan.rules[period.rule]
    txn_id = allowance_txn_id(rule.user_id, period.start)
    if book.recorded.get(txn_id) == period.start:
        book.expected[txn_id] = (plan, period, False)  # the text holds it: booked when met
        return
    book.expected[txn_id] = (plan, period, True)
    units = rule.units
    assert units is not None
    meta = generated_meta(EXPIRE_PLUGIN_NAME, GRANT_LINE, GENERATED_FILENAME)
    meta["txn_id"] = txn_id
    meta["expires"] = period.end
    meta["generated"] = True
    posting = data.Posting(plan.account, units, None, None, None, None)
    postings = [posting, data.Posting(rule.source, -units, None, None, None, None)]
    entry = data.Transaction(
        meta,
        period.start,
        "*",
        None,
        f"Allowance of {rule.user_id} for {period.start} to {period.end}",
        data.EMPTY_SET,
        data.EMPTY_SET,
        postings,
    )
    # Booked as Pass.transaction books a transaction with one grant posting,
    # without its search for what the postings are: this one is known.
    state.claim_txn_id(entry, txn_id)
    wallet = state.wallet(plan.account, units.currency)
    grant = grants.grant(state, entry, posting, wallet, txn_id, txn_id, rule.source)
    annotation = engine_annotations.grant_annotation(grant)
    if annotation and state.config.annotate:
        postings[0] = posting._replace(meta=annotation)
    state.out.append(entry)


def adopt(state: Pass, grant: Grant, entry: data.Transaction) -> bool:
    """Take an allowance grant into its plan's pool; False when it is not one.

    A recorded one (``allowance:`` Transaction ID in the text) that the
    directives do not grant, or grant otherwise, is an error.
    """
    book = state.allowances
    txn_id = grant.txn_id
    if txn_id is None or not txn_id.startswith(PREFIX):
        return False
    plan = None if book is None else book.plans.get(grant.account)
    if book is not None and plan is not None and CARRIED_TAG in entry.tags:
        # Carried by a period close: part of its running period's pool again.
        if plan.current is not None:
            grant.expires = plan.current.end
        plan.pool.append(grant)
        book.ids.add(grant.id)
        return True
    found = None if book is None else book.expected.pop(txn_id, None)
    if found is None or book is None:
        state.error(
            entry.meta,
            f"Recorded allowance {txn_id!r} matches nothing the credits-allowance directives "
            "now grant: history was changed",
            entry,
        )
        return False
    plan, period, generated = found
    rule = plan.rules[period.rule]
    if not generated:
        source = next((p.account for p in entry.postings if p.account != plan.account), None)
        problems = []
        if grant.account != plan.account:
            problems.append(f"wallet {grant.account} (now {plan.account})")
        if rule.units is not None and (
            grant.amount != rule.units.number or grant.currency != rule.units.currency
        ):
            problems.append(f"{grant.amount} {grant.currency} (now {rule.units})")
        if source != rule.source:
            problems.append(f"source {source} (now {rule.source})")
        if grant.expires != period.end:
            problems.append(f"expires {grant.expires} (now {period.end})")
        if problems:
            state.error(
                entry.meta,
                f"Recorded allowance {txn_id!r} of user {rule.user_id!r} says "
                f"{', '.join(problems)}: history was changed",
                entry,
            )
    grant.expires = period.end
    plan.pool.append(grant)
    book.ids.add(grant.id)
    return True


def close(state: Pass, account: str) -> None:
    """A closed wallet gets no more allowances."""
    book = state.allowances
    plan = None if book is None else book.plans.get(account)
    if plan is not None:
        plan.current = plan.upcoming = None
        plan.pool = []


def rewound_expiry(book: Book | None, grant: Grant, day: datetime.date) -> datetime.date | None:
    """An allowance grant's expiry as it stood at the end of ``day`` (rollover moves it)."""
    if book is None or grant.id not in book.ids:
        return grant.expires
    plan = book.plans.get(grant.account)
    period = None if plan is None else plan.at(day)
    return grant.expires if period is None else period.end


# --- Past the horizon ----------------------------------------------------------------


def book_through(result: EngineResult, day: datetime.date) -> tuple[EngineResult, list[Any]]:
    """Go on from a finished pass with allowances: their boundaries and the expiries due by ``day``.

    Like :func:`beancount_credits.engine.expiries.book_through` (nothing the
    engine acts on is written past the horizon), with a continuation of the
    pass over copies of the wallets and grants it changes: ``result`` is
    not modified.
    """
    from beancount_credits.engine.booking import Pass

    assert result.allowances is not None
    book = result.allowances.copy()
    state = Pass(book.config, {}, keep=set())
    state.allowances = book
    state.grants = dict(result.grants)
    state.wallets = dict(result.wallets)
    state.expiries = list(result.expiries)
    state.users = result.users
    pooled = {id(grant) for plan in book.plans.values() for grant in plan.pool}
    due = [
        grant
        for grant in result.grants.values()
        if grant.remaining > 0
        and grant.expires is not None
        and grant.expires <= day
        and id(grant) not in pooled
    ]
    touched = {(grant.account, grant.currency) for grant in due}
    for plan in book.plans.values():
        if plan.next is not None and plan.next <= day:
            touched.update(key for key in result.wallets if key[0] == plan.account)
    copies: dict[int, Grant] = {}
    for key in touched:
        wallet = result.wallets[key]
        heap = []
        for sort_key, seq, grant in wallet.heap:
            copy = copies.get(id(grant))
            if copy is None:
                copy = copies[id(grant)] = dataclasses.replace(grant)
                state.grants[grant.id] = copy
            heap.append((sort_key, seq, copy))
        state.wallets[key] = dataclasses.replace(
            wallet, heap=heap, repayments=list(wallet.repayments)
        )
    for plan in book.plans.values():
        plan.pool = [copies.get(id(grant), grant) for grant in plan.pool]
    state.seq = max((seq for key in touched for _k, seq, _g in state.wallets[key].heap), default=0)
    for grant in due:
        copy = copies.get(id(grant))
        if copy is None:  # not in its wallet's heap: copied all the same
            copy = copies[id(grant)] = dataclasses.replace(grant)
            state.grants[grant.id] = copy
        heapq.heappush(state.due, (copy.expires or day, len(state.due), copy))
    flush(state, day)
    expiries.flush(state, day)
    booked = sorted(state.out, key=data.entry_sortkey)
    return (
        dataclasses.replace(
            result,
            grants=state.grants,
            wallets=state.wallets,
            expiries=state.expiries,
            allowances=book,
        ),
        booked,
    )
