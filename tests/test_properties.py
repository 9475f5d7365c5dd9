"""Property tests: invariants of the grant engine over random credit histories.

A history is a few users over a couple of months: grants (with or without
expiry, of two priorities), draw-downs (sometimes beyond what is available),
and reversals of earlier redemptions or grants. It is written as ledger text and
loaded by Beancount's loader with both plugins, as a user's ledger would be.
"""

from __future__ import annotations

import datetime
import random
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import time_machine
from beancount import loader
from beancount.core import data
from beancount.parser import printer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beancount_credits import engine
from beancount_credits.engine.accounts import user_account
from beancount_credits.ledger import load

START = datetime.date(2024, 1, 1)
USERS = ("alice", "bob", "org-acme")

grant_op = st.tuples(
    st.just("grant"),
    st.sampled_from(USERS),
    st.integers(1, 100),
    st.one_of(st.none(), st.integers(1, 40)),  # expires in N days
    st.sampled_from((10, 50)),
)
redeem_op = st.tuples(st.just("redeem"), st.sampled_from(USERS), st.integers(1, 120))
reverse_op = st.tuples(st.just("reverse"), st.integers(0, 10_000), st.integers(1, 120))
day = st.tuples(st.integers(1, 5), st.lists(st.one_of(grant_op, redeem_op, reverse_op), max_size=4))
histories = st.tuples(
    st.lists(day, min_size=1, max_size=25),
    st.sampled_from((0, 0, 30)),  # credit limit of org-acme
)


def ledger_days(history: tuple[list, int]) -> tuple[str, list[str]]:
    """The header and one text block per day of a history."""
    days, limit = history
    header = [
        'plugin "beancount_credits.plugins.expire"',
        'plugin "beancount_credits.plugins.daily_balances"',
        "",
        "2023-12-01 commodity CREDIT",
        "2023-12-01 open Income:Credits:Purchase",
        "2023-12-01 open Income:Credits:Loyalty",
        "2023-12-01 open Expenses:Credits:Sessions",
        "2023-12-01 open Equity:Credits:Breakage",
    ]
    for user in USERS:
        header.append(f"2023-12-01 open {user_account(user)}")
        header.append(f'  user_id: "{user}"')
        if user == "org-acme" and limit:
            header.append(f"  credit_limit: {limit}")
    blocks: list[str] = []
    done: list[tuple[str, str, str]] = []  # (txn_id, kind, user) of earlier grants/redemptions
    date = START
    counter = 0
    for gap, ops in days:
        date += datetime.timedelta(days=gap)
        lines: list[str] = []
        for op in ops:
            counter += 1
            txn_id = f"t-{counter}"
            if op[0] == "grant":
                _, user, amount, expires_in, priority = op
                source = "Loyalty" if priority == 10 else "Purchase"
                lines += [f'{date} * "Grant"', f'  txn_id: "{txn_id}"', f"  priority: {priority}"]
                if expires_in is not None:
                    lines.append(f"  expires: {date + datetime.timedelta(days=expires_in)}")
                lines += [
                    f"  {user_account(user)}  {amount} CREDIT",
                    f"  Income:Credits:{source}",
                    "",
                ]
                done.append((txn_id, "grant", user))
            elif op[0] == "redeem":
                _, user, amount = op
                lines += [
                    f'{date} * "Redemption"',
                    f'  txn_id: "{txn_id}"',
                    f"  {user_account(user)}  -{amount} CREDIT",
                    "  Expenses:Credits:Sessions",
                    "",
                ]
                done.append((txn_id, "redeem", user))
            elif done:
                _, pick, amount = op
                target, kind, user = done[pick % len(done)]
                sign, counter_account = (
                    ("", "Expenses:Credits:Sessions")
                    if kind == "redeem"
                    else ("-", "Income:Credits:Purchase")
                )
                lines += [
                    f'{date} * "Reversal"',
                    f'  txn_id: "{txn_id}"',
                    f'  reverses: "{target}"',
                    f"  {user_account(user)}  {sign}{amount} CREDIT",
                    f"  {counter_account}",
                    "",
                ]
        blocks.append("\n".join(lines))
    return "\n".join(header) + "\n\n", blocks


