"""Report cases: ``tests/reports/<ledger>.<case>.txt`` is a report's expected output.

The first line of each file is the command, with LEDGER standing for
``tests/reports/<ledger>.beancount``; the rest is what it prints. Set
``UPDATE_CASES=1`` to rewrite them from the current output (review the diff).
"""

from __future__ import annotations

import datetime
import os
import shlex
from decimal import Decimal
from pathlib import Path

import pytest
from beanquery import query as bql
from click.testing import CliRunner

from beancount_credits.cli import main
from beancount_credits.ledger import load
from beancount_credits.reports import REPORTS as REPORT_FUNCTIONS
from beancount_credits.reports import Filters

REPORTS = Path(__file__).parent / "reports"
CASES = sorted(REPORTS.glob("*.txt"))
DEMO = Path(__file__).parent.parent / "ledgers" / "demo" / "main.beancount"
DEMO_END = "2026-11-20"


def run(args: list[str]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_report_case(case: Path) -> None:
    command, _, expected = case.read_text().partition("\n")
    ledger = REPORTS / (case.name.split(".")[0] + ".beancount")
    argv = shlex.split(command)
    assert argv[:1] == ["bean-credits"], "first line must be the command"
    args = [str(ledger) if arg == "LEDGER" else arg for arg in argv[1:]]
    result = run(args)
    output = result.output if result.exit_code == 0 else f"exit {result.exit_code}\n{result.output}"
    if os.environ.get("UPDATE_CASES"):
        case.write_text(command + "\n" + output)
        expected = output
    assert output == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "statement", "LEDGER", "--user", "carol"], "unknown user id 'carol'"),
        (["report", "statement", "LEDGER"], "the statement report needs --user USER_ID"),
        (
            ["report", "nope", "LEDGER"],
            "unknown report 'nope'; reports: audit, balances, daily, expiring",
        ),
        (
            ["report", "balances", "LEDGER", "--from", "2024-03-01", "--to", "2024-02-01"],
            "--from 2024-03-01 is after --to 2024-02-01",
        ),
        (["report", "balances", "LEDGER", "--to", "2024-13-01"], "'2024-13-01' is not a date"),
    ],
)
def test_bad_requests_fail_with_one_clear_line(args: list[str], message: str) -> None:
    ledger = str(REPORTS / "history.beancount")
    result = CliRunner().invoke(main, [ledger if arg == "LEDGER" else arg for arg in args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_ledger_with_errors_is_refused_unless_allowed(tmp_path: Path) -> None:
    ledger = tmp_path / "broken.beancount"
    ledger.write_text(
        (REPORTS / "history.beancount").read_text() + '\n2024-03-09 * "Too much"\n  txn_id: "r-9"\n'
        "  Assets:Credits:Users:Bob  -500 CREDIT\n  Expenses:Credits:Sessions\n"
    )
    refused = CliRunner().invoke(main, ["report", "balances", str(ledger), "--to", "2024-12-31"])
    assert refused.exit_code == 2
    assert "Draw-down of 500 CREDIT by user 'bob' on 2024-03-09" in refused.output
    assert "broken.beancount:" in refused.output
    allowed = CliRunner().invoke(
        main, ["report", "balances", str(ledger), "--to", "2024-12-31", "--allow-errors"]
    )
    assert allowed.exit_code == 0, allowed.output


def bql_balances(path: Path, through: str) -> dict[tuple[str, str], Decimal]:
    """Each wallet's balance per commodity, computed by beanquery from the same ledger."""
    ledger = load(path)
    _types, rows = bql.run_query(
        ledger.entries,
        ledger.options,
        "SELECT account, currency, sum(number) AS total "
        f"WHERE account ~ '^Assets:Credits:Users:' AND date <= {through} "
        "GROUP BY account, currency",
    )
    return {(account, currency): total for account, currency, total in rows}


def test_demo_balances_agree_with_beanquery() -> None:
    ledger = load(DEMO)
    through = datetime.date.fromisoformat(DEMO_END)
    table = REPORT_FUNCTIONS["balances"](ledger, Filters(date_to=through))
    expected = bql_balances(DEMO, DEMO_END)
    commodities = [column.name for column in table.columns[2:]]
    assert commodities == ["CREDIT", "SESSION"]
    rows = list(table)
    assert len(rows) == len(ledger.users) == 51
    for user_id, _segment, *numbers in rows:
        account = ledger.user(str(user_id)).account
        for currency, number in zip(commodities, numbers, strict=True):
            assert number == expected.get((account, currency), Decimal(0)), (user_id, currency)
    # The CLI prints the same table.
    result = run(["report", "balances", str(DEMO), "--to", DEMO_END])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 5 + 51


def test_demo_statement_ends_at_the_engine_balance() -> None:
    ledger = load(DEMO)
    for user_id in ("org-acme", "ingrid_rossi"):
        result = run(["report", "statement", str(DEMO), "--user", user_id, "--to", DEMO_END])
        assert result.exit_code == 0, result.output
        last = result.output.splitlines()[-1]
        account = ledger.user(user_id).account
        wallet = ledger.grants.wallets[(account, "CREDIT")]
        # The engine's wallet reflects expiries up to the ledger's horizon, the
        # same day the demo ends.
        assert Decimal(last.split()[-1]) == wallet.balance


def test_liability_money_is_rounded_to_the_currency_and_still_adds_up() -> None:
    import random
    from decimal import Decimal

    from beancount_credits.reports import liability

    rng = random.Random(7)
    opening = Decimal(0)
    shown_closing = Decimal("0.00")
    for _period in range(50):
        totals = {move: Decimal(rng.randrange(0, 10**6)).scaleb(-4) for move in liability.MOVES}
        closing = opening + totals["issued"] - totals["redeemed"] - totals["expired"]
        row = liability.shown(("CREDIT", "USD"), opening, totals, closing)
        start, issued, redeemed, expired, end = row
        assert all(number.as_tuple().exponent == -2 for number in row)
        assert start + issued - redeemed - expired == end  # the row adds up
        assert start == shown_closing  # and chains from the last period's closing
        assert abs(end - closing) <= Decimal("0.005")  # the balance, exactly rounded
        assert abs(redeemed - totals["redeemed"]) <= Decimal("0.02")
        opening, shown_closing = closing, end
    assert (
        liability.shown(
            ("X", "JPY"),
            Decimal("0"),
            dict.fromkeys(liability.MOVES, Decimal("10.6")),
            Decimal("-10.6"),
        )[0]
        .as_tuple()
        .exponent
        == 0
    )
