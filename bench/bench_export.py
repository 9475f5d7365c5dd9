"""Peak memory of each export format on a large report, each in a process of its own.

    .venv/bin/python bench/bench_export.py                 # the full report, every format
    .venv/bin/python bench/bench_export.py --rows 50000    # a quicker synthetic run

Source of the rows: the ``daily`` report of the 100k-transaction bench ledger
(``bench/out/100000/plugins.beancount``, generated if missing) when that report
exists; until it lands, a synthetic table of the same shape (--users x --days
rows: User ID, Segment, Date, Credit type, Balance; a step chart of Balance by
Date per User ID), produced by a generator as a report would.

Each format runs in a fresh child (``python bench_export.py --child FMT``): it
makes the table, notes its peak RSS so far (``ru_maxrss``: the loaded ledger or
the generator), exports to a file under bench/out/, and reports the peak RSS
again; the parent also takes the child's peak from ``os.wait4``. ``none``
iterates the rows without writing anything: the floor every format starts
from. Figures are MiB of RSS; "export added" is the peak minus the peak before
the export began. Wall times are noisy (2 cores shared with other work).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
FORMATS = ["none", "text", "csv", "xlsx", "pdf"]
SEGMENTS = ["starter", "pro", "enterprise"]


def rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def synthetic(users: int, days: int):  # type: ignore[no-untyped-def]
    from beancount_credits.reports.table import Chart, Column, Filters, Table

    start = datetime.date(2024, 1, 1)

    def rows() -> Iterator[list[object]]:
        for user in range(users):
            balance = Decimal(100 + user % 400)
            for day in range(days):
                if (user + day) % 7 == 0:
                    balance -= Decimal(15)
                if balance < 0 or (user * 31 + day) % 90 == 0:
                    balance += Decimal(200)
                date = start + datetime.timedelta(days=day)
                yield [f"u-{user:05d}", SEGMENTS[user % 3], date, "CREDIT", balance]

    columns = [
        Column("User ID"),
        Column("Segment"),
        Column("Date", "date"),
        Column("Credit type"),
        Column("Balance", "number"),
    ]
    end = start + datetime.timedelta(days=days - 1)
    return Table(
        "Daily balances (synthetic)",
        columns,
        rows(),
        Filters(date_from=start, date_to=end),
        chart=Chart("step", "Date", ["Balance"], series="User ID"),
    )


def daily_table(ledger_path: Path):  # type: ignore[no-untyped-def]
    from beancount_credits.ledger import load
    from beancount_credits.reports import REPORTS, Filters

    ledger = load(ledger_path, cache=False)
    last = max(entry.date for entry in ledger.entries)
    return REPORTS["daily"](ledger, Filters(date_to=last))


def child(args: argparse.Namespace) -> None:
    from beancount_credits import exports

    started = time.perf_counter()
    if args.source == "daily":
        table = daily_table(Path(args.ledger))
        name = Path(args.ledger).name
    else:
        table = synthetic(args.users, args.days)
        name = "synthetic"
    made = time.perf_counter()
    before = rss_mib()
    out = ROOT / "bench" / "out" / f"export.{args.child}"
    rows = 0
    if args.child == "none":
        for _row in table.rows:
            rows += 1
        size = 0
    else:
        exports.export_file(table, args.child, out, ledger_name=name)
        size = out.stat().st_size
        out.unlink()
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "before": before,
                "peak": rss_mib(),
                "make_s": made - started,
                "export_s": done - made,
                "bytes": size,
                "rows": rows,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", choices=FORMATS, help=argparse.SUPPRESS)
    parser.add_argument("--source", choices=["auto", "daily", "synthetic"], default="auto")
    parser.add_argument("--ledger", default=str(ROOT / "bench/out/100000/plugins.beancount"))
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--days", type=int, default=366)
    parser.add_argument("--rows", type=int, help="synthetic: about this many rows (sets --users)")
    parser.add_argument("--formats", default=",".join(FORMATS))
    args = parser.parse_args()
    if args.rows:
        args.users = max(1, args.rows // args.days)
    if args.child:
        child(args)
        return

    from beancount_credits.reports import REPORTS

    if args.source == "auto":
        args.source = "daily" if "daily" in REPORTS else "synthetic"
    if args.source == "daily":
        from bench_plugins import ensure_ledger

        out = Path(args.ledger).parent
        ensure_ledger(out, argparse.Namespace(transactions=100000, users=1000, seed=1))
        print(f"source: the daily report of {args.ledger}")
    else:
        print(
            f"source: synthetic daily-shaped table, {args.users} users x {args.days} days "
            f"= {args.users * args.days} rows (the daily report is not on this branch yet)"
        )
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    print()
    print("| format | peak RSS MiB | before export | export added | export s | output MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for fmt in args.formats.split(","):
        command = [sys.executable, __file__, "--child", fmt, "--source", args.source]
        command += ["--ledger", args.ledger, "--users", str(args.users), "--days", str(args.days)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=ROOT)
        assert process.stdout is not None
        output = process.stdout.read()
        _pid, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{fmt}: child failed")
        result = json.loads(output)
        peak = usage.ru_maxrss / 1024
        print(
            f"| {fmt} | {peak:.0f} | {result['before']:.0f} | {peak - result['before']:.0f} "
            f"| {result['export_s']:.1f} | {result['bytes'] / 2**20:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
