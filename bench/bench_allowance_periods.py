"""The cost of an allowance's period boundary as a plan runs on: one year, three, ten.

    .venv/bin/python bench/bench_allowance_periods.py --wallets 1000 --years 1 3 10

For each length it writes ``bench/out/allowance-periods/<years>y.beancount``:
``--wallets`` wallets, each on a monthly allowance of 100 CREDIT with
``rollover_max`` 30 from 2020-01-01, nothing spent, and one redemption on
the last day (the horizon). A child process parses it, sorts it as the loader
does and runs the grant engine's pass over it ``--runs`` times with the
cyclic collector off (as the expire plugin runs it); the figure is the
pass's CPU time (the child's ``time.process_time``, the median of the runs)
per period boundary. Each boundary books a rollover (two expiries: the part
over ``rollover_max`` and the carried part of the period before) and the new
period's grant, so a flat figure across lengths means a plan costs the same
per month in its tenth year as in its first.

``--package DIR`` measures another checkout of the package (its
``beancount_credits`` first on the child's path), e.g. a worktree of an
earlier commit, side by side: ``--package /tmp/base`` runs both, the
lengths interleaved.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import gc, json, sys, time
sys.path.insert(0, sys.argv[1])
from beancount.core import data
from beancount.parser import parser
from beancount_credits.engine import booking
from beancount_credits.engine.config import parse_config
import beancount_credits
assert beancount_credits.__file__.startswith(sys.argv[1]), beancount_credits.__file__
entries, errors, _options = parser.parse_file(sys.argv[2])
assert not errors, errors
entries.sort(key=data.entry_sortkey)
config = parse_config(None)
gc.collect()
gc.disable()
times = []
for _ in range(int(sys.argv[3])):
    started = time.process_time()
    result = booking.run(entries, config, record=False, sort=False)
    times.append(time.process_time() - started)
    assert not result.errors, result.errors[:3]
print(json.dumps(times))
"""


def write_ledger(path: Path, wallets: int, years: int) -> int:
    """The ledger of ``wallets`` monthly plans over ``years``; returns the boundaries booked."""
    lines = [
        "2020-01-01 open Income:Credits:Allowance CREDIT",
        "2020-01-01 open Expenses:Credits:Usage CREDIT",
        "",
    ]
    for index in range(wallets):
        lines += [
            f"2020-01-01 open Assets:Credits:Users:U{index:05d} CREDIT",
            f'  user_id: "u{index:05d}"',
            f'2020-01-01 custom "credits-allowance" "u{index:05d}" 100 CREDIT',
            '  every: "1m"',
            "  rollover_max: 30",
            "",
        ]
    last = f"{2020 + years - 1}-12-31"
    lines += [
        f'{last} * "The horizon"',
        '  txn_id: "horizon"',
        "  Assets:Credits:Users:U00000  -1 CREDIT",
        "  Expenses:Credits:Usage  1 CREDIT",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return wallets * 12 * years  # the period starts through the horizon (the first has no rollover)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wallets", type=int, default=1000)
    parser.add_argument("--years", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--package", type=Path, help="another checkout to measure beside this one")
    args = parser.parse_args(argv)
    packages = [ROOT] + ([args.package.resolve()] if args.package else [])
    out = ROOT / "bench" / "out" / "allowance-periods"
    print(f"{args.wallets} wallets on a monthly allowance; pass CPU, median of {args.runs}\n")
    print("| years | boundaries | " + " | ".join(f"{p} (µs per boundary)" for p in packages) + " |")
    print("|---:|---:|" + "---:|" * len(packages))
    for years in args.years:
        ledger = out / f"{years}y.beancount"
        boundaries = write_ledger(ledger, args.wallets, years)
        cells = []
        for package in packages:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(package), str(ledger), str(args.runs)],
                check=True,
                capture_output=True,
                text=True,
            )
            median = statistics.median(json.loads(done.stdout.strip().splitlines()[-1]))
            cells.append(f"{median:.2f} s ({median / boundaries * 1e6:.1f})")
            print(f"{years}y {package}: {median:.2f} s", file=sys.stderr, flush=True)
        print(f"| {years} | {boundaries} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
