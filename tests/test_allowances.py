"""Recurring allowances (engine/allowances.py) through the daily job and the as-of timeline.

The rules themselves are ledger cases (tests/cases/allowance/); here close-day
records them once, a recorded one that the directives no longer grant is an
error, and a day past the horizon counts them as close-day would write them.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data
from click.testing import CliRunner
from conftest import git

from beancount_credits.cli import main
from beancount_credits.ledger import load

LEDGER = """\
plugin "beancount_credits.plugins.expire"
plugin "beancount_credits.plugins.daily_balances"

2024-01-01 commodity CREDIT
2024-01-01 open Income:Credits:Plan
2024-01-01 open Expenses:Credits:Sessions
2024-01-01 open Equity:Credits:Breakage
2024-01-01 open Assets:Credits:Users:Alice
  user_id: "alice"

2024-01-01 custom "credits-allowance" "alice" 100 CREDIT
  every: "1m"
  source: "Income:Credits:Plan"
  rollover_max: 30

2024-01-20 * "Sessions"
  txn_id: "r-1"
  Assets:Credits:Users:Alice   -50 CREDIT
  Expenses:Credits:Sessions

2024-02-15 * "Sessions"
  txn_id: "r-2"
  Assets:Credits:Users:Alice   -40 CREDIT
  Expenses:Credits:Sessions
