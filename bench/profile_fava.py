"""Where the Credit Balance History page spends its server time: a cProfile per view.

    .venv/bin/python bench/profile_fava.py [--top 25] [--views all,user,alerts,past]

Loads the 100k bench ledger with the extension in Fava once (as bench_fava.py
does; generates ``bench/out/100000/`` if missing), profiles the extension's
``after_load_file`` on the loaded ledger, then each view's first request and
a second one, and prints the functions with the most cumulative time.
cProfile inflates Python-heavy code about 2x: read its shares, take seconds
from bench_fava.py.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_fava import write_ledgers  # noqa: E402
from bench_plugins import ensure_ledger  # noqa: E402


def show(profile: cProfile.Profile, top: int) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    text = out.getvalue()
    print(text[text.find("   ncalls") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--views", default="load,all,user,alerts,past,late")
    args = parser.parse_args()
    out = ROOT / "bench" / "out" / str(args.transactions)
    ensure_ledger(out, args)
    _plain, extended = write_ledgers(out)
    views = args.views.split(",")

    from fava.application import create_app

    started = time.perf_counter()
    app = create_app([str(extended.resolve())], load=True, read_only=True)
    print(f"create_app: {time.perf_counter() - started:.2f} s", flush=True)
    slug, fava_ledger = next(iter(app.config["LEDGERS"].items()))
    extension = fava_ledger.extensions.get_extension("CreditBalanceHistory")
    if "load" in views:
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.runcall(extension.after_load_file)
        print(f"\n== after_load_file: {time.perf_counter() - started:.2f} s (profiled)")
        show(profile, args.top)
    user_id = "org-66"
    last = max(entry.date for entry in extension.credits.entries)
    base = f"/{slug}/extension/CreditBalanceHistory/"
    requests = {
        "all": (base + "users", {}),
        "user": (base + "user", {"user_id": user_id}),
        "alerts": (base + "alerts", {}),
        "past": (base + "users", {"time": f"{last.year - 1:04d}-{last.month:02d}"}),
        "pastuser": (base + "user", {"user_id": user_id, "time": f"{last.year - 1:04d}-01"}),
        "late": (base + "users", {"time": f"{last.year - 1:04d}-10"}),
    }
    client = app.test_client()
    for name in views:
        if name not in requests:
            continue
        url, params = requests[name]
        for attempt in ("first", "second"):
            profile = cProfile.Profile()
            started = time.perf_counter()
            response = profile.runcall(client.get, url, query_string=params)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.data[:300]
            print(f"\n== {name} {params} ({attempt}): {elapsed:.2f} s (profiled)")
            show(profile, args.top)


if __name__ == "__main__":
    main()
