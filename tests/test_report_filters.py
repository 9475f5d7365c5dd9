"""The report command's filters and its errors: one clear line, non-zero exit, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from beancount_credits.cli import main

REPORTS = Path(__file__).parent / "reports"
HISTORY = str(REPORTS / "history.beancount")


def invoke(args: list[str]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["report", *args])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["daily", HISTORY, "--user", "zoe"], "unknown user id 'zoe'"),
        (["usage", HISTORY, "--user", "zoe"], "unknown user id 'zoe'"),
        (["expiring", HISTORY, "--user", "zoe"], "unknown user id 'zoe'"),
        (
            ["daily", HISTORY, "--from", "2025-01-01", "--to", "2025-02-01"],
            "empty range: --from 2025-01-01 is after the ledger's last transaction (2024-03-08)",
        ),
        (
            ["usage", HISTORY, "--to", "2023-12-31"],
            "empty range: --to 2023-12-31 is before the ledger's first transaction (2024-02-01)",
        ),
        (
            ["daily", HISTORY, "--from", "2024-03-02", "--to", "2024-03-01"],
            "--from 2024-03-02 is after --to 2024-03-01",
        ),
        (["monthly", HISTORY], "unknown report 'monthly'; reports: audit, balances, daily"),
        (
            ["usage", HISTORY, "--to", "2024-12-31", "--sort", "Spent"],
            "unknown sort field 'Spent' for report 'usage'; columns: Period, User ID, Credit "
            "type, Earned, Redeemed, Expired, Net, Trend",
        ),
        (
            ["daily", HISTORY, "--member", "x@example.com"],
            "--member does not apply to report 'daily' (it applies to: hybrid, statement, usage)",
        ),
        (["balances", HISTORY, "--days", "5"], "--days does not apply to report 'balances'"),
        (["usage", HISTORY, "--period", "year"], "Invalid value for '--period'"),
        (["expiring", HISTORY, "--days", "0"], "Invalid value for '--days'"),
    ],
)
def test_bad_requests_fail_with_one_clear_line(args: list[str], message: str) -> None:
    result = invoke(args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    # One line for the error itself (click prints usage lines before usage errors).
    assert len([line for line in result.output.splitlines() if "Error" in line]) == 1


def rows(output: str) -> list[list[str]]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("--"))
    return [line.split() for line in lines[start + 1 :]]


def test_sort_by_a_column_name_either_way() -> None:
    base = ["usage", HISTORY, "--to", "2024-12-31", "--commodity", "CREDIT"]
    ascending = invoke([*base, "--sort", "Trend"])
    descending = invoke([*base, "--sort", "trend", "--desc"])
    assert ascending.exit_code == descending.exit_code == 0, ascending.output
    trends = [int(row[-1]) for row in rows(ascending.output)]
    assert trends == sorted(trends) == [-75, 5, 45]
    assert [int(row[-1]) for row in rows(descending.output)] == [45, 5, -75]


def test_sort_puts_empty_cells_last() -> None:
    days = ["--from", "2024-02-04", "--to", "2024-02-06"]
    result = invoke(["daily", HISTORY, "--user", "alice", *days, "--sort", "Change"])
    assert result.exit_code == 0, result.output
    # The only change (-15 on 02-05) first, then the quiet days.
    assert [row[0] for row in rows(result.output)] == ["2024-02-05", "2024-02-04", "2024-02-06"]


def test_help_names_every_report() -> None:
    from beancount_credits.reports import REPORTS as registry

    result = invoke(["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    listed = text.split("Reports: ", 1)[1].split(" (docs/reports.md)")[0].split(", ")
    assert sorted(listed) == sorted(registry)
