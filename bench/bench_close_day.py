"""The daily job's cost: ``bean-credits close-day`` against plain ``bean-check``.

    .venv/bin/python bench/bench_close_day.py --transactions 100000 --runs 3

Uses the bench ledger of ``generate.py`` (generated if missing). Setup, not
timed: a copy of it logged through the day before the last with close-day
itself. Then, interleaved, each run times

- ``bean-check -C plugins.beancount`` on that logged copy (the baseline: one
  full load with the plugins), and
- ``bean-credits close-day plugins.beancount --date <last day>`` on a fresh copy
  of it: the daily job as cron runs it, i.e. a load, the plan, the staged full
  check of the new text, and the write.

Target (issue 3): close-day / bean-check <= 1.5, on CPU time (user + system of
each child, from wait4): the machine is shared, so wall time also counts
whatever else runs; both are printed. Every run must exit 0; the script checks
the close-day run wrote the last day's log.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench_plugins import ensure_ledger
from child import timed  # the same generated ledger, made the same way

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGET = 1.5


def last_day(body: Path) -> datetime.date:
    last = max(
        line[:10] for line in body.read_text().splitlines() if line[:4].isdigit() and " * " in line
    )
    return datetime.date.fromisoformat(last)


def fresh_copy(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*picklecache"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    out = ROOT / "bench" / "out" / str(args.transactions)
    ensure_ledger(out, args)
    day = last_day(out / "body.beancount")
    work = Path(tempfile.mkdtemp(prefix="bench-close-day-"))
    logged = work / "logged"
    fresh_copy(out, logged)
    for name in (
        "plain.beancount",
        "variant.beancount",
        "logged-plain.beancount",
        "logged-plugins.beancount",
        "log.beancount",
    ):
        (logged / name).unlink(missing_ok=True)
    close_day = [str(BIN / "bean-credits"), "close-day", "plugins.beancount"]
    print(f"setup: close-day through {day - datetime.timedelta(days=1)}", file=sys.stderr)
    timed([*close_day, "--date", str(day - datetime.timedelta(days=1))], logged)

    check = [str(BIN / "bean-check"), "-C", "plugins.beancount"]
    names = ("bean-check", "close-day")
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    rss: dict[str, list[int]] = {name: [] for name in names}

    def record(name: str, run: int, elapsed: float, used: float, peak: int) -> None:
        wall[name].append(elapsed)
        cpu[name].append(used)
        rss[name].append(peak)
        print(
            f"run {run} {name:10s} wall {elapsed:6.2f}s cpu {used:6.2f}s {peak} MiB",
            file=sys.stderr,
            flush=True,
        )

    for run in range(1, args.runs + 1):
        elapsed, used, peak, _ = timed(check, logged)
        record("bean-check", run, elapsed, used, peak)
        target = work / f"run-{run}"
        fresh_copy(logged, target)
        elapsed, used, peak, output = timed([*close_day, "--date", str(day)], target)
        assert f"close-day {day}:" in output and "wrote" in output, output
        record("close-day", run, elapsed, used, peak)
        shutil.rmtree(target)
    shutil.rmtree(work)

    def ratios(times: dict[str, list[float]]) -> tuple[float, str]:
        median = statistics.median(b / a for a, b in zip(*times.values(), strict=True))
        return median, ", ".join(f"{b / a:.2f}" for a, b in zip(*times.values(), strict=True))

    wall_ratio, wall_pairs = ratios(wall)
    cpu_ratio, cpu_pairs = ratios(cpu)
    ratio = cpu_ratio
    print(
        f"\nLedger: {out.relative_to(ROOT)}, logged through {day - datetime.timedelta(days=1)};"
        f" close-day --date {day}; {args.runs} interleaved runs; {datetime.date.today()};"
        f" load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        "\n| command | wall (median) | CPU (median) | CPU ratio (per run) | wall ratio | peak RSS |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        label = (
            "bean-check -C plugins.beancount"
            if name == "bean-check"
            else (f"bean-credits close-day --date {day}")
        )
        shown = (
            "1.00 | 1.00"
            if name == "bean-check"
            else f"**{cpu_ratio:.2f}** ({cpu_pairs}) | {wall_ratio:.2f} ({wall_pairs})"
        )
        print(
            f"| {label} | {statistics.median(wall[name]):.2f} s | "
            f"{statistics.median(cpu[name]):.2f} s | {shown} | {max(rss[name])} MiB |"
        )
    verdict = "meets" if ratio <= TARGET else "misses"
    print(
        f"\nTarget: close-day / bean-check <= {TARGET} (CPU time: the machine is shared, so"
        f" wall time also counts other processes); {ratio:.2f} {verdict} it."
    )
    print(
        f"Command: .venv/bin/python bench/bench_close_day.py --transactions {args.transactions}"
        f" --runs {args.runs}"
    )


if __name__ == "__main__":
    main()
