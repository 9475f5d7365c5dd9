"""End to end: a month of platform events for the demo users, imported, closed, reported.

A copy of the demo ledger (logged through 2026-11-20) takes two batches of
events for 2026-11-21 .. 2026-12-20 (a CSV export, then JSON Lines on standard
input), ``close-day`` logs the month, and each user's ``statement`` agrees
with the events line by line and with the recorded end-of-day balances.
"""

from __future__ import annotations

import csv
import datetime
import json
import random
import shutil
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import time_machine
from beancount import loader
from beancount.core import data
from click.testing import CliRunner

from beancount_credits.cli import main
from beancount_credits.ledger import load
from beancount_credits.reports import REPORTS, Filters

DEMO = Path(__file__).resolve().parent.parent / "ledgers" / "demo"
FIRST = datetime.date(2026, 11, 21)
LAST = datetime.date(2026, 12, 20)
COLUMNS = ["type", "id", "timestamp", "user", "amount", "session", "order", "status",
           "price", "reason", "approver", "request", "member"]  # fmt: skip


def stamp(day: datetime.date, hour: int) -> str:
    return f"{day.isoformat()}T{hour:02d}:{random.randint(0, 59):02d}:00Z"


def month_of_events(users: list[str], seed: int = 7) -> list[dict]:
    """Purchases, redemptions (some pending: settled, cancelled or left pending),
    adjustments and failed top-ups, in time order."""
    random.seed(seed)
    events: list[dict] = []
    for number, user in enumerate(users):
        events.append({"type": "purchase", "id": f"e2e-p-{number}", "user": user,
                       "timestamp": stamp(FIRST, 8), "amount": 400, "price": "40.00 USD",
                       "order": f"o-e2e-{number}"})  # fmt: skip
        for day_offset in sorted(random.sample(range(1, 29), 8)):
            day = FIRST + datetime.timedelta(days=day_offset)
            ident = f"e2e-r-{number}-{day_offset}"
            event = {"type": "redeem", "id": ident, "user": user, "timestamp": stamp(day, 10),
                     "amount": random.randint(5, 25), "session": f"s-{ident}"}  # fmt: skip
            kind = day_offset % 4
            if kind == 0:  # pending, settled the next day
                events.append({**event, "status": "pending"})
                later = stamp(day + datetime.timedelta(days=1), 9)
                events.append({**event, "status": "settled", "timestamp": later})
            elif kind == 1 and day < LAST:  # pending, then cancelled
                events.append({**event, "status": "pending"})
                later = stamp(day + datetime.timedelta(days=1), 9)
                events.append({**event, "status": "cancelled", "timestamp": later})
            else:
                events.append(event)
        events.append({"type": "redeem", "id": f"e2e-open-{number}", "user": user,
                       "timestamp": stamp(LAST, 20), "amount": 3, "session": "s-late",
                       "status": "pending"})  # fmt: skip
        events.append({"type": "adjust", "id": f"e2e-a-{number}", "user": user,
                       "timestamp": stamp(FIRST + datetime.timedelta(days=3), 12),
                       "amount": 10, "reason": "Apology for a cancelled class",
                       "approver": "support-lead"})  # fmt: skip
        events.append({"type": "topup", "id": f"e2e-t-{number}", "user": user,
                       "timestamp": stamp(FIRST + datetime.timedelta(days=5), 3),
                       "amount": 100, "status": "failed", "request": f"req-{number}",
                       "reason": "card expired"})  # fmt: skip
    events.sort(key=lambda event: event["timestamp"])
    return events


