"""The legitimate ways a sealed ledger changes: each keeps bean-check clean, and each that
changes a sealed day writes an amendment.

The ledger is tests/daily (two users, February and March 2024) with the seal
plugin on, sealed by close-day through 2024-03-10 and committed.
"""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

import pytest
from beancount.core import data
from click.testing import CliRunner
from conftest import DAILY, git

from beancount_credits.cli import main
from beancount_credits.engine import seal
from beancount_credits.importers import import_events
from beancount_credits.jobs import close_day
from beancount_credits.ledger import LedgerError, load, write

SEAL_PLUGIN = 'plugin "beancount_credits.plugins.seal"'
MALLORY = "Mallory Ops <mallory@example.com>"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def clean(main_file: Path) -> None:
    """bean-check's verdict (Beancount's loader, plugins on): no error at all."""
    errors = load(main_file, cache=False).errors
    assert errors == [], [error.message for error in errors[:5]]


def amendments(main_file: Path) -> list[data.Custom]:
    return [
        entry
        for entry in load(main_file, cache=False).entries
        if isinstance(entry, data.Custom) and entry.type == seal.AMEND
    ]


def seals(main_file: Path) -> list[seal.Seal]:
    return seal.read_seals(load(main_file, cache=False).entries)[0]


def recorded(main_file: Path, account: str, date: str) -> object:
    for entry in load(main_file, cache=False).entries:
        if (
            isinstance(entry, data.Balance)
            and entry.account == account
            and str(entry.date) == date
            and str(entry.meta.get("filename", "")).endswith(".beancount")
        ):
            return entry.amount.number
    return None


@pytest.fixture
def sealed(tmp_path: Path) -> Path:
    """tests/daily with the seal plugin, sealed through 2024-03-10 and committed."""
    root = tmp_path / "ledger"
    shutil.copytree(DAILY, root)
    main_file = root / "main.beancount"
    text = main_file.read_text()
    main_file.write_text(
        text.replace(
            'plugin "beancount_credits.plugins.daily_balances"\n',
            f'plugin "beancount_credits.plugins.daily_balances"\n{SEAL_PLUGIN}\n',
        )
    )
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "Ledger as imported")
    code, output = run("close-day", str(main_file), "--date", "2024-03-10", "--commit")
    assert code == 0, output
    return main_file


def test_close_day_seals_every_day_once_and_the_chain_goes_on(sealed: Path) -> None:
    days = [item.day for item in seals(sealed)]
    assert days[0] == datetime.date(2024, 1, 1)  # the ledger's first entry
    assert days[-1] == datetime.date(2024, 3, 10)
    assert days == [days[0] + datetime.timedelta(days=n) for n in range(len(days))]
    code, output = run("close-day", str(sealed), "--date", "2024-03-10")
    assert code == 0 and "nothing to write" in output
    code, output = run("close-day", str(sealed), "--date", "2024-03-20", "--commit")
    assert code == 0, output
    assert "and 10 seals (2024-03-11 .. 2024-03-20)" in output
    clean(sealed)
    assert seals(sealed)[-1].day == datetime.date(2024, 3, 20)
    assert amendments(sealed) == []


def test_a_ledger_without_the_plugin_gets_no_seals(ledger: Path) -> None:
    code, output = run("close-day", str(ledger), "--date", "2024-03-10")
    assert code == 0 and "seal" not in output
    assert seals(ledger) == []
    clean(ledger)


def test_a_back_dated_import_amends_the_sealed_days(sealed: Path) -> None:
    assert recorded(sealed, "Assets:Credits:Users:Bob", "2024-03-06") == 35
    late = {
        "type": "redeem",
        "id": "late-1",
        "timestamp": "2024-03-05T10:00:00Z",
        "user": "bob",
        "amount": "2",
        "session": "s-late",
    }
    result = import_events(sealed, [late], commit=True)
    assert result.new == 1 and result.commit
    clean(sealed)
    (record,) = amendments(sealed)
    assert seal.custom_value(record.values[0]) == datetime.date(2024, 3, 5)
    assert "late-1 (2024-03-05, late)" in record.meta["reason"]
    assert record.meta["through"] == datetime.date(2024, 3, 10)
    assert "late-1: added (2024-03-05)" in record.meta["changed"]
    assert recorded(sealed, "Assets:Credits:Users:Bob", "2024-03-06") == 33  # re-logged
    assert recorded(sealed, "Assets:Credits:Users:Bob", "2024-03-11") == 26
    code, output = run("verify", str(sealed))
    assert code == 0, output
    assert "verify: 1 amendment(s)" in output
    assert "by Daily Job <daily-job@example.com>" in output


PENDING = [
    {"type": "redeem", "id": "pr-1", "timestamp": "2024-03-12T10:00:00Z", "user": "bob",
     "amount": "2", "session": "s-9", "status": "pending"},
    {"type": "redeem", "id": "pr-2", "timestamp": "2024-03-12T11:00:00Z", "user": "bob",
     "amount": "3", "session": "s-10", "status": "pending"},
]  # fmt: skip


