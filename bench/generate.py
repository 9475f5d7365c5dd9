"""Generate a large, valid credits ledger for benchmarks (seeded, deterministic).

    .venv/bin/python bench/generate.py --transactions 100000 --users 1000 --seed 1

writes ``bench/out/<transactions>/`` (git-ignored):

- ``body.beancount``: commodities, opens and the transactions;
- ``plugins.beancount``: the expire and daily_balances plugins, then the body;
- ``plain.beancount``: the body alone.

About 20% of the transactions are grants (purchases, top-ups of empty wallets,
loyalty rewards, and promotions aimed at quiet users, a third of which expire
partly unspent) and 80% redemptions (sessions, orders) over the year 2024. Each wallet's grants are
simulated the way the grant engine books them (expiry at the start of the
expiry date; draw-downs in the engine's consumption order: lowest priority,
soonest expiry, oldest, grant id), so no redemption ever exceeds what the user
holds and ``bean-check plugins.beancount`` reports no error. The text is
written directly, without building Beancount objects.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import datetime
import heapq
import itertools
import random
import time
from pathlib import Path

from beancount_credits.engine import add_period
from beancount_credits.engine.accounts import user_account

START = datetime.date(2024, 1, 1)
DAYS = 366  # 2024 is a leap year
NEVER = datetime.date.max
PLUGINS = (
    'plugin "beancount_credits.plugins.expire"\n'
    'plugin "beancount_credits.plugins.daily_balances"\n'
    "\n"
    'include "body.beancount"\n'
)
PLAIN = 'include "body.beancount"\n'

# Grant sources: account, expire_after, priority (docs/design.md's defaults).
SOURCES: dict[str, tuple[str, tuple[int, str], int]] = {
    "purchase": ("Income:Credits:Purchase", (12, "m"), 50),
    "promotion": ("Income:Credits:Promotion", (30, "d"), 50),
    "loyalty": ("Income:Credits:Loyalty", (6, "m"), 10),
}
HEADER = """\
option "title" "beancount-credits benchmark ledger"

2024-01-01 commodity CREDIT
2024-01-01 commodity USD

2024-01-01 open Income:Credits:Purchase CREDIT
  unit_cost: 0.10 USD
  expire_after: "12m"
2024-01-01 open Income:Credits:Promotion CREDIT
  expire_after: "30d"
2024-01-01 open Income:Credits:Loyalty CREDIT
  priority: 10
  expire_after: "6m"
2024-01-01 open Expenses:Credits:Sessions CREDIT
2024-01-01 open Expenses:Credits:Orders CREDIT
2024-01-01 open Equity:Credits:Breakage CREDIT
2024-01-01 open Equity:Credits:Opening CREDIT

"""
GRANT_SHARE = 0.17  # planned grants; empty wallets turn redemptions into top-ups (~20% total)
SEGMENTS = ("consumer", "pro", "enterprise")
PURCHASES = (100, 200, 250, 500, 1000)
PURCHASE_WEIGHTS = (30, 25, 15, 20, 10)
NARRATIONS = {
    "purchase": "Purchase",
    "top-up": "Top-up",
    "promotion": "Promotion",
    "loyalty": "Loyalty reward",
    "session": "",
    "order": "",
}


@dataclasses.dataclass
class Lot:
    """One grant's unconsumed credits."""

    key: tuple[int, datetime.date, datetime.date, str]  # engine.consumption_order
    remaining: int


@dataclasses.dataclass
class User:
    """A user's wallet as the engine will see it."""

    user_id: str
    account: str
    segment: str
    org: bool
    lots: list[Lot] = dataclasses.field(default_factory=list)  # sorted by key
    due: list[tuple[datetime.date, str, Lot]] = dataclasses.field(default_factory=list)
    available: int = 0

    def expire(self, date: datetime.date) -> None:
        """Drop what expires at the start of ``date`` or before."""
        while self.due and self.due[0][0] <= date:
            lot = heapq.heappop(self.due)[2]
            self.available -= lot.remaining
            lot.remaining = 0

    def grant(self, txn_id: str, date: datetime.date, kind: str, amount: int) -> None:
        _account, period, priority = SOURCES[kind]
        expires = add_period(date, period)
        lot = Lot((priority, expires, date, txn_id), amount)
        bisect.insort(self.lots, lot, key=lambda item: item.key)
        heapq.heappush(self.due, (expires, txn_id, lot))
        self.available += amount

    def redeem(self, amount: int) -> None:
        assert 0 < amount <= self.available
        self.available -= amount
        lots = self.lots
        index = 0
        while amount > 0:
            lot = lots[index]
            take = min(amount, lot.remaining)
            lot.remaining -= take
            amount -= take
            index += 1
        while lots and lots[0].remaining == 0:
            lots.pop(0)


def make_users(rng: random.Random, count: int) -> list[User]:
    users = []
    for index in range(count):
        org = rng.random() < 0.1
        user_id = f"org-{index}" if org else f"u_{index}"
        segment = "enterprise" if org else rng.choices(SEGMENTS[:2], (80, 20))[0]
        users.append(User(user_id, user_account(user_id), segment, org))
    return users


