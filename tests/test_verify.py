"""verify and the audit report on a ledger whose recorded history was edited."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from conftest import git

from beancount_credits.cli import main


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_clean_ledger_verifies(ledger: Path) -> None:
    assert run("close-day", str(ledger), "--date", "2024-03-10", "--commit").exit_code == 0
    result = run("verify", str(ledger))
    assert result.exit_code == 0, result.output
    assert "verify: all 9 recorded balances and the recorded expiries hold" in result.output


def test_edited_past_redemption_is_reported_with_user_day_and_commit(ledger: Path) -> None:
    root = ledger.parent
    assert run("close-day", str(ledger), "--date", "2024-03-10", "--commit").exit_code == 0
    recorded_in = git(root, "rev-parse", "--short=10", "HEAD").strip()
    edit(root / "transactions.beancount", "-15 CREDIT", "-16 CREDIT")
    git(root, "commit", "-qam", "Fix session s-1 amount", author="Mallory <mallory@example.com>")
    changed_in = git(root, "rev-parse", "--short=10", "HEAD").strip()
    edit(root / "transactions.beancount", "-10 CREDIT", "-11 CREDIT")  # not committed

    check = run("report", "balances", str(ledger), "--to", "2024-12-31")
    assert check.exit_code == 2  # the ledger no longer passes its own log

    result = run("verify", str(ledger))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "verify: 5 recorded record(s) no longer hold"
    first = lines.index(
        "alice 2024-02-11: recorded balance 105 CREDIT, now 104 CREDIT (log/2024/02.beancount:7)"
    )
    assert lines[first + 1].startswith(f"  recorded in {recorded_in} ")
    assert "close-day 2024-03-10" in lines[first + 1]
    assert lines[first + 2].startswith(f"  changed in {changed_in} ")
    assert "Mallory <mallory@example.com>: Fix session s-1 amount" in lines[first + 2]
    assert lines[first + 2].endswith("transactions.beancount:12 r-1 Session s-1")
    assert "alice 2024-03-06: recorded expiry 5 CREDIT, now 4 CREDIT" in result.output
    assert "  changed, not committed yet: transactions.beancount:33 r-3 Session s-3" in lines
    # Bob's history was not touched: none of his records is listed.
    assert not [line for line in lines if line.startswith("bob ")]


def test_verify_outside_git_still_lists_the_records(tmp_path: Path, ledger: Path) -> None:
    assert run("close-day", str(ledger), "--date", "2024-03-10").exit_code == 0
    edit(ledger.parent / "transactions.beancount", "-15 CREDIT", "-16 CREDIT")
    (ledger.parent / ".git").rename(tmp_path / "moved-git")
    result = run("verify", str(ledger))
    assert result.exit_code == 1
    assert "alice 2024-02-11: recorded balance 105 CREDIT, now 104 CREDIT" in result.output
    assert "git provenance unavailable" in result.output


AUDIT_EVENTS = """
2024-03-02 * "Goodwill bonus"
  txn_id: "adj-1"
  reason: "Outage on 2024-03-01"
  approved_by: "Dana"
  Assets:Credits:Users:Bob   25 CREDIT
  Equity:Credits:Adjustments

2024-03-03 * "Correction without approval"
  txn_id: "adj-2"
  reason: "Duplicate grant"
  Assets:Credits:Users:Bob   -5 CREDIT
  Equity:Credits:Adjustments

2024-03-04 * "Session s-2 cancelled"
  txn_id: "rev-1"
  reverses: "r-1"
  Assets:Credits:Users:Alice   15 CREDIT
  Expenses:Credits:Sessions
"""


def test_audit_lists_adjustments_reversals_and_changed_history(ledger: Path) -> None:
    root = ledger.parent
    events = root / "events.beancount"
    events.write_text(AUDIT_EVENTS)
    edit(
        ledger,
        'include "transactions.beancount"',
        'include "transactions.beancount"\ninclude "events.beancount"',
    )
    git(root, "add", ".")
    git(root, "commit", "-qm", "Support adjustments", author="Sam Support <sam@example.com>")
    assert run("close-day", str(ledger), "--date", "2024-03-10", "--commit").exit_code == 0
    edit(root / "transactions.beancount", "-15 CREDIT", "-16 CREDIT")
    git(root, "commit", "-qam", "Quiet fix", author="Mallory <mallory@example.com>")

    result = run("report", "audit", str(ledger), "--to", "2024-12-31")
    assert result.exit_code == 0, result.output
    rows = [line.split("  ") for line in result.output.splitlines()]
    text = result.output
    assert "adjustment" in text and "reason: Outage on 2024-03-01; approved by: Dana" in text
    assert "reason: Duplicate grant; approved by: (none)" in text
    assert "reverses r-1: Session s-2 cancelled" in text
    assert text.count("changed-history") >= 3
    assert "Sam Support" in text and "Mallory" in text
    assert rows, result.output
