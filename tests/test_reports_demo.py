"""Every report's numbers on the demo ledger, checked against beanquery or the engine."""

from __future__ import annotations

import datetime
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data
from beanquery import query as bql
from conftest import DEMO

from beancount_credits.ledger import Ledger, load
from beancount_credits.reports import REPORTS, Filters, common, daily, run

END = datetime.date(2026, 11, 20)
ONE_DAY = datetime.timedelta(days=1)
CASES = Path(__file__).parent / "reports"


@pytest.fixture(scope="module")
def demo() -> Ledger:
    return load(DEMO)


def query(ledger: Ledger, text: str) -> list[tuple]:
    _types, rows = bql.run_query(ledger.entries, ledger.options, text)
    return rows


def test_daily_agrees_with_every_logged_balance(demo: Ledger) -> None:
    table = REPORTS["daily"](demo, Filters(date_to=END))
    by_day: dict[tuple[datetime.date, str, str], Decimal] = {}
    per_day: dict[datetime.date, int] = defaultdict(int)
    for day, user_id, currency, _change, balance in table:
        by_day[(day, str(user_id), str(currency))] = balance  # type: ignore[index,assignment]
        per_day[day] += 1  # type: ignore[index]
    # The balance log: an assertion dated D holds the balance at the end of D-1.
    logged = query(
        demo,
        "SELECT date, open_meta(account, 'user_id') AS user, amount.currency, amount.number "
        "FROM #balances WHERE account ~ '^Assets:Credits:Users:'",
    )
    assert len(logged) > 3000
    for date, user_id, currency, number in logged:
        if date - ONE_DAY <= END:
            assert by_day[(date - ONE_DAY, user_id, currency)] == number, (date, user_id)
    # Carried forward: each wallet has a row on every day from its first
    # movement through the end, or through its close date.
    days = sorted(per_day)
    assert days[-1] == END and (END - days[0]).days + 1 == len(days)
    spans: dict[tuple[str, str], list[datetime.date]] = defaultdict(list)
    for day, user_id, currency in by_day:
        spans[(user_id, currency)].append(day)
    closed = 0
    for (user_id, _currency), wallet_days in spans.items():
        first, last = min(wallet_days), max(wallet_days)
        assert len(wallet_days) == (last - first).days + 1
        close = demo.user(user_id).close_date
        closed += close is not None
        assert last == (close if close is not None else END)
    assert closed, "the demo closes wallets"
    # The last day is the balances report.
    balances = {
        (str(row[0]), currency): number
        for row in REPORTS["balances"](demo, Filters(date_to=END))
        for currency, number in zip(["CREDIT", "SESSION"], row[2:], strict=True)
    }
    for (day, user_id, currency), balance in by_day.items():
        if day == END:
            assert balances[(user_id, currency)] == balance


def test_usage_per_month_agrees_with_beanquery(demo: Ledger) -> None:
    table = REPORTS["usage"](demo, Filters(date_to=END))
    net: dict[tuple[str, str, str], Decimal] = {}
    expired: dict[str, Decimal] = defaultdict(Decimal)
    for period, user_id, currency, earned, redeemed, gone, change, _trend in table:
        assert change == earned - redeemed - gone  # type: ignore[operator]
        net[(str(period), str(user_id), str(currency))] = change  # type: ignore[assignment]
        expired[str(period)] += gone  # type: ignore[operator]
    rows = query(
        demo,
        "SELECT year(date) AS y, month(date) AS m, open_meta(account, 'user_id') AS user, "
        f"currency, sum(number) AS n WHERE account ~ '^Assets:Credits:Users:' AND date <= {END} "
        "GROUP BY y, m, user, currency",
    )
    assert len(rows) == len(net) > 300
    for year, month, user_id, currency, number in rows:
        assert net[(f"{year}-{month:02d}", user_id, currency)] == number
    breakage = query(
        demo,
        "SELECT year(date) AS y, month(date) AS m, sum(number) AS n "
        f"WHERE account = 'Equity:Credits:Breakage' AND date <= {END} GROUP BY y, m",
    )
    assert {f"{y}-{m:02d}": n for y, m, n in breakage} == {
        period: total for period, total in expired.items() if total
    }


def test_usage_trend_is_the_change_against_the_previous_month(demo: Ledger) -> None:
    rows = list(REPORTS["usage"](demo, Filters(user="org-acme", commodity="CREDIT")))
    by_period = {str(row[0]): row for row in rows}
    for period, row in by_period.items():
        year, month = map(int, period.split("-"))
        before = f"{year - (month == 1)}-{(month - 2) % 12 + 1:02d}"
        previous = by_period[before][4] if before in by_period else 0
        assert row[7] == row[4] - previous  # type: ignore[operator]


