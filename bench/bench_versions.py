"""Two versions of the package side by side: the same commands, interleaved, CPU of each child.

    .venv/bin/python bench/bench_versions.py --base REV [--runs 3] [--transactions 100000]

The package at git revision REV is extracted (``git archive``) into
``bench/out/versions/<REV>/``; the working tree's package is "head". Every
measurement is a fresh child process whose working folder is that version's
folder: ``python -c`` puts the working folder first on ``sys.path``, before
the editable install, so ``import beancount_credits`` takes that version (the
child prints the file it imported, and the bench checks it). Runs alternate
base, head, head, base ... so a noisy machine slows both alike; figures are
CPU seconds (user + system of the child, ``os.wait4``) with wall time beside.

Each command runs for base and head back to back (the first of the pair
alternating by run); the table gives the ratio of the medians and the median
of the per-run ratios with their spread.

Measured on the bench ledger (``bench/generate.py``, made if missing):

- ``bean-check -C`` of ``plugins.beancount`` (raw) and of
  ``logged-plugins.beancount`` (its plugins' output written into the text, as
  close-day leaves it), and of the plain ledgers without plugins: the floor;
- Fava's load with the credits extension (``create_app(load=True)``);
- the Credit page's requests after that load (``bench_fava.page_times``),
  first request and median of the next ones, CPU of the serving process;
- same output: each version loads ``plugins.beancount``,
  ``logged-plugins.beancount`` and (when ``bench_allowances.py`` made it)
  ``plugins-allowances.beancount`` once more and writes what the load gives
  (every entry as Beancount's printer prints it, with its metadata keys the
  printer leaves out, every error with its file and line, and the expire
  plugin's grant state kept on the options map) to
  ``bench/out/versions/<version>-<ledger>.txt``; the bench stops if base and
  head differ.

Prints Markdown tables for bench/RESULTS.md: per figure base, head and
head / base.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_fava import write_ledgers  # noqa: E402
from bench_plugins import ensure_ledger, write_logged  # noqa: E402
from child import timed  # noqa: E402

WHERE = (
    "import beancount_credits, sys; print('package:', beancount_credits.__file__, file=sys.stderr)"
)
CHECK = (
    WHERE
    + """
from beancount.scripts.check import main
sys.argv = ["bean-check", "-C", sys.argv[1]]
main()
"""
)
FAVA_LOAD = (
    WHERE
    + """
from fava.application import create_app
create_app([sys.argv[1]], load=True, read_only=True)
"""
)
OUTPUT = (
    WHERE
    + """
import dataclasses
from beancount import loader
from beancount.parser import printer
from beancount_credits.engine import loadstamp
loader.initialize(use_cache=False)
entries, errors, options = loader.load_file(sys.argv[1])
with open(sys.argv[2], "w") as out:
    for entry in entries:
        out.write(printer.format_entry(entry))
        out.write(f"; meta {sorted(entry.meta.items())!r}\\n")
        for posting in getattr(entry, "postings", None) or ():
            out.write(f"; posting meta {sorted((posting.meta or {}).items())!r}\\n")
    for error in errors:
        out.write(printer.format_error(error))
    result = loadstamp.engine_result(options)
    fields = [field.name for field in dataclasses.fields(result)] if result else []
    out.write(f"engine result {fields}\\n")
    for grant in result.grants.values() if result else ():
        # queued (in the wallet's heap) is the heap's bookkeeping, not the grant's state
        values = [getattr(grant, f.name) for f in dataclasses.fields(grant)
                  if f.name not in ("meta", "queued")]
        out.write(f"{values!r} {grant.meta.get('lineno')}\\n")
    for key, wallet in sorted(result.wallets.items()) if result else ():
        # The open grants in the heap: spent ones leave it lazily (when met)
        heap = sorted(item[2].id for item in wallet.heap if item[2].remaining > 0)
        out.write(f"{key} {wallet.limit} {wallet.available} {wallet.debt} {heap}\\n")
    for name in ("drawdowns", "expiries", "users", "changed_records"):
        out.write(f"{name} {len(getattr(result, name)) if result else None}\\n")
print(len(entries), "entries", len(errors), "errors", file=sys.stderr)
"""
)
PAGE = (
    WHERE
    + """
import json
sys.path.insert(1, sys.argv[2])
from pathlib import Path
from bench_fava import page_times
print(json.dumps(page_times(Path(sys.argv[1]), int(sys.argv[3]))))
"""
)


def extract(rev: str) -> Path:
    """The package at ``rev`` in its own folder (made once)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short=12", rev],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    folder = ROOT / "bench" / "out" / "versions" / commit
    if not (folder / "beancount_credits").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit, "beancount_credits"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        tar = folder / "package.tar"
        tar.write_bytes(archive)
        with tarfile.open(tar) as opened:
            opened.extractall(folder, filter="data")
        tar.unlink()
    return folder


def run_child(script: str, folder: Path, *args: str) -> tuple[float, float, str]:
    """(CPU s, wall s, stdout) of one child run in ``folder``'s version."""
    run = timed([sys.executable, "-c", script, *args], cwd=folder)
    expected = str(folder / "beancount_credits" / "__init__.py")
    if f"package: {expected}" not in run.output:
        raise SystemExit(f"the child did not import {expected}:\n{run.output[-1000:]}")
    return run.cpu, run.wall, run.output


