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

Target (issue 3): close-day / bean-check <= 1.5. Every run must exit 0; the
script checks the close-day run wrote the last day's log.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_plugins import ensure_ledger  # the same generated ledger, made the same way

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGET = 1.5


def timed(command: list[str], cwd: Path) -> tuple[float, int, str]:
    """Wall time (s), peak RSS (MiB) and output of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output[:2000]}")
    return elapsed, usage.ru_maxrss // 1024, output


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
    times: dict[str, list[float]] = {"bean-check": [], "close-day": []}
    rss: dict[str, list[int]] = {"bean-check": [], "close-day": []}
    for run in range(1, args.runs + 1):
        elapsed, peak, _ = timed(check, logged)
        times["bean-check"].append(elapsed)
        rss["bean-check"].append(peak)
        print(f"run {run} bean-check {elapsed:6.2f}s {peak} MiB", file=sys.stderr, flush=True)
        target = work / f"run-{run}"
        fresh_copy(logged, target)
        elapsed, peak, output = timed([*close_day, "--date", str(day)], target)
        assert f"close-day {day}:" in output and "wrote" in output, output
        times["close-day"].append(elapsed)
        rss["close-day"].append(peak)
        print(f"run {run} close-day  {elapsed:6.2f}s {peak} MiB", file=sys.stderr, flush=True)
        shutil.rmtree(target)
    shutil.rmtree(work)

    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["close-day"] / median["bean-check"]
    pairs = ", ".join(
        f"{b / a:.2f}" for a, b in zip(times["bean-check"], times["close-day"], strict=True)
    )
    print(
        f"\nLedger: {out.relative_to(ROOT)}, logged through {day - datetime.timedelta(days=1)};"
        f" close-day --date {day}; median of {args.runs} interleaved runs; {datetime.date.today()}"
    )
    print("\n| command | wall (median) | ratio (per run) | peak RSS |")
    print("|---|---:|---:|---:|")
    print(
        f"| bean-check -C plugins.beancount | {median['bean-check']:.2f} s | 1.00 | "
        f"{max(rss['bean-check'])} MiB |"
    )
    print(
        f"| bean-credits close-day --date {day} | {median['close-day']:.2f} s | "
        f"**{ratio:.2f}** ({pairs}) | {max(rss['close-day'])} MiB |"
    )
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"\nTarget: close-day / bean-check <= {TARGET}; {ratio:.2f} {verdict} it.")
    print(
        f"Command: .venv/bin/python bench/bench_close_day.py --transactions {args.transactions}"
        f" --runs {args.runs}"
    )


if __name__ == "__main__":
    main()
