"""The event importers: golden samples (beangulp's style), the import command, its guarantees.

Golden samples live in tests/importers/golden/: each export (CSV and JSON Lines,
every event type) sits beside ``<export>.beancount``, what beangulp's extract
makes of it (beangulp's own expected-file format), and
``<export>.imported.beancount``, the batch file ``bean-credits import`` writes
into the ledger tests/importers/base/. Set ``GOLDEN_UPDATE=1`` to rewrite them
(then read the diff).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data
from beangulp import testing
from click.testing import CliRunner

from beancount_credits.cli import main
from beancount_credits.importers import CsvImporter, ImportFailed, JsonlImporter, import_events
from beancount_credits.ledger import load
from beancount_credits.reports import REPORTS, Filters

HERE = Path(__file__).parent / "importers"
GOLDEN = HERE / "golden"
BASE = HERE / "base"
SAMPLES = sorted([*GOLDEN.glob("*.csv"), *GOLDEN.glob("*.jsonl")])
UPDATE = os.environ.get("GOLDEN_UPDATE") == "1"


def importer_for(path: Path):  # type: ignore[no-untyped-def]
    return CsvImporter() if path.suffix == ".csv" else JsonlImporter()


@pytest.fixture
def base(tmp_path: Path) -> Path:
    root = tmp_path / "ledger"
    shutil.copytree(BASE, root)
    return root / "main.beancount"


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def errors_of(ledger: Path) -> list[str]:
    _entries, errors, _options = loader.load_file(str(ledger))
    return [error.message for error in errors]


# --- Golden samples -------------------------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.name)
def test_beangulp_extract_matches_the_expected_file(sample: Path) -> None:
    importer = importer_for(sample)
    assert importer.identify(str(sample))
    other = JsonlImporter() if sample.suffix == ".csv" else CsvImporter()
    assert not other.identify(str(sample))
    account, date, name, entries = testing.run_importer(importer, str(sample))
    expected = Path(str(sample) + ".beancount")
    if UPDATE:
        testing.write_expected_file(str(expected), account, date, name, entries, force=True)
    diff = testing.compare_expected(str(expected), account, date, name, entries)
    assert not diff, "".join(diff)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.name)
def test_import_command_writes_the_expected_batch_and_is_idempotent(
    sample: Path, base: Path
) -> None:
    code, output = run("import", str(base), str(sample))
    assert code == 0, output
    assert "17 new, 0 already imported" in output
    batches = list((base.parent / "imports").glob("*.beancount"))
    assert len(batches) == 1
    expected = Path(str(sample) + ".imported.beancount")
    if UPDATE:
        expected.write_text(batches[0].read_text())
    assert batches[0].read_text() == expected.read_text()
    assert 'include "imports/*.beancount"' in base.read_text()
    assert errors_of(base) == []
    before = snapshot(base.parent)
    code, output = run("import", str(base), str(sample))
    assert code == 0, output
    assert "0 new, 17 already imported" in output
    assert "wrote" not in output
    assert snapshot(base.parent) == before


def test_both_formats_import_the_same_ledger(tmp_path: Path) -> None:
    texts = []
    for sample in SAMPLES:
        root = tmp_path / sample.suffix.strip(".")
        shutil.copytree(BASE, root)
        import_events(root / "main.beancount", sample)
        (batch,) = (root / "imports").glob("*.beancount")
        texts.append(batch.read_text())
    assert len(texts) == 2 and texts[0] == texts[1]


# --- What the imported ledger says -----------------------------------------------------


def test_imported_sample_reads_back_as_the_events_say(base: Path) -> None:
    import_events(base, GOLDEN / "events.csv")
    ledger = load(base)
    alice = ledger.user("alice")
    assert alice.open.meta["segment"] == "pro"
    assert alice.open.meta["email"] == "alice@example.com"
    assert alice.credit_limit == 100
    by_id = {
        entry.meta["txn_id"]: entry
        for entry in ledger.entries
        if isinstance(entry, data.Transaction | data.Custom) and "txn_id" in entry.meta
    }
    assert by_id["pr-1"].date.isoformat() == "2024-03-02"  # 23:30 at UTC-5 is the next UTC day
    assert by_id["pr-1"].narration == 'Spring "double" week'
    assert by_id["p-1"].meta["unit_cost"].number == Decimal("0.1")
    assert by_id["p-1"].meta["expires"].isoformat() == "2025-06-30"
    assert by_id["r-2"].flag == "*" and by_id["r-2"].meta["settled"].isoformat() == "2024-03-08"
    assert by_id["r-3"].flag == "*" and by_id["r-3:cancelled"].meta["reverses"] == "r-3"
    failed = by_id["t-2"]
    assert isinstance(failed, data.Custom) and failed.type == "credits-topup"
    assert [value.value for value in failed.values] == ["bob", "failed"]
    assert failed.meta["reason"] == "card declined" and str(failed.meta["amount"]) == "20 CREDIT"
    assert by_id["t-1"].meta["topup_request"] == "req-1"
    change = by_id["u-2"]
    assert isinstance(change, data.Custom) and change.type == "credits-user"
    assert change.meta["segment"] == "enterprise" and "email" not in change.meta
    # alice: 500 + 50 + 10 + 100 granted; 30 - 30 (reversed), 40, 15 - 15 (cancelled), 5 used
    statement = REPORTS["statement"](ledger, Filters(user="alice", date_to=by_id["r-4"].date))
    assert list(statement.rows)[-1][-1] == 500 + 50 + 10 + 100 - 40 - 5
    assert ledger.user("carol").segment == "pro"  # the open's segment; the change is a custom


def test_failed_rows_are_all_listed_and_nothing_is_written(base: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "type,id,timestamp,user,amount,session,reverses\n"
        "purchase,ok-1,2024-03-01T10:00:00Z,carol,10,,\n"
        "redeem,b-1,2024-03-02T10:00:00Z,carol,abc,s-1,\n"  # bad number
        "redeem,b-2,2024-03-02T10:00:00Z,carol,5000,s-1,\n"  # beyond the balance
        "teleport,b-3,2024-03-02T10:00:00Z,carol,1,,\n"  # unknown type
        "redeem,b-4,yesterday,,1,,\n"  # bad date, no user, no session
        "reverse,b-5,2024-03-02T10:00:00Z,carol,,,nope\n"  # reverses an unknown id
        'purchase,b-6,2024-03-02T10:00:00Z,"",5,,\n'  # empty user id
        "redeem,ok-2,2024-03-03T10:00:00Z,carol,2,s-2,\n"
    )
    before = snapshot(base.parent)
    code, output = run("import", str(base), str(bad))
    assert code == 2
    assert "Traceback" not in output
    assert "bad.csv: 6 bad row(s); nothing was imported" in output
    assert "bad.csv:3: event 'b-1', user 'carol': amount: 'abc' is not a number" in output
    assert "bad.csv:4: event 'b-2', user 'carol': amount: Draw-down of 5000 CREDIT" in output
    assert "bad.csv:5: event 'b-3', user 'carol': type: unknown event type 'teleport'" in output
    assert "bad.csv:6: event 'b-4': timestamp: 'yesterday' is not an ISO 8601 timestamp" in output
    assert "bad.csv:6: event 'b-4': user: missing" in output
    assert "bad.csv:7: event 'b-5', user 'carol': reverses: no credits transaction" in output
    assert "bad.csv:8: event 'b-6': user: missing" in output
    assert "ok-" not in output
    assert snapshot(base.parent) == before

    code, output = run("import", str(base), str(bad), "--skip-invalid")
    assert code == 0, output
    assert "2 new, 0 already imported, 6 rejected" in output
    rejects = tmp_path / "bad.rejects.csv"
    assert f"wrote rejects to {rejects}" in output
    lines = rejects.read_text().splitlines()
    assert lines[0] == "type,id,timestamp,user,amount,session,reverses"
    assert [line.split(",")[1] for line in lines[1:]] == ["b-1", "b-2", "b-3", "b-4", "b-5", "b-6"]
    assert errors_of(base) == []
    # The rejects are an export of their own: fixed or not, they import alike.
    code, output = run("import", str(base), str(rejects))
    assert code == 2 and "6 bad row(s)" in output


def test_overdraws_of_one_wallet_reject_only_the_culprit(base: Path, tmp_path: Path) -> None:
    batch = tmp_path / "spend.jsonl"
    events = [
        {"type": "purchase", "id": "g", "timestamp": "2024-03-01", "user": "dan", "amount": 10},
        {"type": "redeem", "id": "big", "timestamp": "2024-03-02", "user": "dan", "amount": 50,
         "session": "s"},
        {"type": "redeem", "id": "small", "timestamp": "2024-03-03", "user": "dan", "amount": 4,
         "session": "s"},
    ]  # fmt: skip
    batch.write_text("".join(json.dumps(event) + "\n" for event in events))
    code, output = run("import", str(base), str(batch), "--skip-invalid")
    assert code == 0, output
    assert "2 new, 0 already imported, 1 rejected" in output
    assert "spend.jsonl:2: event 'big'" in output
    assert "'small'" not in output


def test_credit_limit_of_a_known_user_is_refused(base: Path) -> None:
    event = {"type": "user", "id": "u-9", "timestamp": "2024-03-01T00:00:00Z", "user": "carol"}
    with pytest.raises(ImportFailed) as failure:
        import_events(base, [{**event, "credit_limit": 50}])
    assert "credit_limit: user 'carol' exists; the grant engine reads credit_limit" in str(
        failure.value
    )
    result = import_events(base, [{**event, "credit_limit": 0, "email": "c@new.example"}])
    assert (result.new, result.already) == (1, 0)  # the default limit 0 is no change


def test_stdin_and_in_process_calls(base: Path) -> None:
    line = json.dumps(
        {"type": "redeem", "id": "live-1", "timestamp": "2024-03-05T10:00:00Z", "user": "carol",
         "amount": 2, "commodity": "SESSION", "session": "s-live", "status": "pending"}
    )  # fmt: skip
    code, output = run("import", str(base), "-", input=line + "\n")
    assert code == 0, output
    assert "import <stdin>: 1 new, 0 already imported" in output
    settled = {**json.loads(line), "status": "settled", "timestamp": "2024-03-06T10:00:00Z"}
    result = import_events(base, [settled])
    assert (result.new, result.already) == (1, 0)
    assert result.batch_file is None  # only the pending entry's file changed
    (batch,) = (base.parent / "imports").glob("*.beancount")
    text = batch.read_text()
    assert '2024-03-05 * "Session s-live"' in text and "settled: 2024-03-06" in text
    assert import_events(base, io.StringIO(line)).already == 1


def test_pending_shows_apart_in_the_statement(base: Path) -> None:
    events = [
        {"type": "redeem", "id": "p1", "timestamp": "2024-03-05", "user": "carol", "amount": 3,
         "commodity": "SESSION", "session": "s-a", "status": "pending"},
        {"type": "redeem", "id": "s1", "timestamp": "2024-03-05", "user": "carol", "amount": 1,
         "commodity": "SESSION", "session": "s-b"},
    ]  # fmt: skip
    import_events(base, events)
    table = REPORTS["statement"](load(base), Filters(user="carol"))
    names = [column.name for column in table.columns]
    assert names[names.index("Redeemed") + 1] == "Pending"
    rows = {row[0]: dict(zip(names, row, strict=True)) for row in table.rows}
    assert rows["p1"]["Pending"] == 3 and rows["p1"]["Redeemed"] is None
    assert rows["s1"]["Redeemed"] == 1 and rows["s1"]["Pending"] is None
    assert rows["s1"]["Balance"] == 6  # pending counts against the balance
    assert any("Pending: 1 redemption(s), 3 credits" in note for note in table.notes)
    import_events(base, [{**events[0], "status": "cancelled", "timestamp": "2024-03-06"}])
    table = REPORTS["statement"](load(base), Filters(user="carol"))
    assert "Pending" not in [column.name for column in table.columns]
    assert list(table.rows)[-1][-1] == 9


def test_cancel_of_a_settled_redemption_is_refused(base: Path) -> None:
    redeem = {"type": "redeem", "id": "r", "timestamp": "2024-03-05", "user": "carol",
              "amount": 1, "commodity": "SESSION", "session": "s"}  # fmt: skip
    import_events(base, [redeem])
    with pytest.raises(ImportFailed) as failure:
        import_events(base, [{**redeem, "status": "cancelled"}])
    assert "status: redemption 'r' is settled; undo it with a reverse event" in str(failure.value)


def test_commit_records_the_import(tmp_path: Path, base: Path) -> None:
    from conftest import git

    (base.parent / ".gitignore").write_text(".bean-credits.lock\n")
    git(base.parent, "init", "-q")
    git(base.parent, "add", ".")
    git(base.parent, "commit", "-qm", "base")
    code, output = run("import", str(base), str(GOLDEN / "events.jsonl"), "--commit")
    assert code == 0, output
    log = git(base.parent, "log", "-1", "--format=%s")
    assert log.strip().endswith("events.jsonl: 17 new, 0 already imported")
    assert git(base.parent, "status", "--porcelain").strip() == ""


# --- beangulp's command line and Fava's import page ------------------------------------


def test_beangulp_command_line(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "beancount_credits.importers.config"]
    identify = subprocess.run(
        [*command, "identify", str(GOLDEN)], capture_output=True, text=True, check=True
    )
    assert "events.csv" in identify.stdout and "beancount_credits.events.csv" in identify.stdout
    assert "beancount_credits.events.jsonl" in identify.stdout
    out = tmp_path / "extracted.beancount"
    subprocess.run(
        [*command, "extract", "-e", str(BASE / "main.beancount"), "-o", str(out),
         str(GOLDEN / "events.csv")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    text = out.read_text()
    assert 'custom "credits-user" "carol"' in text  # carol is in the existing ledger
    assert "open Assets:Credits:Users:Carol" not in text
    archive = tmp_path / "documents"
    archive.mkdir()
    shutil.copy(GOLDEN / "events.jsonl", tmp_path / "events.jsonl")
    subprocess.run(
        [*command, "archive", "-o", str(archive), str(tmp_path / "events.jsonl")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    archived = list(archive.rglob("*.jsonl"))
    assert len(archived) == 1
    assert "Assets/Credits/Users" in str(archived[0])


def test_fava_import_page_on_the_demo_ledger(demo_ledger: Path) -> None:
    from fava.core import FavaLedger

    ledger = FavaLedger(str(demo_ledger))
    assert not ledger.ingest.errors
    found = {Path(item.name).name: item for item in ledger.ingest.import_data()}
    item = found["2026-11-21-checkout.jsonl"]
    assert [info.importer_name for info in item.importers] == ["beancount_credits.events.jsonl"]
    entries = ledger.ingest.extract(item.name, "beancount_credits.events.jsonl")
    kinds = sorted(type(entry).__name__ for entry in entries)
    assert kinds == ["Custom", "Open", "Transaction", "Transaction"]
    settled = [
        entry for entry in entries if getattr(entry, "meta", {}).get("txn_id") == "demo-evt-2"
    ]
    assert settled[0].flag == "*" and settled[0].meta["settled"].isoformat() == "2026-11-21"
