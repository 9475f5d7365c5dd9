"""Scale: one 1M-event ledger against a closed period and the Parquet export.

    .venv/bin/python bench/bench_scale.py                     # 1,000,000 events, 20,000 users
    .venv/bin/python bench/bench_scale.py --transactions 200000 --users 4000

Setup, cached under ``bench/out/scale-<transactions>/`` (git-ignored; each
step is skipped when its output exists), with the times it took:

1. ``single/``: ``generate.py`` events over two years (2024-01-01 ..
   2025-12-31), then ``bean-credits close-day --date 2025-12-31``: the single
   ledger as the daily job leaves it (its balance log written);
2. ``closed/``: a copy of ``single/`` closed with ``bean-credits close-period
   --through 2025-11-30``: the active period is December 2025;
3. ``period/``: a ledger holding only one month of activity at the same rate
   (same users, the events of 31 days), logged by close-day: what the active
   period's own activity costs; ``period-active/`` the same with only the
   wallets that have activity opened (Beancount's balance check matches every
   account without an assertion against every asserted one: see RESULTS.md);
4. ``parquet/``: ``bean-credits export parquet single/plugins.beancount``.

Measured, side by side in one run (each a fresh process; wall time, CPU time
= user + system from ``os.wait4``, peak RSS):

- ``bean-check -C`` of the single ledger, of the closed ledger's active
  period, and of the one-month ledger;
- ``bean-query`` of ``queries/usage_per_month.bql`` over the single ledger
  against ``bean-credits report usage --source parquet/`` (the same rows: the
  script checks every user's monthly earned / redeemed / expired agree).

The machine is shared (2 cores, other jobs): CPU time is the fairer figure.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import shutil
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from child import timed

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START = datetime.date(2024, 1, 1)
DAYS = 731  # 2024-01-01 .. 2025-12-31
LAST = START + datetime.timedelta(days=DAYS - 1)
THROUGH = datetime.date(2025, 11, 30)  # close-period: December 2025 stays active
MAIN = "plugins.beancount"


def step(log: dict, name: str, command: list[str], cwd: Path = ROOT) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(command)}", flush=True)
    run = timed(command, cwd)
    print(f"  {run.wall:.2f} s wall, {run.cpu:.2f} s CPU, {run.rss_mib} MiB", flush=True)
    log[name] = run.figures()


def setup(out: Path, transactions: int, users: int, seed: int) -> dict:
    """The four inputs (cached), and how long each setup step took."""
    log_path = out / "setup.json"
    log: dict = json.loads(log_path.read_text()) if log_path.exists() else {}
    py = str(BIN / "python")
    credits = str(BIN / "bean-credits")
    single, closed, period, parquet = (
        out / name for name in ("single", "closed", "period", "parquet")
    )
    if not (single / "log").is_dir():
        step(
            log,
            "generate",
            [
                py,
                "bench/generate.py",
                "--transactions",
                str(transactions),
                "--users",
                str(users),
                "--seed",
                str(seed),
                "--start",
                str(START),
                "--days",
                str(DAYS),
                "--out",
                str(single),
            ],
        )
        step(
            log, "close-day single", [credits, "close-day", str(single / MAIN), "--date", str(LAST)]
        )
        log_path.write_text(json.dumps(log, indent=1))
    if not (closed / "opening").is_dir():
        if closed.exists():
            shutil.rmtree(closed)
        shutil.copytree(single, closed, ignore=shutil.ignore_patterns(".*picklecache"))
        step(
            log,
            "close-period",
            [credits, "close-period", str(closed / MAIN), "--through", str(THROUGH)],
        )
        log_path.write_text(json.dumps(log, indent=1))
    if not (period / "log").is_dir():
        month = (LAST - THROUGH).days
        step(
            log,
            "generate period",
            [
                py,
                "bench/generate.py",
                "--transactions",
                str(round(transactions * month / DAYS)),
                "--users",
                str(users),
                "--seed",
                str(seed),
                "--start",
                str(THROUGH + datetime.timedelta(days=1)),
                "--days",
                str(month),
                "--out",
                str(period),
            ],
        )
        step(
            log, "close-day period", [credits, "close-day", str(period / MAIN), "--date", str(LAST)]
        )
        log_path.write_text(json.dumps(log, indent=1))
    active = out / "period-active"
    if not (active / "log").is_dir():
        month = (LAST - THROUGH).days
        step(
            log,
            "generate period (active wallets only)",
            [
                py,
                "bench/generate.py",
                "--transactions",
                str(round(transactions * month / DAYS)),
                "--users",
                str(users),
                "--seed",
                str(seed),
                "--start",
                str(THROUGH + datetime.timedelta(days=1)),
                "--days",
                str(month),
                "--active-only",
                "--out",
                str(active),
            ],
        )
        step(
            log,
            "close-day period (active wallets only)",
            [credits, "close-day", str(active / MAIN), "--date", str(LAST)],
        )
        log_path.write_text(json.dumps(log, indent=1))
    if not (parquet / "manifest.json").exists():
        step(
            log,
            "export parquet",
            [credits, "export", "parquet", str(single / MAIN), "-o", str(parquet)],
        )
        log_path.write_text(json.dumps(log, indent=1))
    return log


def bql_usage(output: str) -> dict[tuple[str, str, str], list[Decimal]]:
    """{(month, user id, credit type): [earned, redeemed, expired]} from usage_per_month.bql."""
    totals: dict[tuple[str, str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    for line in output.splitlines():
        parts = line.split()
        if len(parts) != 7 or not parts[0].isdigit():
            continue
        year, month, user_id, currency, expired, earned, credits = parts
        key = (f"{year}-{int(month):02d}", user_id, currency)
        index = 2 if expired == "TRUE" else 0 if earned == "TRUE" else 1
        totals[key][index] += Decimal(credits)
    return totals


def report_usage(output: str) -> dict[tuple[str, str, str], list[Decimal]]:
    rows = csv.DictReader(io.StringIO(output))
    return {
        (row["Period"], row["User ID"], row["Credit type"]): [
            Decimal(row[name]) for name in ("Earned", "Redeemed", "Expired")
        ]
        for row in rows
    }


def markdown(results: dict) -> str:
    """The side-by-side table for RESULTS.md."""
    runs = results["runs"]
    single = runs["bean-check single"]
    lines = [
        "| command | wall s | CPU s | peak RSS MiB | CPU / bean-check single |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, value in [
        *runs.items(),
        ("bean-query usage_per_month.bql (single, no cache)", results["bean-query"]),
        (
            "bean-query usage_per_month.bql (single, pickle cache)",
            results["bean-query (pickle cache)"],
        ),
        ("bean-credits report usage --source parquet/", results["report usage --source"]),
    ]:
        ratio = value["cpu"] / single["cpu"]
        lines.append(
            f"| {name} | {value['wall']:.1f} | {value['cpu']:.1f} | {value['rss_mib']} | "
            f"{ratio:.3f} |"
        )
    query, source = results["bean-query"], results["report usage --source"]
    lines.append("")
    lines.append(
        f"bean-query / report --source: {query['wall'] / source['wall']:.1f}x wall, "
        f"{query['cpu'] / source['cpu']:.1f}x CPU; {results['usage rows']} usage rows, "
        f"same rows: {results['same rows']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--setup-only", action="store_true")
    args = parser.parse_args(argv)
    out = ROOT / "bench" / "out" / f"scale-{args.transactions}"
    out.mkdir(parents=True, exist_ok=True)
    setup_log = setup(out, args.transactions, args.users, args.seed)
    if args.setup_only:
        return
    check = str(BIN / "bean-check")
    runs: dict = {}
    step(runs, "bean-check single", [check, "-C", str(out / "single" / MAIN)])
    step(runs, "bean-check active period", [check, "-C", str(out / "closed" / MAIN)])
    step(runs, "bean-check one-month ledger", [check, "-C", str(out / "period" / MAIN)])
    step(
        runs,
        "bean-check one-month ledger, active wallets only",
        [check, "-C", str(out / "period-active" / MAIN)],
    )
    bql = (ROOT / "queries" / "usage_per_month.bql").read_text()
    query_file = out / "usage_per_month.bql"
    query_file.write_text(bql)
    print(f"[{time.strftime('%H:%M:%S')}] bean-query single", flush=True)
    started = time.perf_counter()
    bean_query = f"{BIN / 'bean-query'} {out / 'single' / MAIN} < {query_file}"
    # Cold, as bean-check -C: Beancount's pickle cache off (BEANCOUNT_DISABLE_LOAD_CACHE).
    query = timed(["sh", "-c", f"BEANCOUNT_DISABLE_LOAD_CACHE=1 {bean_query}"])
    print(f"  {query.wall:.2f} s wall, {query.cpu:.2f} s CPU ({time.perf_counter() - started:.0f})")
    source = timed(
        [
            str(BIN / "bean-credits"),
            "report",
            "usage",
            str(out / "single" / MAIN),
            "--source",
            str(out / "parquet"),
            "--format",
            "csv",
        ]
    )
    print(f"  report usage --source: {source.wall:.2f} s wall, {source.cpu:.2f} s CPU")
    # Warm: from the pickle cache the export's load wrote (a repeated run).
    timed(["sh", "-c", bean_query])  # writes the cache if the export's load did not
    warm = timed(["sh", "-c", bean_query])
    print(f"  bean-query from the pickle cache: {warm.wall:.2f} s wall, {warm.cpu:.2f} s CPU")
    from_bql, from_parquet = bql_usage(query.output), report_usage(source.output)
    same = from_bql == from_parquet == bql_usage(warm.output)
    results = {
        "setup": setup_log,
        "runs": {name: value for name, value in runs.items()},
        "bean-query": query.figures(),
        "bean-query (pickle cache)": warm.figures(),
        "report usage --source": source.figures(),
        "usage rows": len(from_parquet),
        "same rows": same,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    print(markdown(results))
    if not same:
        missing = set(from_bql) ^ set(from_parquet)
        raise SystemExit(f"bean-query and report usage --source differ ({len(missing)} keys)")


if __name__ == "__main__":
    main()
