"""Where the plugins' extra bean-check time goes: loader stages and a cProfile.

    .venv/bin/python bench/profile_plugins.py --transactions 100000 --runs 3

1. Stage timings: loads ``plain.beancount`` and ``plugins.beancount`` in
   separate child processes, interleaved, ``--runs`` times each, with the
   loader's ``log_timings`` and bean-check's extra validation
   (``validate_data_types``); prints the median of every stage (parse,
   booking, each plugin, pad, balance, each validation) and the difference.
2. cProfile: one more child loads ``plugins.beancount`` under cProfile
   (``bench/out/<n>/plugins.prof``) and prints, for the plugins, Beancount's
   balance check and validation, what they spend their time in. cProfile
   inflates Python-heavy code about 2x: read its shares, take seconds from (1).

Each load is a fresh process: Beancount's ``validate(extra_validations=...)``
appends to the module-level ``VALIDATIONS`` list, so a second load in one
process would run ``validate_data_types`` twice.
"""

from __future__ import annotations

import argparse
import gc
import json
import pstats
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_plugins import source_digest

ROOT = Path(__file__).resolve().parent.parent
TIMING = re.compile(r"Operation: '(?P<name>.+?)'\s+Time:\s+(?P<ms>\d+) ms")
SKIP = ("beancount.parser.parser",)  # nested inside "parse"
TOP_STAGES = (
    "parse",
    "booking",
    "run_transformations",
    "beancount.ops.validate",
    "total (load_file)",
)
COUNTS = ("entries after load", "full (gen 2) collections")
ROOTS = (  # (file suffix, function): the frames to break down in the profile
    ("beancount_credits/engine.py", "run"),
    ("beancount_credits/engine.py", "transaction"),
    ("beancount_credits/plugins/daily_balances.py", "daily_balances"),
    ("beancount/ops/balance.py", "check"),
    ("beancount/ops/validation.py", "validate"),
)


def child(ledger: str, profile: str | None) -> None:
    """Load one ledger the way bean-check does; print stage timings as JSON.

    Each stage maps to [seconds, seconds of it spent in garbage collection].
    """
    import cProfile

    from beancount import loader
    from beancount.ops import validation

    spans: list[tuple[str, float, float]] = []  # stage, start, end (time.time, as log_time)
    pauses: list[tuple[float, float, int]] = []  # gc start, end, generation
    gc_started = [0.0]

    def log(line: str) -> None:
        match = TIMING.match(line)
        if match:
            end = time.time()
            spans.append((match["name"], end - float(match["ms"]) / 1000, end))

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.time()
        else:
            pauses.append((gc_started[0], time.time(), info["generation"]))

    loader.initialize(use_cache=False)
    profiler = cProfile.Profile() if profile else None
    gc.callbacks.append(on_gc)
    started = time.time()
    if profiler:
        profiler.enable()
    entries, errors, _ = loader.load_file(
        ledger, log_timings=log, extra_validations=validation.HARDCORE_VALIDATIONS
    )
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    spans.append(("total (load_file)", started, time.time()))
    gc.callbacks.remove(on_gc)
    if errors:
        raise SystemExit(f"{ledger}: {len(errors)} errors, first: {errors[0].message}")
    stages: dict[str, list[float]] = {}
    for name, start, end in spans:
        in_gc = sum(max(0.0, min(end, b) - max(start, a)) for a, b, _gen in pauses)
        seconds, gc_seconds = stages.get(name, [0.0, 0.0])
        stages[name] = [seconds + end - start, gc_seconds + in_gc]
    full = sum(1 for *_span, generation in pauses if generation == 2)
    stages["entries after load"] = [len(entries), 0.0]
    stages["full (gen 2) collections"] = [full, 0.0]
    json.dump(stages, sys.stdout)


def load(ledger: Path, profile: Path | None = None) -> dict[str, list[float]]:
    command = [sys.executable, __file__, "--child", str(ledger)]
    if profile:
        command += ["--profile", str(profile)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def stage_table(out: Path, runs: int) -> None:
    samples: dict[str, list[dict[str, list[float]]]] = {"plain": [], "plugins": []}
    for run in range(1, runs + 1):
        for name in samples:
            samples[name].append(load(out / f"{name}.beancount"))
            print(f"run {run} {name} done", file=sys.stderr, flush=True)
    keys = [key for key in samples["plugins"][0] if not key.startswith(SKIP)]

    def median(name: str, key: str, column: int) -> float:
        return statistics.median(run.get(key, [0.0, 0.0])[column] for run in samples[name])

    print(f"Loader stages, median of {runs} interleaved runs each (seconds; GC: part of it")
    print("spent in garbage collection):\n")
    print("| stage | plain | (GC) | plugins | (GC) | extra | (GC) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key in keys:
        plain, plain_gc, plugins, plugins_gc = (
            median(name, key, column) for name in samples for column in (0, 1)
        )
        if key in COUNTS:
            print(f"| {key} | {plain:.0f} | | {plugins:.0f} | | {plugins - plain:+.0f} | |")
            continue
        label = key if key in TOP_STAGES else f"- {key.removeprefix('function: ')}"
        print(
            f"| {label} | {plain:.2f} | {plain_gc:.2f} | {plugins:.2f} | {plugins_gc:.2f} "
            f"| {plugins - plain:+.2f} | {plugins_gc - plain_gc:+.2f} |"
        )


def profile_table(out: Path) -> None:
    prof = out / "plugins.prof"
    load(out / "plugins.beancount", prof)
    stats = pstats.Stats(str(prof))
    stats.calc_callees()
    raw = stats.stats  # type: ignore[attr-defined]
    callees = stats.all_callees  # type: ignore[attr-defined]
    total = max(entry[3] for entry in raw.values())
    print(f"\ncProfile of loading plugins.beancount ({total:.1f} s under the profiler, {prof}):")
    for suffix, function in ROOTS:
        frame = next(key for key in raw if key[0].endswith(suffix) and key[2] == function)
        _cc, calls, own, cumulative, _callers = raw[frame]
        print(f"\n{suffix}:{function}  {cumulative:.2f} s cumulative ", end="")
        print(f"({own:.2f} s own), {calls} call(s)")
        edges = sorted(callees.get(frame, {}).items(), key=lambda item: -item[1][3])
        for (filename, line, name), (_cc, count, _tt, spent) in edges:
            if spent < 0.02 * cumulative:
                continue
            where = filename.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
            share = spent / cumulative
            print(f"  {spent:6.2f} s {share:4.0%}  {count:7d}x  {where}:{line}({name})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.profile)
        return
    out = ROOT / "bench" / "out" / str(args.transactions)
    if not (out / "body.beancount").exists():
        generate = [sys.executable, str(ROOT / "bench" / "generate.py")]
        subprocess.run([*generate, f"--transactions={args.transactions}"], check=True)
    digest = source_digest()
    print(f"beancount_credits/*.py sha256 {digest}\n")
    stage_table(out, args.runs)
    if not args.no_profile:
        profile_table(out)
    if source_digest() != digest:
        print("\nWARNING: beancount_credits changed during the runs; the figures mix versions.")


if __name__ == "__main__":
    main()
