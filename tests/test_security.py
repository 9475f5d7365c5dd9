"""Issue 15's reproductions, end to end: hostile input changes nothing it should not.

Each test is one of the attacks that worked before, run the way an attacker
would: events imported through the real importer, ``bean-credits serve`` in a
real headless chromium (Debian's, one launch for the module), the extract
endpoint over HTTP, ``notify`` against an SMTP sink on loopback (aiosmtpd),
CSV exports read back with the csv module. The line-separator property test
of the write path is ``tests/test_line_separators.py``.
"""

from __future__ import annotations

import csv
import datetime
import http.client
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from beancount import loader
from click.testing import CliRunner
from conftest import DAILY, DEMO, git
from notifykit import HookServer
from servekit import BEAN_CREDITS, chromium, free_port, serving

from beancount_credits.cli import main
from beancount_credits.fava import security, server
from beancount_credits.importers import ImportFailed, import_events
from beancount_credits.jobs import channels
from beancount_credits.ledger import write

XSS = '<img src=x id=pwned onerror="window.__pwned=1;alert(1)">'
XSS_USER = "mallory<svg onload=alert(2)>"
ACME = "Assets:Credits:Users:Org--acme"


def cli(*args: str, env: dict[str, str] | None = None, code: int = 0) -> str:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def small_ledger(tmp_path: Path) -> Path:
    """The daily job's fixture ledger (two users, Feb-Mar 2024, the Credit page on) in git."""
    root = tmp_path / "ledger"
    shutil.copytree(DAILY, root)
    with open(root / "main.beancount", "a") as handle:
        handle.write('\n2024-01-01 custom "fava-extension" "beancount_credits.fava"\n')
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "Fixture")
    return root / "main.beancount"


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".git" not in path.parts and not path.name.startswith(".")
    }


# --- 1. The import edits the wrong entry ------------------------------------------------------


def test_a_settle_after_line_separators_flips_the_named_redemption(tmp_path: Path) -> None:
    ledger = small_ledger(tmp_path)
    first = [
        {"type": "promotion", "id": "m-promo", "user": "alice", "amount": 50,
         "timestamp": "2024-03-20T09:00:00Z", "description": "Spring" + "\u2028" * 6 + "sale"},
        {"type": "redeem", "id": "m-p0", "user": "alice", "amount": 1, "session": "s0",
         "timestamp": "2024-03-20T10:00:00Z", "status": "pending"},
        {"type": "redeem", "id": "m-p1", "user": "alice", "amount": 1, "session": "s1",
         "timestamp": "2024-03-20T11:00:00Z", "status": "pending"},
        {"type": "promotion", "id": "m-bob", "user": "bob", "amount": 5,
         "timestamp": "2024-03-20T12:00:00Z", "expires": "2024-05-01"},
    ]  # fmt: skip
    import_events(ledger, first)
    import_events(
        ledger,
        [
            {"type": "redeem", "id": "m-p1", "user": "alice", "amount": 1, "session": "s1",
             "timestamp": "2024-03-21T09:00:00Z", "status": "settled"},
            {"type": "expiry_change", "id": "m-x", "grant": "m-bob", "expires": "2024-06-01",
             "timestamp": "2024-03-21T09:30:00Z"},
        ],
    )  # fmt: skip
    entries, errors, _options = loader.load_file(str(ledger))
    assert errors == []
    by_id = {entry.meta.get("txn_id"): entry for entry in entries}
    assert by_id["m-p1"].flag == "*" and by_id["m-p1"].meta["settled"] == datetime.date(2024, 3, 21)
    assert by_id["m-p0"].flag == "!" and "settled" not in by_id["m-p0"].meta
    assert by_id["m-bob"].meta["expires"] == datetime.date(2024, 6, 1)
    assert "expires" not in by_id["m-promo"].meta
    assert by_id["m-promo"].narration == "Spring" + "\u2028" * 6 + "sale"
    # close-period after such a description: no wrong-balance refusal.
    cli("close-day", str(ledger), "--date", "2024-03-21")
    cli("close-period", str(ledger), "--through", "2024-03-20")
    assert loader.load_file(str(ledger))[1] == []


# --- 2. Stored XSS through Fava's pages, and the served page's defences ----------------------


