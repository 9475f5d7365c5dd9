"""A simulated month of daily runs: exactly the expected notifications and top-ups.

Each day: the platform's activity lands in the ledger, ``bean-credits topup``
runs, the payment side answers the new requests (declines the first two,
accepts the third), the answers are imported as the platform's ``topup``
events by the importer (``import_events``, through the write path), and
``bean-credits notify`` runs (twice on some days, as a retried cron job would).
"""

from __future__ import annotations

import datetime
import json
from collections import Counter
from pathlib import Path

from notifykit import (
    HookServer,
    append,
    cli,
    copy_ledger,
    hook_env,
    records,
    smtp_env,
    smtp_server,
)

from beancount_credits.importers import import_events
from beancount_credits.jobs import channels

ALICE = "Assets:Credits:Users:Alice"
ACME = "Assets:Credits:Users:Org--acme"

# Alice (threshold 100): below on the 5th, back on the 8th, below on the 12th,
# back on the 15th, below on the 20th: three crossings.
ACTIVITY = {
    5: [(ALICE, -250)],
    6: [(ALICE, -10)],
    8: [(ALICE, 200)],
    12: [(ALICE, -200)],
    15: [(ALICE, 100)],
    20: [(ALICE, -60)],
    21: [(ALICE, -10)],
    3: [(ACME, -200)],  # org-acme at 400, below its top-up threshold 500
    10: [(ACME, -100)],
}


def activity(day: datetime.date, account: str, amount: int, number: int) -> str:
    if amount > 0:
        return (
            f'{day} * "Purchase"\n  txn_id: "p-{day}-{number}"\n'
            f"  {account}   {amount} CREDIT\n  Income:Credits:Purchase\n"
        )
    return (
        f'{day} * "Session"\n  txn_id: "r-{day}-{number}"\n'
        f"  {account}   {amount} CREDIT\n  Expenses:Credits:Sessions\n"
    )


def test_a_month_of_daily_runs(tmp_path: Path) -> None:
    hook = HookServer()
    smtp, box = smtp_server()
    try:
        ledger = copy_ledger(tmp_path, webhook=hook.url)
        env = {**smtp_env(smtp.port), **hook_env()}
        outbox = ledger.parent / "outbox"
        answered: set[str] = set()
        declines = 0
        for day_number in range(1, 32):
            day = datetime.date(2024, 3, day_number)
            for number, (account, amount) in enumerate(ACTIVITY.get(day_number, [])):
                append(ledger, "transactions.beancount", activity(day, account, amount, number))
            cli("topup", str(ledger), "--date", str(day), env=env)
            # The payment side: answer each new request in the outbox.
            for path in sorted((outbox / "topup").glob("*.json")) if day_number >= 3 else []:
                request = json.loads(path.read_text())
                if request["request"] in answered:
                    continue
                answered.add(request["request"])
                event = f"ev-{request['request']}"
                outcome = {
                    "type": "topup",
                    "id": event,
                    "timestamp": f"{day}T12:00:00Z",
                    "user": request["user_id"],
                    "amount": request["amount"],
                    "request": request["request"],
                }
                if declines < 2:
                    declines += 1
                    outcome.update(status="failed", reason="card declined")
                else:
                    outcome.update(status="succeeded")
                # The importer writes the outcome, as it does for the platform's exports.
                assert import_events(ledger, [outcome]).written
            cli("notify", str(ledger), "--date", str(day), env=env)
            if day_number % 5 == 0:  # a second run the same day sends nothing
                output = cli("notify", str(ledger), "--date", str(day), env=env)
                assert "0 delivery(ies) to make" in output

        # Top-ups: declined at noon on the 3rd, retried once the 1-day backoff from the
        # decline has passed (the 5th's run; the 4th's at 00:00 is too early), declined at
        # noon, retried 2 days after that (the 8th), accepted; never again (balance 1300).
        requests = sorted(
            (json.loads(path.read_text()) for path in (outbox / "topup").glob("*.json")),
            key=lambda request: request["requested_at"],
        )
        assert [(r["requested_at"][:10], r["attempt"]) for r in requests] == [
            ("2024-03-03", 1),
            ("2024-03-05", 2),
            ("2024-03-08", 3),
        ]
        assert len({r["family"] for r in requests}) == 1
        assert all(r["idempotency_key"] == f"{r['family']}.{r['attempt']}" for r in requests)

        recorded = records(ledger)
        assert all(r["status"] == "delivered" for r in recorded)
        by_alert = Counter((r["user_id"], r["alert"], r["channel"]) for r in recorded)
        assert by_alert == {
            ("alice", "low-balance", "email"): 3,
            ("alice", "low-balance", "webhook"): 3,
            ("alice", "low-balance", "inapp"): 3,
            ("org-acme", "topup-failed", "email"): 2,
            ("org-acme", "topup-failed", "webhook"): 2,
            ("org-acme", "topup-failed", "inapp"): 2,
            ("bob", "expiring", "inapp"): 2,  # the 30-day and the 7-day warning
        }
        days = sorted({(r["date"], r["alert"], r["user_id"]) for r in recorded})
        assert days == [
            ("2024-03-01", "expiring", "bob"),
            ("2024-03-03", "topup-failed", "org-acme"),
            ("2024-03-05", "low-balance", "alice"),
            ("2024-03-05", "topup-failed", "org-acme"),
            ("2024-03-12", "low-balance", "alice"),
            ("2024-03-18", "expiring", "bob"),
            ("2024-03-20", "low-balance", "alice"),
        ]
        # What arrived: one email and one webhook per alert, no duplicates.
        assert len(box.messages) == 5 and len(hook.received) == 5
        assert len({mail["Message-ID"] for mail in box.messages}) == 5
        assert len({request.json["id"] for request in hook.received}) == 5
        assert all(request.signed for request in hook.received)
        failed_mails = [mail for mail in box.messages if "top-up" in mail["Subject"]]
        assert [mail["To"] for mail in failed_mails] == ["billing@acme.example"] * 2
        body = failed_mails[0].get_content()
        assert "failed: card declined" in body
        assert "try again automatically after 2024-03-04 12:00 UTC" in body
        assert len(channels.read_lines(outbox / "notifications.jsonl")) == 3 + 2 + 2
    finally:
        hook.stop()
        smtp.stop()
