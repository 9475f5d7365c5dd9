"""``bean-check -C`` of several ledgers, interleaved run by run: CPU time, wall time, peak RSS.

    .venv/bin/python bench/bench_check.py --runs 3 A/plugins.beancount B/plugins.beancount ...

Used to compare active periods after close-period with different history
lengths behind them (bench/RESULTS.md). Medians; CPU time is user + system of
the child (``os.wait4``), the fair figure on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from bench_scale import BIN
from child import Run, timed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("ledgers", nargs="+", type=Path)
    args = parser.parse_args(argv)
    args.ledgers = [ledger.resolve() for ledger in args.ledgers]
    results: dict[Path, list[Run]] = {ledger: [] for ledger in args.ledgers}
    for run in range(args.runs):
        for ledger in args.ledgers:
            result = timed([str(BIN / "bean-check"), "-C", str(ledger)])
            results[ledger].append(result)
            print(f"run {run + 1} {ledger}: {result.cpu:.2f} s CPU", file=sys.stderr, flush=True)
    print("| ledger | CPU s (median; per run) | wall s (median) | peak RSS MiB |")
    print("|---|---:|---:|---:|")
    for ledger, runs in results.items():
        cpus = [run.cpu for run in runs]
        walls = [run.wall for run in runs]
        per_run = ", ".join(f"{cpu:.1f}" for cpu in cpus)
        rss = max(run.rss_mib for run in runs)
        print(
            f"| {ledger} | {statistics.median(cpus):.1f} ({per_run}) | "
            f"{statistics.median(walls):.1f} | {rss} |"
        )


if __name__ == "__main__":
    main()