def transaction(
    date: datetime.date, narration: str, link: str, meta: list[str], postings: tuple[str, str]
) -> str:
    """The text of one transaction (``link`` is empty or `` ^name``)."""
    head = f'{date} * "{narration}"{link}\n'
    return head + "".join(f"  {line}\n" for line in (*meta, *postings)) + "\n"


def pick_weighted(rng: random.Random, users: list[User], cum_weights: list[float]) -> User:
    return rng.choices(users, cum_weights=cum_weights)[0]


def generate(
    transactions: int,
    users: int,
    seed: int,
    start: datetime.date = START,
    days: int = DAYS,
    active_only: bool = False,
) -> tuple[str, dict[str, int]]:
    """Return the body text and counts of what it holds (``days`` days from ``start``)."""
    rng = random.Random(seed)
    people = make_users(rng, users)
    activity = [min(rng.paretovariate(1.2), 50.0) for _ in people]
    cum_weights = list(itertools.accumulate(activity))
    # Promotions target quiet users (win-back campaigns), who often let them expire.
    cum_quiet = list(itertools.accumulate(1 / weight**2 for weight in activity))
    day_weights = [
        0.6 if (start + datetime.timedelta(day)).weekday() >= 5 else 1.0 for day in range(days)
    ]
    event_days = sorted(rng.choices(range(days), day_weights, k=transactions))
    width = len(str(transactions))
    counts = dict.fromkeys(NARRATIONS, 0)

    opens = [
        f"{start} open {user.account} CREDIT\n"
        f'  user_id: "{user.user_id}"\n  segment: "{user.segment}"\n'
        for user in people
    ]
    out = [HEADER.replace("2024-01-01", start.isoformat()), *opens, "\n"]
    active: set[int] = set()
    for seq, day in enumerate(event_days, 1):
        date = start + datetime.timedelta(day)
        txn_id = f"t-{seq:0{width}d}"
        meta = [f'txn_id: "{txn_id}"']
        if rng.random() < GRANT_SHARE:
            kind = rng.choices(("purchase", "promotion", "loyalty"), (50, 30, 20))[0]
            quiet = kind == "promotion"
            user = pick_weighted(rng, people, cum_quiet if quiet else cum_weights)
        else:
            kind = "session" if rng.random() < 0.7 else "order"
            user = pick_weighted(rng, people, cum_weights)
        user.expire(date)
        active.add(id(user))
        if kind in ("session", "order") and user.available == 0:
            kind = "top-up"  # an empty wallet buys credits instead
        counts[kind] += 1
        if kind in ("session", "order"):
            wanted = rng.randint(1, 20) if kind == "session" else rng.randint(10, 150)
            amount = min(wanted, user.available)
            user.redeem(amount)
            if user.org:
                meta.append(f'member: "m{rng.randint(1, 20)}@{user.user_id}"')
            if kind == "session":
                meta.append(f'session: "s-{seq}"')
                narration, link, use = f"Session s-{seq}", "", "Expenses:Credits:Sessions"
            else:
                meta.append(f'order: "o-{seq}"')
                narration, link, use = f"Order o-{seq}", f" ^order-{seq}", "Expenses:Credits:Orders"
            postings = (f"{user.account}  -{amount} CREDIT", use)
            out.append(transaction(date, narration, link, meta, postings))
            continue
        source = "purchase" if kind == "top-up" else kind
        if source == "purchase":
            amount = rng.choices(PURCHASES, PURCHASE_WEIGHTS)[0]
        elif source == "promotion":
            amount = rng.choice((10, 20, 25, 50))
        else:
            amount = rng.randint(5, 50)
        user.grant(txn_id, date, source, amount)
        postings = (f"{user.account}  {amount} CREDIT", SOURCES[source][0])
        narration = f"{NARRATIONS[kind]} of {amount} credits"
        out.append(transaction(date, narration, "", meta, postings))
    if active_only:
        # Only the wallets with activity: a ledger of one period's activity.
        out[1 : 1 + len(opens)] = [
            text for index, text in enumerate(opens) if id(people[index]) in active
        ]
    return "".join(out), counts


def write(out_dir: Path, body: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "body.beancount").write_text(body)
    (out_dir / "plugins.beancount").write_text(PLUGINS)
    (out_dir / "plain.beancount").write_text(PLAIN)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--start", type=datetime.date.fromisoformat, default=START, help="first day (2024-01-01)"
    )
    parser.add_argument("--days", type=int, default=DAYS, help="days of activity (366: 2024)")
    parser.add_argument(
        "--active-only", action="store_true", help="open only the wallets that have activity"
    )
    parser.add_argument("--out", type=Path, help="default: bench/out/<transactions>")
    args = parser.parse_args(argv)
    out_dir = args.out or Path(__file__).parent / "out" / str(args.transactions)
    started = time.perf_counter()
    body, counts = generate(
        args.transactions, args.users, args.seed, args.start, args.days, args.active_only
    )
    write(out_dir, body)
    grants = sum(counts[kind] for kind in ("purchase", "top-up", "promotion", "loyalty"))
    mix = ", ".join(f"{kind} {count}" for kind, count in counts.items())
    print(
        f"{out_dir}: {args.transactions} transactions, {args.users} users, {args.days} days "
        f"from {args.start}, seed {args.seed} "
        f"({grants / args.transactions:.1%} grants: {mix}) "
        f"in {time.perf_counter() - started:.1f}s"
    )


if __name__ == "__main__":
    main()