@pytest.fixture(scope="module")
def hostile_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo ledger with hostile text imported where Fava shows it."""
    root = tmp_path_factory.mktemp("hostile") / "demo"
    shutil.copytree(DEMO.parent, root, ignore=shutil.ignore_patterns(".*"))
    events = [
        {"type": "user", "id": "x-user", "user": XSS_USER, "timestamp": "2026-11-21T08:00:00Z",
         "segment": XSS},
        {"type": "promotion", "id": "x-promo", "user": "org-acme", "amount": 10,
         "timestamp": "2026-11-21T09:00:00Z", "description": XSS, "campaign": XSS},
        {"type": "promotion", "id": "x-promo-2", "user": XSS_USER, "amount": 10,
         "timestamp": "2026-11-21T09:00:00Z", "description": XSS},
        {"type": "redeem", "id": "x-redeem", "user": "org-acme", "amount": 1,
         "timestamp": "2026-11-21T10:00:00Z", "session": XSS, "member": XSS},
        {"type": "topup", "id": "x-topup", "user": "org-acme", "amount": 5, "status": "failed",
         "request": XSS, "reason": XSS, "timestamp": "2026-11-21T11:00:00Z"},
    ]  # fmt: skip
    assert import_events(root / "main.beancount", events).new == len(events)
    (root / "incoming" / "passwd.jsonl").symlink_to("/etc/passwd")
    return root / "main.beancount"


@pytest.fixture(scope="module")
def served(hostile_demo: Path) -> Iterator[str]:
    """``bean-credits serve`` (read-only) on the hostile copy; yields its base URL."""
    with serving(hostile_demo, "/credits-demo/income_statement/") as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as instance:
        yield instance


# Hooks installed before any page script: alert() calls and CSP violations are recorded.
WATCH = """
window.__alerts = [];
window.alert = (message) => window.__alerts.push(String(message));
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""

# Every Fava page, each with something that shows it worked, and the Credit page.
PAGES = {
    "income_statement/": "article ol li",
    "balance_sheet/": "article ol li",
    "trial_balance/": "article ol li",
    "journal/?time=2026-11": ".journal > li",
    "query/?query_string=SELECT%20account%2C%20sum(position)%20GROUP%20BY%20account": (
        "article table tr"
    ),
    "holdings/": "article table tr",
    "holdings/by_currency/": "article table tr",
    "commodities/": "article",
    "documents/": "article table",
    "events/": "article",
    "statistics/": "article table tr",
    "editor/": ".cm-content .cm-line",
    "errors/": "article",
    "import/": "article h2",
    "options/": "article table tr",
    "help/": "article li",
    f"account/{ACME}/": ".journal > li",
    f"account/{ACME}/?r=changes": "article ol li",
    f"account/{ACME}/?r=balances": "article ol li",
    "extension/CreditBalanceHistory/": "#cbh-users tbody tr td",
}


