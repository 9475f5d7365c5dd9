"""The Parquet export and the reports on it (DuckDB, Spark), against the ledger path."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DEMO

from beancount_credits import columnar
from beancount_credits.cli import main
from beancount_credits.columnar import reports as columnar_reports
from beancount_credits.columnar import spark as columnar_spark
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
    ("balances", Filters()),
    ("balances", Filters(date_to=D("2026-02-01"), segment="pro")),
    ("balances", Filters(user="org-acme", commodity="SESSION", date_to=END)),
    ("balances", Filters(date_to=END, sort="CREDIT", desc=True)),
]
# The same on Spark, one or two of each report (a Spark query costs about a second).
SPARK_CASES = [CASES[i] for i in (2, 3, 7, 13, 15, 19)]


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


@pytest.fixture(scope="module")
def duckdb_source(export_dir):  # type: ignore[no-untyped-def]
    return columnar_reports.open_source(export_dir)


@pytest.fixture(scope="module")
def spark_source(spark, export_dir):  # type: ignore[no-untyped-def]
    return columnar_spark.SparkSource(export_dir, spark)


@pytest.mark.parametrize(
    ("name", "filters"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
)
def test_duckdb_report_equals_ledger_report(name, filters, demo_ledger, duckdb_source) -> None:  # type: ignore[no-untyped-def]
    expected = shown(run(name, demo_ledger, filters))
    got = shown(columnar_reports.run(name, duckdb_source, filters))
    assert got[:3] == expected[:3]
    assert len(got[3]) == len(expected[3])
    assert got[3] == expected[3]
    assert expected[3], "a case should have rows"


@pytest.mark.parametrize(
    ("name", "filters"), SPARK_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SPARK_CASES)]
)
def test_spark_report_equals_ledger_report(name, filters, demo_ledger, spark_source) -> None:  # type: ignore[no-untyped-def]
    expected = shown(run(name, demo_ledger, filters))
    got = shown(columnar_reports.run(name, spark_source, filters))
    assert got[:3] == expected[:3]
    assert got[3] == expected[3]
    assert expected[3], "a case should have rows"


def test_export_layout_is_hive_partitioned(export_dir: Path) -> None:
    # A never-closed ledger is one period, named by its first day.
    for name in columnar.PARTITIONED:
        months = sorted(path.name for path in (export_dir / name).iterdir())
        assert months and all(month.startswith("month=") for month in months), name
        files = sorted((export_dir / name / months[0]).iterdir())
        assert [path.name for path in files] == ["part-2025-09-01.parquet"], name
        db = columnar_reports.open_source(export_dir).db
        described = db.execute(
            f"DESCRIBE SELECT * FROM read_parquet('{files[0]}', hive_partitioning = false)"
        ).fetchall()
        assert [(column, kind) for column, kind, *_ in described] == [
            (column, columnar.DUCKDB_TYPES[kind]) for column, kind in columnar.COLUMNS[name]
        ], name
        dates = db.execute(f"SELECT DISTINCT date FROM read_parquet('{files[0]}')").fetchall()
        assert {f"month={columnar.month_of(date)}" for (date,) in dates} == {months[0]}
    # DuckDB reads the folders as a table with the month column (as Spark and Trino do).
    source = columnar_reports.open_source(export_dir)
    months = source.rows("SELECT DISTINCT month FROM postings ORDER BY month")
    assert months[0][0] == "2025-09"


def test_export_accounts_for_every_grant(demo_ledger, duckdb_source) -> None:  # type: ignore[no-untyped-def]
    # Per grant: amount = consumed (net of restored) + repaid + reversed + expired +
    # what is left, from the dated datasets; what is left is the engine's.
    rows = duckdb_source.rows(
        """
        SELECT g.grant_id, g.amount, g.repaid,
            coalesce((SELECT sum(amount - restored) FROM consumption c
                WHERE c.grant_id = g.grant_id), 0),
            coalesce((SELECT sum(amount) FROM reversals r
                WHERE r.grant_id = g.grant_id AND r.kind = 'grant'), 0),
            coalesce((SELECT sum(amount) FROM expiries e WHERE e.grant_id = g.grant_id), 0)
        FROM grants g
        """
    )
    grants = demo_ledger.grants.grants
    assert len(rows) == len(grants)
    for grant_id, amount, repaid, consumed, reversed_, expired in rows:
        remaining = grants[grant_id].remaining
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
    assert changed.written == ["postings/month=2026-03/part-2025-09-01.parquet"]
    assert changed.removed == []
    for path, stamp in stamps.items():
        if path.parent.name != "month=2026-03" or path.parent.parent.name != "postings":
            assert path.stat().st_mtime_ns == stamp, path
    source = columnar_reports.open_source(out)
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

    refused = runner.invoke(main, ["report", "statement", str(DEMO), "--source", str(out)])
    assert refused.exit_code != 0
    assert "does not run on a columnar export" in refused.output
    assert "Traceback" not in refused.output
    unknown = runner.invoke(main, [*args[:-2], "--user", "nobody", "--source", str(out)])
    assert unknown.exit_code != 0 and "unknown user id 'nobody'" in unknown.output
    not_export = runner.invoke(main, [*args, "--source", str(tmp_path)])
    assert not_export.exit_code != 0 and "is not a columnar export" in not_export.output
    uri = runner.invoke(main, [*args, "--source", "s3a://credits/export"])
    assert uri.exit_code != 0 and "a URI needs --engine spark" in uri.output
    past = runner.invoke(main, [*args[:3], "--to", "2027-12-31", "--source", str(out)])
    assert past.exit_code == 0, past.output
    # Past the year of allowances the manifest tallies: what is due through its
    # end, in the ledger's words, and that the export knows no further.
    through = json.loads((out / columnar.MANIFEST).read_text())["pending"]["through"]
    ledger_says = load(DEMO).as_of(D(through)).notice()
    counted = re.search(r"recorded through 2026-11-21; (.*) are counted here", ledger_says)
    assert f"export recorded through 2026-11-21; {counted.group(1)} are not" in past.stderr
    assert past.stderr.endswith(f"; past {through} the export does not know what is due\n")
    no_source = runner.invoke(main, [*args, "--engine", "spark"])
    assert (
        no_source.exit_code != 0 and "--engine applies to reports on an export" in no_source.output
    )


def test_cli_report_on_spark(tmp_path: Path, spark) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    out = tmp_path / "parquet"
    assert runner.invoke(main, ["export", "parquet", str(DEMO), "-o", str(out)]).exit_code == 0
    for name in ("balances", "rates"):
        args = ["report", name, str(DEMO), "--to", str(END), "--format", "csv"]
        from_ledger = runner.invoke(main, args)
        from_spark = runner.invoke(main, [*args, "--source", str(out), "--engine", "spark"])
        assert from_spark.exit_code == 0, from_spark.output
        assert from_spark.stdout == from_ledger.stdout
    missing = runner.invoke(
        main, [*args, "--source", str(tmp_path / "nothing"), "--engine", "spark"]
    )
    assert missing.exit_code != 0 and "is not a columnar export" in missing.output
    assert "Traceback" not in missing.output


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


NO_CACHE = shutil.ignore_patterns(".*picklecache", ".bean-credits*")
CLOSES = ("2025-12-31", "2026-05-31", "2026-08-31")  # the active period starts 2026-09-01
PERIODS = [
    "2025-09-01--2025-12-31",
    "2026-01-01--2026-05-31",
    "2026-06-01--2026-08-31",
    "2026-09-01--",
]
WHOLE_HISTORY: list[tuple[str, Filters]] = [
    ("usage", Filters(date_to=END)),
    ("rates", Filters(date_to=END)),
    ("rates", Filters(date_to=D("2026-07-15"))),  # as of a day inside a closed period
    ("liability", Filters(date_to=END)),
    ("daily", Filters(user="org-acme", date_to=END)),
    ("daily", Filters(date_from=D("2026-05-25"), date_to=D("2026-06-05"))),  # across a close
    ("balances", Filters(date_to=D("2026-06-15"))),
]


@pytest.fixture(scope="module")
def closed_demo(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """The demo ledger closed three times: three archived periods and the active one."""
    root = tmp_path_factory.mktemp("closed") / "demo"
    shutil.copytree(DEMO.parent, root, ignore=NO_CACHE)
    main_file = root / DEMO.name
    for through in CLOSES:
        closed = CliRunner().invoke(main, ["close-period", str(main_file), "--through", through])
        assert closed.exit_code == 0, closed.output
    return main_file


@pytest.fixture(scope="module")
def closed_export(closed_demo, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("closed-export") / "parquet"
    exported = CliRunner().invoke(main, ["export", "parquet", str(closed_demo), "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    for name in PERIODS:
        assert f"  loaded period {name}" in exported.output
    return out


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_export_of_a_closed_ledger_equals_the_never_closed_ledgers_reports(  # type: ignore[no-untyped-def]
    engine, closed_export, demo_ledger, request
) -> None:
    # Each closed period exported from its archive alone: whole-history reports
    # on the export equal those of the ledger that was never closed.
    if engine == "spark":
        source = columnar_spark.SparkSource(closed_export, request.getfixturevalue("spark"))
    else:
        source = columnar_reports.open_source(closed_export)
    for name, filters in WHOLE_HISTORY:
        expected = shown(run(name, demo_ledger, filters))
        assert shown(columnar_reports.run(name, source, filters)) == expected, (name, filters)
    # Past the horizon the ledger path books the expiries due by then; the
    # export says which it leaves out: the same count and credits.
    assert columnar_reports.horizon_notice(source, END) is None
    # Before and after the demo plan's first period past the horizon
    # (2026-12-15), and months on: the expiries and the allowances, with their
    # rollover, that the engine books by then, in the ledger notice's words.
    pattern = r"recorded through (\S+); (.*) (?:is|are) (?:not )?counted here"
    through = D(source.manifest["pending"]["through"])
    for day in (D("2026-12-14"), D("2026-12-15"), D("2027-01-15"), D("2027-06-30"), through):
        ledger_says = demo_ledger.as_of(day).notice()
        export_says = columnar_reports.horizon_notice(source, day)
        assert "allowance" in ledger_says or day < D("2026-12-15"), ledger_says
        assert re.search(pattern, export_says).groups() == re.search(pattern, ledger_says).groups()
        assert "does not know" not in export_says
    # A year past the horizon and the last directive the export stops counting, and says so.
    later = columnar_reports.horizon_notice(source, through + datetime.timedelta(days=1))
    assert later.endswith(f"; past {through} the export does not know what is due")


def test_export_of_a_closed_ledger_holds_the_never_closed_ledgers_rows(
    closed_export: Path, export_dir: Path
) -> None:
    # Every dataset, row for row (a posting's file and line are where it is now).
    db = columnar_reports.open_source(closed_export).db
    for name in columnar.PARTITIONED:
        columns = ", ".join(
            f'"{column}"'
            for column, _kind in columnar.COLUMNS[name]
            if column not in ("filename", "lineno")
        )

        def rows(folder: Path, name: str = name, columns: str = columns) -> list[tuple]:
            pattern = folder / name / "month=*" / "*.parquet"
            query = f"SELECT {columns}, month FROM read_parquet('{pattern}', hive_partitioning=1)"
            return sorted(map(repr, db.execute(query).fetchall()))

        assert rows(closed_export) == rows(export_dir), name
    files = sorted(path.name for path in (closed_export / "postings").glob("month=*/*"))
    assert files[0] == "part-2025-09-01.parquet" and files[-1] == "part-2026-09-01.parquet"
    assert {path.name for path in (closed_export / "grants" / "month=2026-03").iterdir()} == {
        "part-2026-01-01.parquet"
    }


def copy_closed(closed_demo: Path, tmp_path: Path) -> Path:
    root = tmp_path / "demo"
    shutil.copytree(closed_demo.parent, root, ignore=NO_CACHE)
    return root / closed_demo.name


def stamps(out: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in out.rglob("*.parquet")}


def test_re_export_after_a_change_in_one_archived_period_rewrites_only_that_period(
    closed_demo: Path, tmp_path: Path
) -> None:
    main_file = copy_closed(closed_demo, tmp_path)
    # Hand edits of sealed days below (a new user's open, a source's unit cost):
    # unsealed, as a ledger without the seal plugin, since they are not amended.
    seal_plugin = 'plugin "beancount_credits.plugins.seal"\n'
    main_file.write_text(main_file.read_text().replace(seal_plugin, ""))
    out = tmp_path / "parquet"
    first = columnar.export(main_file, out)
    assert first.loaded == PERIODS[-1:] + PERIODS[:-1]  # the active period first
    before = stamps(out)
    manifest = (out / columnar.MANIFEST).stat().st_mtime_ns

    # Nothing changed: only the active period is loaded, nothing is written.
    again = columnar.export(main_file, out)
    assert again.loaded == ["2026-09-01--"]
    assert again.written == [] and again.removed == []
    assert len(again.skipped) == len(first.written)
    assert stamps(out) == before
    assert (out / columnar.MANIFEST).stat().st_mtime_ns == manifest

    # A description edited in the archive of January..May 2026.
    archived = main_file.parent / "archive" / PERIODS[1] / "transactions" / "2026.beancount"
    text = archived.read_text()
    old = '2026-03-10 * "Sara Patel" "Session booking s-10910 with coach Dara Byrne"'
    assert old in text
    archived.write_text(text.replace(old, old[:-1] + ' (rebooked)"'))
    assert f"{archived} changed" in columnar.stale(out, main_file)
    changed = columnar.export(main_file, out)
    assert changed.loaded == ["2026-09-01--", PERIODS[1]]
    assert changed.written == ["postings/month=2026-03/part-2026-01-01.parquet"]
    assert changed.removed == []
    for path, stamp in before.items():
        if path.relative_to(out).as_posix() not in changed.written:
            assert path.stat().st_mtime_ns == stamp, path
    assert columnar.stale(out, main_file) == []
    query = "SELECT count(*) FROM postings WHERE narration LIKE '%(rebooked)'"
    assert columnar_reports.open_source(out).rows(query) == [(2,)]

    # A new user in the active period does not touch the closed periods; a
    # source's unit cost (which values their grants) does.
    accounts = main_file.parent / "accounts.beancount"
    accounts.write_text(
        accounts.read_text()
        + '\n2026-10-01 open Assets:Credits:Users:New-User\n  user_id: "new-user"\n'
    )
    assert columnar.export(main_file, out).loaded == ["2026-09-01--"]
    text = accounts.read_text()
    assert "unit_cost: 0.10 USD" in text
    accounts.write_text(text.replace("unit_cost: 0.10 USD", "unit_cost: 0.11 USD", 1))
    assert columnar.export(main_file, out).loaded == PERIODS[-1:] + PERIODS[:-1]


def test_closing_a_period_after_an_export_keeps_the_export_whole(
    tmp_path: Path, demo_ledger
) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "demo"
    shutil.copytree(DEMO.parent, root, ignore=NO_CACHE)
    main_file, out = root / DEMO.name, tmp_path / "parquet"
    columnar.export(main_file, out)
    closed = CliRunner().invoke(main, ["close-period", str(main_file), "--through", CLOSES[0]])
    assert closed.exit_code == 0, closed.output
    after = columnar.export(main_file, out)
    assert after.loaded == ["2026-01-01--", "2025-09-01--2025-12-31"]
    # The closed months keep their files (their grants did not change), the
    # later months move to the new active period's files.
    assert "grants/month=2025-10/part-2025-09-01.parquet" in after.skipped
    assert "grants/month=2026-03/part-2025-09-01.parquet" in after.removed
    assert {path.name for path in (out / "grants" / "month=2026-03").iterdir()} == {
        "part-2026-01-01.parquet"
    }
    for name, filters in WHOLE_HISTORY[:2]:
        expected = shown(run(name, demo_ledger, filters))
        assert shown(columnar_reports.run(name, out, filters)) == expected, name


def test_an_archive_missing_from_the_history_is_refused(closed_demo: Path, tmp_path: Path) -> None:
    main_file = copy_closed(closed_demo, tmp_path)
    archive = main_file.parent / "archive"
    (archive / PERIODS[1]).rename(tmp_path / "elsewhere")  # an archive deleted
    result = CliRunner().invoke(
        main, ["export", "parquet", str(main_file), "-o", str(tmp_path / "out")]
    )
    assert result.exit_code != 0
    assert "ends 2025-12-31 but archive 2026-06-01--2026-08-31 starts 2026-06-01" in result.output
    assert "Traceback" not in result.output


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
    ("fractions", "balances", Filters(date_to=D("2024-02-29"))),
]


@pytest.fixture(scope="module")
def small_exports(tmp_path_factory):  # type: ignore[no-untyped-def]
    """Each small case ledger, loaded and exported."""
    exports = {}
    for name in sorted({ledger for ledger, _name, _filters in SMALL_CASES}):
        ledger = load(CASE_LEDGERS / f"{name}.beancount")
        assert not ledger.errors
        out = tmp_path_factory.mktemp(name) / "parquet"
        columnar.export(ledger, out)
        exports[name] = (ledger, out)
    return exports


ENGINE_CASES = [(case, "duckdb") for case in SMALL_CASES] + [
    # On Spark: the reversals in several parts, and every case with decimal places.
    (case, "spark")
    for index, case in enumerate(SMALL_CASES)
    if case[0] == "fractions" or index in (1, 4)
]


@pytest.mark.parametrize(
    ("ledger_name", "name", "filters", "engine"),
    [(*case, engine) for case, engine in ENGINE_CASES],
    ids=[f"{engine}-{case[0]}-{case[1]}-{i}" for i, (case, engine) in enumerate(ENGINE_CASES)],
)
def test_small_ledger_report_equals_ledger_report(  # type: ignore[no-untyped-def]
    ledger_name, name, filters, engine, small_exports, request
) -> None:
    ledger, out = small_exports[ledger_name]
    if engine == "spark":
        source = columnar_spark.SparkSource(out, request.getfixturevalue("spark"))
    else:
        source = columnar_reports.open_source(out)
    expected = shown(run(name, ledger, filters))
    assert shown(columnar_reports.run(name, source, filters)) == expected


def test_reversal_rows_are_one_per_part(tmp_path: Path) -> None:
    columnar.export(load(REVERSALS), tmp_path)
    rows = columnar_reports.open_source(tmp_path).rows(
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


@pytest.mark.parametrize(
    "pending",
    [
        "not a tally",
        {"through": None, "days": [["2026-12-15", "allowance", "CREDIT\nSECRET-LINE", 1, "300"]]},
        {"through": None, "days": [["2026-12-15", "allowance", "CREDIT", 1, "NaN"]]},
        {"through": "SECRET-LINE", "days": []},
        {"through": None, "days": [["SECRET-LINE", "expiry", "CREDIT", 1, "5"]]},
        {"through": None, "days": [["2026-12-15", "expiry", "CREDIT", "1", "5", "6"]]},
    ],
)
def test_a_damaged_pending_tally_is_one_clear_error(  # type: ignore[no-untyped-def]
    export_dir: Path, tmp_path: Path, pending
) -> None:
    # The export's manifest is a file like any other: edited by hand, its
    # tally past the horizon is refused with one line that names the field,
    # never a traceback, and never repeats what the file holds.
    copy = tmp_path / "parquet"
    shutil.copytree(export_dir, copy)
    manifest = json.loads((copy / columnar.MANIFEST).read_text())
    manifest["pending"] = pending
    (copy / columnar.MANIFEST).write_text(json.dumps(manifest))
    result = CliRunner().invoke(
        main, ["report", "balances", str(DEMO), "--to", "2027-01-31", "--source", str(copy)]
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{columnar.MANIFEST} is damaged (pending)" in result.output
    assert "SECRET" not in result.output and "NaN" not in result.output
