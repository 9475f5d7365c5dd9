"""bean-credits topup: requests, retries and the guards against runaway charges."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from beancount.core import data
from beancount.parser import parser
from hypothesis import given, settings
from hypothesis import strategies as st
from notifykit import FIXTURE, append, cli, copy_ledger, topup_failed, topup_succeeded

from beancount_credits.engine import settings as settings_lib
from beancount_credits.jobs import records, topup
from beancount_credits.ledger import Ledger, load, write

ACME = "Assets:Credits:Users:Org--acme"
LOW = """2024-03-03 * "Session"
  txn_id: "r-acme-1"
  Assets:Credits:Users:Org--acme   -200 CREDIT
  Expenses:Credits:Sessions
"""


def requests_in(ledger: Path) -> list[records.TopUpRequest]:
    loaded = load(ledger, cache=False)
    accounts = {user.account: user.user_id for user in loaded.users.values()}
    return records.topup_records(loaded.entries, accounts)[0]


def test_request_record_and_outbox_file(tmp_path: Path) -> None:
    ledger = copy_ledger(tmp_path)
    append(ledger, "transactions.beancount", LOW)
    dry = cli("topup", str(ledger), "--date", "2024-03-03T09:30", "--dry-run")
    assert "org-acme: would request 1000 CREDIT" in dry
    assert "topup 2024-03-03T09:30+00:00: 1 request(s) would be made (dry run" in dry
    assert "wrote" not in dry and not requests_in(ledger)
    output = cli("topup", str(ledger), "--date", "2024-03-03T09:30")
    assert "org-acme: requested 1000 CREDIT" in output
    (request,) = requests_in(ledger)
    # Every file it wrote: the request record in the ledger, the main file's
    # include, and the outbox file for the payment side.
    assert "  wrote topup/2024/03.beancount" in output
    assert "  wrote main.beancount" in output
    assert f"  wrote {ledger.parent / 'outbox' / 'topup' / request.request}.json" in output
    assert request.attempt == 1 and request.amount.to_string() == "1000 CREDIT"
    assert request.meta["idempotency_key"] == request.request == f"{request.family}.1"
    assert request.meta["source"] == "card-on-file"
    assert request.requested_at.isoformat() == "2024-03-03T09:30:00+00:00"
    document = json.loads(
        (ledger.parent / "outbox" / "topup" / f"{request.request}.json").read_text()
    )
    assert document["idempotency_key"] == request.request
    assert (document["user_id"], document["amount"], document["commodity"]) == (
        "org-acme", "1000", "CREDIT",
    )  # fmt: skip
    # Open: no second request, however often the job runs.
    again = cli("topup", str(ledger), "--date", "2024-03-05")
    assert "is still open" in again
    assert len(requests_in(ledger)) == 1


def test_an_outbox_file_lost_in_a_crash_is_written_again(tmp_path: Path) -> None:
    ledger = copy_ledger(tmp_path)
    append(ledger, "transactions.beancount", LOW)
    cli("topup", str(ledger), "--date", "2024-03-03")
    (path,) = (ledger.parent / "outbox" / "topup").glob("*.json")
    text = path.read_text()
    path.unlink()  # the crash came after the ledger write, before the file
    cli("topup", str(ledger), "--date", "2024-03-03T08:00")
    assert path.read_text() == text
    assert len(requests_in(ledger)) == 1


def test_retry_reissues_the_failed_request_with_the_next_attempt(tmp_path: Path) -> None:
    ledger = copy_ledger(tmp_path)
    append(ledger, "transactions.beancount", LOW)
    cli("topup", str(ledger), "--date", "2024-03-03")
    (first,) = requests_in(ledger)
    refused = cli("topup", str(ledger), "--date", "2024-03-03T01:00", "--retry", "org-acme", code=2)
    assert f"request {first.request} of 2024-03-03 is still open" in refused
    append(
        ledger,
        "outcomes.beancount",
        topup_failed(
            "2024-03-03", "org-acme", first.request, "insufficient funds", "1000 CREDIT", "e1"
        ),
    )
    # Within 24 hours of the first request: capped, automatic or manual.
    capped = cli("topup", str(ledger), "--date", "2024-03-03T12:00", "--retry", "org-acme", code=2)
    assert "1 request(s) in the last 24 hours (max_per_day 1)" in capped
    # The next day, after the 1-day backoff: the automatic retry, attempt 2.
    assert "retry 2" in cli("topup", str(ledger), "--date", "2024-03-04T06:00")
    second = requests_in(ledger)[-1]
    assert (second.family, second.attempt, second.request) == (first.family, 2, f"{first.family}.2")
    append(
        ledger,
        "outcomes.beancount",
        topup_failed(
            "2024-03-04", "org-acme", second.request, "insufficient funds", "1000 CREDIT", "e2"
        ),
    )
    # Automatic: backing off 2 days now. Manual --retry skips the backoff (not the cap).
    assert "backing off after 2 failure(s) until 2024-03-06T06:00:00+00:00" in cli(
        "topup", str(ledger), "--date", "2024-03-05T07:00"
    )
    cli("topup", str(ledger), "--date", "2024-03-05T07:00", "--retry", "org-acme")
    third = requests_in(ledger)[-1]
    assert (third.family, third.attempt) == (first.family, 3)
    unknown = cli("topup", str(ledger), "--retry", "nobody", code=2)
    assert "unknown user id 'nobody'" in unknown and "Traceback" not in unknown


def test_disabled_after_k_failures_until_reenabled_in_the_ledger(tmp_path: Path) -> None:
    ledger = copy_ledger(tmp_path)
    append(ledger, "transactions.beancount", LOW)
    day = datetime.date(2024, 3, 3)
    for attempt in range(1, 4):  # max_failures: 3
        retry = ["--retry", "org-acme"] if attempt > 1 else []  # one a day: the cap holds
        cli("topup", str(ledger), "--date", str(day), *retry)
        request = requests_in(ledger)[-1]
        assert request.attempt == attempt
        append(
            ledger,
            "outcomes.beancount",
            topup_failed(
                str(day), "org-acme", request.request, "declined", "1000 CREDIT", f"e{attempt}"
            ),
        )
        day += datetime.timedelta(days=1)
    for run in ("2024-03-10", "2024-03-20"):
        output = cli("topup", str(ledger), "--date", run)
        assert "disabled after 3 consecutive failures (max_failures 3)" in output
        assert 'custom "credits-topup-enable" "org-acme"' in output
    refused = cli("topup", str(ledger), "--date", "2024-03-20", "--retry", "org-acme", code=2)
    assert "disabled after 3 consecutive failures" in refused
    assert len(requests_in(ledger)) == 3
    append(ledger, "settings.beancount", '2024-03-21 custom "credits-topup-enable" "org-acme"\n')
    assert "requested 1000 CREDIT" in cli("topup", str(ledger), "--date", "2024-03-21")
    latest = requests_in(ledger)[-1]
    assert (latest.attempt, latest.date) == (1, datetime.date(2024, 3, 21))  # a fresh start
    append(
        ledger,
        "outcomes.beancount",
        topup_succeeded("2024-03-21", ACME, latest.request, "1000 CREDIT", "e-ok"),
    )
    assert "is not below 500 CREDIT" in cli("topup", str(ledger), "--date", "2024-03-22")


def test_a_rule_switched_off_requests_nothing(tmp_path: Path) -> None:
    ledger = copy_ledger(tmp_path)
    append(ledger, "transactions.beancount", LOW)
    append(
        ledger, "settings.beancount", '2024-03-02 custom "credits-topup-rule" "org-acme" "off"\n'
    )
    assert "top-up rule switched off on 2024-03-02" in cli(
        "topup", str(ledger), "--date", "2024-03-03"
    )
    assert requests_in(ledger) == []


# --- The runaway guard, whatever the run schedule ------------------------------------

BASE = load(FIXTURE / "main.beancount", cache=False)
START = datetime.datetime(2024, 3, 3, tzinfo=datetime.UTC)


def parse(text: str) -> list[data.Directive]:
    entries, errors, _options = parser.parse_string(text)
    assert not errors, errors
    return entries


def failure(now: datetime.datetime, request: records.TopUpRequest, reason: str) -> str:
    event = f"e-{request.request}"
    return topup_failed(str(now.date()), "org-acme", request.request, reason, "10 CREDIT", event)


@settings(max_examples=200, deadline=None)
@given(
    runs=st.lists(st.integers(min_value=0, max_value=4 * 24 * 60), min_size=1, max_size=40),
    answers=st.lists(st.sampled_from(["fail", "succeed", "never", "next-run"]), min_size=1),
    max_per_day=st.integers(1, 3),
    max_failures=st.integers(1, 4),
    backoff_hours=st.integers(1, 12),
)
def test_no_more_top_ups_than_the_guards_allow(
    runs: list[int], answers: list[str], max_per_day: int, max_failures: int, backoff_hours: int
) -> None:
    rule = (
        f'2024-03-01 custom "credits-topup-rule" "org-acme"\n  threshold: 100000 CREDIT\n'
        f'  amount: 10 CREDIT\n  source: "card"\n  max_per_day: {max_per_day}\n'
        f'  max_failures: {max_failures}\n  backoff: "{backoff_hours}h"\n'
    )
    entries = [e for e in BASE.entries if not isinstance(e, data.Custom)] + parse(rule)
    conf = settings_lib.parse(entries, BASE.users)
    made: list[records.TopUpRequest] = []
    answered: dict[str, tuple[datetime.datetime, bool]] = {}  # request -> (when, succeeded)
    waiting: list[records.TopUpRequest] = []
    for minute in sorted(set(runs)):
        now = START + datetime.timedelta(minutes=minute)
        for request in waiting:  # answers that arrive at the next run
            entries += parse(failure(now, request, "late"))
            answered[request.request] = (now, False)
        waiting = []
        entries.sort(key=data.entry_sortkey)
        ledger = Ledger(BASE.path, entries, [], BASE.options, BASE.config, BASE.users)
        for decision in topup.plan(ledger, conf, now):
            request = decision.request
            if request is None:
                continue
            # The guards, checked against what happened before this request.
            assert all(item.request in answered for item in made), "two open requests"
            window = [item for item in made if item.requested_at > now - datetime.timedelta(days=1)]
            assert len(window) < max_per_day, "more than max_per_day in 24 hours"
            streak = 0
            for item in reversed(made):
                if answered[item.request][1]:
                    break
                streak += 1
            assert streak < max_failures, "requested while disabled"
            if streak:
                answer_day = answered[made[-1].request][0].date()
                failed_at = max(
                    made[-1].requested_at,
                    datetime.datetime.combine(answer_day, datetime.time(), datetime.UTC),
                )
                wait = datetime.timedelta(hours=backoff_hours) * 2 ** (streak - 1)
                assert now >= failed_at + wait, "backoff not respected"
            made.append(request)
            entries += parse(write.render(topup.request_record(request)))
            answer = answers[(len(made) - 1) % len(answers)]
            if answer == "fail":
                entries += parse(failure(now, request, "declined"))
                answered[request.request] = (now, False)
            elif answer == "succeed":
                event = f"e-{request.request}"
                entries += parse(
                    topup_succeeded(str(now.date()), ACME, request.request, "10 CREDIT", event)
                )
                answered[request.request] = (now, True)
            elif answer == "next-run":
                waiting.append(request)
    # Over 4 days at most max_per_day per 24 hours, whatever the schedule.
    assert len(made) <= max_per_day * 5