def same_output(versions: dict[str, Path], out: Path) -> None:
    """Stop unless every version's load of the plugins ledgers gives the same output."""
    for ledger in ("plugins", "logged-plugins", "plugins-allowances"):
        if not (out / f"{ledger}.beancount").exists():
            continue  # plugins-allowances: made by bench_allowances.py
        written = {}
        for version, folder in versions.items():
            written[version] = ROOT / "bench" / "out" / "versions" / f"{version}-{ledger}.txt"
            _spent, _elapsed, output = run_child(
                OUTPUT, folder, str(out / f"{ledger}.beancount"), str(written[version])
            )
            counts = output.strip().splitlines()[-1]
            print(f"{ledger}.beancount, {version}: {counts}", file=sys.stderr, flush=True)
        texts = {version: path.read_bytes() for version, path in written.items()}
        if len(set(texts.values())) != 1:
            raise SystemExit(f"{ledger}.beancount: the versions' outputs differ: diff {written}")
        size = len(texts["head"]) / 2**20
        print(
            f"\nSame output, {ledger}.beancount: base and head identical ({size:.1f} MiB: "
            "printer text and metadata of every entry and posting, errors, grant state)"
        )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare with")
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma list of: check, fava, page, same")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    out = ROOT / "bench" / "out" / str(args.transactions)
    ensure_ledger(out, args)
    write_logged(out)
    _plain, extended = write_ledgers(out)
    versions = {"base": extract(args.base), "head": ROOT}

    cpu: dict[tuple[str, str], list[float]] = {}
    wall: dict[tuple[str, str], list[float]] = {}
    checks = ["plain", "plugins", "logged-plain", "logged-plugins"]
    commands = (
        [] if "check" in skip else [(name, CHECK, out / f"{name}.beancount") for name in checks]
    )
    if "fava" not in skip:
        commands.append(("fava load", FAVA_LOAD, extended))
    for run in range(1, args.runs + 1):
        # Each command's two versions back to back (the pair sees the same
        # load on a shared machine), the first of the pair alternating by run.
        order = list(versions.items()) if run % 2 else list(versions.items())[::-1]
        for name, script, ledger in commands:
            for version, folder in order:
                spent, elapsed, _output = run_child(script, folder, str(ledger))
                cpu.setdefault((name, version), []).append(spent)
                wall.setdefault((name, version), []).append(elapsed)
        print(f"run {run} done", file=sys.stderr, flush=True)

    print(
        f"\nLedger: bench/out/{args.transactions} ({args.transactions} transactions, "
        f"{args.users} users, seed {args.seed}); base {args.base} "
        f"({versions['base'].name}), head = working tree; {args.runs} interleaved runs"
    )
    print(
        "\n| command | base CPU (median) | head CPU (median) | head / base "
        "| median of per-run ratios (spread) | wall base / head |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    names = [name for name, version in cpu if version == "base"]
    for name in dict.fromkeys(names):
        base, head = median(cpu[name, "base"]), median(cpu[name, "head"])
        walls = f"{median(wall[name, 'base']):.2f} / {median(wall[name, 'head']):.2f} s"
        pairs = [h / b for b, h in zip(cpu[name, "base"], cpu[name, "head"], strict=True)]
        spread = f"{min(pairs):.3f} .. {max(pairs):.3f}"
        print(
            f"| {name} | {base:.2f} s | {head:.2f} s | **{head / base:.3f}** "
            f"| {median(pairs):.3f} ({spread}) | {walls} |"
        )
    if "check" not in skip:
        for version in versions:
            raw = median(cpu["plugins", version]) / median(cpu["plain", version])
            logged = median(cpu["logged-plugins", version]) / median(cpu["logged-plain", version])
            print(
                f"\n{version}: plugins / plain = {raw:.3f} raw, {logged:.3f} logged (CPU)", end=""
            )
        print()
        # What no plugin can save: Beancount's own parsing and checking of the
        # written log (the balance assertions and expiries close-day writes),
        # the same work the plugins' generated entries cost on the raw ledger.
        floors = [
            median(cpu["logged-plain", version]) / median(cpu["plain", version])
            for version in versions
        ]
        print(
            "floor: logged-plain / plain = "
            + ", ".join(f"{floor:.3f}" for floor in floors)
            + " (CPU; base, head: the same command, no plugins, so only the noise differs)"
        )

    if "same" not in skip:
        same_output(versions, out)

    if "page" not in skip:
        pages: dict[str, list[list]] = {}
        for version, folder in versions.items():
            _spent, _elapsed, output = run_child(
                PAGE, folder, str(extended), str(ROOT / "bench"), str(args.requests)
            )
            pages[version] = json.loads(output.strip().splitlines()[-1])
        print("\n| page request (after the load) | first CPU base / head | next CPU base / head |")
        print("|---|---:|---:|")
        for before, after in zip(pages["base"], pages["head"], strict=True):
            print(
                f"| {after[0]} | {before[3]:.3f} / {after[3]:.3f} s "
                f"| {before[4]:.3f} / {after[4]:.3f} s |"
            )
    print(
        f"\nCommand: .venv/bin/python bench/bench_versions.py --base {args.base} "
        f"--transactions {args.transactions} --runs {args.runs} --requests {args.requests}"
    )


if __name__ == "__main__":
    main()