"""


def committed(root: Path) -> Path:
    """LEDGER as ``root/main.beancount`` in a fresh git repository."""
    root.mkdir()
    (root / "main.beancount").write_text(LEDGER)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "Ledger")
    return root / "main.beancount"


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return committed(tmp_path / "ledger")


def close_day(ledger: Path, day: str) -> str:
    result = CliRunner().invoke(main, ["close-day", str(ledger), "--date", day])
    assert result.exit_code == 0, result.output
    return result.output


def allowance_files(ledger: Path) -> dict[str, str]:
    entries, errors, _options = loader.load_file(str(ledger))
    assert errors == []
    return {
        entry.meta["txn_id"]: Path(entry.meta["filename"]).name
        for entry in entries
        if isinstance(entry, data.Transaction)
        and str(entry.meta.get("txn_id", "")).startswith("allowance:")
    }


def test_close_day_records_allowances_once(ledger: Path) -> None:
    first = close_day(ledger, "2024-03-10")
    assert "3 allowances (2024-01-01 .. 2024-03-01)" in first
    assert "2 expiries (2024-02-01 .. 2024-03-01)" in first
    log = (ledger.parent / "log" / "2024" / "02.beancount").read_text()
    assert 'txn_id: "allowance:alice:2024-02-01"' in log
    assert 'txn_id: "allowance:alice:2024-01-01:expiry:2024-02-01"' in log
    assert "generated" not in log and "consumed" not in log
    assert allowance_files(ledger) == {
        "allowance:alice:2024-01-01": "01.beancount",
        "allowance:alice:2024-01-01:expiry:2024-02-01": "02.beancount",
        "allowance:alice:2024-02-01": "02.beancount",
        "allowance:alice:2024-02-01:expiry:2024-03-01": "03.beancount",
        "allowance:alice:2024-03-01": "03.beancount",
    }
    second = close_day(ledger, "2024-03-10")
    assert "nothing to write" in second
    # The figures, from the recorded text.
    balances = load(ledger).as_of(datetime.date(2024, 3, 10)).balances()
    assert balances["Assets:Credits:Users:Alice", "CREDIT"] == Decimal(130)


def test_a_recorded_allowance_the_directive_no_longer_grants_is_an_error(ledger: Path) -> None:
    close_day(ledger, "2024-03-10")
    ledger.write_text(ledger.read_text().replace("100 CREDIT\n  every", "90 CREDIT\n  every"))
    _entries, errors, _options = loader.load_file(str(ledger))
    messages = [error.message for error in errors]
    assert (
        "Recorded allowance 'allowance:alice:2024-02-01' of user 'alice' says 100 CREDIT "
        "(now 90 CREDIT): history was changed" in messages
    )


def test_a_day_past_the_horizon_counts_the_allowances_close_day_would_write(
    ledger: Path,
) -> None:
    loaded = load(ledger)
    view = loaded.as_of(datetime.date(2024, 4, 5))
    assert view.balances()["Assets:Credits:Users:Alice", "CREDIT"] == Decimal(130)
    assert view.notice() == (
        "ledger recorded through 2024-02-15; 3 expiries since then (160 CREDIT) and 2 "
        "allowances (200 CREDIT) are counted here but not yet written: run bean-credits close-day"
    )


def test_a_period_close_carries_allowances_and_grants_no_past_period_again(
    ledger: Path,
) -> None:
    # The entries in a file of their own (close-period moves them), the main file includes it.
    head, _, body = LEDGER.partition("\n\n")
    (ledger.parent / "ledger.beancount").write_text(body)
    ledger.write_text(head + '\n\ninclude "ledger.beancount"\n')
    git(ledger.parent, "add", ".")
    git(ledger.parent, "commit", "-qm", "Split")
    close_day(ledger, "2024-03-10")
    before = load(ledger).as_of(datetime.date(2024, 3, 10)).balances()
    result = CliRunner().invoke(main, ["close-period", str(ledger), "--through", "2024-02-29"])
    assert result.exit_code == 0, result.output
    after = load(ledger)
    assert after.errors == []
    assert after.as_of(datetime.date(2024, 3, 10)).balances() == before
    # The directive stays in force: the next period's allowance comes as before.
    april = after.as_of(datetime.date(2024, 4, 2)).balances()
    assert april["Assets:Credits:Users:Alice", "CREDIT"] == Decimal(130)


def test_a_late_event_in_a_sealed_allowance_period_is_amended(ledger: Path) -> None:
    """A back-dated redemption inside a sealed period: the rollover's expiry is relogged."""
    from beancount_credits.importers import import_events

    ledger.write_text(
        ledger.read_text().replace(
            'plugin "beancount_credits.plugins.daily_balances"\n',
            'plugin "beancount_credits.plugins.daily_balances"\n'
            'plugin "beancount_credits.plugins.seal"\n',
        )
    )
    git(ledger.parent, "commit", "-qam", "Seal")
    result = CliRunner().invoke(
        main, ["close-day", str(ledger), "--date", "2024-03-10", "--commit"]
    )
    assert result.exit_code == 0, result.output
    late = {
        "type": "redeem",
        "id": "late-1",
        "timestamp": "2024-02-10T10:00:00Z",
        "user": "alice",
        "amount": "10",
        "session": "s-late",
    }
    # The same history never sealed: the event in the text from the start.
    fresh = committed(ledger.parent.parent / "fresh")
    assert import_events(fresh, [late], commit=True).new == 1

    assert import_events(ledger, [late], commit=True).new == 1
    amended = load(ledger, cache=False)
    assert amended.errors == [], [error.message for error in amended.errors[:5]]
    records = [
        entry
        for entry in amended.entries
        if isinstance(entry, data.Custom) and entry.type == "credits-amend"
    ]
    assert len(records) == 1 and "late-1: added (2024-02-10)" in records[0].meta["changed"]
    # February's allowance had 80 left on 2024-03-01 (not 60): 30 carry, 50 expire.
    (expiry,) = [
        entry
        for entry in amended.entries
        if isinstance(entry, data.Transaction)
        and entry.meta.get("txn_id") == "allowance:alice:2024-02-01:expiry:2024-03-01"
    ]
    assert Path(expiry.meta["filename"]).name == "03.beancount"  # written, relogged
    assert [posting.units.number for posting in expiry.postings] == [Decimal(-50), Decimal(50)]
    never_sealed = load(fresh, cache=False)
    for day in (datetime.date(2024, 2, 9) + datetime.timedelta(days=n) for n in range(30)):
        assert amended.as_of(day).balances() == never_sealed.as_of(day).balances(), day
    assert amended.as_of(datetime.date(2024, 2, 16)).balances()[
        "Assets:Credits:Users:Alice", "CREDIT"
    ] == Decimal(80)
    result = CliRunner().invoke(main, ["verify", str(ledger)])
    assert result.exit_code == 0, result.output
