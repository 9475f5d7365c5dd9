"""Where the plugins' extra CPU goes, per loader stage, for two versions side by side.

    .venv/bin/python bench/stage_cpu.py --base c36801a --runs 1

Each run loads ``plain``, ``plugins``, ``logged-plain`` and ``logged-plugins``
(``bench/out/<n>/``, made by ``bench_versions.py`` or ``bench_plugins.py
--logged``) in a fresh process per version (base: the package at ``--base``
extracted as ``bench_versions.py`` does; head: the working tree), the way
``bean-check`` does (``extra_validations`` as bean-check's), and records the
CPU time (``time.process_time``) of every stage Beancount's loader times
(parse, booking, each plugin with Beancount's sort after it, pad, balance,
each validation) and the part of it spent in the cyclic garbage collector
(``gc.callbacks``), with the number of full collections. Prints per ledger
and version the medians, and the extra of the plugins ledgers over their
plain ledgers by stage: what the plugins cost themselves, what Beancount's
own checking of the assertions they generate costs (``beancount.ops.balance``
and the validations), and where garbage collection lands.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_versions import extract  # noqa: E402

CHILD = """
import contextlib, gc, json, sys, time
sys.path.insert(0, sys.argv[2])
import beancount_credits
assert beancount_credits.__file__.startswith(sys.argv[2]), beancount_credits.__file__
from beancount import loader
from beancount.ops import validation
from beancount.utils import misc_utils

collector = [0.0, 0]  # CPU seconds in gc, full collections
started = [0.0]

def on_gc(phase, info):
    if phase == "start":
        started[0] = time.process_time()
    else:
        collector[0] += time.process_time() - started[0]
        collector[1] += info["generation"] == 2

stages = {}

@contextlib.contextmanager
def log_time(name, log_timings, indent=0):
    cpu, in_gc, full = time.process_time(), collector[0], collector[1]
    yield
    stages[name] = (time.process_time() - cpu, collector[0] - in_gc, collector[1] - full)

misc_utils.log_time = log_time  # the loader's own stage timer, measuring CPU
gc.callbacks.append(on_gc)
loader.initialize(use_cache=False)
cpu = time.process_time()
entries, errors, _ = loader.load_file(
    sys.argv[1], log_timings=lambda line: None, extra_validations=validation.HARDCORE_VALIDATIONS
)
stages["total (load_file)"] = (time.process_time() - cpu, collector[0], collector[1])
if errors:
    raise SystemExit(f"{len(errors)} errors: {errors[0].message}")
print(json.dumps(stages))
"""
LEDGERS = ("plain", "plugins", "logged-plain", "logged-plugins")
SKIP = ("beancount.parser.parser",)  # nested inside "parse"


def load(ledger: Path, folder: Path) -> dict[str, list[float]]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ledger), str(folder)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare with")
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    out = ROOT / "bench" / "out" / str(args.transactions)
    if not (out / "logged-plugins.beancount").exists():
        raise SystemExit(f"{out}: run bench_versions.py first (it writes the logged ledgers)")
    versions = {"base": extract(args.base), "head": ROOT}
    samples: dict[tuple[str, str], list[dict[str, list[float]]]] = {}
    for run in range(1, args.runs + 1):
        for version, folder in versions.items():
            for name in LEDGERS:
                samples.setdefault((name, version), []).append(
                    load(out / f"{name}.beancount", folder)
                )
            print(f"run {run} {version} done", file=sys.stderr, flush=True)

    def median(name: str, version: str, stage: str, column: int) -> float:
        runs = samples[name, version]
        return statistics.median(run.get(stage, [0.0, 0.0, 0])[column] for run in runs)

    print(
        f"\nLoader stages, CPU seconds (median of {args.runs}); in brackets the part in "
        "garbage collection; `+` the plugins ledger over its plain ledger. Base "
        f"{args.base}, head = working tree; {out.relative_to(ROOT)}.\n"
    )
    stages = [stage for stage in samples["plugins", "head"][0] if not stage.startswith(SKIP)] + [
        stage for stage in samples["plain", "head"][0] if stage.startswith("function")
    ]
    stages = list(dict.fromkeys(stages))
    header = "| stage |"
    rule = "|---|"
    for version in versions:
        header += f" {version}: raw + | {version}: logged + |"
        rule += "---:|---:|"
    print(header)
    print(rule)
    for stage in stages:
        row = f"| {stage.removeprefix('function: ')} |"
        for version in versions:
            for plain, plugins in (("plain", "plugins"), ("logged-plain", "logged-plugins")):
                extra = median(plugins, version, stage, 0) - median(plain, version, stage, 0)
                extra_gc = median(plugins, version, stage, 1) - median(plain, version, stage, 1)
                row += f" {extra:+.2f} ({extra_gc:+.2f}) |"
        print(row)
    print("\n| ledger | version | CPU s | in GC s | full collections |")
    print("|---|---|---:|---:|---:|")
    for name in LEDGERS:
        for version in versions:
            total = "total (load_file)"
            print(
                f"| {name} | {version} | {median(name, version, total, 0):.2f} "
                f"| {median(name, version, total, 1):.2f} | {median(name, version, total, 2):.0f} |"
            )
    print(f"\nCommand: .venv/bin/python bench/stage_cpu.py --base {args.base} --runs {args.runs}")


if __name__ == "__main__":
    main()