def watched_page(browser: Any) -> tuple[Any, Any, list[str]]:
    """A browser tab with WATCH on every page it opens, and its page errors."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(WATCH)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return context, page, errors


def visit(page: Any, url: str, ready: str) -> None:
    page.goto(url)
    page.wait_for_selector(ready, state="attached", timeout=30_000)
    page.wait_for_load_state("networkidle")


def test_every_page_works_under_the_policy_and_runs_no_injected_script(
    served: str, browser: Any
) -> None:
    context, page, errors = watched_page(browser)
    try:
        for path, ready in PAGES.items():
            visit(page, f"{served}/credits-demo/{path}", ready)
            assert page.locator(ready).count() > 0, path
            assert page.evaluate("window.__csp") == [], path  # Fava needs nothing it forbids
            assert not errors, (path, errors)
            # A sink that would render HTML (as Fava's journal did): the policy stops
            # an inline handler, an inline script and a javascript: URL all the same.
            page.evaluate(
                """() => {
                  document.body.insertAdjacentHTML('beforeend',
                    '<img src="/x.png" id="inj" onerror="window.__pwned = 1">' +
                    '<a id="js" href="javascript:window.__pwned = 2">x</a>');
                  const script = document.createElement('script');
                  script.textContent = 'window.__pwned = 3';
                  document.body.appendChild(script);
                }"""
            )
            page.click("#js")
            page.wait_for_timeout(200)
            assert page.evaluate("window.__pwned") is None, path
            violations = page.evaluate("window.__csp")
            assert any(item.startswith("script-src") for item in violations), (path, violations)
    finally:
        context.close()


def test_the_xss_payload_is_text_on_the_journal_account_and_credit_pages(
    served: str, browser: Any
) -> None:
    credit = f"{served}/credits-demo/extension/CreditBalanceHistory/"
    context, page, errors = watched_page(browser)
    try:
        for url, ready in [
            (f"{served}/credits-demo/journal/?time=2026-11", ".journal > li"),
            (f"{served}/credits-demo/account/{ACME}/?time=2026-11", ".journal > li"),
            (credit, "#cbh-users tbody tr td"),
        ]:
            visit(page, url, ready)
            if url == credit:  # the hostile user's row, then org-acme's statement
                page.fill("#cbh-search", "mallory")
                page.wait_for_selector("#cbh-users tbody tr td")
                assert XSS_USER in page.inner_text("#cbh-users")
                assert XSS in page.inner_text("#cbh-users")  # the segment
                page.fill("#cbh-search", "org-acme")
                page.click("#cbh-users tbody tr:first-child")
                page.wait_for_selector("#cbh-user:not([hidden]) #cbh-statement tbody tr")
            else:
                # Metadata (campaign, member...) sits in folded entries: show them all.
                page.evaluate(
                    "document.querySelectorAll('.journal .metadata, .journal .postings')"
                    ".forEach(e => e.style.display = 'block')"
                )
            page.wait_for_timeout(200)
            text = page.inner_text("body")
            assert XSS in text, url  # shown, as text
            if url != credit:
                assert "Session " + XSS in text, url
            assert page.locator("#pwned").count() == 0, url  # no element was injected
            assert page.locator("img[src='x'], svg[onload]").count() == 0, url
            assert page.evaluate("window.__alerts") == [], url
            assert page.evaluate("window.__pwned") is None, url
            assert page.evaluate("window.__csp") == [], url
            assert not errors, errors
    finally:
        context.close()


def request(
    base: str, path: str, host: str | None = None, **headers: str
) -> tuple[int, Any, bytes]:
    netloc = base.removeprefix("http://")
    connection = http.client.HTTPConnection(netloc, timeout=30)
    connection.putrequest("GET", path, skip_host=True)
    connection.putheader("Host", host or netloc)
    for name, value in headers.items():
        connection.putheader(name.replace("_", "-"), value)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, response.headers, body


def test_headers_on_every_response_and_only_the_served_host_names(served: str) -> None:
    port = served.rsplit(":", 1)[1]
    paths = [
        "/credits-demo/journal/",
        "/credits-demo/api/journal_page?page=1&order=desc",
        "/credits-demo/extension/CreditBalanceHistory/users",
        "/static/app.js",
        "/credits-demo/no-such-page/",
        "/credits-demo/api/income_statement?time=2026-13",
    ]
    for path in paths:
        status, headers, _body = request(served, path)
        assert status < 500, path
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self' 'wasm-unsafe-eval'" in policy
        assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        assert request(served, "/credits-demo/journal/", host=host)[0] == 200
    # DNS rebinding: a page on evil.example resolved to 127.0.0.1 gets nothing.
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
        status, headers, body = request(served, "/credits-demo/api/journal", host=host)
        assert status == 421 and b"credits" not in body.lower()
        assert "Content-Security-Policy" in headers


def test_allow_host_and_host_option_name_the_served_hosts() -> None:
    hosts = security.served_hosts("0.0.0.0", ["credits.internal"])
    assert hosts == {"127.0.0.1", "localhost", "::1", "credits.internal"}
    assert "ledger.lan" in security.served_hosts("ledger.lan")
    assert security.host_name("[::1]:5000") == "::1"
    assert security.host_name("LocalHost:80") == "localhost"


# --- 3. File and secret disclosure through the extract endpoint ---------------------------


def test_extract_reads_only_files_inside_the_import_folders(
    served: str, hostile_demo: Path
) -> None:
    importer = "beancount_credits.events.jsonl"
    secret = "BEAN_CREDITS_WEBHOOK_SECRET"
    incoming = hostile_demo.parent / "incoming"
    outside = [
        "/etc/passwd",
        "/proc/self/environ",
        str(incoming / "passwd.jsonl"),  # a symlink to /etc/passwd
        str(incoming / ".." / "main.beancount"),
        "x" * 5000,
    ]
    for filename in outside:
        query = urllib.parse.urlencode({"filename": filename, "importer": importer})
        status, _headers, body = request(served, f"/credits-demo/api/extract?{query}")
        assert status == 403, (filename, body[:200])
        assert b"root:" not in body and secret.encode() not in body and b"PATH=" not in body
        assert b"import folders" in body
    inside = hostile_demo.parent / "incoming" / "2026-11-21-checkout.jsonl"
    query = urllib.parse.urlencode({"filename": str(inside), "importer": importer})
    status, _headers, body = request(served, f"/credits-demo/api/extract?{query}")
    assert status == 200 and json.loads(body)["data"]


def test_importer_errors_do_not_echo_the_file(tmp_path: Path) -> None:
    from beancount_credits.importers import CsvImporter, JsonlImporter

    secret = tmp_path / "secret.csv"
    secret.write_text("api_key=sk-live-123,token\nsk-live-456,abc\n")
    with pytest.raises(ImportFailed) as failed:
        CsvImporter().extract(str(secret), [])
    assert "sk-live" not in str(failed.value) and "no 'type' column" in str(failed.value)
    for path in ("/etc/passwd", "/proc/self/environ"):
        with pytest.raises(ImportFailed) as failed:
            JsonlImporter().extract(path, [])
        assert "root:" not in str(failed.value) and "PATH" not in str(failed.value)
    ledger = small_ledger(tmp_path)
    output = cli("import", str(ledger), "/etc/passwd", code=2)
    assert "root:" not in output and "no 'type' column" in output
    binary = tmp_path / "events.jsonl"
    binary.write_bytes(b'{"type": "user"}\n{"id": "\xff\xfe secret"}\n')
    output = cli("import", str(ledger), str(binary), code=2)
    assert f"{binary}:2: not UTF-8 text (byte 0xff at column 9)" in output
    assert "secret" not in output and "position" not in output


# --- 2b. --edit: Fava's writes take the ledger lock and the write path's check ---------------


@pytest.fixture
def editable(tmp_path: Path) -> tuple[Path, Any]:
    ledger = small_ledger(tmp_path)
    app, _path = server.make_app(ledger, edit=True)
    return ledger, app.test_client()


def source_of(client: Any, path: Path) -> dict[str, str]:
    response = client.get("/daily-job-fixture/api/source", query_string={"filename": str(path)})
    assert response.status_code == 200, response.data
    return response.get_json()["data"]


def put_source(client: Any, path: Path, text: str, sha: str, **headers: str) -> Any:
    return client.put(
        "/daily-job-fixture/api/source",
        json={"file_path": str(path), "source": text, "sha256sum": sha},
        headers=headers,
    )


def test_fava_source_writes_are_checked_like_the_cli(editable: tuple[Path, Any]) -> None:
    ledger, client = editable
    path = ledger.parent / "transactions.beancount"
    before = path.read_bytes()
    files = snapshot(ledger.parent)
    source = source_of(client, path)
    broken = (
        source["source"]
        + '\n2024-03-30 * "Too much"\n  txn_id: "t-bad"\n'
        + ("  Assets:Credits:Users:Alice   -100000 CREDIT\n  Expenses:Credits:Sessions\n")
    )
    response = put_source(client, path, broken, source["sha256sum"])
    assert response.status_code == 422
    assert "nothing was written" in response.get_json()["error"]
    assert path.read_bytes() == before
    # Inserting entries (not the whole file) is checked after Fava writes, and undone.
    entry = {
        "t": "Transaction", "date": "2024-03-30", "flag": "*", "payee": "", "narration": "x",
        "tags": [], "links": [], "meta": {"txn_id": "t-bad-2"},
        "postings": [{"account": "Assets:Credits:Users:Alice", "amount": "-100000 CREDIT"},
                     {"account": "Expenses:Credits:Sessions", "amount": "100000 CREDIT"}],
    }  # fmt: skip
    response = client.put("/daily-job-fixture/api/add_entries", json={"entries": [entry]})
    assert response.status_code == 422, response.data
    assert snapshot(ledger.parent) == files and path.read_bytes() == before
    # A good change goes through.
    good = source["source"] + "\n; reviewed\n"
    assert put_source(client, path, good, source["sha256sum"]).status_code == 200
    assert path.read_text().endswith("; reviewed\n")
    # A script on another site cannot send it (and a read-only server takes no writes).
    again = source_of(client, path)
    response = put_source(
        client, path, good + ";\n", again["sha256sum"], Origin="http://evil.example"
    )
    assert response.status_code == 403
    read_only = server.make_app(ledger)[0].test_client()
    assert put_source(read_only, path, good, again["sha256sum"]).status_code == 401


def test_fava_writes_wait_for_the_ledger_lock(editable: tuple[Path, Any]) -> None:
    ledger, client = editable
    path = ledger.parent / "transactions.beancount"
    source = source_of(client, path)
    done: list[int] = []
    with write.ledger_lock(ledger):  # a CLI writer at work
        worker = threading.Thread(
            target=lambda: done.append(
                put_source(
                    client, path, source["source"] + "; x\n", source["sha256sum"]
                ).status_code
            )
        )
        worker.start()
        worker.join(0.8)
        assert worker.is_alive() and not done  # waiting for the lock
        assert not path.read_text().endswith("; x\n")
    worker.join(20)
    assert done == [200] and path.read_text().endswith("; x\n")


def test_fava_editor_saves_through_the_check_in_the_browser(tmp_path: Path, browser: Any) -> None:
    """--edit in chromium: Fava's editor saves under the policy; a breaking save is refused."""
    ledger = small_ledger(tmp_path)
    with serving(ledger, "/daily-job-fixture/income_statement/", "--edit") as base:
        context, page, errors = watched_page(browser)
        try:
            visit(page, base + "/daily-job-fixture/editor/", ".cm-content .cm-line")
            page.click(".cm-content")
            page.keyboard.press("Control+End")
            page.keyboard.type("\n; reviewed in the browser\n")
            page.keyboard.press("Control+s")
            page.wait_for_function("() => !document.title.startsWith('*')", timeout=10_000)
            deadline = time.monotonic() + 10
            while not ledger.read_text().endswith("; reviewed in the browser\n"):
                assert time.monotonic() < deadline, "the save did not reach the file"
                time.sleep(0.1)
            saved = ledger.read_bytes()
            page.keyboard.type(
                '2024-03-30 * "Too much"\n  txn_id: "t-bad"\n'
                "  Assets:Credits:Users:Alice  -100000 CREDIT\n  Expenses:Credits:Sessions\n"
            )
            page.keyboard.press("Control+s")
            page.wait_for_selector("text=nothing was written", timeout=10_000)
            assert ledger.read_bytes() == saved
            assert page.evaluate("window.__csp") == [] and not errors
        finally:
            context.close()


