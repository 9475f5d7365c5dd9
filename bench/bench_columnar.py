"""The Parquet export by period, and the reports on it with DuckDB and with Spark (local mode).

    .venv/bin/python bench/bench_columnar.py                      # 1,000 events a day, 5,000 users
    .venv/bin/python bench/bench_columnar.py --per-day 300 --users 2000 --runs 1   # quicker

Setup, cached under ``bench/out/columnar-<per day>/`` (git-ignored; a step is
skipped when its output exists): two ledgers with the same active period (May
2024) at the same rate, one with 2 closed periods behind it and one with 4:

- ``h2/``: ``generate.py`` events from 2024-03-01 through 2024-05-31,
  ``close-day --date 2024-05-31``, then ``close-period`` through 2024-03-31
  and 2024-04-30;
- ``h4/``: the same from 2024-01-01, closed monthly through 2024-04-30.

Measured, side by side in one run, each a fresh process (CPU time = user +
system of the child and of what it waited for, from ``os.wait4``; peak RSS):

1. ``bean-check -C`` of each active period (what the target compares with),
   and ``bean-credits export parquet`` of each ledger into an empty folder
   (every period loaded, one at a time) and again with nothing changed (the
   active period loaded, nothing written); ``--runs`` rounds, interleaved;
2. once: a transaction of h4's active period edited, then one of its archived
   March: what each re-export loads and writes (the files are put back after);
3. ``bean-credits report NAME --source`` on h4's export for usage, rates,
   liability, daily and balances with ``--engine duckdb`` and ``--engine
   spark`` (local mode, Spark's defaults), interleaved: times, and whether the
   two CSV files are byte for byte the same. The Spark child stops its session
   and waits for the JVM, so the JVM's CPU time and memory are in its figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from child import Run, timed

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MAIN = "plugins.beancount"
LAST = datetime.date(2024, 5, 31)
VARIANTS = {  # name: (first day, closes)
    "h2": (datetime.date(2024, 3, 1), ["2024-03-31", "2024-04-30"]),
    "h4": (
        datetime.date(2024, 1, 1),
        ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"],
    ),
}
REPORTS = ["usage", "rates", "liability", "daily", "balances"]


def step(log: dict, name: str, command: list[str]) -> Run:
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(command)}", flush=True)
    run = timed(command, ROOT)
    print(f"  {run.wall:.1f} s wall, {run.cpu:.1f} s CPU, {run.rss_mib} MiB", flush=True)
    log[name] = run.figures()
    return run


def setup(out: Path, per_day: int, users: int, seed: int) -> dict:
    """The two ledgers (cached), and how long each setup step took."""
    log_path = out / "setup.json"
    log: dict = json.loads(log_path.read_text()) if log_path.exists() else {}
    credits = str(BIN / "bean-credits")
    for name, (start, closes) in VARIANTS.items():
        folder = out / name
        if (folder / "archive").is_dir() and len(list((folder / "archive").iterdir())) == len(
            closes
        ):
            continue
        if folder.exists():
            shutil.rmtree(folder)
        days = (LAST - start).days + 1
        step(
            log,
            f"generate {name}",
            [
                str(BIN / "python"),
                "bench/generate.py",
                "--transactions",
                str(per_day * days),
                "--users",
                str(users),
                "--seed",
                str(seed),
                "--start",
                str(start),
                "--days",
                str(days),
                "--out",
                str(folder),
            ],
        )
        step(
            log,
            f"close-day {name}",
            [credits, "close-day", str(folder / MAIN), "--date", str(LAST)],
        )
        for through in closes:
            step(
                log,
                f"close-period {name} {through}",
                [credits, "close-period", str(folder / MAIN), "--through", through],
            )
        log_path.write_text(json.dumps(log, indent=1))
    return log


def export_command(ledger: Path, target: Path) -> list[str]:
    return [str(BIN / "bean-credits"), "export", "parquet", str(ledger), "-o", str(target)]


def summary_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("export parquet"))


def loaded(output: str) -> list[str]:
    return [line.split()[2] for line in output.splitlines() if line.startswith("  loaded period")]


def written(output: str) -> list[str]:
    return [line.split()[1] for line in output.splitlines() if line.startswith("  wrote ")]


def measure_exports(out: Path, runs: int) -> dict:
    """bean-check of each active period, export from scratch, export again; interleaved."""
    results: dict[str, list[Run]] = {}
    notes: dict[str, str] = {}
    for index in range(runs):
        for name in VARIANTS:
            ledger = out / name / MAIN
            target = out / f"parquet-{name}"
            check = timed([str(BIN / "bean-check"), "-C", str(ledger)], ROOT)
            shutil.rmtree(target, ignore_errors=True)
            fresh = timed(export_command(ledger, target), ROOT)
            again = timed(export_command(ledger, target), ROOT)
            for label, run in (("check", check), ("fresh", fresh), ("again", again)):
                results.setdefault(f"{label} {name}", []).append(run)
            notes[f"fresh {name}"] = f"{summary_line(fresh.output)}; loaded {loaded(fresh.output)}"
            notes[f"again {name}"] = f"{summary_line(again.output)}; loaded {loaded(again.output)}"
            print(
                f"run {index + 1} {name}: check {check.cpu:.1f} s {check.rss_mib} MiB, "
                f"export {fresh.cpu:.1f} s {fresh.rss_mib} MiB, "
                f"again {again.cpu:.1f} s {again.rss_mib} MiB",
                flush=True,
            )
    return {
        "runs": {key: [run.figures() for run in value] for key, value in results.items()},
        "notes": notes,
    }


def edit(path: Path, old: str, new: str) -> str:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))
    return text


def measure_changes(out: Path) -> dict:
    """What a re-export loads and writes after an edit in the active period, then in March."""
    ledger = out / "h4" / MAIN
    target = out / "parquet-h4"
    found: dict = {}
    active_file = out / "h4" / "body.beancount"
    march_file = out / "h4" / "archive" / "2024-03-01--2024-03-31" / "body.beancount"
    for label, path in (("active", active_file), ("march", march_file)):
        day = "2024-05-1" if label == "active" else "2024-03-1"
        old = next(  # a session of that month: its narration is edited
            line
            for line in path.read_text().splitlines()
            if line.startswith(day) and ' * "Session' in line and line.endswith('"')
        )
        original = edit(path, old, old[:-1] + ' (edited)"')
        try:
            run = timed(export_command(ledger, target), ROOT)
        finally:
            path.write_text(original)
        restore = timed(export_command(ledger, target), ROOT)
        found[label] = {
            "edited": str(path.relative_to(out)),
            "figures": run.figures(),
            "summary": summary_line(run.output),
            "loaded": loaded(run.output),
            "written": written(run.output),
            "restored": summary_line(restore.output),
        }
        print(json.dumps(found[label], indent=1), flush=True)
    return found


def report_command(name: str, engine: str, ledger: Path, source: Path, csv: Path) -> list[str]:
    return [
        str(BIN / "python"),
        __file__,
        "--child-report",
        name,
        engine,
        str(ledger),
        str(source),
        str(csv),
    ]


def child_report(name: str, engine: str, ledger: str, source: str, csv: str) -> None:
    """One report in this process; Spark stopped and its JVM waited for, so wait4 counts it."""
    from beancount_credits.cli import main

    started = time.perf_counter()
    args = ["report", name, ledger, "--to", str(LAST), "--source", source, "--engine", engine]
    try:
        main([*args, "--format", "csv", "-o", csv], standalone_mode=False)
    finally:
        report_s = time.perf_counter() - started
        if engine == "spark":
            from pyspark import SparkContext
            from pyspark.sql import SparkSession

            session = SparkSession.getActiveSession()
            gateway = SparkContext._gateway
            if session is not None:
                session.stop()
            if gateway is not None:
                gateway.shutdown()
                process = gateway.proc
                process.stdin.close()  # the JVM exits when its stdin closes
                process.wait()
    print(json.dumps({"report_s": report_s}))


def measure_reports(out: Path, runs: int) -> dict:
    """Each report on h4's export, DuckDB against Spark, interleaved; the CSVs compared."""
    ledger = out / "h4" / MAIN
    source = out / "parquet-h4"
    if not (source / "manifest.json").exists():
        timed(export_command(ledger, source), ROOT)
    found: dict = {}
    for name in REPORTS:
        figures: dict[str, list[dict]] = {"duckdb": [], "spark": []}
        for _index in range(runs):
            for engine in ("duckdb", "spark"):
                csv = out / f"{name}-{engine}.csv"
                run = timed(report_command(name, engine, ledger, source, csv), ROOT)
                inside = json.loads(run.output.strip().splitlines()[-1])
                figures[engine].append({**run.figures(), "report_s": round(inside["report_s"], 2)})
        duck, spark = (out / f"{name}-{engine}.csv" for engine in ("duckdb", "spark"))
        same = duck.read_bytes() == spark.read_bytes()
        rows = duck.read_bytes().count(b"\r\n") - 1
        found[name] = {"figures": figures, "same bytes": same, "rows": rows}
        print(
            f"{name}: {rows} rows, same: {same}; duckdb "
            f"{[f['cpu'] for f in figures['duckdb']]} s CPU, spark "
            f"{[f['cpu'] for f in figures['spark']]} s CPU",
            flush=True,
        )
    return found


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def markdown(results: dict) -> str:
    exports = results["exports"]["runs"]
    lines = [
        "| ledger | command | CPU s (median) | peak RSS MiB (max) "
        "| RSS / bean-check of its active period |",
        "|---|---|---:|---:|---:|",
    ]
    for name in VARIANTS:
        check_rss = max(run["rss_mib"] for run in exports[f"check {name}"])
        for label, what in (
            ("check", "bean-check -C (active period)"),
            ("fresh", "export parquet, empty folder"),
            ("again", "export parquet, nothing changed"),
        ):
            runs = exports[f"{label} {name}"]
            rss = max(run["rss_mib"] for run in runs)
            lines.append(
                f"| {name} | {what} | {median(runs, 'cpu'):.1f} | {rss} | {rss / check_rss:.2f} |"
            )
    lines += [
        "",
        "| report | rows | DuckDB CPU s | Spark CPU s | Spark / DuckDB | DuckDB MiB "
        "| Spark MiB | same CSV |",
    ]
    lines.append("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, found in results["reports"].items():
        duck, spark = found["figures"]["duckdb"], found["figures"]["spark"]
        lines.append(
            f"| {name} | {found['rows']} | {median(duck, 'cpu'):.1f} | {median(spark, 'cpu'):.1f} "
            f"| {median(spark, 'cpu') / median(duck, 'cpu'):.1f} | "
            f"{max(r['rss_mib'] for r in duck)} | {max(r['rss_mib'] for r in spark)} | "
            f"{found['same bytes']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-day", type=int, default=1000, help="events a day")
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--report-runs", type=int, default=1)
    parser.add_argument("--setup-only", action="store_true")
    parser.add_argument("--skip-reports", action="store_true", help="measure the exports only")
    parser.add_argument("--child-report", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_report:
        child_report(*args.child_report)
        return
    out = ROOT / "bench" / "out" / f"columnar-{args.per_day}"
    out.mkdir(parents=True, exist_ok=True)
    setup_log = setup(out, args.per_day, args.users, args.seed)
    if args.setup_only:
        return
    os.environ.pop("BEANCOUNT_DISABLE_LOAD_CACHE", None)
    results = {
        "setup": setup_log,
        "exports": measure_exports(out, args.runs),
        "changes": measure_changes(out),
        "reports": {} if args.skip_reports else measure_reports(out, args.report_runs),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results["exports"]["notes"], indent=1))
    print(markdown(results))


if __name__ == "__main__":
    main()
