"""The write path's incremental check gives the same answer as a staging copy's full load."""

from __future__ import annotations

import datetime
import gc
import os
from pathlib import Path

import pytest
from beancount import loader
from beancount.parser import printer
from click.testing import CliRunner
from conftest import DEMO

from beancount_credits.cli import main
from beancount_credits.jobs import close_day
from beancount_credits.ledger import incremental, load, write

BAD_BALANCE = "\n2024-03-02 balance Assets:Credits:Users:Alice  999 CREDIT\n"
GOOD_OPEN = "\n2024-01-01 open Expenses:Credits:Other\n"


def closed(ledger_path: Path, through: str) -> None:
    """Log the fixture through a day, so it has log files to change."""
    result = CliRunner().invoke(main, ["close-day", str(ledger_path), "--date", through])
    assert result.exit_code == 0, result.output


def both_checks(ledger_path: Path, changes: list[write.FileChange]) -> tuple[list, list]:
    loaded = load(ledger_path, for_write=True)
    assert loaded.prepared is not None
    files = write.ledger_files(ledger_path, loaded.options)
    quick, how = write.check_changes(ledger_path, files, changes, loaded.prepared)
    assert how == "incremental"
    return sorted(quick), sorted(write.staged_check(ledger_path, files, changes))


def test_load_for_write_is_beancounts_load() -> None:
    entries, errors, options = loader._uncached_load_file(str(DEMO.resolve()), None, None, None)
    mine, my_errors, my_options, prepared = incremental.load(DEMO)
    assert [printer.format_entry(entry) for entry in mine] == [
        printer.format_entry(entry) for entry in entries
    ]
    assert len(my_errors) == len(errors) == 0
    assert my_options["include"] == options["include"]
    assert my_options["input_hash"] == options["input_hash"]
    assert str(DEMO.resolve()) in prepared.stats


def test_close_day_writes_checked_incrementally_with_the_same_entries(ledger: Path) -> None:
    closed(ledger, "2024-02-15")
    loaded = load(ledger, for_write=True)
    planned = close_day.plan(loaded, datetime.date(2024, 3, 10))
    changes = close_day.changes(loaded, planned)
    assert changes and all(change.path != ledger for change in changes)  # include exists
    quick, full = both_checks(ledger, changes)
    assert quick == full == []
    result = write.apply(
        ledger,
        write.ledger_files(ledger, loaded.options),
        changes,
        message="test",
        prepared=loaded.prepared,
    )
    assert result.check == "incremental"


@pytest.mark.parametrize(
    "text",
    [BAD_BALANCE, GOOD_OPEN, "\n2024-02-30 balance Assets:Credits:Users:Alice 1 CREDIT\n"],
    ids=["wrong-balance", "harmless-open", "parse-error"],
)
def test_errors_are_the_staged_checks_errors(ledger: Path, text: str) -> None:
    closed(ledger, "2024-02-15")
    month = ledger.parent / "log" / "2024" / "02.beancount"
    new_month = ledger.parent / "log" / "2024" / "03.beancount"
    for path, before in ((month, month.read_text()), (new_month, "")):
        quick, full = both_checks(ledger, [write.FileChange(path, before + text)])
        assert quick == full
        assert bool(quick) == (text != GOOD_OPEN)


def test_a_wrong_balance_is_refused_and_nothing_written(ledger: Path) -> None:
    closed(ledger, "2024-02-15")
    month = ledger.parent / "log" / "2024" / "02.beancount"
    before = month.read_text()
    loaded = load(ledger, for_write=True)
    with pytest.raises(write.WriteError) as raised:
        write.apply(
            ledger,
            write.ledger_files(ledger, loaded.options),
            [write.FileChange(month, before + BAD_BALANCE)],
            message="test",
            prepared=loaded.prepared,
        )
    assert "02.beancount" in str(raised.value) and "Balance failed" in str(raised.value)
    assert month.read_text() == before


def reuse(ledger: Path, changes: dict[Path, str]) -> list | None:
    return incremental.check(load(ledger, for_write=True).prepared, changes)  # type: ignore[arg-type]


def test_falls_back_when_reuse_could_differ(ledger: Path) -> None:
    closed(ledger, "2024-02-15")
    root = ledger.parent
    month = root / "log" / "2024" / "02.beancount"
    text = month.read_text()
    assert reuse(ledger, {month: text + GOOD_OPEN}) == []
    # The main file, structure lines, files no glob includes, postings at cost.
    assert reuse(ledger, {ledger: ledger.read_text() + GOOD_OPEN}) is None
    assert reuse(ledger, {month: text + '\ninclude "other.beancount"\n'}) is None
    assert reuse(ledger, {month: text + '\noption "title" "x"\n'}) is None
    assert reuse(ledger, {root / "elsewhere.beancount": GOOD_OPEN}) is None
    assert reuse(ledger, {root / "log" / "2024" / ".hidden.beancount": GOOD_OPEN}) is None
    at_cost = (
        "\n2024-03-01 open Assets:Stock\n2024-03-01 *\n  Assets:Stock  1 HOOL {10 USD}\n"
        "  Equity:Credits:Adjustments\n"
    )
    assert reuse(ledger, {month: text + at_cost}) is None


def test_falls_back_when_a_file_changed_on_disk_after_the_load(ledger: Path) -> None:
    closed(ledger, "2024-02-15")
    month = ledger.parent / "log" / "2024" / "02.beancount"
    prepared = load(ledger, for_write=True).prepared
    assert prepared is not None
    transactions = ledger.parent / "transactions.beancount"
    transactions.write_text(transactions.read_text() + "\n")
    stat = transactions.stat()
    os.utime(transactions, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert incremental.check(prepared, {month: month.read_text() + GOOD_OPEN}) is None


def test_load_with_the_gc_paused_is_bean_checks_load(tmp_path: Path) -> None:
    # ledger.load pauses the collector; bean-check's load runs with it on. Same
    # entries (with every generated entry and annotation) and same errors, on
    # a ledger with errors too.
    gc_was = gc.isenabled()
    reference, reference_errors, _options = loader._uncached_load_file(
        str(DEMO.resolve()), None, None, None
    )
    assert gc.isenabled() == gc_was
    for cache in (False, True):
        loaded = load(DEMO, cache=cache)
        assert gc.isenabled() == gc_was
        assert loaded.entries == reference
        assert [printer.format_entry(entry) for entry in loaded.entries] == [
            printer.format_entry(entry) for entry in reference
        ]
        assert loaded.errors == reference_errors == []
    broken = tmp_path / "broken.beancount"
    broken.write_text(
        'plugin "beancount_credits.plugins.expire"\n'
        '2024-01-01 open Assets:Credits:Users:Alice\n  user_id: "alice"\n'
        "2024-01-01 open Expenses:Credits:Sessions\n"
        '2024-01-02 * "Session"\n  txn_id: "r-1"\n'
        "  Assets:Credits:Users:Alice  -5 CREDIT\n  Expenses:Credits:Sessions\n"
        "2024-01-03 balance Assets:Credits:Users:Alice  7 CREDIT\n"
    )
    expected, expected_errors, _options = loader._uncached_load_file(str(broken), None, None, None)
    loaded = load(broken, cache=False)
    assert loaded.entries == expected
    assert [(e.source, e.message) for e in loaded.errors] == [
        (e.source, e.message) for e in expected_errors
    ]
    assert len(loaded.errors) == 2  # the overdraft and the failing balance