# --- 4. Email header injection and the poison pill ----------------------------------------


class Sink:
    """An SMTP server on loopback that keeps every envelope (aiosmtpd)."""

    def __init__(self, on_data: Any = None, refuse: str | None = None) -> None:
        self.envelopes: list[Any] = []
        self.on_data = on_data
        self.refuse = refuse
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())
        self.controller.start()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list
    ) -> str:
        if address == self.refuse:
            return "550 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        if self.on_data is not None:
            self.on_data(len(self.envelopes))
        return "250 OK"

    def env(self) -> dict[str, str]:
        return {
            "BEAN_CREDITS_SMTP_HOST": "127.0.0.1",
            "BEAN_CREDITS_SMTP_PORT": str(self.controller.port),
            "BEAN_CREDITS_SMTP_STARTTLS": "0",
            "BEAN_CREDITS_SMTP_FROM": "credits@example.com",
        }

    def messages(self) -> list[Any]:
        import email
        import email.policy

        return [
            email.message_from_bytes(item.content, policy=email.policy.default)
            for item in self.envelopes
        ]


USERS = 29
BAD_EMAILS = {
    "u03": "u03@mail.example\r\nBcc: everyone@evil.example",
    "u07": "u07@mail.example, boss@evil.example",
    "u11": "Mallory <u11@mail.example>",
}