def test_a_month_of_events_then_close_day_then_statements(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    shutil.copytree(DEMO, root, ignore=shutil.ignore_patterns(".*"))
    ledger = root / "main.beancount"
    before = load(ledger, cache=False)
    users = sorted(
        user.user_id
        for user in before.users.values()
        if user.close_date is None and user.open.meta.get("segment") != "enterprise"
    )[:6]
    assert len(users) == 6
    opening = {}
    for user in users:
        rows = list(
            REPORTS["statement"](before, Filters(user=user, date_to=FIRST - datetime.timedelta(1)))
        )
        opening[user] = rows[-1][-1] if rows else Decimal(0)
    events = month_of_events(users)
    half = len(events) // 2
    export = tmp_path / "events-1.csv"
    with export.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(events[:half])
    runner = CliRunner()
    with time_machine.travel(datetime.datetime(2026, 12, 21, 6, 0), tick=False):
        result = runner.invoke(main, ["import", str(ledger), str(export)])
        assert result.exit_code == 0, result.output
        stdin = "".join(json.dumps(event) + "\n" for event in events[half:])
        result = runner.invoke(main, ["import", str(ledger), "-"], input=stdin)
        assert result.exit_code == 0, result.output
        result = runner.invoke(main, ["close-day", str(ledger)])  # closes 2026-12-20
        assert result.exit_code == 0, result.output
        assert "close-day 2026-12-20" in result.output

    entries, errors, _options = loader.load_file(str(ledger))
    assert [error.message for error in errors] == []
    after = load(ledger, cache=False)
    recorded = {
        (entry.account, entry.date): entry.amount.number
        for entry in entries
        if isinstance(entry, data.Balance) and "/log/" in entry.meta["filename"]
    }
    for user in users:
        mine = [event for event in events if event["user"] == user]
        expect_earned: dict[str, Decimal] = {}
        expect_redeemed: dict[str, Decimal] = {}
        expect_pending: dict[str, Decimal] = {}
        status: dict[str, str] = {}
        for event in mine:
            amount = Decimal(event["amount"])
            if event["type"] in ("purchase", "adjust"):
                expect_earned[event["id"]] = amount
            elif event["type"] == "redeem":
                status[event["id"]] = event.get("status", "settled")
        for event in mine:
            if event["type"] != "redeem":
                continue
            amount = Decimal(event["amount"])
            final = status[event["id"]]
            if final == "pending":
                expect_pending[event["id"]] = amount
            else:
                expect_redeemed[event["id"]] = amount
                if final == "cancelled":
                    expect_redeemed[event["id"] + ":cancelled"] = -amount
        assert expect_pending and len(expect_redeemed) >= 8
        table = REPORTS["statement"](after, Filters(user=user, date_from=FIRST, date_to=LAST))
        names = [column.name for column in table.columns]
        rows = [dict(zip(names, row, strict=True)) for row in table.rows]
        assert rows[0]["Description"] == "Opening balance"
        assert rows[0]["Balance"] == opening[user]
        ours = {row["Transaction ID"]: row for row in rows if row["Transaction ID"]}
        for txn_id, amount in expect_earned.items():
            assert ours[txn_id]["Earned"] == amount, txn_id
        for txn_id, amount in expect_redeemed.items():
            assert ours[txn_id]["Redeemed"] == amount, txn_id
        for txn_id, amount in expect_pending.items():
            assert ours[txn_id]["Pending"] == amount and ours[txn_id]["Redeemed"] is None
        expired = sum((row["Expired"] or 0 for row in rows), Decimal(0))
        net = (
            sum(expect_earned.values())
            - sum(expect_redeemed.values())
            - sum(expect_pending.values())
        )
        assert rows[-1]["Balance"] == opening[user] + net - expired
        # The running balance at each day's end is what close-day recorded.
        account = after.user(user).account
        by_day: dict[datetime.date, Decimal] = defaultdict(Decimal)
        for row in rows[1:]:
            by_day[row["Date"]] = row["Balance"]
        for day, balance in by_day.items():
            assert recorded[(account, day + datetime.timedelta(days=1))] == balance, (user, day)
    failed = [
        entry
        for entry in entries
        if isinstance(entry, data.Custom)
        and entry.type == "credits-topup"
        and "/imports/" in entry.meta["filename"]  # the demo holds two samples of its own
    ]
    assert len(failed) == len(users)
    statuses = [event.get("status") for event in events]
    assert statuses.count("cancelled") > 0 and statuses.count("settled") > 0
