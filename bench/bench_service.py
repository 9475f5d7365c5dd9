"""The service against the command line on the 100k bench ledger, side by side in one run.

    .venv/bin/python bench/bench_service.py --transactions 100000 --events 300 --runs 3

On a fresh copy of the bench ledger of ``generate.py`` (generated if missing):

1. ``bean-check -C plugins.beancount``: one full load (CPU, peak RSS), the baseline;
2. ``bean-credits import plugins.beancount one.jsonl`` of one event, ``--runs`` times
   (each a new event): what one event costs without the service (CPU of the child);
3. ``bean-credits service plugins.beancount`` (uvicorn on loopback, token set), then over
   HTTP (httpx, one client): ``--events`` single events one after the other (each
   latency, client side: the answer comes once the event is in the files), then
   ``--batches`` batches of 100, then ``--reads`` balance reads of random users;
   the service's CPU time per phase (``/proc/PID/stat``) and its peak RSS
   (``VmHWM``); ``POST /v1/admin/verify`` at the end must say equal, and
   ``bean-check`` of the ledger the service wrote must pass.

Events are purchases and redemptions (never beyond the balance) of the
ledger's users, dated the day after the ledger's last one. Targets (issue 20):
p99 under 50 ms per event, at least 200 events/s in batches, balance reads
p99 under 10 ms. The machine is shared: CPU figures are the ones to compare.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_import import fresh_copy
from bench_plugins import ensure_ledger
from child import timed

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TOKEN = "bench-token"
_USER_RE = re.compile(r'^  user_id: "([^"]+)"', re.M)
_DATE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}) ", re.M)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def memory_mib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    return 0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


class Events:
    """Purchases and small redemptions of the ledger's users, dated after its last day."""

    def __init__(self, body: Path, seed: int) -> None:
        text = body.read_text(encoding="utf-8")
        self.users = _USER_RE.findall(text)
        last = max(_DATE_RE.findall(text))
        self.day = datetime.date.fromisoformat(last) + datetime.timedelta(days=1)
        self.rng = random.Random(seed)
        self.count = 0

    def next(self) -> dict[str, object]:
        self.count += 1
        user = self.rng.choice(self.users)
        stamp = f"{self.day.isoformat()}T12:{self.count // 3600 % 60:02d}:{self.count % 60:02d}Z"
        ident = f"svc-bench-{self.count}"
        if self.count % 2:
            return {"type": "purchase", "id": ident, "user": user, "timestamp": stamp,
                    "amount": 10}  # fmt: skip
        return {"type": "redeem", "id": ident, "user": self.previous, "timestamp": stamp,
                "amount": 3, "session": f"s-{ident}"}  # fmt: skip

    def pair(self) -> list[dict[str, object]]:
        first = self.next()
        self.previous = first["user"]
        return [first, self.next()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="bean-credits import runs")
    parser.add_argument("--events", type=int, default=300, help="single events posted")
    parser.add_argument("--batches", type=int, default=10, help="batches of 100 posted")
    parser.add_argument("--reads", type=int, default=2000, help="balance reads")
    args = parser.parse_args(argv)
    out = ROOT / "bench" / "out" / str(args.transactions)
    ensure_ledger(out, args)
    events = Events(out / "body.beancount", args.seed)
    print(f"ledger {out} ({args.transactions} transactions, {len(events.users)} users)")
    check = [str(BIN / "bean-check"), "-C", "plugins.beancount"]
    with tempfile.TemporaryDirectory(prefix="bench-service-") as scratch:
        work = Path(scratch) / "ledger"
        fresh_copy(out, work)
        baseline = timed(check, work)
        print(f"bean-check: {baseline.cpu:.2f} s CPU, {baseline.rss_mib} MiB")
        imports = []
        for run in range(args.runs):
            one = Path(scratch) / f"one-{run}.jsonl"
            one.write_text(json.dumps(events.pair()[0]) + "\n")
            command = [str(BIN / "bean-credits"), "import", "plugins.beancount", str(one)]
            imports.append(timed(command, work))
            print(f"import of one event: {imports[-1].wall:.2f} s, {imports[-1].cpu:.2f} s CPU")

        env = {**os.environ, "BEAN_CREDITS_SERVICE_TOKEN": TOKEN}
        port = 18000 + os.getpid() % 1000
        started = time.perf_counter()
        process = subprocess.Popen(
            [
                str(BIN / "bean-credits"),
                "service",
                "plugins.beancount",
                "--port",
                str(port),
                "--verify-every",
                "0",
            ],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            while True:
                try:
                    if httpx.get(base + "/v1/health", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
                if process.poll() is not None:
                    raise SystemExit("the service exited")
            startup = time.perf_counter() - started
            startup_cpu = cpu_seconds(process.pid)
            print(f"service up in {startup:.1f} s ({startup_cpu:.1f} s CPU)")
            client = httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
            )
            # Single events, one after the other.
            latencies = []
            cpu0 = cpu_seconds(process.pid)
            begin = time.perf_counter()
            for _ in range(args.events // 2):
                for event in events.pair():
                    tick = time.perf_counter()
                    answer = client.post("/v1/events", json=event)
                    latencies.append(time.perf_counter() - tick)
                    assert answer.status_code == 201, answer.text
            single_wall = time.perf_counter() - begin
            single_cpu = cpu_seconds(process.pid) - cpu0
            # Batches of 100.
            cpu0 = cpu_seconds(process.pid)
            begin = time.perf_counter()
            batch_latencies = []
            for _ in range(args.batches):
                batch = [event for _ in range(50) for event in events.pair()]
                tick = time.perf_counter()
                answer = client.post("/v1/events", json=batch)
                batch_latencies.append(time.perf_counter() - tick)
                assert answer.status_code == 201, answer.text
            batch_wall = time.perf_counter() - begin
            batch_cpu = cpu_seconds(process.pid) - cpu0
            # Balance reads.
            reads = []
            cpu0 = cpu_seconds(process.pid)
            begin = time.perf_counter()
            for _ in range(args.reads):
                user = events.rng.choice(events.users)
                tick = time.perf_counter()
                answer = client.get(f"/v1/users/{user}/balance")
                reads.append(time.perf_counter() - tick)
                assert answer.status_code == 200, answer.text
            read_wall = time.perf_counter() - begin
            read_cpu = cpu_seconds(process.pid) - cpu0
            rss_now = memory_mib(process.pid, "VmRSS")
            rss_peak = memory_mib(process.pid, "VmHWM")
            print(
                f"single p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 "
                f"{percentile(latencies, 0.99) * 1000:.1f} ms; batches "
                f"{100 * args.batches / batch_wall:,.0f} events/s; reads p99 "
                f"{percentile(reads, 0.99) * 1000:.2f} ms; RSS {rss_now}/{rss_peak} MiB",
                flush=True,
            )
            begin = time.perf_counter()
            verify = client.post("/v1/admin/verify", timeout=1800).json()
            verify_wall = time.perf_counter() - begin
            restarts = client.get("/v1/health").json()
            client.close()
        finally:
            process.terminate()
            process.wait(timeout=60)
        after = timed(check, work)
        posted = args.events + 100 * args.batches
        files = sorted(path.name for path in (work / "imports").glob("live-*.beancount"))
        print(f"verify: {verify['equal']} ({verify_wall:.1f} s); bean-check after: ok; {files}")
        assert verify["equal"], verify
        del restarts

    import_cpu = statistics.median(run.cpu for run in imports)
    import_wall = statistics.median(run.wall for run in imports)
    print()
    print(f"| measure ({args.transactions:,} transactions) | figure |")
    print("|---|---:|")
    print(f"| bean-check -C: CPU / peak RSS | {baseline.cpu:.2f} s / {baseline.rss_mib} MiB |")
    print(f"| bean-credits import of one event: CPU (median of {args.runs}) | {import_cpu:.2f} s |")
    print(f"| bean-credits import of one event: wall (median) | {import_wall * 1000:,.0f} ms |")
    print(
        f"| service start (load + warm state): wall / CPU | {startup:.1f} s / {startup_cpu:.1f} s |"
    )
    print(
        f"| one event through the service, {args.events} in a row: p50 / p99 / max | "
        f"{percentile(latencies, 0.5) * 1000:.1f} / {percentile(latencies, 0.99) * 1000:.1f} / "
        f"{max(latencies) * 1000:.1f} ms |"
    )
    print(
        f"| import / service, per event (wall, median) | "
        f"{import_wall / percentile(latencies, 0.5):,.0f}× |"
    )
    print(
        f"| single events sustained: events/s (service CPU per event) | "
        f"{args.events / single_wall:,.0f} ({single_cpu / args.events * 1000:.1f} ms) |"
    )
    print(
        f"| batches of 100 sustained: events/s (service CPU per event; batch p50) | "
        f"{100 * args.batches / batch_wall:,.0f} "
        f"({batch_cpu / (100 * args.batches) * 1000:.2f} ms; "
        f"{percentile(batch_latencies, 0.5) * 1000:.0f} ms) |"
    )
    print(
        f"| balance reads, {args.reads} in a row: reads/s; p50 / p99 | "
        f"{args.reads / read_wall:,.0f}; {percentile(reads, 0.5) * 1000:.2f} / "
        f"{percentile(reads, 0.99) * 1000:.2f} ms "
        f"(service CPU {read_cpu / args.reads * 1000:.2f} ms) |"
    )
    print(
        f"| service memory after {posted} events: RSS / peak | {rss_now} / {rss_peak} MiB "
        f"({rss_peak / baseline.rss_mib:.2f}× bean-check's peak) |"
    )
    print(f"| POST /v1/admin/verify (full load, compare): wall | {verify_wall:.1f} s |")
    print(f"| bean-check -C after the service's writes: CPU | {after.cpu:.2f} s |")


if __name__ == "__main__":
    main()