def many_users_ledger(tmp_path: Path) -> Path:
    """29 users below their low-balance threshold; three of them with a hostile email."""
    root = tmp_path / "many"
    root.mkdir()
    lines = [
        'option "title" "Many users"',
        'plugin "beancount_credits.plugins.expire"',
        'plugin "beancount_credits.plugins.daily_balances"',
        "2024-01-01 open Income:Credits:Purchase",
        "2024-01-01 open Expenses:Credits:Sessions",
        "2024-01-01 open Equity:Credits:Breakage",
        '2024-01-01 custom "credits-low-balance" "default" 100 CREDIT',
    ]
    for number in range(USERS):
        user = f"u{number:02d}"
        email = BAD_EMAILS.get(user, f"{user}@mail.example")
        lines += [
            f"2024-01-01 open Assets:Credits:Users:U{number:02d}",
            f"  user_id: {write.quote(user)}",
            f"  email: {write.quote(email)}",
            f'2024-03-01 * "Purchase"\n  txn_id: "p-{user}"',
            f"  Assets:Credits:Users:U{number:02d}  10 CREDIT\n  Income:Credits:Purchase",
        ]
    (root / "main.beancount").write_text("\n".join(lines) + "\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "Fixture")
    return root / "main.beancount"


def test_bad_addresses_are_listed_errors_and_only_valid_single_recipient_mail_goes_out(
    tmp_path: Path,
) -> None:
    ledger = many_users_ledger(tmp_path)
    # bean-check names each bad address, user and line; nothing crashes.
    _entries, errors, _options = loader.load_file(str(ledger))
    assert errors == []  # (the settings plugin is not enabled in this ledger)
    sink = Sink()
    try:
        output = cli("notify", str(ledger), "--date", "2024-03-02", env=sink.env())
        for user in BAD_EMAILS:
            assert f"user '{user}': email:" in output and "not an email address" in output
        messages = sink.messages()
        assert len(messages) == USERS - len(BAD_EMAILS)
        for envelope, message in zip(sink.envelopes, messages, strict=True):
            assert len(envelope.rcpt_tos) == 1
            assert message.get_all("To") == envelope.rcpt_tos
            assert message["Bcc"] is None and "evil" not in envelope.rcpt_tos[0]
        assert not any("evil.example" in item.content.decode() for item in sink.envelopes)
        # The second run sends nothing again.
        cli("notify", str(ledger), "--date", "2024-03-02", env=sink.env())
        assert len(sink.envelopes) == USERS - len(BAD_EMAILS)
    finally:
        sink.controller.stop()


def test_the_settings_plugin_lists_a_bad_email_per_user(tmp_path: Path) -> None:
    ledger = many_users_ledger(tmp_path)
    text = ledger.read_text().replace(
        'plugin "beancount_credits.plugins.daily_balances"',
        'plugin "beancount_credits.plugins.daily_balances"\n'
        'plugin "beancount_credits.plugins.settings"',
    )
    ledger.write_text(text)
    _entries, errors, _options = loader.load_file(str(ledger))
    messages = sorted(error.message for error in errors)
    assert len(messages) == 3
    assert all("email:" in message and "not an email address" in message for message in messages)
    assert [message.split("'")[1] for message in messages] == sorted(BAD_EMAILS)


def test_one_failed_delivery_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    ledger = many_users_ledger(tmp_path)
    sink = Sink(refuse="u05@mail.example")
    try:
        output = cli("notify", str(ledger), "--date", "2024-03-02", env=sink.env(), code=1)
        assert "failed low-balance" in output and "550" in output
        assert len(sink.envelopes) == USERS - len(BAD_EMAILS) - 1
        entries, _errors, _options = loader.load_file(str(ledger))
        records = [e.meta for e in entries if getattr(e, "type", "") == "credits-notification"]
        failed = [meta for meta in records if meta["status"] == "failed"]
        assert len(failed) == 1 and "550" in failed[0]["reason"]
        emailed = [meta for meta in records if meta["channel"] == "email"]
        assert len(emailed) == USERS - len(BAD_EMAILS)
    finally:
        sink.controller.stop()


def test_a_run_that_dies_after_sending_never_sends_it_again(tmp_path: Path) -> None:
    ledger = many_users_ledger(tmp_path)
    process: list[subprocess.Popen] = []

    def die_on_the_sixth(count: int) -> None:
        if count == 6:  # five sent and confirmed; the process dies during the sixth
            process[0].send_signal(signal.SIGKILL)
            process[0].wait()

    sink = Sink(on_data=die_on_the_sixth)
    try:
        env = {**os.environ, **sink.env()}
        command = [BEAN_CREDITS, "notify", str(ledger), "--date", "2024-03-02"]
        process.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE))
        assert process[0].wait(timeout=60) == -signal.SIGKILL
        first_run = [envelope.rcpt_tos[0] for envelope in sink.envelopes]
        assert len(first_run) == 6
        journal = channels.read_lines(ledger.parent / ".bean-credits-sent.jsonl")
        assert len(journal) >= 5  # each confirmed send is on disk before the next starts

        rerun = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        sent = Counter(envelope.rcpt_tos[0] for envelope in sink.envelopes)
        assert set(sent) == {f"u{n:02d}@mail.example" for n in range(USERS)} - {
            f"{user}@mail.example" for user in BAD_EMAILS
        }
        # The five confirmed before the crash went out once; only the one in flight twice.
        assert all(sent[address] == 1 for address in first_run[:5])
        assert [address for address, count in sent.items() if count > 1] == first_run[5:]
        assert not (ledger.parent / ".bean-credits-sent.jsonl").exists()
        entries, errors, _options = loader.load_file(str(ledger))
        assert errors == []
        emailed = [
            e.values[0].value
            for e in entries
            if getattr(e, "type", "") == "credits-notification" and e.meta["channel"] == "email"
        ]
        assert sorted(emailed) == sorted(set(emailed))  # one record per user
        assert len(emailed) == USERS - len(BAD_EMAILS)
    finally:
        sink.controller.stop()


