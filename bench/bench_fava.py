"""The Credit Balance History page on the 100k-transaction bench ledger.

    .venv/bin/python bench/bench_fava.py --runs 3

1. Fava's load of the ledger with and without the extension, side by side:
   each run is a fresh process that builds Fava's app with ``load=True``
   (Beancount's load with the plugins, Fava's modules, and with the extension
   its ``after_load_file``: the user index and the grant engine pass); the two
   ledgers are the same text, one with ``custom "fava-extension"``; runs are
   interleaved so a noisy machine slows both alike.
2. The page's server time after the load, in one process: the all-users
   endpoint, one user (the one with the most transactions), the alerts, with
   no filter and with a one-month time filter; each request ``--requests``
   times (the first one separately: it fills Fava's filter cache).

Prints Markdown tables for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_plugins import ensure_ledger, source_digest  # noqa: E402

LOAD_TARGET = 1.10  # issue 5: the extension adds at most 10% to Fava's load
PAGE_TARGET = 1.0  # seconds per view after the load
EXTENSION = '2024-01-01 custom "fava-extension" "beancount_credits.fava"\n'

LOAD_CHILD = """
import sys, time
started = time.perf_counter()
from fava.application import create_app
app = create_app([sys.argv[1]], load=True, read_only=True)
print(time.perf_counter() - started)
"""


def write_ledgers(out: Path) -> tuple[Path, Path]:
    """The bench ledger (plugins on) without and with the extension."""
    text = (out / "plugins.beancount").read_text()
    plain = out / "fava-plain.beancount"
    extended = out / "fava-extension.beancount"
    plain.write_text(text)
    extended.write_text(text + EXTENSION)
    return plain, extended


def load_once(ledger: Path) -> float:
    result = subprocess.run(
        [sys.executable, "-c", LOAD_CHILD, str(ledger.resolve())],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def page_times(ledger: Path, requests: int) -> list[tuple[str, float, float]]:
    """(request, first time, median of the next ones) for each of the page's views."""
    from fava.application import create_app

    app = create_app([str(ledger.resolve())], load=True, read_only=True)
    slug, fava_ledger = next(iter(app.config["LEDGERS"].items()))
    extension = fava_ledger.extensions.get_extension("CreditBalanceHistory")
    assert extension is not None, "the extension did not load"
    counts: collections.Counter[str] = collections.Counter()
    for entry in extension.credits.entries:
        for posting in getattr(entry, "postings", ()):
            if extension.credits.config.is_user_account(posting.account):
                counts[posting.account] += 1
    heaviest = counts.most_common(1)[0][0]
    user_id = next(u.user_id for u in extension.credits.users.values() if u.account == heaviest)
    last = max(entry.date for entry in extension.credits.entries)
    month = f"{last.year:04d}-{last.month:02d}"
    base = f"/{slug}/extension/CreditBalanceHistory/"
    views = [
        ("page (HTML)", base, {}),
        ("all users", base + "users", {}),
        ("one user", base + "user", {"user_id": user_id}),
        ("alerts", base + "alerts", {}),
        (f"all users, time={month}", base + "users", {"time": month}),
        (f"one user, time={month}", base + "user", {"user_id": user_id, "time": month}),
    ]
    client = app.test_client()
    results = []
    for name, url, params in views:
        timings = []
        for _ in range(requests + 1):
            started = time.perf_counter()
            response = client.get(url, query_string=params)
            timings.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"{name}: HTTP {response.status_code} {response.data[:300]!r}")
        size = len(response.data)
        results.append((f"{name} ({size // 1024} KiB)", timings[0], statistics.median(timings[1:])))
    print(f"one user: {user_id} ({counts[heaviest]} postings)", file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args()
    out = ROOT / "bench" / "out" / str(args.transactions)
    ensure_ledger(out, args)
    plain, extended = write_ledgers(out)
    digest = source_digest()

    loads: dict[str, list[float]] = {"without": [], "with": []}
    for run in range(args.runs):
        loads["without"].append(load_once(plain))
        loads["with"].append(load_once(extended))
        print(
            f"run {run + 1}: without {loads['without'][-1]:.2f} s, with {loads['with'][-1]:.2f} s",
            file=sys.stderr,
        )
    ratios = [w / p for w, p in zip(loads["with"], loads["without"], strict=True)]
    without, with_ = statistics.median(loads["without"]), statistics.median(loads["with"])
    print(f"\nLedger: {out} ({args.transactions} transactions, {args.users} users)")
    print(f"Package sha256 {digest}; Python {sys.version.split()[0]}\n")
    print("| Fava load (create_app, load=True) | wall (median) | ratio (per run) |")
    print("|---|---:|---:|")
    print(f"| without the extension | {without:.2f} s | 1.00 |")
    per_run = ", ".join(f"{ratio:.2f}" for ratio in ratios)
    verdict = "met" if with_ / without <= LOAD_TARGET else "missed"
    print(
        f"| with the extension | {with_:.2f} s | **{with_ / without:.2f}** ({per_run}) |"
        f" target {LOAD_TARGET:.2f} {verdict}"
    )

    print("\n| page request (after the load) | first | median of the next |")
    print("|---|---:|---:|")
    results = page_times(extended, args.requests)
    for name, first, median in results:
        print(f"| {name} | {first:.3f} s | {median:.3f} s |")
    worst = max(max(first, median) for _name, first, median in results)
    print(f"\nslowest: {worst:.3f} s (target < {PAGE_TARGET:.1f} s)")
    if source_digest() != digest:
        print("warning: the package changed during the runs", file=sys.stderr)
    json.dump({"loads": loads, "pages": results}, sys.stderr)
    print(file=sys.stderr)


if __name__ == "__main__":
    main()
