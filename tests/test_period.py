"""Period close: reports in the new period are unchanged, carried grants expire on their day."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from beancount import loader
from click.testing import CliRunner
from conftest import DEMO, git
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from test_properties import histories, ledger_days

from beancount_credits import engine
from beancount_credits.cli import main
from beancount_credits.jobs import close_period
from beancount_credits.ledger import load, write
from beancount_credits.reports import REPORTS, Filters, ReportError

NO_CACHE = shutil.ignore_patterns(".*.picklecache", ".bean-credits*")
DEMO_THROUGH = datetime.date(2025, 12, 31)
DEMO_END = datetime.date(2026, 11, 20)  # the demo ledger's log reaches this day


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def report(main_file: Path, name: str, filters: Filters, loaded: dict | None = None) -> object:
    """A report's title, columns and rows, read from the file the CLI would read."""
    path = close_period.report_path(main_file, name, filters.date_from, filters.date_to)
    loaded = {} if loaded is None else loaded
    if path not in loaded:
        loaded[path] = load(path)
    ledger = loaded[path]
    assert not ledger.errors, ledger.errors[:3]
    try:
        table = REPORTS[name](ledger, filters)
    except ReportError as exc:
        return ("error", str(exc))
    return table.title, table.columns, [list(row) for row in table.rows], table.notes