def test_usage_of_one_team_member(demo: Ledger) -> None:
    member = "dana.kim@acme.example"
    table = REPORTS["usage"](demo, Filters(user="org-acme", member=member, date_to=END))
    redeemed = {str(row[0]): row[4] for row in table}
    rows = query(
        demo,
        "SELECT year(date) AS y, month(date) AS m, sum(number) AS n "
        f"WHERE account ~ '^Assets:Credits:Users:' AND entry_meta('member') = '{member}' "
        "GROUP BY y, m",
    )
    assert len(rows) > 5
    assert redeemed == {f"{y}-{m:02d}": -n for y, m, n in rows}


def consumed_by_annotations(ledger: Ledger, through: datetime.date) -> dict[str, Decimal]:
    """Per grant: consumed minus restored through a day, from the plugin's annotations."""
    used: dict[str, Decimal] = defaultdict(Decimal)
    for entry in ledger.entries:
        if entry.date > through or not isinstance(entry, data.Transaction):
            continue
        for posting in entry.postings:
            meta = posting.meta or {}
            for key, sign in (("consumed", 1), ("restored", -1)):
                for part in str(meta.get(key) or "").split(", "):
                    if part:
                        grant_id, _, amount = part.rpartition(" ")
                        used[grant_id] += sign * Decimal(amount)
            if meta.get("repaid_overdraft"):
                used[str(entry.meta["txn_id"])] += Decimal(meta["repaid_overdraft"])
    return used


@pytest.mark.parametrize("as_of", [datetime.date(2026, 3, 31), END])
def test_expiring_remaining_amounts_agree_with_the_annotations(
    demo: Ledger, as_of: datetime.date
) -> None:
    table = run("expiring", demo, Filters(date_to=as_of, days=90))
    rows = list(table)
    assert rows, "the demo has credits expiring in every quarter"
    used = consumed_by_annotations(demo, as_of)
    # An allowance's unspent part beyond its rollover expires at each period's end
    # while the rest carries on: those expiries are part of what is gone.
    for entry in demo.entries:
        if isinstance(entry, data.Transaction) and entry.date <= as_of and "grant" in entry.meta:
            for posting in entry.postings if "expired" in entry.tags else ():
                if posting.units.number < 0:
                    used[str(entry.meta["grant"])] -= posting.units.number
    grants = demo.grants.grants
    for expires, days_left, _user, grant_id, _source, granted_on, _cur, granted, left in rows:
        assert as_of < expires <= as_of + datetime.timedelta(days=90)  # type: ignore[operator]
        assert days_left == (expires - as_of).days  # type: ignore[operator]
        assert granted_on <= as_of  # type: ignore[operator]
        assert granted == grants[str(grant_id)].amount
        assert left == granted - used[str(grant_id)]  # type: ignore[operator]
    # Nothing left out: every grant of the engine's pass through as_of that expires in the window.
    result = common.grants_as_of(demo, as_of)
    due = {
        g.id
        for g in result.grants.values()
        if g.remaining > 0 and g.expires and as_of < g.expires <= as_of + datetime.timedelta(90)
    }
    assert {str(row[3]) for row in rows} == due


def outstanding_value(ledger: Ledger, through: datetime.date) -> dict[tuple[str, str], Decimal]:
    """What the engine's grants have left after a day, valued at their unit cost."""
    values: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for grant in common.grants_as_of(ledger, through).grants.values():
        cost = common.unit_cost(grant)
        basis = (grant.currency, cost[1] if cost else "free credits")
        values[basis] += grant.remaining * (cost[0] if cost else 1)
    return values