def write(tmp_path: Path, header: str, blocks: list[str], name: str = "ledger") -> Path:
    path = tmp_path / f"{name}.beancount"
    path.write_text(header + "\n".join(blocks) + "\n")
    return path


def limit_of(account: str, history: tuple[list, int]) -> Decimal:
    return Decimal(history[1]) if account == user_account("org-acme") else Decimal(0)


SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(histories)
def test_invariants(tmp_path: Path, history: tuple[list, int]) -> None:
    header, blocks = ledger_days(history)
    path = write(tmp_path, header, blocks)
    ledger = load(path)
    entries, errors = ledger.entries, ledger.errors

    # Every transaction balances, generated ones included.
    for entry in entries:
        if isinstance(entry, data.Transaction):
            totals: dict[str, Decimal] = defaultdict(Decimal)
            for posting in entry.postings:
                totals[posting.units.currency] += posting.units.number
            assert all(total == 0 for total in totals.values()), printer.format_entry(entry)

    # The generated end-of-day balance log agrees with Beancount's own arithmetic.
    assert not [error for error in errors if "Balance failed" in error.message]

    # Per grant: granted = consumed + expired + remaining, none negative.
    for grant in ledger.grants.grants.values():
        assert grant.amount == grant.consumed + grant.expired + grant.remaining, grant
        assert min(grant.consumed, grant.expired, grant.remaining) >= 0, grant

    # A balance goes below minus its credit limit exactly where an error says so.
    overdrawn_lines = {error.source["lineno"] for error in errors if "exceeds the" in error.message}
    balances: dict[str, Decimal] = defaultdict(Decimal)
    # A wallet's balance before the last written transaction touching it: an
    # expiry never takes a wallet lower than the floor that transaction left.
    floor: dict[str, Decimal] = defaultdict(Decimal)
    dips = set()
    for entry in entries:
        if not isinstance(entry, data.Transaction):
            continue
        generated = engine.is_generated(entry)
        for posting in entry.postings:
            account = posting.account
            if not account.startswith("Assets:Credits:Users:"):
                continue
            if not generated:
                floor[account] = balances[account]
            balances[account] += posting.units.number
            limit = limit_of(account, history)
            if generated:
                assert balances[account] >= min(-limit, floor[account]), (
                    "a generated expiry overdrew a wallet",
                    printer.format_entry(entry),
                )
            elif posting.units.number < 0 and balances[account] < -limit:
                dips.add(entry.meta["lineno"])
    assert dips == overdrawn_lines

    # Running the engine over its own output adds nothing.
    again = engine.run(entries)
    assert len(again.entries) == len(entries)


def normalised(path: Path) -> tuple[str, list[str]]:
    entries, errors, _ = loader.load_file(str(path))
    text = "".join(printer.format_entry(entry) for entry in entries)
    return text, sorted(error.message for error in errors)


@SETTINGS
@given(histories, st.randoms(use_true_random=False))
def test_output_does_not_depend_on_day_order_in_the_file(
    tmp_path: Path, history: tuple[list, int], rnd: random.Random
) -> None:
    header, blocks = ledger_days(history)
    shuffled = list(blocks)
    rnd.shuffle(shuffled)
    assert normalised(write(tmp_path, header, blocks, "a")) == normalised(
        write(tmp_path, header, shuffled, "b")
    )


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(histories, st.dates(datetime.date(2000, 1, 1), datetime.date(2090, 12, 31)))
def test_output_does_not_depend_on_the_day_it_runs(
    tmp_path: Path, history: tuple[list, int], today: datetime.date
) -> None:
    header, blocks = ledger_days(history)
    path = write(tmp_path, header, blocks)
    baseline = normalised(path)
    with time_machine.travel(datetime.datetime.combine(today, datetime.time(12)), tick=False):
        assert datetime.date.today() == today
        assert normalised(path) == baseline
