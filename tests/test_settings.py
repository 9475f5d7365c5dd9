"""Settings directives resolved as of a date, and notify --explain."""

from __future__ import annotations

import datetime
from pathlib import Path

from beancount import loader
from notifykit import append, cli, copy_ledger

from beancount_credits.engine import settings
from beancount_credits.engine.config import CreditsConfig
from beancount_credits.ledger import index_users

LEDGER = """
2024-01-01 open Assets:Credits:Users:Alice
  user_id: "alice"
  segment: "pro"
  email: "alice@wallet.example"
2024-01-01 open Assets:Credits:Users:Bob
  user_id: "bob"
  segment: "starter"
2024-01-01 open Assets:Credits:Users:Carol
  user_id: "carol"

2024-01-01 custom "credits-low-balance" "default" 50 CREDIT
2024-01-01 custom "credits-low-balance" "segment" "pro" 200 CREDIT
2024-03-01 custom "credits-low-balance" "segment" "pro" 300 CREDIT
2024-02-01 custom "credits-low-balance" "user" "alice" 500 CREDIT
2024-01-01 custom "credits-low-balance" "default" 2 SESSION

2024-01-01 custom "credits-contact" "alice"
  webhook: "https://hooks.example.com/a"
2024-02-01 custom "credits-contact" "alice"
  email: "alice@contact.example"
  opt_out: "webhook inapp"
2024-04-01 custom "credits-expiry-warnings" 14 60 3
"""


def load_settings() -> tuple[settings.Settings, dict]:
    entries, errors, _options = loader.load_string(LEDGER)
    assert errors == []
    users = index_users(entries, CreditsConfig())
    conf = settings.parse(entries, users)
    assert conf.errors == []
    return conf, users


def test_the_most_specific_threshold_in_force_on_the_date_wins() -> None:
    conf, users = load_settings()

    def threshold(user: str, commodity: str, day: str) -> str | None:
        found = settings.low_balance_threshold(
            conf, users[user], commodity, datetime.date.fromisoformat(day)
        )
        return None if found is None else f"{found.amount} {found.scope}"

    assert threshold("alice", "CREDIT", "2024-01-15") == "200 CREDIT segment"
    assert threshold("alice", "CREDIT", "2024-02-01") == "500 CREDIT user"
    assert threshold("alice", "CREDIT", "2024-06-01") == "500 CREDIT user"
    assert threshold("bob", "CREDIT", "2024-06-01") == "50 CREDIT default"
    assert threshold("carol", "SESSION", "2024-06-01") == "2 SESSION default"
    assert threshold("carol", "CREDIT", "2023-12-31") is None
    assert threshold("carol", "POINTS", "2024-06-01") is None


def test_contact_replaces_the_previous_one_and_falls_back_to_the_wallet() -> None:
    conf, users = load_settings()
    january = settings.contact(conf, users["alice"], datetime.date(2024, 1, 15))
    assert (january.email, january.webhook, january.channels()) == (
        "alice@wallet.example", "https://hooks.example.com/a", {},
    )  # fmt: skip
    later = settings.contact(conf, users["alice"], datetime.date(2024, 2, 15))
    assert later.email == "alice@contact.example" and later.webhook is None
    assert later.channels() == {"webhook": "opted out", "inapp": "opted out"}
    bob = settings.contact(conf, users["bob"], datetime.date(2024, 2, 15))
    assert bob.channels() == {"email": "no email address", "webhook": "no webhook URL"}


def test_expiry_windows_default_then_as_set() -> None:
    conf, _users = load_settings()
    assert settings.expiry_windows(conf, datetime.date(2024, 3, 31)) == (30, 7)
    assert settings.expiry_windows(conf, datetime.date(2024, 4, 1)) == (60, 14, 3)


def test_explain_says_why_an_alert_did_or_did_not_go_out(tmp_path: Path) -> None:
    ledger = copy_ledger(tmp_path)
    append(
        ledger,
        "transactions.beancount",
        '2024-03-05 * "Session"\n  txn_id: "r-1"\n'
        "  Assets:Credits:Users:Alice   -250 CREDIT\n  Expenses:Credits:Sessions\n",
    )
    before = cli("notify", str(ledger), "--date", "2024-03-05", "--explain", "alice", env={})
    assert "CREDIT: 100 CREDIT (segment pro, since 2024-01-01" in before
    assert "balance 50 CREDIT, below" in before
    assert "email: alice@example.com, but the channel is not configured" in before
    assert "webhook: http://127.0.0.1:1/hook, but the channel is not configured" in before
    assert "alerts due on 2024-03-05: 1" in before
    assert "inapp: to send on the next run" in before
    assert "deliveries recorded: none" in before
    cli("notify", str(ledger), "--date", "2024-03-05", env={})
    after = cli("notify", str(ledger), "--date", "2024-03-05", "--explain", "alice", env={})
    assert "inapp: already delivered" in after
    assert "deliveries recorded: 1" in after
    assert "2024-03-05 low-balance" in after and "inapp delivered" in after
    bob = cli("notify", str(ledger), "--date", "2024-03-05", "--explain", "bob", env={})
    assert "email: not used: opted out" in bob and "webhook: not used: opted out" in bob
    assert "expiring" in bob and "(30-day warning)" in bob
    acme = cli("notify", str(ledger), "--date", "2024-03-05", "--explain", "org-acme", env={})
    assert "CREDIT: no threshold set (balance 600 CREDIT)" in acme
    assert "auto top-up: 1000 CREDIT from 'card-on-file' below 500 CREDIT" in acme
    unknown = cli("notify", str(ledger), "--explain", "nobody", env={}, code=2)
    assert "unknown user id 'nobody'" in unknown and "Traceback" not in unknown


def test_malformed_settings_stop_notify_and_topup_with_file_and_line(tmp_path: Path) -> None:
    ledger = copy_ledger(tmp_path)
    settings_file = ledger.parent / "settings.beancount"
    settings_file.write_text(
        settings_file.read_text()
        + '\n2024-03-01 custom "credits-contact" "bob"\n  opt_out: "sms"\n'
    )
    for command in ("notify", "topup"):
        output = cli(command, str(ledger), "--date", "2024-03-05", env={}, code=2)
        assert f"{settings_file}:" in output
        assert "credits-contact 'bob': opt_out: unknown channel(s) sms" in output
        assert "Traceback" not in output
    assert not (ledger.parent / "notify").exists() and not (ledger.parent / "topup").exists()


def test_a_webhook_with_a_line_break_is_not_an_url() -> None:
    # Matched whole: a URL's pattern must not let a final newline through
    # (Beancount's string escapes make one from "\n" in the text).
    text = LEDGER.replace('"https://hooks.example.com/a"', '"https://hooks.example.com/a\\n"')
    entries, errors, _options = loader.load_string(text)
    assert errors == []
    conf = settings.parse(entries, index_users(entries, CreditsConfig()))
    assert [error.message for error in conf.errors] == [
        "credits-contact 'alice': webhook: 'https://hooks.example.com/a\\n' is not an http(s) URL"
    ]
