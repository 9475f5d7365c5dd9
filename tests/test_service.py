"""``bean-credits service`` on loopback, over real HTTP: events in, balances out.

Each test starts the real command (uvicorn) on a free port over a small
ledger (one test uses the demo) and talks to it with httpx: the answers are
checked against ``bean-credits report balances`` and ``bean-check`` on the
files it wrote; a SIGKILL in the middle of a stream of posts, then a restart
and a replay, loses and duplicates nothing.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import DEMO
from servekit import free_port

BIN = Path(sys.executable).parent
TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}
SMALL = """\
plugin "beancount_credits.plugins.expire"
plugin "beancount_credits.plugins.daily_balances"
plugin "beancount_credits.plugins.policy"

2026-01-01 commodity CREDIT
2026-01-01 open Income:Credits:Purchase
2026-01-01 open Income:Credits:Promotion
  expire_after: "30d"
2026-01-01 open Expenses:Credits:Sessions
2026-01-01 open Equity:Credits:Breakage
2026-01-01 open Equity:Credits:Adjustments
2026-01-01 open Assets:Credits:Users:Alice
  user_id: "alice"
2026-01-01 open Assets:Credits:Users:Bob
  user_id: "bob"

2026-11-01 * "Purchase"
  txn_id: "g-1"
  Assets:Credits:Users:Alice  100 CREDIT
  Income:Credits:Purchase
