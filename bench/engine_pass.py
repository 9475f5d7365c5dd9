"""In-process timing of the grant engine and the daily-balance plugin on a loaded ledger.

    .venv/bin/python bench/engine_pass.py [bench/out/100000/plain.beancount] [--runs 3]

Loads the ledger once without plugins, then times ``engine.run`` (as the plugin
runs it, ``record=False``) and ``daily_balances`` over the same entries, with
the garbage collector on (as in bean-check) and once with it off, to show how
much of the engine's time is collection of the loaded ledger's objects.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

from beancount import loader

from beancount_credits import engine
from beancount_credits.plugins import daily_balances

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ledger", nargs="?", default=ROOT / "bench/out/100000/plain.beancount")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    entries, errors, options = loader.load_file(str(args.ledger))
    print(f"{args.ledger}: {len(entries)} entries, {len(errors)} errors")
    for run in range(1, args.runs + 1):
        gc.collect()
        started = time.perf_counter()
        result = engine.run(entries, record=False)
        engine_seconds = time.perf_counter() - started
        started = time.perf_counter()
        daily_balances.daily_balances(result.entries, options)
        daily_seconds = time.perf_counter() - started
        print(f"run {run}: engine {engine_seconds:.2f} s, daily_balances {daily_seconds:.2f} s")
    gc.collect()
    gc.disable()
    started = time.perf_counter()
    engine.run(entries, record=False)
    print(f"engine with the collector off: {time.perf_counter() - started:.2f} s")
    gc.enable()


if __name__ == "__main__":
    main()
