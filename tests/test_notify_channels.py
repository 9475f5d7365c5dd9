"""bean-credits notify against real servers on loopback: SMTP (aiosmtpd) and a webhook receiver.

Every test runs the real command: the ledger is loaded, the alerts computed,
the messages sent over sockets and the deliveries recorded through the write
path; the receivers parse what arrived.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult
from notifykit import (
    HookServer,
    append,
    cli,
    copy_ledger,
    free_port,
    hook_env,
    records,
    smtp_env,
    smtp_server,
    topup_failed,
)

from beancount_credits.jobs import channels
from beancount_credits.ledger import load

ALICE_LOW = """2024-03-05 * "Session"
  txn_id: "r-alice-1"
  Assets:Credits:Users:Alice   -250 CREDIT
  Expenses:Credits:Sessions
"""


@pytest.fixture
def hooks():  # type: ignore[no-untyped-def]
    servers: list[HookServer] = []

    def start(script: list | None = None) -> HookServer:
        server = HookServer(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def smtp():  # type: ignore[no-untyped-def]
    controllers = []

    def start(**kwargs):  # type: ignore[no-untyped-def]
        controller, box = smtp_server(**kwargs)
        controllers.append(controller)
        return controller, box

    yield start
    for controller in controllers:
        controller.stop()


def inapp(ledger: Path) -> list[dict]:
    return channels.read_lines(ledger.parent / "outbox" / "notifications.jsonl")


def test_alerts_go_out_on_every_channel_once(tmp_path: Path, hooks, smtp) -> None:  # type: ignore[no-untyped-def]
    hook = hooks()
    controller, box = smtp()
    ledger = copy_ledger(tmp_path, webhook=hook.url)
    append(ledger, "transactions.beancount", ALICE_LOW)
    env = {**smtp_env(controller.port), **hook_env()}
    output = cli("notify", str(ledger), "--date", "2024-03-05", env=env)
    assert "2 alert(s) due, 4 delivery(ies) to make" in output

    # Email: parsed by the SMTP server.
    assert len(box.messages) == 1
    mail = box.messages[0]
    assert mail["To"] == "alice@example.com"
    assert mail["From"] == "credits@example.com"
    assert mail["Subject"] == "Your CREDIT balance is low: 50 left"
    notification_id = mail["X-Credits-Notification-Id"]
    assert mail["Message-ID"] == f"<{notification_id}@bean-credits>"
    body = mail.get_content()
    assert "dropped below 100: you have 50 CREDIT left" in body
    assert "(since 2024-03-05)" in body

    # Webhook: JSON, signed with HMAC-SHA256 of "<timestamp>.<body>".
    assert len(hook.received) == 1
    request = hook.received[0]
    assert request.signed
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Credits-Notification-Id"] == notification_id
    document = request.json
    assert document["id"] == notification_id
    assert document["type"] == "credits.low-balance"
    assert document["user_id"] == "alice"
    assert document["data"] == {
        "user_id": "alice",
        "commodity": "CREDIT",
        "balance": "50",
        "threshold": "100",
        "since": "2024-03-05",
    }

    # In-app: alice's alert, and bob's expiry warning (bob opted out of email and webhook).
    lines = inapp(ledger)
    assert [(line["user_id"], line["type"]) for line in lines] == [
        ("alice", "credits.low-balance"),
        ("bob", "credits.expiring"),
    ]
    assert lines[1]["data"]["window"] == "30" and lines[1]["data"]["days_left"] == "20"

    recorded = records(ledger)
    assert sorted((r["user_id"], r["alert"], r["channel"], r["status"]) for r in recorded) == [
        ("alice", "low-balance", "email", "delivered"),
        ("alice", "low-balance", "inapp", "delivered"),
        ("alice", "low-balance", "webhook", "delivered"),
        ("bob", "expiring", "inapp", "delivered"),
    ]
    assert all(r["date"] == "2024-03-05" for r in recorded)

    # The next run (same day or later) sends nothing again.
    again = cli("notify", str(ledger), "--date", "2024-03-06", env=env)
    assert "0 delivery(ies) to make" in again
    assert len(box.messages) == 1 and len(hook.received) == 1 and len(inapp(ledger)) == 2
    assert len(records(ledger)) == 4


def test_smtp_down_is_recorded_and_retried_on_the_next_run(tmp_path: Path, hooks, smtp) -> None:  # type: ignore[no-untyped-def]
    hook = hooks()
    ledger = copy_ledger(tmp_path, webhook=hook.url)
    append(ledger, "transactions.beancount", ALICE_LOW)
    port = free_port()  # nothing listens there
    env = {**smtp_env(port), **hook_env()}
    output = cli("notify", str(ledger), "--date", "2024-03-05", env=env, code=1)
    assert "failed low-balance" in output and "by email: SMTP 127.0.0.1" in output
    assert "connection refused" in output
    assert "1 delivery(ies) failed (recorded; tried again on the next run)" in output
    failed = [r for r in records(ledger) if r["status"] == "failed"]
    assert [(r["channel"], r["user_id"]) for r in failed] == [("email", "alice")]
    assert "connection refused" in failed[0]["reason"]
    assert len(hook.received) == 1  # the other channels went out

    controller, box = smtp_server(port=port)  # the server is back
    try:
        output = cli("notify", str(ledger), "--date", "2024-03-06", env=env)
    finally:
        controller.stop()
    assert "1 delivery(ies) to make" in output
    assert len(box.messages) == 1 and box.messages[0]["To"] == "alice@example.com"
    assert len(hook.received) == 1  # not sent twice
    email_records = [r for r in records(ledger) if r["channel"] == "email"]
    assert [r["status"] for r in email_records] == ["failed", "delivered"]
    assert email_records[0]["notification"] == email_records[1]["notification"]


def test_webhook_500_then_200_is_retried_within_the_run(tmp_path: Path, hooks) -> None:  # type: ignore[no-untyped-def]
    hook = hooks([500])
    ledger = copy_ledger(tmp_path, webhook=hook.url)
    append(ledger, "transactions.beancount", ALICE_LOW)
    cli("notify", str(ledger), "--date", "2024-03-05", env=hook_env())
    assert len(hook.received) == 2
    assert all(request.signed for request in hook.received)
    assert len({request.json["id"] for request in hook.received}) == 1  # the same notification
    hooks_recorded = [r for r in records(ledger) if r["channel"] == "webhook"]
    assert len(hooks_recorded) == 1
    assert hooks_recorded[0]["status"] == "delivered" and hooks_recorded[0]["attempts"] == 2
    cli("notify", str(ledger), "--date", "2024-03-05", env=hook_env())
    assert len(hook.received) == 2


def test_webhook_timing_out_fails_after_its_attempts_then_goes_out_once(  # type: ignore[no-untyped-def]
    tmp_path: Path, hooks
) -> None:
    slow = ("sleep", 1.0, 200)
    hook = hooks([slow, slow, slow])
    ledger = copy_ledger(tmp_path, webhook=hook.url)
    append(ledger, "transactions.beancount", ALICE_LOW)
    env = hook_env(BEAN_CREDITS_WEBHOOK_TIMEOUT="0.3")
    output = cli("notify", str(ledger), "--date", "2024-03-05", env=env, code=1)
    assert "by webhook: timed out (after 3 attempts)" in output
    assert len(hook.received) == 3
    cli("notify", str(ledger), "--date", "2024-03-06", env=env)
    cli("notify", str(ledger), "--date", "2024-03-07", env=env)
    assert len(hook.received) == 4
    assert len({request.json["id"] for request in hook.received}) == 1
    statuses = [(r["status"], r["attempts"]) for r in records(ledger) if r["channel"] == "webhook"]
    assert statuses == [("failed", 3), ("delivered", 1)]


def test_webhook_4xx_is_not_retried(tmp_path: Path, hooks) -> None:  # type: ignore[no-untyped-def]
    hook = hooks([410])
    ledger = copy_ledger(tmp_path, webhook=hook.url)
    append(ledger, "transactions.beancount", ALICE_LOW)
    output = cli("notify", str(ledger), "--date", "2024-03-05", env=hook_env(), code=1)
    assert "by webhook: HTTP 410 Gone" in output
    assert len(hook.received) == 1


def test_email_over_starttls_with_login(tmp_path: Path, smtp) -> None:  # type: ignore[no-untyped-def]
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins = []

    def authenticate(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret")

    controller, box = smtp(
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    )
    ledger = copy_ledger(tmp_path)
    append(ledger, "transactions.beancount", ALICE_LOW)
    env = smtp_env(
        controller.port,
        BEAN_CREDITS_SMTP_STARTTLS="1",
        BEAN_CREDITS_SMTP_CAFILE=str(cert),
        BEAN_CREDITS_SMTP_USER="notifier",
        BEAN_CREDITS_SMTP_PASSWORD="s3cret",
    )
    cli("notify", str(ledger), "--date", "2024-03-05", env=env)
    assert logins == [(b"notifier", b"s3cret")]
    assert [mail["To"] for mail in box.messages] == ["alice@example.com"]


def test_templates_are_files_a_user_can_change(tmp_path: Path, smtp) -> None:  # type: ignore[no-untyped-def]
    controller, box = smtp()
    ledger = copy_ledger(tmp_path)
    append(ledger, "transactions.beancount", ALICE_LOW)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "low-balance.subject.txt").write_text("Low: $balance $commodity ($user_id)\n")
    env = smtp_env(controller.port)
    cli("notify", str(ledger), "--date", "2024-03-05", "--templates", str(templates), env=env)
    assert box.messages[0]["Subject"] == "Low: 50 CREDIT (alice)"
    assert "dropped below 100" in box.messages[0].get_content()  # the shipped body


def test_a_broken_template_stops_the_run_before_anything_is_sent(tmp_path: Path, smtp) -> None:  # type: ignore[no-untyped-def]
    controller, box = smtp()
    ledger = copy_ledger(tmp_path)
    append(ledger, "transactions.beancount", ALICE_LOW)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "expiring.body.txt").write_text("Expiring: $amont\n")
    before = {path: path.read_text() for path in ledger.parent.rglob("*.beancount")}
    output = cli(
        "notify", str(ledger), "--date", "2024-03-05", "--templates", str(templates),
        env=smtp_env(controller.port), code=2,
    )  # fmt: skip
    assert "expiring.body.txt: unknown placeholder $amont" in output
    assert "Traceback" not in output
    assert box.messages == [] and inapp(ledger) == []
    assert {path: path.read_text() for path in ledger.parent.rglob("*.beancount")} == before


def test_dry_run_sends_and_writes_nothing(tmp_path: Path, hooks) -> None:  # type: ignore[no-untyped-def]
    hook = hooks()
    ledger = copy_ledger(tmp_path, webhook=hook.url)
    append(ledger, "transactions.beancount", ALICE_LOW)
    output = cli("notify", str(ledger), "--date", "2024-03-05", "--dry-run", env=hook_env())
    assert "would send low-balance" in output and "to alice by webhook" in output
    assert "email: channel not configured (BEAN_CREDITS_SMTP_HOST is not set)" in output
    assert hook.received == [] and inapp(ledger) == [] and records(ledger) == []


def test_crash_between_sending_and_recording_resends_with_the_same_id(  # type: ignore[no-untyped-def]
    tmp_path: Path, hooks
) -> None:
    """At-least-once: the process dies after the webhook got the alert, before recording it.

    The rerun sends it again with the same notification id, which the receiver
    de-duplicates on; the in-app outbox de-duplicates by itself.
    """
    process: list[subprocess.Popen] = []

    def kill_sender() -> None:
        process[0].send_signal(signal.SIGKILL)
        process[0].wait()

    hook = hooks([kill_sender])
    ledger = copy_ledger(tmp_path, webhook=hook.url)
    append(ledger, "transactions.beancount", ALICE_LOW)
    env = {**os.environ, **hook_env()}
    command = [
        str(Path(sys.executable).parent / "bean-credits"),
        "notify", str(ledger), "--date", "2024-03-05",
    ]  # fmt: skip
    process.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE))
    assert process[0].wait(timeout=60) == -signal.SIGKILL
    assert len(hook.received) == 1
    assert records(ledger) == []  # died before recording

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    received = Counter(request.json["id"] for request in hook.received)
    assert list(received.values()) == [2]  # sent twice ...
    shown = {request.json["id"]: request.json for request in hook.received}
    assert len(shown) == 1  # ... shown once by a receiver that de-duplicates on the id
    recorded = [r for r in records(ledger) if r["channel"] == "webhook"]
    assert len(recorded) == 1 and recorded[0]["notification"] in received
    third = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert third.returncode == 0 and len(hook.received) == 2


def test_inapp_outbox_can_be_read_and_acknowledged(tmp_path: Path) -> None:
    ledger = copy_ledger(tmp_path)
    append(ledger, "transactions.beancount", ALICE_LOW)
    cli("notify", str(ledger), "--date", "2024-03-05", env={})
    outbox = ledger.parent / "outbox" / "notifications.jsonl"
    unread = channels.unread(outbox, "alice")
    assert [line["type"] for line in unread] == ["credits.low-balance"]
    channels.acknowledge(outbox, [unread[0]["id"]])
    assert channels.unread(outbox, "alice") == []
    assert [line["user_id"] for line in channels.unread(outbox)] == ["bob"]
    # A line cut short by a crash is skipped, not an error.
    with open(outbox, "a") as handle:
        handle.write('{"id": "ntf-torn", "user_')
    assert [line["user_id"] for line in channels.unread(outbox)] == ["bob"]


def test_a_failure_reason_cannot_inject_a_directive(tmp_path: Path) -> None:
    ledger = copy_ledger(tmp_path)
    reason = 'card declined"\n2024-03-05 open Assets:Stolen\n  x: "'
    escaped = json.dumps(reason)  # a Beancount string literal escapes the same characters
    append(
        ledger,
        "outcomes.beancount",
        topup_failed(
            "2024-03-05", "org-acme", "tu-1.1", "PLACEHOLDER", "1000 CREDIT", "ev-1"
        ).replace('"PLACEHOLDER"', escaped),
    )
    cli("notify", str(ledger), "--date", "2024-03-05", env={})
    recorded = [r for r in records(ledger) if r["alert"] == "topup-failed"]
    assert len(recorded) == 1 and recorded[0]["subject"].endswith(reason)
    loaded = load(ledger, cache=False)
    assert loaded.errors == []
    assert not any(getattr(entry, "account", "") == "Assets:Stolen" for entry in loaded.entries)
