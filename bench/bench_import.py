"""The import's cost: ``bean-credits import`` of 100,000 events against ``bean-check``.

    .venv/bin/python bench/bench_import.py --transactions 100000 --events 100000 --runs 3

Uses the bench ledger of ``generate.py`` (generated if missing) and writes
``bench/out/<n>/events-<events>.jsonl``: for every wallet a purchase early in
2025, then redemptions (one in twenty pending) and promotions spread over
January to March 2025, never beyond the balance. Then, interleaved, each run
times in fresh processes

- ``bean-check -C plugins.beancount`` on the ledger as it is (one full load
  with the plugins: the baseline the target is stated against);
- ``bean-credits import plugins.beancount events.jsonl`` on a fresh copy: the
  parse of the ledger, the plan, the staged full check of the ledger with the
  batch, the write;
- ``bean-check -C plugins.beancount`` on the imported copy (one full load of
  the ledger the import leaves: what the staged check has to load).

Target (issue 6): import <= 1.2 x one ledger load. Every run must exit 0; the
script checks that the import reported every event as new. Peak RSS from
``os.wait4``. The machine is shared: compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench_plugins import ensure_ledger
from child import timed  # the same generated ledger, made the same way

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGET = 1.2
_USER_RE = re.compile(r'^  user_id: "([^"]+)"', re.M)


def write_events(body: Path, target: Path, count: int, seed: int) -> int:
    """A month-spread batch of valid events for the ledger's wallets; returns how many."""
    users = _USER_RE.findall(body.read_text(encoding="utf-8"))
    rng = random.Random(seed)
    per_user = max(2, count // len(users))
    events = []
    for number, user in enumerate(users):
        events.append({"type": "purchase", "id": f"bench-p-{number}", "user": user,
                       "timestamp": "2025-01-01T08:00:00Z", "amount": 5000,
                       "price": "500.00 USD", "order": f"bo-{number}"})  # fmt: skip
        for index in range(per_user - 1):
            if len(events) >= count:
                break
            day = datetime.date(2025, 1, 2) + datetime.timedelta(days=rng.randrange(88))
            stamp = f"{day.isoformat()}T12:00:00Z"
            ident = f"bench-{number}-{index}"
            if rng.random() < 0.1:
                events.append({"type": "promotion", "id": ident, "user": user,
                               "timestamp": stamp, "amount": 20, "campaign": "spring",
                               "expires": "2025-12-31"})  # fmt: skip
            else:
                event = {"type": "redeem", "id": ident, "user": user, "timestamp": stamp,
                         "amount": 1 + rng.randrange(20), "session": f"bs-{ident}"}  # fmt: skip
                if rng.random() < 0.05:
                    event["status"] = "pending"
                events.append(event)
    events = events[:count]
    events.sort(key=lambda event: event["timestamp"])
    with target.open("w", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps(event) + "\n")
    return len(events)


def fresh_copy(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in ("body.beancount", "plugins.beancount"):
        shutil.copyfile(source / name, target / name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    out = ROOT / "bench" / "out" / str(args.transactions)
    ensure_ledger(out, args)
    events = out / f"events-{args.events}.jsonl"
    count = write_events(out / "body.beancount", events, args.events, args.seed)
    print(f"ledger {out} ({args.transactions} transactions), {count} events in {events.name}")
    check = [str(BIN / "bean-check"), "-C", "plugins.beancount"]
    results: dict[str, list[tuple[float, int]]] = {"before": [], "import": [], "after": []}
    cpu: dict[str, list[float]] = {"before": [], "import": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="bench-import-") as scratch:
        work = Path(scratch) / "ledger"
        for run in range(args.runs):
            fresh_copy(out, work)
            wall, seconds, rss, _output = timed(check, work)
            results["before"].append((wall, rss))
            cpu["before"].append(seconds)
            command = [str(BIN / "bean-credits"), "import", "plugins.beancount", str(events)]
            elapsed, seconds, rss, output = timed(command, work)
            cpu["import"].append(seconds)
            if f"{count} new, 0 already imported" not in output:
                raise SystemExit(f"unexpected import output:\n{output}")
            results["import"].append((elapsed, rss))
            wall, seconds, rss, _output = timed(check, work)
            results["after"].append((wall, rss))
            cpu["after"].append(seconds)
            ratios = [
                results["import"][run][0] / results[key][run][0] for key in ("before", "after")
            ]
            print(
                f"run {run + 1}: bean-check {results['before'][run][0]:.2f} s, import "
                f"{elapsed:.2f} s ({count / elapsed:,.0f} events/s, {rss} MiB), bean-check "
                f"after {results['after'][run][0]:.2f} s; ratios {ratios[0]:.2f} / {ratios[1]:.2f}"
            )
    median = {key: statistics.median(t for t, _ in values) for key, values in results.items()}
    peak = {key: max(rss for _, rss in values) for key, values in results.items()}
    per_run = {
        key: [i[0] / b[0] for i, b in zip(results["import"], results[key], strict=True)]
        for key in ("before", "after")
    }
    print()
    print("| command | wall (median) | import / it (per run) | peak RSS |")
    print("|---|---:|---:|---:|")
    for key, label in (("before", "before"), ("after", "after")):
        ratios = ", ".join(f"{ratio:.2f}" for ratio in per_run[key])
        print(
            f"| bean-check -C, ledger {label} the import | {median[key]:.2f} s | "
            f"{statistics.median(per_run[key]):.2f} ({ratios}) | {peak[key]} MiB |"
        )
    rate = count / median["import"]
    print(
        f"| bean-credits import ({count} events) | {median['import']:.2f} s | "
        f"{rate:,.0f} events/s | {peak['import']} MiB |"
    )
    for key in ("before", "after"):
        ratios = [i / b for i, b in zip(cpu["import"], cpu[key], strict=True)]
        print(
            f"CPU time (user+system) import / bean-check {key}: "
            f"{statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)}); "
            f"medians {statistics.median(cpu['import']):.2f} s / "
            f"{statistics.median(cpu[key]):.2f} s"
        )
    print(f"\ntarget: import <= {TARGET} x one ledger load")


if __name__ == "__main__":
    main()