"""


def small_ledger(tmp_path: Path) -> Path:
    root = tmp_path / "ledger"
    root.mkdir()
    main = root / "main.beancount"
    main.write_text(SMALL)
    return main


def stamp(day: int, second: int = 0) -> str:
    return f"2026-11-{day:02d}T10:00:{second:02d}Z"


def purchase(event_id: str, user: str, amount: int, day: int = 20) -> dict[str, Any]:
    return {
        "type": "purchase",
        "id": event_id,
        "timestamp": stamp(day),
        "user": user,
        "amount": amount,
    }


def redeem(event_id: str, user: str, amount: int, day: int = 20) -> dict[str, Any]:
    return {
        "type": "redeem",
        "id": event_id,
        "timestamp": stamp(day),
        "user": user,
        "amount": amount,
        "session": f"s-{event_id}",
    }


class Service:
    """One ``bean-credits service`` process (started by :func:`running`)."""

    def __init__(self, ledger: Path, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [str(BIN / "bean-credits"), "service", str(ledger), "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--verify-every", "0", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                pytest.fail(f"bean-credits service exited ({self.process.returncode}):\n{output}")
            try:
                if httpx.get(self.base + "/v1/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("bean-credits service did not answer within 120 s")
            time.sleep(0.2)
        self.client = httpx.Client(base_url=self.base, headers=AUTH, timeout=120)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


def service_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "BEAN_CREDITS_SERVICE_TOKEN": TOKEN, **extra}


@contextlib.contextmanager
def running(ledger: Path, env: dict[str, str] | None = None, *args: str) -> Iterator[Service]:
    service = Service(ledger, env or service_env(), *args)
    try:
        yield service
    finally:
        service.stop()


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def report_balances(ledger: Path, day: str) -> dict[str, str]:
    """User id -> CREDIT balance, from ``bean-credits report balances --format csv``."""
    text = run("bean-credits", "report", "balances", str(ledger), "--to", day, "--format", "csv")
    lines = text.stdout.strip().splitlines()
    header = lines[0].split(",")
    column = header.index("CREDIT")
    return {line.split(",")[0]: line.split(",")[column] for line in lines[1:]}


def ledger_text(ledger: Path) -> str:
    return "".join(path.read_text() for path in sorted(ledger.parent.rglob("*.beancount")))


def id_counts(ledger: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for found in re.findall(r'txn_id: "([^"]+)"', ledger_text(ledger)):
        counts[found] = counts.get(found, 0) + 1
    return counts


def test_events_in_balances_out_equal_to_the_report(tmp_path: Path) -> None:
    ledger = small_ledger(tmp_path)
    with running(ledger) as service:
        answer = service.client.post("/v1/events", json=purchase("p-1", "bob", 40))
        assert answer.status_code == 201, answer.text
        result = answer.json()["results"][0]
        assert result["status"] == "created"
        assert result["entry"]["file"] == "imports/live-2026-11-20.beancount"
        assert result["balance"]["balances"] == {"CREDIT": "40"}
        batch = [
            redeem("r-1", "alice", 30),
            redeem("r-2", "bob", 15, day=21),
            {"type": "user", "id": "u-carol", "timestamp": stamp(21), "user": "carol"},
            {**purchase("p-2", "carol", 25, day=21), "type": "promotion"},
            redeem("r-3", "carol", 5, day=22),
        ]
        answer = service.client.post("/v1/events", json=batch)
        assert answer.status_code == 201, answer.text
        assert [r["status"] for r in answer.json()["results"]] == ["created"] * 5
        for day in ("2026-11-20", "2026-11-22", "2026-12-30"):
            expected = report_balances(ledger, day)
            for user in ("alice", "bob", "carol"):
                got = service.client.get(f"/v1/users/{user}/balance", params={"date": day})
                assert got.status_code == 200, got.text
                assert got.json()["balances"].get("CREDIT", "0") == expected[user], (user, day)
        # The promotion expires after 30 days: the grants listing says when.
        grants = service.client.get("/v1/users/carol/grants", params={"date": "2026-11-22"}).json()
        assert [(g["id"], g["remaining"], g["expires"]) for g in grants["grants"]] == [
            ("p-2", "20", "2026-12-21")
        ]
        statement = service.client.get(
            "/v1/users/bob/statement", params={"from": "2026-11-01", "to": "2026-11-30"}
        ).json()
        assert [row[0] for row in statement["rows"]] == ["p-1", "r-2"]
        assert statement["rows"][-1][-1] == "25"
        for user in ("alice", "carol"):
            # The statement report's own rows, as bean-credits report prints them.
            answer = service.client.get(f"/v1/users/{user}/statement", params={"to": "2026-12-30"})
            command = ["report", "statement", str(ledger), "--user", user, "--to", "2026-12-30"]
            text = run("bean-credits", *command, "--format", "csv").stdout
            rows = list(csv.reader(io.StringIO(text)))[1:]
            assert answer.json()["rows"] == rows
        verify = service.client.post("/v1/admin/verify").json()
        assert verify["equal"] is True, verify
        assert service.client.get("/v1/users/nobody/balance").status_code == 404
    run("bean-check", str(ledger))


def test_same_event_again_is_200_another_under_its_id_409_a_bad_one_422(tmp_path: Path) -> None:
    ledger = small_ledger(tmp_path)
    with running(ledger) as service:
        first = service.client.post("/v1/events", json=purchase("p-1", "bob", 40))
        assert first.status_code == 201
        again = service.client.post("/v1/events", json=purchase("p-1", "bob", 40))
        assert again.status_code == 200
        assert again.json()["results"][0]["status"] == "duplicate"
        assert again.json()["results"][0]["entry"] == first.json()["results"][0]["entry"]
        before = ledger_text(ledger)
        other = service.client.post("/v1/events", json=purchase("p-1", "bob", 41))
        assert other.status_code == 409
        assert other.json()["problems"][0]["field"] == "id"
        bad = [
            purchase("p-2", "bob", 5),
            {**purchase("p-3", "bob", 5), "amount": "ten"},
            redeem("r-1", "alice", 1000),
        ]
        answer = service.client.post("/v1/events", json=bad)
        assert answer.status_code == 422
        problems = answer.json()["problems"]
        assert [(p["index"], p["id"], p["field"]) for p in problems] == [(1, "p-3", "amount")]
        assert "'ten' is not a number" in problems[0]["reason"]
        overdraw = service.client.post("/v1/events", json=[purchase("p-2", "bob", 5), bad[2]])
        assert overdraw.status_code == 422
        problem = overdraw.json()["problems"][0]
        assert (problem["index"], problem["field"]) == (1, "amount")
        assert "exceeds the 100 CREDIT available" in problem["reason"]
        for body in (b"{", b"[1]", b"[]", "\udcff".encode("utf-8", "surrogateescape")):
            answer = service.client.post("/v1/events", content=body, headers=JSON)
            assert answer.status_code == 422, body
        # Only JSON: a web page cannot post text/plain to a local service and be heard.
        plain = {"Content-Type": "text/plain"}
        body = json.dumps(purchase("p-5", "bob", 1))
        assert service.client.post("/v1/events", content=body, headers=plain).status_code == 415
        # A hostile description is data: escaped in the text, nothing else written.
        hostile = {**purchase("p-4", "bob", 1), "description": 'x"\n2026-01-01 open Assets:Evil'}
        assert service.client.post("/v1/events", json=hostile).status_code == 201
        after = ledger_text(ledger)
        assert "p-2" not in after and "r-1" not in after
        assert len(after) > len(before)
        assert service.client.post("/v1/admin/verify").json()["equal"] is True
    run("bean-check", str(ledger))
    assert "open Assets:Evil" not in run("bean-query", str(ledger), "SELECT account").stdout


def test_the_token_is_asked_everywhere_but_health(tmp_path: Path) -> None:
    ledger = small_ledger(tmp_path)
    with running(ledger) as service:
        assert httpx.get(service.base + "/v1/health").status_code == 200
        for method, path in (
            ("GET", "/v1/users/alice/balance"),
            ("GET", "/v1/users/alice/grants"),
            ("GET", "/v1/users/alice/statement"),
            ("POST", "/v1/events"),
            ("POST", "/v1/admin/verify"),
        ):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                answer = httpx.request(method, service.base + path, headers=headers, json={})
                assert answer.status_code == 401, (method, path, headers)
        openapi = httpx.get(service.base + "/v1/openapi.json").json()
        assert "/v1/events" in openapi["paths"]
    env = {k: v for k, v in os.environ.items() if k != "BEAN_CREDITS_SERVICE_TOKEN"}
    with running(ledger, env) as service:
        # No token: any local process may call it, but only by a loopback name.
        assert httpx.get(service.base + "/v1/users/alice/balance").status_code == 200
        rebound = httpx.get(service.base + "/v1/health", headers={"Host": "evil.example"})
        assert rebound.status_code == 400
    refused = subprocess.run(
        [str(BIN / "bean-credits"), "service", str(ledger), "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2  # not done: an input error (the README's exit statuses)
    assert "without a token" in refused.stderr


def test_a_webhook_secret_asks_for_a_standard_webhooks_signature(tmp_path: Path) -> None:
    from standardwebhooks.webhooks import Webhook

    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    ledger = small_ledger(tmp_path)
    env = service_env(BEAN_CREDITS_SERVICE_WEBHOOK_SECRET=secret)
    with running(ledger, env) as service:
        body = json.dumps(purchase("p-1", "bob", 3))
        assert service.client.post("/v1/events", content=body, headers=JSON).status_code == 401
        now = datetime.datetime.now(datetime.UTC)
        signature = Webhook(secret).sign("msg-1", now, body)
        headers = {**JSON, "webhook-id": "msg-1", "webhook-timestamp": str(int(now.timestamp()))}
        forged = {**headers, "webhook-signature": "v1,AAAA"}
        assert service.client.post("/v1/events", content=body, headers=forged).status_code == 401
        signed = {**headers, "webhook-signature": signature}
        assert service.client.post("/v1/events", content=body, headers=signed).status_code == 201


def test_concurrent_clients_and_a_close_day_then_bean_check_and_each_id_once(
    tmp_path: Path,
) -> None:
    ledger = small_ledger(tmp_path)
    with running(ledger) as service:
        failures: list[str] = []

        def client(name: str) -> None:
            with httpx.Client(base_url=service.base, headers=AUTH, timeout=120) as http:
                for number in range(12):
                    day = 21 if number < 6 else 22
                    events = [purchase(f"{name}-p{number}", "bob", 2, day)]
                    if number % 3 == 0:
                        events.append(redeem(f"{name}-r{number}", "bob", 1, day))
                    answer = http.post("/v1/events", json=events)
                    if answer.status_code != 201:
                        failures.append(f"{name} {number}: {answer.status_code} {answer.text}")

        threads = [threading.Thread(target=client, args=(f"c{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        # The daily job in between, under the same lock: the service notices and reloads.
        run("bean-credits", "close-day", str(ledger), "--date", "2026-11-20")
        for thread in threads:
            thread.join()
        assert not failures, failures
        expected = report_balances(ledger, "2026-11-30")
        got = service.client.get("/v1/users/bob/balance", params={"date": "2026-11-30"}).json()
        assert got["balances"]["CREDIT"] == expected["bob"]
        assert service.client.post("/v1/admin/verify").json()["equal"] is True
    run("bean-check", str(ledger))
    counts = id_counts(ledger)
    ids = [f"c{n}-p{k}" for n in range(4) for k in range(12)]
    ids += [f"c{n}-r{k}" for n in range(4) for k in range(0, 12, 3)]
    assert {i: counts.get(i, 0) for i in ids} == dict.fromkeys(ids, 1)
    assert expected["bob"] == str(4 * 12 * 2 - 4 * 4)


def test_sigkill_during_a_stream_then_restart_and_replay_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    ledger = small_ledger(tmp_path)
    events = [purchase(f"k-{n}", "bob" if n % 2 else "alice", 1 + n % 3) for n in range(60)]
    acknowledged: set[str] = set()
    for moment in (0.05, 0.3, 0.8):
        service = Service(ledger, service_env())
        stop = threading.Event()

        def stream(service: Service = service, stop: threading.Event = stop) -> None:
            with httpx.Client(base_url=service.base, headers=AUTH, timeout=30) as http:
                for event in events:
                    if stop.is_set():
                        return
                    try:
                        answer = http.post("/v1/events", json=event)
                    except httpx.HTTPError:
                        return  # killed: this one is unacknowledged
                    if answer.status_code in (200, 201):
                        acknowledged.add(event["id"])

        thread = threading.Thread(target=stream)
        thread.start()
        time.sleep(moment)
        service.process.send_signal(signal.SIGKILL)
        service.process.wait(timeout=30)
        stop.set()
        thread.join()
        # Every acknowledged event is in the files already, and none twice.
        counts = id_counts(ledger)
        assert all(counts.get(event_id) == 1 for event_id in acknowledged)
        assert all(count == 1 for count in counts.values())
    # Restart and replay everything: each event exactly once.
    with running(ledger) as service:
        for event in events:
            answer = service.client.post("/v1/events", json=event)
            assert answer.status_code in (200, 201), answer.text
            if event["id"] in acknowledged:
                assert answer.json()["results"][0]["status"] == "duplicate"
        assert service.client.post("/v1/admin/verify").json()["equal"] is True
    counts = id_counts(ledger)
    assert {event["id"]: counts.get(event["id"]) for event in events} == {
        event["id"]: 1 for event in events
    }
    run("bean-check", str(ledger))


def test_another_writer_and_a_back_dated_event_then_verify(tmp_path: Path) -> None:
    ledger = small_ledger(tmp_path)
    with running(ledger) as service:
        assert (
            service.client.post("/v1/events", json=redeem("r-1", "alice", 10, 22)).status_code
            == 201
        )
        # bean-credits import writes while the service runs: the next read sees it.
        events = tmp_path / "events.jsonl"
        events.write_text(json.dumps(purchase("i-1", "alice", 7, 23)) + "\n")
        run("bean-credits", "import", str(ledger), str(events))
        balance = service.client.get("/v1/users/alice/balance", params={"date": "2026-11-30"})
        assert balance.json()["balances"] == {"CREDIT": "97"}
        # A back-dated event: the live pass books it again from the start, same answer.
        answer = service.client.post("/v1/events", json=redeem("r-0", "alice", 3, 10))
        assert answer.status_code == 201, answer.text
        balance = service.client.get("/v1/users/alice/balance", params={"date": "2026-11-30"})
        assert balance.json()["balances"] == {"CREDIT": "94"}
        assert report_balances(ledger, "2026-11-30")["alice"] == "94"
        verify = service.client.post("/v1/admin/verify").json()
        assert verify["equal"] is True, verify
    run("bean-check", str(ledger))


def test_on_the_demo_a_late_event_goes_through_the_importer_and_its_amendment(
    tmp_path: Path,
) -> None:
    root = tmp_path / "demo"
    shutil.copytree(DEMO.parent, root, ignore=shutil.ignore_patterns(".*picklecache", ".bean-*"))
    ledger = root / "main.beancount"
    with running(ledger) as service:
        user = "sara.patel"
        before = service.client.get(f"/v1/users/{user}/balance", params={"date": "2026-11-21"})
        start = int(before.json()["balances"]["CREDIT"])
        live = {**redeem("svc-1", user, 5), "timestamp": "2026-11-21T12:00:00Z"}
        answer = service.client.post("/v1/events", json=live)
        assert answer.status_code == 201, answer.text
        assert answer.json()["results"][0]["entry"]["file"].startswith("imports/live-")
        # A day close-day already logged: bean-credits import's path (full check, amendment).
        late = {**purchase("svc-2", user, 8), "timestamp": "2026-11-15T12:00:00Z"}
        answer = service.client.post("/v1/events", json=late)
        assert answer.status_code == 201, answer.text
        got = service.client.get(f"/v1/users/{user}/balance", params={"date": "2026-11-21"})
        assert int(got.json()["balances"]["CREDIT"]) == start - 5 + 8
        assert report_balances(ledger, "2026-11-21")[user] == str(start - 5 + 8)
        assert service.client.post("/v1/admin/verify").json()["equal"] is True
    run("bean-check", str(ledger))


def test_reads_refuse_bad_parameters_with_a_message_never_a_500(tmp_path: Path) -> None:
    ledger = small_ledger(tmp_path)
    with running(ledger) as service:
        client = service.client
        for path, params, status in (
            ("/v1/users/alice/balance", {"date": "yesterday"}, 422),
            ("/v1/users/alice/balance", {"date": "0001-01-01"}, 200),
            ("/v1/users/alice/balance", {"date": "9999-12-30"}, 200),
            ("/v1/users/alice/grants", {"date": "2026-02-30"}, 422),
            ("/v1/users/alice/statement", {"from": "2026-12-01", "to": "2026-11-01"}, 422),
            ("/v1/users/alice/statement", {"from": "1990-01-01", "to": "1990-02-01"}, 200),
            ("/v1/users/%22%0A/statement", {}, 404),
            ("/v1/users/alice%2Fx/balance", {}, 404),
            ("/v1/nothing", {}, 404),
        ):
            answer = client.get(path, params=params)
            assert answer.status_code == status, (path, params, answer.text)
            assert "error" in answer.json() or status == 200
        assert (
            client.get("/v1/users/alice/balance", params={"date": "0001-01-01"}).json()["balances"]
            == {}
        )
        assert client.put("/v1/events").status_code == 405


def test_a_reversal_in_the_batch_gives_credits_back_before_a_draw_down_of_it(
    tmp_path: Path,
) -> None:
    ledger = small_ledger(tmp_path)
    with running(ledger) as service:
        assert service.client.post("/v1/events", json=redeem("r-1", "alice", 30)).status_code == 201
        reverse = {"type": "reverse", "id": "x-1", "timestamp": stamp(21), "reverses": "r-1"}
        answer = service.client.post("/v1/events", json=[reverse, redeem("r-2", "alice", 95, 21)])
        assert answer.status_code == 201, answer.text
        assert answer.json()["results"][1]["balance"]["balances"] == {"CREDIT": "5"}
        too_much = service.client.post("/v1/events", json=redeem("r-3", "alice", 6, 21))
        assert too_much.status_code == 422
        assert service.client.post("/v1/admin/verify").json()["equal"] is True
    run("bean-check", str(ledger))


def test_an_edit_by_hand_is_seen_and_the_periodic_check_proves_the_state(tmp_path: Path) -> None:
    ledger = small_ledger(tmp_path)
    with running(ledger, None, "--verify-every", "1") as service:
        assert (
            service.client.post("/v1/events", json=redeem("r-1", "alice", 10, 22)).status_code
            == 201
        )
        with ledger.open("a") as handle:  # a person adds a grant in the main file
            handle.write(
                '\n2026-11-23 * "Goodwill"\n  txn_id: "h-1"\n  reason: "support"\n'
                "  Assets:Credits:Users:Alice  4 CREDIT\n  Equity:Credits:Adjustments\n"
            )
        balance = service.client.get("/v1/users/alice/balance", params={"date": "2026-11-30"})
        assert balance.json()["balances"] == {"CREDIT": "94"}
        deadline = time.monotonic() + 120
        while True:
            verified = httpx.get(service.base + "/v1/health").json()["verified"]
            if verified is not None:
                break
            assert time.monotonic() < deadline, "no periodic verification within 120 s"
            time.sleep(0.5)
        assert verified["equal"] is True
