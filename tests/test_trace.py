"""``bean-credits trace`` on the demo ledger: each mode, and an order no entry mentions.

The demo is copied into a fresh git repository, so each entry's commit is one
this test made; a missing order is refused at import first (a real import
with --skip-invalid), so the rejects file the importer wrote is what trace
finds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DEMO, git

from beancount_credits.cli import main


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("trace") / "demo"
    shutil.copytree(DEMO.parent, root, ignore=shutil.ignore_patterns(".*picklecache", ".*"))
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "The demo ledger")
    sha = git(root, "rev-parse", "--short=10", "HEAD").strip()
    return root / "main.beancount", sha


def trace(ledger: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["trace", str(ledger), *args])
    assert result.exit_code == 0, result.output
    return result.output


def rows(output: str) -> list[list[str]]:
    """The table's lines split on runs of two or more spaces."""
    import re

    lines = output.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("----"))
    return [re.split(r"\s{2,}", line.strip()) for line in lines[start + 1 :] if line.strip()]


def test_a_grant_shows_where_every_credit_went(demo: tuple[Path, str]) -> None:
    ledger, sha = demo
    output = trace(ledger, "--grant", "p-000065")
    assert output.startswith("Grant p-000065\n")
    assert "500 CREDIT granted to ingrid_rossi: 500 consumed, 0 expired, 0 remaining" in output
    found = rows(output)
    assert found[0][:4] == [
        "2026-01-01",
        "granted from Income:Credits:Purchase; unit cost 0.10 USD; expires 2027-01-01",
        "p-000065",
        "500",
    ]
    assert found[0][-2:] == ["transactions/2026.beancount:18", sha]
    assert found[1] == ["2026-01-01", "repaid an earlier overdraft", "p-000065", "-174"]
    assert found[2] == [
        "2026-01-05", "drawn down", "r-000626", "-80", "session s-10528",
        "transactions/2026.beancount:211", sha,
    ]  # fmt: skip
    assert found[-1] == ["2026-11-21", "remaining", "0"]
    drawn = sum(int(row[3]) for row in found[1:-1])
    assert drawn == -500


def test_an_expired_grant_shows_its_recorded_expiry(demo: tuple[Path, str]) -> None:
    ledger, sha = demo
    found = rows(trace(ledger, "--grant", "m-000001"))
    # Spent on a session that was refunded after the promotion expired: the
    # credits given back went straight to breakage (the close-day log holds it).
    assert [row[1:4] for row in found] == [
        ["granted from Income:Credits:Promotion; expires 2025-10-01", "m-000001", "50"],
        ["drawn down", "r-000045", "-50"],
        ["given back by the reversal of r-000045", "v-000001", "50"],
        ["expired", "m-000001:expiry:v-000001", "-50"],
        ["remaining", "0"],
    ]
    assert found[3][-2:] == ["log/2025/10.beancount:8", sha]


def test_a_session_order_and_transaction_show_the_grants_that_paid(demo: tuple[Path, str]) -> None:
    ledger, sha = demo
    session = trace(ledger, "--session", "s-10528")
    assert session.startswith("Session s-10528: the grants that paid\n")
    assert rows(session) == [
        ["2026-01-05", "r-000626", "p-000065", "Income:Credits:Purchase", "2026-01-01",
         "p-000065", "80", "0.10 USD", "8.00 USD", sha],
    ]  # fmt: skip
    order = rows(trace(ledger, "--order", "o-20001"))
    assert [row[2] for row in order] == ["m-000006", "p-000005"]
    assert order[1][6:9] == ["50", "0.10 USD", "5.00 USD"]
    assert rows(trace(ledger, "--txn", "r-000019")) == order
    # A refunded session: what was given back is shown.
    refunded = rows(trace(ledger, "--session", "s-10042"))
    assert refunded and all(row[1] == "r-000045" for row in refunded)
    assert sum(int(row[-2]) for row in refunded) > 0