def test_a_bad_email_in_an_event_is_that_rows_error(tmp_path: Path) -> None:
    ledger = small_ledger(tmp_path)
    before = snapshot(ledger.parent)
    with pytest.raises(ImportFailed) as failed:
        import_events(
            ledger,
            [
                {"type": "user", "id": "e1", "user": "eve", "timestamp": "2024-03-20",
                 "email": "eve@mail.example\r\nBcc: all@evil.example"},
                {"type": "user", "id": "e2", "user": "mia", "timestamp": "2024-03-20",
                 "email": "mia@mail.example,all@evil.example"},
                {"type": "user", "id": "e3", "user": "ok", "timestamp": "2024-03-20",
                 "email": "ok@mail.example"},
            ],
        )  # fmt: skip
    lines = failed.value.lines
    assert len(lines) == 2
    assert lines[0].startswith("<events>:1: event 'e1', user 'eve': email: ")
    assert "\n" not in lines[0] and "\\r\\n" in lines[0]
    assert lines[1].startswith("<events>:2: event 'e2', user 'mia': email: ")
    assert snapshot(ledger.parent) == before


# --- Webhooks -------------------------------------------------------------------------------


def message() -> channels.Message:
    return channels.Message("ntf-1", "low-balance", "alice", "s", "b", {}, "2024-03-02")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:{port}/hook", "loopback"),
        ("http://localhost:{port}/hook", "loopback"),
        ("http://[::1]:{port}/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://[::ffff:127.0.0.1]:{port}/hook", "loopback"),
        ("http://0.0.0.0:{port}/hook", "unspecified"),
        ("ftp://127.0.0.1/hook", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
    ],
)
def test_webhooks_to_private_targets_are_refused(url: str, why: str) -> None:
    hook = HookServer()
    try:
        port = hook.url.rsplit(":", 1)[1].split("/")[0]
        config = channels.WebhookConfig("secret", timeout=1, attempts=3, backoff=0)
        with pytest.raises(channels.DeliveryError) as refused:
            channels.WebhookChannel(config).send(message(), url.format(port=port))
        assert why in str(refused.value) and refused.value.attempts == 0
        assert hook.received == []
        if "{port}" in url and "0.0.0.0" not in url and "::1" not in url:
            allowed = channels.WebhookConfig("secret", timeout=2, attempts=1, allow_private=True)
            assert channels.WebhookChannel(allowed).send(message(), url.format(port=port)) == 1
            assert len(hook.received) == 1
    finally:
        hook.stop()


def test_a_webhook_redirect_is_not_followed() -> None:
    target = HookServer()
    redirect = HookServer([307])
    try:
        config = channels.WebhookConfig("s", timeout=2, attempts=1, allow_private=True)
        with pytest.raises(channels.DeliveryError, match="HTTP 307"):
            channels.WebhookChannel(config).send(message(), redirect.url)
        assert target.received == []
    finally:
        target.stop()
        redirect.stop()


# --- 5. CSV formula injection ------------------------------------------------------------


FORMULA_USER = "=cmd|' /C calc'!A0"
FORMULAS = ["+SUM(1,2)", "-2+3", "@SUM(A1)", "\tTAB", "\rCR", "=1+1"]


