"""``bean-credits report daily`` against the BQL query selecting the running ``balance``.

    .venv/bin/python bench/bench_daily.py --transactions 100000 --runs 3 --sample 10

Uses the bench ledger of ``generate.py`` (generated if missing), loaded once
with the plugins (``plugins.beancount``). Both sides then work on the same
loaded entries, in one process, interleaved, so a noisy machine slows both
alike. Per run and per sampled user (``--sample`` users spread over the id
range), each side produces that user's balance history as text:

- daily: ``reports.run("daily", ...)`` for the user over the ledger's whole
  range (one row per day, balances carried forward), rendered with
  ``render_text`` as ``bean-credits report daily LEDGER --user U`` prints it;
- BQL: ``SELECT date, balance WHERE account = '<wallet>'`` (the running
  ``balance`` column over the same wallet's postings) through
  ``beanquery.query.run_query``, rendered with beanquery's text renderer, as
  ``bean-query LEDGER "<query>"`` prints it.

Then once per run the whole ledger: the daily report for every user against
``SELECT date, account, balance WHERE account ~ '^Assets:Credits:Users:'``
(the same postings; note BQL's ``balance`` there is the running total of all
the selected rows, not per user: BQL has no per-account running balance short
of one query per account).

Loading the ledger is common to both commands and not timed here; the script
prints the load time so the end-to-end picture can be read off too.
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
import time
from pathlib import Path

from bench_plugins import ensure_ledger  # the same generated ledger, made the same way

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from beanquery import query as bql  # noqa: E402
from beanquery import query_render  # noqa: E402

from beancount_credits.ledger import load  # noqa: E402
from beancount_credits.reports import Filters, common, run  # noqa: E402
from beancount_credits.reports.render import render_text  # noqa: E402

TARGET = 10.0


def time_daily(ledger, user_id, through) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    out = io.StringIO()
    render_text(run("daily", ledger, Filters(user=user_id, date_to=through)), out)
    return time.perf_counter() - started, out.getvalue().count("\n")


def time_bql(ledger, where: str) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    columns, rows = bql.run_query(
        ledger.entries, ledger.options, f"SELECT date, account, balance WHERE {where}"
    )
    out = io.StringIO()
    query_render.render_text(columns, rows, ledger.options["dcontext"], out)
    return time.perf_counter() - started, len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=10, help="users timed one by one")
    args = parser.parse_args()
    out = ROOT / "bench" / "out" / str(args.transactions)
    ensure_ledger(out, args)
    started = time.perf_counter()
    ledger = load(out / "plugins.beancount")  # pickle cache: the load is not what is compared
    load_time = time.perf_counter() - started
    if ledger.errors:
        raise SystemExit(f"{len(ledger.errors)} errors, first: {ledger.errors[0].message}")
    ledger.grants  # noqa: B018 -- not used by either side; keep it out of the timings anyway
    through = common.last_date(ledger)
    users = sorted(ledger.users.values(), key=lambda user: user.user_id)
    step = max(1, len(users) // args.sample)
    sample = users[::step][: args.sample]

    one: dict[str, list[float]] = {"daily": [], "bql": []}
    whole: dict[str, list[float]] = {"daily": [], "bql": []}
    rows = {"daily one": 0, "bql one": 0, "daily all": 0, "bql all": 0}
    for _ in range(args.runs):
        daily_total = bql_total = 0.0
        for user in sample:
            seconds, count = time_daily(ledger, user.user_id, through)
            daily_total += seconds
            rows["daily one"] += count
            seconds, count = time_bql(ledger, f"account = '{user.account}'")
            bql_total += seconds
            rows["bql one"] += count
        one["daily"].append(daily_total)
        one["bql"].append(bql_total)
        started = time.perf_counter()
        buffer = io.StringIO()
        render_text(run("daily", ledger, Filters(date_to=through)), buffer)
        whole["daily"].append(time.perf_counter() - started)
        rows["daily all"] = buffer.getvalue().count("\n")
        seconds, rows["bql all"] = time_bql(ledger, "account ~ '^Assets:Credits:Users:'")
        whole["bql"].append(seconds)

    def line(label: str, times: dict[str, list[float]], daily_rows: int, bql_rows: int) -> str:
        daily, query = statistics.median(times["daily"]), statistics.median(times["bql"])
        ratios = ", ".join(
            f"{b / d:.1f}" for d, b in zip(times["daily"], times["bql"], strict=True)
        )
        return (
            f"| {label} | {daily:.2f} s ({daily_rows} lines) | {query:.2f} s ({bql_rows} rows) "
            f"| **{query / daily:.1f}x** ({ratios}) |"
        )

    print(f"ledger: {out / 'plugins.beancount'}, {len(ledger.entries)} entries after the plugins")
    print(
        f"python {platform.python_version()}, load with plugins (common to both): {load_time:.1f} s"
    )
    print(f"range: {common.first_date(ledger)} .. {through}; runs: {args.runs}; target {TARGET}x\n")
    print("| what | daily report (median) | BQL running balance (median) | BQL / daily (per run) |")
    print("|---|---:|---:|---:|")
    per_run = args.runs
    print(
        line(
            f"{len(sample)} users, one by one",
            one,
            rows["daily one"] // per_run,
            rows["bql one"] // per_run,
        )
    )
    print(line("all users at once", whole, rows["daily all"], rows["bql all"]))


if __name__ == "__main__":
    main()
