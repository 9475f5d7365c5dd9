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


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    root = tmp_path / "ledger"
    root.mkdir()
    (root / "main.beancount").write_text(LEDGER)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "Ledger")
    return root / "main.beancount"


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