def test_settling_and_cancelling_sealed_pending_redemptions_amend(sealed: Path) -> None:
    import_events(sealed, PENDING, commit=True)
    code, output = run("close-day", str(sealed), "--date", "2024-03-12", "--commit")
    assert code == 0, output
    resolve = [
        {**PENDING[0], "timestamp": "2024-03-14T09:00:00Z", "status": "settled"},
        {**PENDING[1], "timestamp": "2024-03-14T09:00:00Z", "status": "cancelled"},
    ]
    result = import_events(sealed, resolve, commit=True)
    assert result.new == 2  # a settle, a cancel (and the cancel's reversal)
    clean(sealed)
    (record,) = amendments(sealed)
    assert seal.custom_value(record.values[0]) == datetime.date(2024, 3, 12)
    assert "pr-1 (settled)" in record.meta["reason"]
    assert "pr-2 (cancelled)" in record.meta["reason"]
    assert "pr-1: date, flag or terms" in record.meta["changed"]  # the flag is sealed
    assert any("settled: 2024-03-14" in path.read_text() for path in result.written)


def test_settling_a_pending_redemption_not_sealed_yet_is_no_amendment(sealed: Path) -> None:
    import_events(sealed, PENDING[:1], commit=True)
    import_events(sealed, [{**PENDING[0], "status": "settled"}], commit=True)
    clean(sealed)
    assert amendments(sealed) == []


def test_an_expiry_change_of_a_sealed_grant_amends_and_relogs_its_expiry(sealed: Path) -> None:
    log = sealed.parent / "log" / "2024" / "03.beancount"
    assert '"promo-1:expiry"' in log.read_text()
    change = {
        "type": "expiry_change",
        "id": "ec-1",
        "timestamp": "2024-03-14T09:00:00Z",
        "grant": "promo-1",
        "expires": "2024-04-30",
    }
    import_events(sealed, [change], commit=True)
    clean(sealed)
    assert '"promo-1:expiry"' not in log.read_text()  # it no longer expired on 2024-03-06
    (record,) = amendments(sealed)
    assert seal.custom_value(record.values[0]) == datetime.date(2024, 2, 6)
    assert "ec-1 (expiry changed)" in record.meta["reason"]
    assert "promo-1:expiry: recorded expiry removed" in record.meta["changed"]
    assert recorded(sealed, "Assets:Credits:Users:Alice", "2024-03-07") is None


def test_a_hand_correction_is_amended_with_reason_approver_and_author(sealed: Path) -> None:
    root = sealed.parent
    before = {item.day: item.digest for item in seals(sealed)}
    transactions = root / "transactions.beancount"
    transactions.write_text(transactions.read_text().replace("-15 CREDIT", "-14 CREDIT", 1))
    errors = load(sealed, cache=False).errors
    assert any(
        "sealed history changed on 2024-02-10: r-1: amount changed" in e.message for e in errors
    )

    code, output = run(
        "amend", str(sealed), "--reason", "Session s-1 was 14 credits", "--approved-by", "Dana",
        "--date", "2024-03-12", "--commit",
    )  # fmt: skip
    assert code == 0, output
    assert output.startswith("amend 2024-02-10: ")
    assert "r-1: amount changed (now -14 CREDIT)" in output
    clean(sealed)
    (record,) = amendments(sealed)
    assert record.date == datetime.date(2024, 3, 12)
    assert record.meta["old"] == before[datetime.date(2024, 2, 10)]
    assert (
        record.meta["new"]
        == {item.day: item.digest for item in seals(sealed)}[datetime.date(2024, 2, 10)]
    )
    assert record.meta["approved_by"] == "Dana"
    after = {item.day: item.digest for item in seals(sealed)}
    # Days before the first changed one keep their seals.
    first = datetime.date(2024, 2, 10)
    assert all(after[day] == digest for day, digest in before.items() if day < first)
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""
    code, output = run("verify", str(sealed))
    assert code == 0, output
    assert "2024-02-10 .. 2024-03-10 on 2024-03-12 by Daily Job" in output
    assert "approved by Dana: Session s-1 was 14 credits" in output
    code, output = run("report", "audit", str(sealed), "--to", "2024-12-31")
    assert code == 0, output
    assert (
        "amendment" in output and "reason: Session s-1 was 14 credits; approved by: Dana" in output
    )


