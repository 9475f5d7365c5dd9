"""The Parquet export and the DuckDB reports on it, against the ledger path on the demo ledger."""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import DEMO

from beancount_credits import columnar, columnar_reports
from beancount_credits.cli import main
from beancount_credits.ledger import load
from beancount_credits.reports import Filters, ReportError, run
from beancount_credits.reports.table import format_cell

END = datetime.date(2026, 11, 20)
D = datetime.date.fromisoformat

CASES: list[tuple[str, Filters]] = [
    ("usage", Filters()),
    ("usage", Filters(date_to=END)),
    ("usage", Filters(period="week", segment="pro", date_from=D("2026-02-01"))),
    ("usage", Filters(user="org-acme", member="dana.kim@acme.example", period="day")),
    ("usage", Filters(commodity="SESSION", date_from=D("2025-10-15"), date_to=D("2026-04-30"))),
    ("usage", Filters(sort="Redeemed", desc=True, date_to=END)),
    ("rates", Filters()),
    ("rates", Filters(date_to=D("2026-02-28"))),  # as of a day: fates re-dated
    ("rates", Filters(segment="enterprise", commodity="CREDIT", date_from=D("2026-01-01"))),
    ("rates", Filters(user="org-acme", date_to=END)),
    ("liability", Filters()),
    ("liability", Filters(period="week", date_from=D("2026-03-01"), date_to=D("2026-05-31"))),
    ("liability", Filters(segment="pro", commodity="CREDIT", date_to=D("2026-01-31"))),
    ("liability", Filters(user="org-acme", period="day", date_from=D("2026-06-01"), date_to=END)),
    ("daily", Filters(date_to=END)),
    ("daily", Filters(user="org-acme", date_from=D("2026-01-01"), date_to=D("2026-02-15"))),
    ("daily", Filters(segment="starter", commodity="CREDIT", date_from=D("2026-10-01"))),
]


@pytest.fixture(scope="module")
def demo_ledger():  # type: ignore[no-untyped-def]
    ledger = load(DEMO)
    assert not ledger.errors
    return ledger


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, demo_ledger):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("export") / "parquet"
    columnar.export(demo_ledger, out)
    return out


def shown(table) -> tuple:  # type: ignore[no-untyped-def]
    """A table as it prints: title, columns, notes and every cell as text."""
    rows = [[format_cell(cell) for cell in row] for row in table.rows]
    return table.title, table.columns, table.notes, rows