def test_an_order_with_no_entry_says_so_and_shows_what_is_near(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    ledger, _sha = demo
    events = tmp_path / "checkout.jsonl"
    common = {"type": "purchase", "user": "sara.patel", "price": "4.00 USD"}
    good = {**common, "id": "evt-t1", "timestamp": "2026-11-20T09:00:00Z", "amount": 40}
    good["order"] = "o-91000"
    bad = {**common, "id": "evt-t2", "timestamp": "2026-11-20T09:05:00Z", "amount": "forty"}
    bad["order"] = "o-91001"
    events.write_text("".join(json.dumps(event) + "\n" for event in (good, bad)))
    rejects = ledger.parent / "incoming" / "checkout.rejects.jsonl"
    result = CliRunner().invoke(
        main,
        ["import", str(ledger), str(events), "--skip-invalid", "--rejects", str(rejects)],
    )
    assert result.exit_code == 0, result.output
    assert rejects.exists()
    # The purchase that was imported: its order traces its grant.
    purchase = trace(ledger, "--order", "o-91000")
    assert purchase.startswith("Grant ") and "40 CREDIT granted to sara.patel" in purchase
    output = trace(ledger, "--order", "o-91001")
    assert output.startswith("Order o-91001: not in the ledger; near it\n")
    assert "No entry of the ledger mentions order 'o-91001'" in output
    assert "1 row(s) of the importer's rejects files mention it" in output
    assert "looked at: 3 days either side of 2026-11-20, user sara.patel" in output
    near = rows(output.split("Rejected at import")[0])
    assert [
        near[0][0],
        near[0][1],
        near[0][2],
        near[0][3],
    ] == ["2026-11-20", "evt-t1", "sara.patel", "40"]
    assert "Rejected at import" in output
    assert "incoming/checkout.rejects.jsonl:1" in output and "evt-t2" in output
    # Without a rejects file, the user and day asked for anchor the search.
    output = trace(ledger, "--order", "o-99999", "--amount", "40", "--date", "2026-11-21")
    assert "no rejects file under the ledger's folder mentions it" in output
    assert "same amount" in output


def test_one_mode_is_asked_and_an_unknown_grant_is_an_error(demo: tuple[Path, str]) -> None:
    ledger, _sha = demo
    result = CliRunner().invoke(main, ["trace", str(ledger)])
    assert result.exit_code == 2 and "give one of --grant" in result.output
    result = CliRunner().invoke(main, ["trace", str(ledger), "--grant", "no-such"])
    assert result.exit_code == 2 and "unknown grant id 'no-such'" in result.output


@pytest.mark.parametrize("mode", ["--grant", "--txn", "--order", "--session"])
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_id_is_refused_not_matched_everywhere(
    demo: tuple[Path, str], mode: str, value: str
) -> None:
    # An entry without a session (or order) is not the session "": an empty
    # id matched every such transaction and traced every grant of the ledger.
    ledger, _sha = demo
    result = CliRunner().invoke(main, ["trace", str(ledger), mode, value])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {mode}: is empty" in result.output
    assert "Grant " not in result.output


def test_an_id_with_spaces_around_it_is_the_id(demo: tuple[Path, str]) -> None:
    ledger, _sha = demo
    assert trace(ledger, "--session", " s-10528 ") == trace(ledger, "--session", "s-10528")


def test_the_demo_plan_allowance_and_scoped_pack(demo: tuple[Path, str]) -> None:
    """The demo's plan (plans.beancount): a scoped pack spent by sessions only, and
    the monthly allowance, whose rollover and expiry the trace shows."""
    ledger, sha = demo
    pack = trace(ledger, "--grant", "p-900001")
    assert "for Expenses:Credits:Sessions" in pack
    drawn = [row for row in rows(pack) if row[1] == "drawn down"]
    assert drawn and all(row[4].startswith("session ") for row in drawn)
    assert sum(-int(row[3]) for row in drawn) == 400
    allowance = rows(trace(ledger, "--grant", "allowance:studio-nova:2026-02-15"))
    assert allowance[0][1] == "granted from Income:Credits:Plan; expires 2026-03-15"
    expired = [row for row in allowance if row[1] == "expired"]
    # What was left on 2026-03-15 expired (no rollover in the demo's plan),
    # written by close-day into the log.
    assert expired and expired[0][2] == "allowance:studio-nova:2026-02-15:expiry"
    assert expired[0][-2:] == ["log/2026/03.beancount:" + expired[0][-2].split(":")[-1], sha]
    order = rows(trace(ledger, "--order", "o-30001"))
    assert [row[2] for row in order] == ["allowance:studio-nova:2026-01-15"]