@pytest.fixture(scope="module")
def formula_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ledger = small_ledger(tmp_path_factory.mktemp("formulas"))
    events = [
        {"type": "user", "id": "f-user", "user": FORMULA_USER, "credit_limit": 100,
         "timestamp": "2024-03-20T08:00:00Z"},
    ] + [
        {"type": "promotion", "id": f"f-{n}", "user": FORMULA_USER, "amount": 1,
         "description": text, "timestamp": f"2024-03-20T09:0{n}:00Z"}
        for n, text in enumerate(FORMULAS)
    ] + [
        {"type": "redeem", "id": "f-r", "user": FORMULA_USER, "amount": 50, "session": "-s",
         "timestamp": "2024-03-21T09:00:00Z"},
    ]  # fmt: skip
    import_events(ledger, events)
    return ledger


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def check_neutral(rows: list[list[str]], raw: bool = False) -> None:
    cells = [cell for row in rows for cell in row]
    for text in FORMULAS:
        assert (text if raw else "'" + text) in cells
    if not raw:
        assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in cells)
        texts = [cell for cell in cells if cell.startswith("-")]
        assert all(_is_number(cell) for cell in texts), texts  # numbers only


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_csv_exports_neutralise_formulas_from_the_cli(formula_ledger: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["report", "statement", str(formula_ledger), "--user", FORMULA_USER, "--to",
         "2024-03-31", "--format", "csv"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    check_neutral(csv_rows(result.stdout_bytes))
    balances = CliRunner().invoke(
        main,
        ["report", "balances", str(formula_ledger), "--to", "2024-03-31", "--format", "csv"],
    )
    rows = csv_rows(balances.stdout_bytes)
    row = next(row for row in rows if row[0] == "'" + FORMULA_USER)
    assert "-44" in row  # 6 earned - 50 redeemed: a number, written as one, not prefixed
    raw = CliRunner().invoke(
        main,
        ["report", "statement", str(formula_ledger), "--user", FORMULA_USER, "--to",
         "2024-03-31", "--format", "csv", "--raw-csv"],
    )  # fmt: skip
    check_neutral(csv_rows(raw.stdout_bytes), raw=True)


def test_csv_exports_neutralise_formulas_from_the_page(formula_ledger: Path) -> None:
    client = server.make_app(formula_ledger)[0].test_client()
    page = "/daily-job-fixture/extension/CreditBalanceHistory/export"
    users = client.get(page, query_string={"table": "users", "format": "csv", "time": "2024"})
    assert users.status_code == 200
    assert [row[0] for row in csv_rows(users.data) if "cmd" in row[0]] == ["'" + FORMULA_USER]
    assert not any(
        cell.startswith(("=", "+", "@", "\t", "\r")) for row in csv_rows(users.data) for cell in row
    )
    statement = client.get(
        page,
        query_string={"table": "statement", "format": "csv", "user_id": FORMULA_USER},
    )
    assert statement.status_code == 200
    check_neutral(csv_rows(statement.data))


# --- 6. Clear errors instead of crashes -----------------------------------------------------


def test_timestamps_off_the_calendar_are_row_errors(tmp_path: Path) -> None:
    ledger = small_ledger(tmp_path)
    before = snapshot(ledger.parent)
    stamps = ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "9999-12-31T10:00:00Z"]
    events = [
        {"type": "promotion", "id": f"y{n}", "user": "alice", "amount": 1, "timestamp": stamp}
        for n, stamp in enumerate(stamps)
    ] + [
        {"type": "promotion", "id": "y-exp", "user": "alice", "amount": 1,
         "timestamp": "2024-03-20", "expires": "9999-12-31"},
    ]  # fmt: skip
    with pytest.raises(ImportFailed) as failed:
        import_events(ledger, events)
    lines = failed.value.lines
    assert [line.split(":", 2)[1] for line in lines] == ["1", "2", "3", "4"]
    assert "event 'y0', user 'alice': timestamp: " in lines[0]
    assert "outside the dates a ledger can hold" in lines[0] + lines[1]
    assert "expires: 9999-12-31 is after 9999-12-30" in lines[3]
    assert snapshot(ledger.parent) == before


def test_the_last_date_in_a_ledger_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    ledger = small_ledger(tmp_path)
    with open(ledger.parent / "transactions.beancount", "a") as handle:
        handle.write(
            '\n9999-12-31 * "Far away"\n  txn_id: "far"\n'
            "  Assets:Credits:Users:Alice   1 CREDIT\n  Income:Credits:Purchase\n"
            '\n2024-03-30 * "Forever"\n  txn_id: "forever"\n  expires: 9999-12-31\n'
            "  Assets:Credits:Users:Bob   1 CREDIT\n  Income:Credits:Purchase\n"
        )
    result = subprocess.run(
        [str(Path(sys.executable).parent / "bean-check"), str(ledger)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "transactions.beancount:" in result.stderr + result.stdout
    assert "past the last date a ledger can hold" in result.stderr + result.stdout


HOSTILE_VALUES = [
    "9999", "0001", "9999-12-31", "9999-12-31 - 9999-12-31", "9999-W52", "9999-Q4", "FY9999",
    "0001-01-01 - 0001-01-01", "2026-13", "\x00", "a" * 3000, "-1", XSS, "'\"", "(", "#x",
    "999999999999999999999", ACME,
]  # fmt: skip
SOME_VALUES = ["9999", "\x00", "a" * 3000, XSS, "(", "-1"]
FILTERS = ["time", "filter", "account", "interval", "conversion"]


def test_no_endpoint_answers_500_for_a_parameter_value(tmp_path: Path) -> None:
    ledger = small_ledger(tmp_path)
    app, page = server.make_app(ledger)
    client = app.test_client()
    api = "/daily-job-fixture/api/"
    # Each endpoint with the parameters it reads (besides Fava's filters).
    endpoints = {
        page + "users": ["segment", "credit_type", "q", "sort", "desc"],
        page + "user": ["user_id"],
        page + "alerts": [],
        page + "export": ["table", "format", "user_id"],
        api + "income_statement": [],
        api + "journal_page": ["page", "order"],
        api + "account_report": ["a", "r"],
        api + "statistics": [],
        api + "query": ["query_string"],
        api + "extract": ["filename", "importer"],
        api + "context": ["entry_hash"],
        api + "source": ["filename"],
        "/daily-job-fixture/download-journal/": [],
        "/daily-job-fixture/download-query/query_result.csv": ["query_string"],
        "/daily-job-fixture/document/": ["filename"],
        "/jump": [],
    }
    base = {"user_id": "alice", "format": "csv", "page": "1", "order": "desc",
            "a": "Assets:Credits:Users:Alice", "query_string": "SELECT 1"}  # fmt: skip
    failures = []
    for endpoint, own in endpoints.items():
        for param in [*FILTERS, *own]:
            for value in HOSTILE_VALUES if param in ("time", "filter") else SOME_VALUES:
                response = client.get(endpoint, query_string={**base, param: value})
                if response.status_code >= 500:
                    failures.append((endpoint, param, value[:20], response.status_code))
    assert failures == []


# --- 7. Top-up backoff counts from the decline ------------------------------------------------


def test_topup_backoff_counts_from_the_decline(tmp_path: Path) -> None:
    from notifykit import copy_ledger

    ledger = copy_ledger(tmp_path)
    settings_file = ledger.parent / "settings.beancount"
    settings_file.write_text(settings_file.read_text().replace('backoff: "1d"', 'backoff: "12h"'))
    git(ledger.parent, "commit", "-qam", "12h backoff")
    spend = (
        '2024-03-02 * "Session"\n  txn_id: "r-acme"\n'
        "  Assets:Credits:Users:Org--acme   -300 CREDIT\n  Expenses:Credits:Sessions\n"
    )
    with open(ledger.parent / "transactions.beancount", "a") as handle:
        handle.write("\n" + spend)
    out = cli("topup", str(ledger), "--date", "2024-03-02T05:00", env={})
    assert "1 request(s)" in out
    request_id = json.loads(next((ledger.parent / "outbox" / "topup").glob("*.json")).read_text())
    import_events(
        ledger,
        [{"type": "topup", "id": "decline-1", "user": "org-acme", "status": "failed",
          "amount": 1000, "request": request_id["request"], "reason": "card declined",
          "timestamp": "2024-03-02T17:30:00Z"}],
    )  # fmt: skip
    # 30 minutes after the decline: still inside the 12 h backoff (it counts from 17:30).
    early = cli("topup", str(ledger), "--date", "2024-03-02T18:00", env={})
    assert "0 request(s)" in early
    assert cli("topup", str(ledger), "--date", "2024-03-03T05:29", env={}).count("0 request(s)")
    later = cli("topup", str(ledger), "--date", "2024-03-03T05:31", env={})
    assert "1 request(s)" in later


# --- 8. An event id names one event -------------------------------------------------------


def test_an_id_reused_for_a_different_event_is_an_error_naming_both(tmp_path: Path) -> None:
    ledger = small_ledger(tmp_path)
    before = snapshot(ledger.parent)
    event = {"type": "promotion", "id": "dup", "user": "alice", "amount": 10,
             "timestamp": "2024-03-20T09:00:00Z"}  # fmt: skip
    with pytest.raises(ImportFailed) as failed:
        import_events(ledger, [event, {**event, "amount": 10_000}])
    assert failed.value.lines == [
        "<events>:2: event 'dup', user 'alice': id: 'dup' is also the id of line 1, a "
        "different event (amount differ); an event id names one event"
    ]
    assert snapshot(ledger.parent) == before
    # The same event again is fine (idempotent); another under its id is not.
    assert import_events(ledger, [event, event]).new == 1
    assert import_events(ledger, [event]).already == 1
    with pytest.raises(ImportFailed) as failed:
        import_events(ledger, [{**event, "user": "bob"}])
    (line,) = failed.value.lines
    assert "'dup' is already the id of the entry at " in line
    assert "imports/" in line and ".beancount:" in line
    assert "wallet Assets:Credits:Users:Alice in the ledger, Assets:Credits:Users:Bob" in line


def test_hosts_in_make_app_default_to_loopback() -> None:
    app, _page = server.make_app(DEMO)
    client = app.test_client()
    assert client.get("/credits-demo/journal/", headers={"Host": "evil.example"}).status_code == 421
    assert client.get("/credits-demo/journal/").status_code == 200
    assert datetime.date(9998, 12, 31) == security.LATEST