@pytest.mark.parametrize(
    ("name", "filters"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
)
def test_duckdb_report_equals_ledger_report(name, filters, demo_ledger, export_dir) -> None:  # type: ignore[no-untyped-def]
    expected = shown(run(name, demo_ledger, filters))
    got = shown(columnar_reports.run(name, export_dir, filters))
    assert got[:3] == expected[:3]
    assert len(got[3]) == len(expected[3])
    assert got[3] == expected[3]
    assert expected[3], "a case should have rows"


def test_export_layout_is_hive_partitioned(export_dir: Path) -> None:
    for name in columnar.PARTITIONED:
        months = sorted(path.name for path in (export_dir / name).iterdir())
        assert months and all(month.startswith("month=") for month in months), name
        table = pq.read_table(export_dir / name / months[0] / columnar.PART)
        assert table.schema.equals(columnar.SCHEMAS[name]), name
        for row in table.to_pylist():
            assert f"month={columnar.month_of(row['date'])}" == months[0]
    # DuckDB reads the folders as a table with the month column (as Spark and Trino do).
    source = columnar_reports.Source(export_dir)
    months = source.rows("SELECT DISTINCT month FROM postings ORDER BY month")
    assert months[0][0] == "2025-09"


def test_export_accounts_for_every_grant(demo_ledger, export_dir) -> None:  # type: ignore[no-untyped-def]
    # Per grant: amount = consumed + expired + remaining, from the three datasets.
    source = columnar_reports.Source(export_dir)
    rows = source.rows(
        """
        SELECT g.grant_id, g.amount, g.remaining, g.repaid, g.reversed,
            coalesce((SELECT sum(amount - restored) FROM consumption c
                WHERE c.grant_id = g.grant_id), 0),
            coalesce((SELECT sum(amount) FROM expiries e WHERE e.grant_id = g.grant_id), 0)
        FROM grants g
        """
    )
    assert len(rows) == len(demo_ledger.grants.grants)
    for grant_id, amount, remaining, repaid, reversed_, consumed, expired in rows:
        assert amount == consumed + repaid + reversed_ + expired + remaining, grant_id


def test_second_export_writes_nothing_and_one_changed_month_is_rewritten(tmp_path: Path) -> None:
    ledger_dir = tmp_path / "demo"
    shutil.copytree(DEMO.parent, ledger_dir, ignore=shutil.ignore_patterns(".*picklecache"))
    main_file = ledger_dir / DEMO.name
    out = tmp_path / "parquet"
    first = columnar.export(load(main_file), out)
    assert first.written and not first.skipped
    stamps = {path: path.stat().st_mtime_ns for path in out.rglob("*.parquet")}
    manifest = (out / columnar.MANIFEST).stat().st_mtime_ns

    again = columnar.export(load(main_file), out)
    assert again.written == [] and again.removed == []
    assert len(again.skipped) == len(first.written)
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*.parquet")} == stamps
    assert (out / columnar.MANIFEST).stat().st_mtime_ns == manifest

    # A description edited in March 2026: only that month's postings change.
    text_file = ledger_dir / "transactions" / "2026.beancount"
    text = text_file.read_text()
    old = '2026-03-10 * "Sara Patel" "Session booking s-10910 with coach Dara Byrne"'
    assert old in text
    text_file.write_text(text.replace(old, old[:-1] + ' (rebooked)"'))
    changed = columnar.export(load(main_file), out)
    assert changed.written == ["postings/month=2026-03/part-0.parquet"]
    assert changed.removed == []
    for path, stamp in stamps.items():
        if path.parent.name != "month=2026-03" or path.parent.parent.name != "postings":
            assert path.stat().st_mtime_ns == stamp, path
    source = columnar_reports.Source(out)
    assert source.rows("SELECT count(*) FROM postings WHERE narration LIKE '%(rebooked)'") == [(2,)]


def test_cli_export_and_report_source(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "parquet"
    result = runner.invoke(main, ["export", "parquet", str(DEMO), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "partition(s) written, 0 unchanged" in result.output
    result = runner.invoke(main, ["export", "parquet", str(DEMO), "-o", str(out)])
    assert result.output.startswith(f"export parquet {out}: 0 partition(s) written")
    args = ["report", "usage", str(DEMO), "--to", str(END), "--format", "csv", "--user", "org-acme"]
    from_ledger = runner.invoke(main, args)
    from_export = runner.invoke(main, [*args, "--source", str(out)])
    assert from_ledger.exit_code == 0 and from_export.exit_code == 0, from_export.output
    assert from_export.output == from_ledger.output

    refused = runner.invoke(main, ["report", "balances", str(DEMO), "--source", str(out)])
    assert refused.exit_code != 0
    assert "does not run on a columnar export" in refused.output
    assert "Traceback" not in refused.output
    unknown = runner.invoke(main, [*args[:-2], "--user", "nobody", "--source", str(out)])
    assert unknown.exit_code != 0 and "unknown user id 'nobody'" in unknown.output
    not_export = runner.invoke(main, [*args, "--source", str(tmp_path)])
    assert not_export.exit_code != 0 and "is not a columnar export" in not_export.output


def test_report_source_warns_when_the_ledger_changed_since_the_export(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    shutil.copytree(DEMO.parent, root, ignore=shutil.ignore_patterns(".*picklecache"))
    main_file, out = root / DEMO.name, tmp_path / "parquet"
    runner = CliRunner()
    assert runner.invoke(main, ["export", "parquet", str(main_file), "-o", str(out)]).exit_code == 0
    args = ["report", "usage", str(main_file), "--to", str(END), "--source", str(out)]
    fresh = runner.invoke(main, args)
    assert fresh.exit_code == 0 and fresh.stderr == ""
    os.utime(main_file)  # touched, same text: still fresh
    assert runner.invoke(main, args).stderr == ""
    log = root / "log" / "2026" / "11.beancount"
    log.write_text(log.read_text() + "\n; reviewed\n")
    (root / "log" / "2026" / "12.beancount").write_text("; next month\n")
    warned = runner.invoke(main, args)
    assert warned.exit_code == 0  # the table is still printed, from the export as asked
    assert f"warning: the export in {out} is older than {main_file}" in warned.stderr
    assert f"{log} changed" in warned.stderr
    assert f"{root / 'log' / '2026' / '12.beancount'} is new" in warned.stderr
    assert f"Re-run: bean-credits export parquet {main_file} -o {out}" in warned.stderr
    assert runner.invoke(main, ["export", "parquet", str(main_file), "-o", str(out)]).exit_code == 0
    assert runner.invoke(main, args).stderr == ""


def test_source_refuses_a_filter_the_report_does_not_use(export_dir: Path) -> None:
    with pytest.raises(ReportError, match="--member does not apply"):
        columnar_reports.run("rates", export_dir, Filters(member="x"))
    with pytest.raises(ReportError, match="empty range"):
        columnar_reports.run("usage", export_dir, Filters(date_from=D("2030-01-01")))


def test_export_of_a_closed_ledger_holds_the_whole_history(tmp_path: Path, demo_ledger) -> None:  # type: ignore[no-untyped-def]
    # After close-period, the export reads the archive too: whole-history
    # reports on it equal those of the ledger that was never closed.
    ledger_dir = tmp_path / "demo"
    shutil.copytree(DEMO.parent, ledger_dir, ignore=shutil.ignore_patterns(".*picklecache"))
    main_file = ledger_dir / DEMO.name
    runner = CliRunner()
    closed = runner.invoke(main, ["close-period", str(main_file), "--through", "2025-12-31"])
    assert closed.exit_code == 0, closed.output
    out = tmp_path / "parquet"
    exported = runner.invoke(main, ["export", "parquet", str(main_file), "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    assert (out / "postings" / "month=2025-09").is_dir()
    for name, filters in [
        ("usage", Filters(date_to=END)),
        ("rates", Filters(date_to=END)),
        ("liability", Filters(date_to=END)),
        ("daily", Filters(user="org-acme", date_to=END)),
    ]:
        expected = shown(run(name, demo_ledger, filters))
        assert shown(columnar_reports.run(name, out, filters)) == expected, name


CASE_LEDGERS = Path(__file__).parent / "reports"
REVERSALS = CASE_LEDGERS / "reversals.beancount"
SMALL_CASES: list[tuple[str, str, Filters]] = [
    # An order refunded in two steps (across two grants), a purchase clawed back in two.
    ("reversals", "liability", Filters(date_to=D("2024-04-30"))),
    (
        "reversals",
        "liability",
        Filters(period="day", date_from=D("2024-03-01"), date_to=D("2024-04-30")),
    ),
    ("reversals", "liability", Filters(date_to=D("2024-03-31"))),
    ("reversals", "rates", Filters(date_to=D("2024-03-05"))),  # the first refund, not the second
    ("reversals", "rates", Filters(date_to=D("2024-03-31"))),
    ("reversals", "rates", Filters(date_to=D("2024-04-30"))),
    ("reversals", "usage", Filters(date_to=D("2024-04-30"))),
    # Numbers with their own decimal places (10.50, 1.5): printed as the ledger writes them.
    ("fractions", "usage", Filters(date_to=D("2024-02-29"))),
    ("fractions", "daily", Filters(date_to=D("2024-02-29"))),
    ("fractions", "rates", Filters(date_to=D("2024-02-29"))),
    ("fractions", "rates", Filters(date_to=D("2024-02-03"))),
    ("fractions", "liability", Filters(period="day", date_to=D("2024-02-29"))),
]


@pytest.mark.parametrize(
    ("ledger_name", "name", "filters"),
    SMALL_CASES,
    ids=[f"{ledger}-{n}-{i}" for i, (ledger, n, _) in enumerate(SMALL_CASES)],
)
def test_small_ledger_report_equals_ledger_report(ledger_name, name, filters, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ledger = load(CASE_LEDGERS / f"{ledger_name}.beancount")
    assert not ledger.errors
    columnar.export(ledger, tmp_path / "parquet")
    expected = shown(run(name, ledger, filters))
    assert shown(columnar_reports.run(name, tmp_path / "parquet", filters)) == expected


def test_reversal_rows_are_one_per_part(tmp_path: Path) -> None:
    columnar.export(load(REVERSALS), tmp_path)
    rows = columnar_reports.Source(tmp_path).rows(
        "SELECT date, txn_id, reverses, kind, grant_id, CAST(amount AS VARCHAR) FROM reversals "
        "ORDER BY date, grant_id"
    )
    assert [(str(d), t, r, k, g, a.rstrip("0").rstrip(".")) for d, t, r, k, g, a in rows] == [
        ("2024-03-05", "rev-1", "r-1", "redemption", "p-1", "5"),
        ("2024-03-05", "rev-1", "r-1", "redemption", "promo-1", "10"),
        ("2024-03-08", "adj-1", "p-2", "grant", "p-2", "10"),
        ("2024-04-05", "rev-2", "r-1", "redemption", "p-1", "60"),
        ("2024-04-08", "adj-2", "p-2", "grant", "p-2", "15"),
    ]
