"""Every queries/*.bql run through beanquery, its rows checked against reports and engine."""

from __future__ import annotations

import datetime
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data
from beanquery import query as bql
from conftest import DEMO, ROOT

from beancount_credits.ledger import Ledger, load
from beancount_credits.reports import Filters, common, queries, run

QUERIES = ROOT / "queries"
NAMES = ["balances", "breakage_by_source", "daily_balances", "expired", "statement"]
NAMES += ["usage_per_month"]


@pytest.fixture(scope="module")
def demo() -> Ledger:
    return load(DEMO)


def run_bql(ledger: Ledger, name: str) -> list[tuple]:
    _types, rows = bql.run_query(
        ledger.entries, ledger.options, queries.query_text(QUERIES / f"{name}.bql")
    )
    return rows


def test_every_query_file_is_checked_here() -> None:
    assert sorted(path.stem for path in QUERIES.glob("*.bql")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_header_says_what_and_how_to_run(name: str) -> None:
    text = (QUERIES / f"{name}.bql").read_text()
    header = text[: text.index("*/")]
    assert text.startswith("SELECT /*")
    assert f"Run: bean-query ledgers/demo/main.beancount < queries/{name}.bql" in header
    assert f"{name}.bql: " in header


def test_demo_ledger_carries_the_queries_for_fava(demo: Ledger) -> None:
    generated = queries.directives(QUERIES, datetime.date(2025, 9, 1))
    assert (DEMO.parent / "queries.beancount").read_text() == generated, (
        "ledgers/demo/queries.beancount is stale: run `make demo-queries`"
    )
    named = {
        entry.name: entry.query_string for entry in demo.entries if isinstance(entry, data.Query)
    }
    assert sorted(named) == NAMES
    for name, text in named.items():
        assert text == queries.query_text(QUERIES / f"{name}.bql")


def test_bean_query_runs_a_file_from_stdin() -> None:
    bean_query = Path(sys.executable).parent / "bean-query"
    with (QUERIES / "balances.bql").open() as stdin:
        result = subprocess.run(
            [str(bean_query), str(DEMO)], stdin=stdin, capture_output=True, text=True, cwd=ROOT
        )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["user_id", "segment"]
    assert any(line.split()[:3] == ["org-acme", "enterprise", "CREDIT"] for line in lines)


def test_balances(demo: Ledger) -> None:
    last = common.last_date(demo)
    table = run("balances", demo, Filters(date_to=last))
    expected = {
        (row[0], currency): number
        for row in table
        for currency, number in zip(["CREDIT", "SESSION"], row[2:], strict=True)
        if number
    }
    rows = run_bql(demo, "balances")
    assert {(user, currency): n for user, _segment, currency, n in rows if n} == expected
    assert len(rows) >= 50


def test_statement(demo: Ledger) -> None:
    report = [
        (row[0], row[1], row[-1])
        for row in run("statement", demo, Filters(user="org-acme", commodity="CREDIT"))
    ]
    rows = [
        (txn_id, date, balance.get_currency_units("CREDIT").number)
        for txn_id, date, _n, _c, balance in run_bql(demo, "statement")
    ]
    assert rows == report
    assert len(rows) > 100


def test_daily_balances(demo: Ledger) -> None:
    rows = run_bql(demo, "daily_balances")
    last = common.last_date(demo)
    daily = {(row[0], row[1], row[2]): row[4] for row in run("daily", demo, Filters(date_to=last))}
    assert len(rows) > 3000
    for day, user_id, currency, balance in rows:
        assert daily[(day, user_id, currency)] == balance


def test_usage_per_month(demo: Ledger) -> None:
    rows = run_bql(demo, "usage_per_month")
    last = common.last_date(demo)
    usage = {
        (row[0], row[1], row[2]): row[3:7] for row in run("usage", demo, Filters(date_to=last))
    }
    net: Counter[tuple[str, str, str]] = Counter()
    expired: Counter[tuple[str, str, str]] = Counter()
    for year, month, user_id, currency, is_expired, earned, credits in rows:
        key = (f"{year}-{month:02d}", user_id, currency)
        net[key] += credits if earned else -credits
        if is_expired:
            expired[key] += credits
    assert set(net) == set(usage)
    for key, (_earned, _redeemed, gone, change) in usage.items():
        assert net[key] == change
        assert expired[key] == gone


def test_breakage_by_source(demo: Ledger) -> None:
    rows = run_bql(demo, "breakage_by_source")
    rates = {
        (row[1], row[2]): row[5]
        for row in run("rates", demo, Filters(date_to=common.last_date(demo)))
        if row[0] == "source"
    }
    assert {(source, currency): expired for source, currency, _g, expired in rows} == {
        key: value for key, value in rates.items() if key[0] != "Adjustments"
    }
    granted = {source: g for source, currency, g, _e in rows if currency == "CREDIT"}
    assert granted["Promotion"] > 0 and sum(e for *_k, e in rows) > 0


def test_expired(demo: Ledger) -> None:
    rows = run_bql(demo, "expired")
    engine = Counter(
        (expiry.date, expiry.grant.id, expiry.amount) for expiry in demo.grants.expiries
    )
    assert Counter((date, grant, amount) for date, _u, grant, _c, amount in rows) == engine
    assert [row[0] for row in rows] == sorted((row[0] for row in rows), reverse=True)
    assert sum(row[4] for row in rows) > Decimal(0)