def test_amend_refuses_what_it_cannot_record(sealed: Path) -> None:
    root = sealed.parent
    code, output = run("amend", str(sealed), "--reason", "nothing")
    assert code == 0 and "nothing to amend" in output
    transactions = root / "transactions.beancount"
    original = transactions.read_text()
    transactions.write_text(original.replace("-15 CREDIT", "-14 CREDIT", 1))
    code, output = run("amend", str(sealed), "--reason", "x", "--date", "2024-03-10")
    assert code == 2 and "not after the last sealed day 2024-03-10" in output
    transactions.write_text(original.replace("-15 CREDIT", "-500 CREDIT", 1))  # an overdraw
    logs = {path: path.read_text() for path in (root / "log").rglob("*.beancount")}
    code, output = run("amend", str(sealed), "--reason", "x", "--date", "2024-03-12")
    assert code == 2 and "nothing was written" in output and "exceeds" in output
    assert {path: path.read_text() for path in (root / "log").rglob("*.beancount")} == logs


def test_a_tampering_amended_later_is_shown_as_amended(sealed: Path) -> None:
    root = sealed.parent
    transactions = root / "transactions.beancount"
    transactions.write_text(transactions.read_text().replace("-15 CREDIT", "-14 CREDIT", 1))
    git(root, "commit", "-qam", "Quiet fix", author=MALLORY)
    code, output = run("verify", str(sealed))
    assert code == 1
    assert "alice 2024-02-10: transaction r-1 changed (transactions.beancount)" in output
    code, output = run("report", "audit", str(sealed), "--to", "2024-12-31")
    assert "broken-seal" in output and "Mallory Ops" in output
    code, output = run(
        "amend", str(sealed), "--reason", "Ticket 12", "--date", "2024-03-12", "--commit"
    )
    assert code == 0, output
    code, output = run("verify", str(sealed))
    assert code == 0, output
    assert "0 change(s) of sealed days without an amendment, 1 amended later" in output
    assert "amended later: 2024-02-10 .. 2024-03-10 on 2024-03-12 by Daily Job" in output


def test_close_period_carries_the_chain_and_the_archive_still_verifies(sealed: Path) -> None:
    root = sealed.parent
    archived = {item.day: item.digest for item in seals(sealed)}
    code, output = run("close-period", str(sealed), "--through", "2024-02-29", "--commit")
    assert code == 0, output
    clean(sealed)
    opening = seals(sealed)[0]
    assert opening.day == datetime.date(2024, 2, 29)
    assert opening.closed == archived[datetime.date(2024, 2, 29)]
    assert opening.entry.meta["filename"].endswith("opening/2024-03-01.beancount")
    # The new period's seals and the archive's are the ones written before the close.
    assert {item.day: item.digest for item in seals(sealed)[1:]} == {
        day: digest for day, digest in archived.items() if day > opening.day
    }
    code, output = run("verify", str(sealed))
    assert code == 0, output
    assert "verify: the whole history's 70 seals hold" in output
    history = root / ".bean-credits-history.beancount"
    run("report", "audit", str(sealed), "--to", "2024-12-31")  # writes the history view
    clean(history)
    assert [item.day for item in seals(history)] == sorted(archived)
    code, output = run("close-day", str(sealed), "--date", "2024-03-20", "--commit")
    assert code == 0, output
    clean(sealed)
    clean(history)
    # A change of a closed day cannot be amended: the archive's seals hold it.
    accounts = root / "accounts.beancount"
    accounts.write_text(accounts.read_text().replace('user_id: "bob"', 'user_id: "bobby"'))
    code, output = run("amend", str(sealed), "--reason", "rename", "--date", "2024-03-25")
    assert code == 2 and "closed period" in output


@pytest.mark.parametrize("ready", [True, False])
def test_a_close_day_interrupted_mid_write_is_recovered_clean(sealed: Path, ready: bool) -> None:
    loaded = load(sealed, for_write=True)
    planned = close_day.plan(loaded, datetime.date(2024, 4, 2))  # two months
    changes = close_day.changes(loaded, planned)
    assert len(changes) > 1  # several files: through the journal
    write.stage(sealed, changes, "close-day 2024-04-02 (interrupted)")
    if not ready:
        journal = write.read_journal(sealed)
        assert journal is not None
        write.write_journal(sealed, {**journal, "state": "staging"})
    else:
        with pytest.raises(LedgerError, match="interrupted half-way"):
            load(sealed)
    code, output = run("recover", str(sealed))
    assert code == 0, output
    clean(sealed)
    assert seals(sealed)[-1].day == (
        datetime.date(2024, 4, 2) if ready else datetime.date(2024, 3, 10)
    )


def test_fava_and_beangulp_refuse_events_of_sealed_days(sealed: Path, tmp_path: Path) -> None:
    from beancount_credits.importers import ImportFailed, JsonlImporter

    events = tmp_path / "late.jsonl"
    events.write_text(
        '{"type": "redeem", "id": "late-1", "timestamp": "2024-03-05T10:00:00Z", '
        '"user": "bob", "amount": "2", "session": "s-late"}\n'
    )
    existing = load(sealed, cache=False).entries
    with pytest.raises(ImportFailed) as raised:
        JsonlImporter().extract(str(events), existing)
    assert "late-1 (2024-03-05, late): changes a sealed day" in str(raised.value)
    assert "bean-credits import, which records the amendment" in str(raised.value)