def every_report(main_file: Path, filters: Filters) -> dict[str, object]:
    users = sorted(load(main_file).users)
    results: dict[str, object] = {}
    loaded: dict[Path, object] = {}
    for name in sorted(REPORTS):
        results[name] = report(main_file, name, filters, loaded)
        # Every user for a report that needs one, a few for the others.
        needs_user = isinstance(results[name], tuple) and results[name][0] == "error"
        for user in users if needs_user else users[:: max(1, len(users) // 3)]:
            with_user = Filters(**{**filters.__dict__, "user": user})
            results[f"{name} --user {user}"] = report(main_file, name, with_user, loaded)
    return results


def expiries_from(main_file: Path, start: datetime.date) -> list[tuple[str, datetime.date, str]]:
    ledger = load(main_file)
    return sorted(
        (expiry.txn_id, expiry.date, str(expiry.amount))
        for expiry in ledger.grants.expiries
        if expiry.date >= start
    )


@pytest.fixture(scope="module")
def demo_closed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two copies of the demo ledger: as it is, and closed through 2025-12-31."""
    root = tmp_path_factory.mktemp("demo")
    before = root / "before"
    after = root / "after"
    shutil.copytree(DEMO.parent, before, ignore=NO_CACHE)
    shutil.copytree(DEMO.parent, after, ignore=NO_CACHE)
    output = run_cli("close-period", str(after / "main.beancount"), "--through", str(DEMO_THROUGH))
    assert "carried forward to 2026-01-01" in output
    return before / "main.beancount", after / "main.beancount"


def test_demo_close_moves_the_period_to_the_archive(demo_closed: tuple[Path, Path]) -> None:
    before, after = demo_closed
    root = after.parent
    archive = root / "archive" / "2025-09-01--2025-12-31"
    assert (archive / "transactions" / "2025.beancount").is_file()
    assert not (root / "transactions" / "2025.beancount").exists()
    assert not (root / "log" / "2025").exists()
    main_text = after.read_text()
    assert 'include "opening/2026-01-01.beancount"' in main_text
    assert "archive/" not in main_text
    _entries, errors, options = loader.load_file(str(after))
    assert errors == []
    assert not [name for name in options["include"] if "/archive/" in name]
    # The active ledger holds nothing of the closed period but the carry-forward,
    # the chart of accounts and settings.
    ledger = load(after)
    dated = [
        entry
        for entry in ledger.entries
        if entry.date <= DEMO_THROUGH and isinstance(entry, close_period.MOVED)
    ]
    assert dated and all(engine.CARRIED_TAG in entry.tags for entry in dated)
    # The balances the carry-forward opens with are the balances before the close.
    assert report(before, "balances", Filters(date_to=DEMO_THROUGH)) == report(
        after, "balances", Filters(date_to=DEMO_THROUGH)
    )


def test_demo_reports_in_the_new_period_are_unchanged(demo_closed: tuple[Path, Path]) -> None:
    before, after = demo_closed
    for filters in (
        Filters(date_from=datetime.date(2026, 1, 1), date_to=DEMO_END),
        Filters(date_from=datetime.date(2026, 3, 15), date_to=datetime.date(2026, 6, 30)),
    ):
        assert close_period.report_path(after, "balances", filters.date_from, None) == after
        assert every_report(before, filters) == every_report(after, filters)


def test_demo_reports_reaching_back_read_the_archive(demo_closed: tuple[Path, Path]) -> None:
    before, after = demo_closed
    filters = Filters(date_from=datetime.date(2025, 10, 1), date_to=datetime.date(2026, 2, 1))
    history = close_period.report_path(after, "statement", filters.date_from, filters.date_to)
    assert history.name == close_period.HISTORY_NAME
    assert every_report(before, filters) == every_report(after, filters)
    assert report(before, "statement", Filters(user="org-acme", date_to=DEMO_END)) == report(
        after, "statement", Filters(user="org-acme", date_to=DEMO_END)
    )


def test_demo_carried_grants_expire_on_their_dates(demo_closed: tuple[Path, Path]) -> None:
    before, after = demo_closed
    start = DEMO_THROUGH + datetime.timedelta(days=1)
    expected = expiries_from(before, start)
    assert len(expected) > 10
    assert expiries_from(after, start) == expected
    # ... and the recorded expiries of the new period's log are the ones matched.
    carried = {
        posting.meta["grant"]
        for entry in load(after).entries
        if engine.CARRIED_TAG in getattr(entry, "tags", ())
        for posting in entry.postings
        if posting.meta and "grant" in posting.meta
    }
    assert {txn_id.split(":")[0] for txn_id, _date, _amount in expected} & carried


def test_close_refuses_a_period_the_daily_log_has_not_reached(tmp_path: Path) -> None:
    shutil.copytree(DEMO.parent, tmp_path / "demo", ignore=NO_CACHE)
    main_file = tmp_path / "demo" / "main.beancount"
    (tmp_path / "demo" / "log" / "2026" / "11.beancount").unlink()  # the log reaches October
    # ... which breaks the demo's seals: this copy is an unsealed ledger.
    seal_line = 'plugin "beancount_credits.plugins.seal"\n'
    main_file.write_text(main_file.read_text().replace(seal_line, ""))
    before = {path: path.read_text() for path in (tmp_path / "demo").rglob("*.beancount")}
    result = CliRunner().invoke(main, ["close-period", str(main_file), "--through", "2026-11-19"])
    assert result.exit_code == 2
    assert "run bean-credits close-day --date 2026-11-19 first" in result.output
    assert "Traceback" not in result.output
    assert {path: path.read_text() for path in (tmp_path / "demo").rglob("*.beancount")} == before


def test_close_commits_moves_and_a_second_close_archives_the_first_opening(
    tmp_path: Path,
) -> None:
    root = tmp_path / "demo"
    shutil.copytree(DEMO.parent, root, ignore=NO_CACHE)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "Demo ledger")
    main_file = root / "main.beancount"
    new_period = Filters(date_from=datetime.date(2026, 7, 1), date_to=DEMO_END)
    before = [report(main_file, name, new_period) for name in ("balances", "audit")]
    run_cli("close-period", str(main_file), "--through", "2025-12-31", "--commit")
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""
    # A reversal on 2026-07-02 of a redemption of 2026-06-24 would cross this close:
    # refused, naming the closed period, and nothing written.
    refused = CliRunner().invoke(
        main, ["close-period", str(main_file), "--through", "2026-06-30", "--commit"]
    )
    assert refused.exit_code == 2
    assert "'r-001787' is unknown in the active period" in refused.output
    assert "closed through 2026-06-30, it cannot be reversed after the close" in refused.output
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""
    output = run_cli("close-period", str(main_file), "--through", "2026-05-28", "--commit")
    assert "archive/2026-01-01--2026-05-28" in output
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""
    assert (
        root / "archive" / "2026-01-01--2026-05-28" / "opening" / "2026-01-01.beancount"
    ).exists()
    assert 'include "opening/2026-05-29.beancount"' in main_file.read_text()
    log = git(root, "log", "--format=%s")
    assert "close-period through 2026-05-28" in log
    after = [report(main_file, name, new_period) for name in ("balances", "audit")]
    assert after == before
    # The history view reads both archives and no carry-forward.
    assert report(main_file, "statement", Filters(user="org-acme", date_to=DEMO_END)) == report(
        DEMO, "statement", Filters(user="org-acme", date_to=DEMO_END)
    )


# --- Property: reports across a close equal reports without it ------------------------


def without_errors(header: str, blocks: list[str]) -> str:
    """The history's transactions minus those the engine rejects (a close needs a clean ledger).

    Random histories overdraw and reverse too much; dropping the offending
    transactions (and then whatever depended on them) leaves a valid history.
    """
    paragraphs = [
        part.strip("\n") for block in blocks for part in block.split("\n\n") if part.strip()
    ]
    for _attempt in range(20):
        text = "\n\n".join(paragraphs) + "\n"
        full = header + text
        # A real file: the engine takes "<string>" entries for generated ones.
        with tempfile.NamedTemporaryFile("w", suffix=".beancount") as handle:
            handle.write(full)
            handle.flush()
            _entries, errors, _options = loader._uncached_load_file(handle.name, None, None, None)
        if not errors:
            return text
        offset = full.count("\n", 0, len(full) - len(text))
        bad = {error.source["lineno"] - offset for error in errors}
        kept, line = [], 1
        for paragraph in paragraphs:
            size = paragraph.count("\n") + 2
            if not any(line <= number < line + size for number in bad):
                kept.append(paragraph)
            line += size
        paragraphs = kept
    raise AssertionError("could not clean the history")


@settings(
    max_examples=int(os.environ.get("PERIOD_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(histories, st.floats(0.1, 0.9))
# Found by hypothesis: a redemption archived by the close and reversed after
# it, by a wallet the close carries with a zero line (the refusal must still
# name the close).
@example(
    history=(
        [
            (
                1,
                [
                    ("redeem", "alice", 1),
                    ("grant", "org-acme", 1, None, 10),
                    ("redeem", "alice", 1),
                ],
            ),
            (1, [("redeem", "alice", 1), ("redeem", "alice", 2), ("redeem", "org-acme", 1)]),
            (1, [("redeem", "alice", 1)] * 4),
            (1, [("redeem", "alice", 1), ("redeem", "alice", 1), ("reverse", 569, 1)]),
        ],
        0,
    ),
    where=0.5,
)
# Found by hypothesis: a grant reversed in two parts, one on each side of the
# close (liability once dated both parts at the first reversal).
@example(
    history=(
        [
            (1, [("grant", "alice", 4, None, 50), ("reverse", 0, 1)]),
            (
                1,
                [
                    ("redeem", "alice", 1),
                    ("grant", "alice", 1, None, 10),
                    ("redeem", "alice", 1),
                    ("reverse", 0, 1),
                ],
            ),
        ],
        0,
    ),
    where=0.5,
)
def test_reports_across_a_close_equal_reports_without_it(
    history: tuple[list, int], where: float
) -> None:
    header, blocks = ledger_days(history)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "ledger"
        root.mkdir()
        main_file = root / "main.beancount"
        main_file.write_text(header + 'include "transactions.beancount"\n')
        (root / "transactions.beancount").write_text(without_errors(header, blocks))
        ledger = load(main_file)
        assert not ledger.errors
        dates = sorted({entry.date for entry in ledger.entries if entry.meta.get("txn_id")})
        assume(len(dates) >= 2)
        last = dates[-1]
        run_cli("close-day", str(main_file), "--date", str(last))
        through = dates[int(where * (len(dates) - 1))]
        closed_root = Path(folder) / "closed"
        shutil.copytree(root, closed_root)
        closed = closed_root / "main.beancount"
        result = CliRunner().invoke(main, ["close-period", str(closed), "--through", str(through)])
        if result.exit_code != 0:
            # The one refusal a logged, error-free history may meet: a later
            # reversal of a redemption the close would archive.
            assert "cannot be reversed after the close" in result.output, result.output
            assert not (closed_root / "archive").exists()
            event("close refused: a reversal crosses it")
            return
        event("closed")
        assert not load(closed).errors
        start = through + datetime.timedelta(days=1)
        end = last + datetime.timedelta(days=60)
        filters = Filters(date_from=start, date_to=end)
        assert every_report(main_file, filters) == every_report(closed, filters)
        assert expiries_from(closed, start) == expiries_from(main_file, start)


# --- A crash in the middle of a close -------------------------------------------------


def snapshot(root: Path) -> dict[str, bytes]:
    """Every ledger file under ``root`` (not the lock, caches or history view)."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and not path.name.startswith((".bean-credits", ".main.beancount"))
        and not path.name.endswith(".picklecache")
    }


def staged_close(root: Path) -> list[dict]:
    """A copy of the demo with a close staged (journal ready): a crash before any rename."""
    shutil.copytree(DEMO.parent, root, ignore=NO_CACHE)
    main_file = root / "main.beancount"
    ledger = load(main_file, for_write=True)
    planned = close_period.plan(ledger, DEMO_THROUGH)
    removals = [write.FileChange(path, None) for path in planned.removed]
    changes = [*planned.changes, *removals]
    ordered = sorted(changes, key=lambda change: change.path.resolve() == main_file.resolve())
    write.stage(main_file, ordered, "close-period (interrupted)")
    return json.loads(write.pending_path(main_file).read_text())["steps"]


@pytest.mark.parametrize("done", ["none", "one", "half", "all but main", "all"])
def test_a_close_interrupted_at_any_step_is_completed_by_recover(
    done: str, tmp_path: Path, demo_closed: tuple[Path, Path]
) -> None:
    root = tmp_path / "demo"
    steps = staged_close(root)
    assert any(step["temporary"] is None for step in steps), "the close removes files"
    count = {"none": 0, "one": 1, "half": len(steps) // 2, "all but main": len(steps) - 1}
    # The renames and removals a crashed writer got through before it died.
    for step in steps[: count.get(done, len(steps))]:
        if step["temporary"] is None:
            Path(step["path"]).unlink()
        else:
            os.replace(step["temporary"], step["path"])
    main_file = root / "main.beancount"
    result = CliRunner().invoke(main, ["report", "balances", str(main_file)])
    assert result.exit_code == 2
    assert "a write was interrupted half-way (close-period (interrupted))" in result.output
    assert f"run bean-credits recover {root}" in result.output  # main, or the history view
    recovered = CliRunner().invoke(main, ["recover", str(main_file)])
    assert recovered.exit_code == 0, recovered.output
    assert "completed an interrupted write" in recovered.stderr
    _before, after = demo_closed
    assert snapshot(root) == snapshot(after.parent)
    assert not list(root.rglob("*.tmp"))
    assert run_cli("recover", str(main_file)).startswith("no interrupted write")


def test_a_close_interrupted_while_staging_leaves_the_ledger_as_it_was(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    shutil.copytree(DEMO.parent, tmp_path / "original", ignore=NO_CACHE)
    steps = staged_close(root)
    journal = write.pending_path(root / "main.beancount")
    # Died while writing the temporaries: the journal still says "staging".
    journal.write_text(json.dumps({"state": "staging", "message": "close", "steps": steps}))
    for step in steps[len(steps) // 2 :]:
        if step["temporary"] is not None:
            Path(step["temporary"]).unlink()
    assert load(root / "main.beancount").errors == []  # readers see the old ledger
    recovered = CliRunner().invoke(main, ["recover", str(root / "main.beancount")])
    assert recovered.exit_code == 0, recovered.output
    assert "dropped an interrupted write" in recovered.stderr
    assert snapshot(root) == snapshot(tmp_path / "original")
    assert not list(root.rglob("*.tmp"))


def test_a_second_close_keeps_the_opening_account_the_first_close_declared(
    tmp_path: Path,
) -> None:
    """A ledger that never opened Equity:Credits:Opening: the first close declares
    it in its opening file, which the second close stops including."""
    root = tmp_path / "demo"
    shutil.copytree(DEMO.parent, root, ignore=NO_CACHE)
    main_file = root / "main.beancount"
    # Unsealed: removing an open by hand changes a sealed day.
    seal_plugin = 'plugin "beancount_credits.plugins.seal"\n'
    main_file.write_text(main_file.read_text().replace(seal_plugin, ""))
    accounts = root / "accounts.beancount"
    declared = "2025-09-01 open Equity:Credits:Opening\n"
    assert declared in accounts.read_text()
    accounts.write_text(accounts.read_text().replace(declared, ""))
    run_cli("close-period", str(main_file), "--through", "2025-12-31")
    assert "open Equity:Credits:Opening" in (root / "opening" / "2026-01-01.beancount").read_text()
    run_cli("close-period", str(main_file), "--through", "2026-05-28")
    assert "open Equity:Credits:Opening" in (root / "opening" / "2026-05-29.beancount").read_text()
    loaded = load(main_file, cache=False)
    assert loaded.errors == []