def test_liability_closes_on_what_the_engine_leaves_each_month(demo: Ledger) -> None:
    table = run("liability", demo, Filters(date_to=END))
    rows = list(table)
    closing: dict[str, dict[tuple[str, str], Decimal]] = defaultdict(dict)
    previous: dict[tuple[str, str], Decimal] = {}
    for period, currency, basis, opening, issued, redeemed, expired, close in rows:
        key = (str(currency), str(basis))
        assert opening == previous.get(key, 0)
        assert close == opening + issued - redeemed - expired  # type: ignore[operator]
        previous[key] = close  # type: ignore[assignment]
        closing[str(period)][key] = close  # type: ignore[assignment]
    assert len(closing) == 15
    assert {basis for _c, basis in previous} == {"USD", "free credits"}
    for period, values in closing.items():
        year, month = map(int, period.split("-"))
        month_end = min(END, datetime.date(year + month // 12, month % 12 + 1, 1) - ONE_DAY)
        engine_values = outstanding_value(demo, month_end)
        for key, value in values.items():
            assert value == engine_values[key], (period, key)


def test_rates_add_up_and_breakage_agrees_with_beanquery(demo: Ledger) -> None:
    rows = list(run("rates", demo, Filters(date_to=END)))
    for *_key, issued, redeemed, expired, left, r_rate, b_rate, o_rate in rows:
        assert issued == redeemed + expired + left  # type: ignore[operator]
        assert abs(r_rate + b_rate + o_rate - 100) <= Decimal("0.2")  # type: ignore[operator]
    # Each dimension splits the same total.
    totals: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 4)
    for dimension, _group, currency, *numbers in rows:
        for index, number in enumerate(numbers[:4]):
            totals[(str(dimension), str(currency))][index] += number  # type: ignore[operator]
    for currency in ("CREDIT", "SESSION"):
        assert (
            len({tuple(totals[(d, currency)]) for d in ("source", "segment", "cohort", "all")}) == 1
        )
    expired = {str(row[2]): row[5] for row in rows if row[0] == "all"}
    breakage = query(
        demo,
        "SELECT currency, sum(number) AS n WHERE account = 'Equity:Credits:Breakage' "
        f"AND date <= {END} GROUP BY currency",
    )
    assert expired == {currency: n for currency, n in breakage} | {
        c: Decimal(0) for c in expired if c not in dict(breakage)
    }
    issued = {str(row[2]): row[3] for row in rows if row[0] == "all"}
    assert issued["CREDIT"] > 0 and any(
        row[0] == "source" and row[1] == "Promotion" for row in rows
    )


def test_top_ranks_consistent_users_by_median_use(demo: Ledger) -> None:
    table = run("top", demo, Filters(date_to=END))
    rows = list(table)
    assert 5 <= len(rows) <= 20
    usage: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(dict)
    for period, user_id, currency, _e, redeemed, *_rest in run("usage", demo, Filters(date_to=END)):
        usage[(str(user_id), str(currency))][str(period)] = redeemed  # type: ignore[assignment]
    medians = [row[5] for row in rows]
    assert medians == sorted(medians, reverse=True)  # type: ignore[type-var]
    for _rank, user_id, _seg, currency, active, median, average, peak, *_tail, limit in rows:
        used = usage[(str(user_id), str(currency))]
        months = [used.get(f"{y}-{m:02d}", Decimal(0)) for y, m in months_of_demo()]
        assert active == f"{sum(1 for n in months if n > 0)}/15"
        assert sum(1 for n in months if n > 0) >= 10
        assert median == sorted(months)[7]
        assert average == (sum(months) / 15).quantize(Decimal("0.01"))
        assert peak == max(months)
        assert limit >= median and limit % 10 == 0  # type: ignore[operator]


def months_of_demo() -> list[tuple[int, int]]:
    return [(2025, m) for m in range(9, 13)] + [(2026, m) for m in range(1, 12)]


def test_hybrid_payments_valued_from_the_annotations(demo: Ledger) -> None:
    rows = list(run("hybrid", demo, Filters(date_to=END)))
    cash_txns = query(
        demo,
        "SELECT entry_meta('txn_id') AS t, number WHERE entry_meta('cash') IS NOT NULL "
        "AND account ~ '^Assets:Credits:Users:'",
    )
    assert sorted((str(row[1]), -row[6]) for row in rows) == sorted(cash_txns)  # type: ignore[operator]
    # Credits value from the plugin's `consumed:` annotations and the grants' unit cost.
    annotations = {
        str(entry.meta["txn_id"]): str(posting.meta["consumed"])
        for entry in demo.entries
        if isinstance(entry, data.Transaction) and "cash" in entry.meta
        for posting in entry.postings
        if posting.meta and "consumed" in posting.meta
    }
    grants = demo.grants.grants
    for row in rows:
        value = Decimal(0)
        for part in annotations[str(row[1])].split(", "):
            grant_id, _, amount = part.rpartition(" ")
            cost = grants[grant_id].unit_cost
            value += Decimal(amount) * cost.number if cost else 0
        assert row[7] == value.quantize(Decimal("0.01")), row
        assert row[10] == (row[8] * 100 / (row[7] + row[8])).quantize(Decimal("0.1"))  # type: ignore[operator]
    assert any(row[7] for row in rows) and any(row[3] for row in rows)


def test_statement_of_one_team_member(demo: Ledger) -> None:
    member = "tom.berg@acme.example"
    table = run("statement", demo, Filters(user="org-acme", member=member, date_to=END))
    names = [column.name for column in table.columns]
    assert {"Member", "Session", "Order"} <= set(names)
    rows = list(table)
    assert rows and all(row[names.index("Member")] == member for row in rows)
    count = query(
        demo,
        f"SELECT count(*) WHERE entry_meta('member') = '{member}' AND "
        "account ~ '^Assets:Credits:Users:'",
    )
    assert len(rows) == count[0][0]


@pytest.mark.parametrize(
    "path",
    [DEMO, CASES / "quiet.beancount", CASES / "history.beancount"],
    ids=["demo", "quiet", "history"],
)
def test_daily_from_the_balance_log_equals_daily_from_the_postings(path: Path) -> None:
    ledger = load(path)
    assert daily.keeps_balance_log(ledger)
    users = {user.account: user.user_id for user in ledger.users.values()}
    first, last = common.first_date(ledger), common.last_date(ledger)
    assert first is not None and last is not None
    for start in (first, first + (last - first) / 2):
        end = last + datetime.timedelta(days=3)
        for commodity in (None, "CREDIT"):
            from_log = list(daily.rows_from_log(ledger, users, commodity, start, end))
            from_postings = list(daily.daily_rows(ledger, users, commodity, start, end))
            assert from_log == from_postings
            assert from_log
