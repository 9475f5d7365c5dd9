"""Where the time goes when our commands load a ledger, with the GC on and paused.

    .venv/bin/python bench/profile_load.py --runs 3                      # bench/out/100000
    .venv/bin/python bench/profile_load.py --ledger bench/out/scale-200000/single/plugins.beancount

Each run is a fresh process that loads the ledger the way the commands do
(``beancount_credits.ledger.incremental``'s steps, which are ``loader._load``'s:
parse, booking, each plugin, each validation; no pickle cache), then indexes
the users and runs the grant engine once more (``Ledger.grants``, what the
reports read). Modes, interleaved run by run:

- ``gc``: the cyclic garbage collector on (Beancount's default: bean-check);
- ``paused``: the collector paused for the load (``incremental.paused_gc``,
  what ``ledger.load`` does);
- ``cached``: ``ledger.load`` from Beancount's pickle cache (written by one
  untimed load first): a repeated CLI run on an unchanged ledger.

``Ledger.grants`` (the engine pass) pauses the collector too; ``gc`` runs that
pass with it on, as before.

Per stage: the median CPU seconds of the child (Beancount's timing log, read
with ``time.process_time``: the machine is shared) and, for ``gc``, the part spent collecting
(``gc.callbacks``, attributed to the innermost stage it ran in). Also each
mode's total, CPU time (user + system of the child, from ``os.wait4``) and peak
RSS. The machine is shared: compare within one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("gc", "paused", "cached")
_TIMING_RE = re.compile(r"Operation: '(.+?)'\s+Time:\s+(\d+) ms")


def child(mode: str, ledger: Path) -> None:
    """One timed load; prints a JSON line of stage -> [seconds, gc seconds]."""
    from beancount.utils import misc_utils

    from beancount_credits import engine
    from beancount_credits import ledger as ledger_lib
    from beancount_credits.ledger import incremental

    # Stages in CPU seconds of this process, not wall time: the machine is shared.
    clock = time.process_time
    misc_utils.time = clock  # Beancount's log_time reads its clock from there

    stages: list[tuple[str, float, float]] = []  # name, start, end
    collections: list[tuple[float, float]] = []
    started_gc: list[float] = []

    def on_gc(phase: str, _info: dict) -> None:
        if phase == "start":
            started_gc.append(clock())
        elif started_gc:
            collections.append((started_gc.pop(), clock()))

    def log_timings(line: str) -> None:
        found = _TIMING_RE.search(line)
        if found:
            end = clock()
            stages.append((found.group(1), end - int(found.group(2)) / 1000, end))

    gc.callbacks.append(on_gc)
    started = clock()
    if mode == "cached":
        loaded = ledger_lib.load(ledger)
        stages.append(("ledger.load (pickle cache)", started, clock()))
    else:
        if mode == "paused":
            with incremental.paused_gc():
                entries, errors, options, _prepared = incremental._load(
                    ledger.resolve(), log_timings
                )
        else:
            entries, errors, options, _prepared = incremental._load(ledger.resolve(), log_timings)
        mark = clock()
        config = ledger_lib.find_config(options)
        users = ledger_lib.index_users(entries, config)
        stages.append(("index users", mark, clock()))
        loaded = ledger_lib.Ledger(ledger, entries, errors, options, config, users)
    mark = clock()
    if mode == "gc":  # the engine pass as it ran before Ledger.grants paused the collector
        result = engine.run(loaded.entries, dataclasses.replace(loaded.config, annotate=False))
    else:
        result = loaded.grants  # the collector paused
    stages.append(("engine again (Ledger.grants)", mark, clock()))
    total = clock() - started
    gc.callbacks.remove(on_gc)
    out: dict[str, list[float]] = {}
    for name, begin, end in stages:  # per-file lines (parse_file) add up
        out.setdefault(name, [0.0, 0.0])[0] += end - begin
    for begin, end in collections:
        inner = [s for s in stages if s[1] <= begin and end <= s[2] + 0.001]
        if inner:
            name = min(inner, key=lambda s: s[2] - s[1])[0]
            out[name][1] += end - begin
    out["total"] = [total, sum(end - begin for begin, end in collections)]
    print(json.dumps({"stages": out, "entries": len(loaded.entries), "grants": len(result.grants)}))


def timed_child(mode: str, ledger: Path) -> dict:
    """One child's stages, with its CPU time and peak RSS from wait4."""
    command = [sys.executable, __file__, "--child", mode, "--ledger", str(ledger)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    out = process.stdout.read()
    err = process.stderr.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{mode} failed:\n{err.decode()[-2000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["cpu"] = usage.ru_utime + usage.ru_stime
    result["rss"] = usage.ru_maxrss // 1024
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ledger", type=Path, help="default: bench/out/100000/plugins.beancount")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.ledger)
        return
    ledger = args.ledger
    if ledger is None:
        sys.path.insert(0, str(ROOT / "bench"))
        from bench_plugins import ensure_ledger

        out = ROOT / "bench" / "out" / "100000"
        ensure_ledger(out, argparse.Namespace(transactions=100_000, users=1_000, seed=1))
        ledger = out / "plugins.beancount"
    subprocess.run(
        [sys.executable, __file__, "--child", "cached", "--ledger", str(ledger)],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # writes the pickle cache
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for run in range(args.runs):
        for mode in MODES:
            results[mode].append(timed_child(mode, ledger))
            print(
                f"run {run + 1} {mode}: {results[mode][-1]['stages']['total'][0]:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    names: list[str] = []
    for mode in MODES:
        for result in results[mode]:
            for name in result["stages"]:
                if name not in names and name != "total":
                    names.append(name)
    names.append("total")

    def median(mode: str, name: str, index: int) -> float | None:
        values = [r["stages"][name][index] for r in results[mode] if name in r["stages"]]
        return statistics.median(values) if values else None

    def cell(value: float | None) -> str:
        return "" if value is None else f"{value:.2f}"

    print(
        f"ledger: {ledger} ({results['gc'][0]['entries']} entries after the load, "
        f"{results['gc'][0]['grants']} grants); {args.runs} runs per mode, medians in seconds"
    )
    print()
    print("| stage | GC on | (of which GC) | GC paused | saved | cached load |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        on, in_gc = median("gc", name, 0), median("gc", name, 1)
        paused, cached = median("paused", name, 0), median("cached", name, 0)
        saved = None if on is None or paused is None else on - paused
        cells = " | ".join(cell(value) for value in (on, in_gc, paused, saved, cached))
        print(f"| {name} | {cells} |")
    print()
    print("| mode | CPU s (median) | peak RSS MiB (max) |")
    print("|---|---:|---:|")
    for mode in MODES:
        cpu = statistics.median(r["cpu"] for r in results[mode])
        rss = max(r["rss"] for r in results[mode])
        print(f"| {mode} | {cpu:.2f} | {rss} |")


if __name__ == "__main__":
    main()
