"""Whole-history reports on the columnar export, through DuckDB SQL.

``bean-credits report NAME LEDGER --source DIR`` runs ``usage``, ``rates``,
``liability`` or ``daily`` on the Parquet export in DIR (:mod:`.columnar`)
instead of loading the ledger. DuckDB does the scanning and summing; the
report modules shape the sums into their ``Table`` (same columns, filters,
notes and order), so both paths give the same rows (tests compare them on the
demo ledger).

As of ``--to``, the grant records are those of the whole ledger with every
movement dated after ``--to`` left out, which is what re-running the engine
through ``--to`` gives (expiries, consumption, reversals are each dated).
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from beancount_credits import columnar
from beancount_credits.reports import USED_BY, common, daily, liability, rates, usage
from beancount_credits.reports.table import Cell, Chart, Filters, ReportError, Table

SOURCE_REPORTS = ("daily", "liability", "rates", "usage")
FETCH = 50_000  # rows per batch when streaming the daily report


class Source:
    """An export folder opened with DuckDB: its datasets as views, its date span."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        manifest = columnar.read_manifest(folder)
        if not manifest:
            raise ReportError(
                f"{folder} is not a columnar export of this version "
                f"(no {columnar.MANIFEST} with format {columnar.FORMAT}); "
                "write one with bean-credits export parquet LEDGER -o DIR"
            )
        self.first = _date(manifest.get("first_date"))
        self.last = _date(manifest.get("last_date"))
        self.db = duckdb.connect()
        for name in columnar.PARTITIONED:
            if any((folder / name).glob(f"month=*/{columnar.PART}")):
                pattern = str(folder / name / "month=*" / columnar.PART).replace("'", "''")
                self.db.execute(
                    f"CREATE VIEW {name} AS SELECT * FROM "
                    f"read_parquet('{pattern}', hive_partitioning = true)"
                )
            else:  # an empty dataset: the schema alone
                self.db.register(f"{name}_empty", columnar.arrow_table(name, []))
                self.db.execute(f"CREATE VIEW {name} AS SELECT * FROM {name}_empty")
        users = str(folder / "users" / "users.parquet").replace("'", "''")
        self.db.execute(f"CREATE VIEW users AS SELECT * FROM read_parquet('{users}')")

    def rows(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, params or []).fetchall()

    def selected(self, filters: Filters) -> tuple[str, list[Any]]:
        """A SQL condition on ``u`` (the users view) for ``--user`` / ``--segment``."""
        conditions, params = ["TRUE"], []
        if filters.user is not None:
            if not self.rows("SELECT 1 FROM users WHERE user_id = ?", [filters.user]):
                raise ReportError(
                    f"unknown user id {filters.user!r}: no such user in the export {self.folder}"
                )
            conditions.append("u.user_id = ?")
            params.append(filters.user)
        if filters.segment is not None:
            conditions.append("u.segment = ?")
            params.append(filters.segment)
        return " AND ".join(conditions), params

    def check_range(self, filters: Filters) -> None:
        """The ledger path's empty-range errors, from the export's date span."""
        if self.first is None or self.last is None:
            return
        if filters.date_from is not None and filters.date_from > self.last:
            raise ReportError(
                f"empty range: --from {filters.date_from} is after the ledger's last "
                f"transaction ({self.last}) in the export {self.folder}"
            )
        if filters.date_to is not None and filters.date_to < self.first:
            raise ReportError(
                f"empty range: --to {filters.date_to} is before the ledger's first "
                f"transaction ({self.first}) in the export {self.folder}"
            )


def _date(value: str | None) -> datetime.date | None:
    return None if value is None else datetime.date.fromisoformat(value)


def exact(number: Decimal | None, places: int | None) -> Decimal | None:
    """A decimal(38, 9) with the decimal places the ledger's number has (10.50, not 10.500000000).

    ``places`` comes from the export's ``*places`` columns: the most any
    number summed into ``number`` has, which is what Decimal arithmetic gives
    the ledger path's sum (and a product has the places of both factors).
    """
    if number is None:
        return None
    return number.quantize(Decimal(1).scaleb(-(places or 0)))


def _range(filters: Filters, column: str) -> tuple[str, list[Any]]:
    conditions, params = [], []
    if filters.date_from is not None:
        conditions.append(f"{column} >= ?")
        params.append(filters.date_from)
    if filters.date_to is not None:
        conditions.append(f"{column} <= ?")
        params.append(filters.date_to)
    return " AND ".join(conditions) or "TRUE", params


def _commodity(filters: Filters, column: str) -> tuple[str, list[Any]]:
    if filters.commodity is None:
        return "TRUE", []
    return f"{column} = ?", [filters.commodity]


PERIOD_SQL = {
    "day": "p.date",
    "week": "CAST(date_trunc('week', p.date) AS DATE)",
    "month": "CAST(date_trunc('month', p.date) AS DATE)",
}


# --- The reports ---------------------------------------------------------------------------


def usage_report(source: Source, filters: Filters) -> Table:
    period = filters.period or common.DEFAULT_PERIOD
    users, user_params = source.selected(filters)
    dates, date_params = _range(filters, "p.date")
    commodity, commodity_params = _commodity(filters, "p.commodity")
    member, member_params = ("p.member = ?", [filters.member]) if filters.member else ("TRUE", [])
    sql = f"""
        SELECT p.account, p.commodity, {PERIOD_SQL[period]} AS start,
            sum(CASE WHEN p.kind = 'earned' THEN p.number ELSE 0 END),
            sum(CASE WHEN p.kind = 'redeemed' THEN -p.number ELSE 0 END),
            sum(CASE WHEN p.kind = 'expired' THEN -p.number ELSE 0 END),
            max(CASE WHEN p.kind = 'earned' THEN p.places ELSE 0 END),
            max(CASE WHEN p.kind = 'redeemed' THEN p.places ELSE 0 END),
            max(CASE WHEN p.kind = 'expired' THEN p.places ELSE 0 END)
        FROM postings p JOIN users u ON u.account = p.account
        WHERE {users} AND {dates} AND {commodity} AND {member}
        GROUP BY ALL
    """
    found: dict[tuple[str, str], dict[datetime.date, usage.Totals]] = defaultdict(dict)
    params = [*user_params, *date_params, *commodity_params, *member_params]
    for account, currency, start, *sums in source.rows(sql, params):
        earned, redeemed, expired, earned_places, redeemed_places, expired_places = sums
        found[(account, currency)][start] = {
            "earned": exact(earned, earned_places),
            "redeemed": exact(redeemed, redeemed_places),
            "expired": exact(expired, expired_places),
        }
    user_ids = dict(source.rows("SELECT account, user_id FROM users"))
    return usage.usage_table(found, user_ids, filters, period)


def rates_report(source: Source, filters: Filters) -> Table:
    users, user_params = source.selected(filters)
    dates, date_params = _range(filters, "g.date")
    commodity, commodity_params = _commodity(filters, "g.commodity")
    to = filters.date_to or datetime.date.max
    # Each grant's fate as of --to: its dated movements through that day.
    sql = f"""
        WITH used AS (
            SELECT grant_id, sum(amount) AS consumed, max(places) AS places
            FROM consumption WHERE grant_id IS NOT NULL AND date <= $to GROUP BY grant_id
        ), undone AS (
            SELECT grant_id, sum(CASE WHEN kind = 'grant' THEN amount ELSE 0 END) AS reversed,
                sum(CASE WHEN kind = 'redemption' THEN amount ELSE 0 END) AS restored,
                max(CASE WHEN kind = 'grant' THEN places ELSE 0 END) AS reversed_places,
                max(CASE WHEN kind = 'redemption' THEN places ELSE 0 END) AS restored_places
            FROM reversals WHERE date <= $to GROUP BY grant_id
        ), lapsed AS (
            SELECT grant_id, sum(amount) AS expired, max(places) AS places
            FROM expiries WHERE date <= $to
            GROUP BY grant_id
        ), fate AS (
            SELECT g.source, u.segment, CAST(date_trunc('month', g.date) AS DATE) AS cohort,
                g.commodity, g.amount, g.repaid,
                coalesce(undone.reversed, 0) AS reversed,
                coalesce(used.consumed, 0) - coalesce(undone.restored, 0) AS consumed,
                coalesce(lapsed.expired, 0) AS expired,
                greatest(g.amount_places, coalesce(undone.reversed_places, 0)) AS issued_places,
                greatest(coalesce(used.places, 0), coalesce(undone.restored_places, 0),
                    coalesce(undone.reversed_places, 0),
                    CASE WHEN g.repaid <> 0 THEN g.repaid_places ELSE 0 END) AS redeemed_places,
                coalesce(lapsed.places, 0) AS expired_places
            FROM grants g JOIN users u ON u.account = g.account
            LEFT JOIN used ON used.grant_id = g.grant_id
            LEFT JOIN undone ON undone.grant_id = g.grant_id
            LEFT JOIN lapsed ON lapsed.grant_id = g.grant_id
            WHERE {users} AND {dates} AND {commodity}
        )
        SELECT source, segment, cohort, commodity, sum(amount - reversed),
            sum(consumed + repaid), sum(expired), max(issued_places), max(redeemed_places),
            max(expired_places)
        FROM fate GROUP BY ALL
    """
    params: dict[str, Any] = {"to": to}
    positional = [*user_params, *date_params, *commodity_params]
    sql = _named(sql, positional, params)
    totals: dict[tuple[str, str, str], list[Decimal]] = defaultdict(lambda: [common.ZERO] * 4)
    for source_account, segment, cohort, currency, *sums in source.db.execute(
        sql, params
    ).fetchall():
        issued, redeemed, expired = (
            exact(number, places) for number, places in zip(sums[:3], sums[3:], strict=True)
        )
        assert issued is not None and redeemed is not None and expired is not None
        numbers = (issued, redeemed, expired, issued - redeemed - expired)
        groups = {
            "source": source_account.rpartition(":")[2] if source_account else "(none)",
            "segment": segment or "(none)",
            "cohort": common.period_label(cohort, "month"),
            "all": "all",
        }
        for dimension, group in groups.items():
            sums = totals[(dimension, group, currency)]
            for index, number in enumerate(numbers):
                sums[index] += number
    return rates.rates_table(totals, filters)


def _named(sql: str, positional: list[Any], params: dict[str, Any]) -> str:
    """Turn ``?`` placeholders into named ones (DuckDB takes one style per query)."""
    parts = sql.split("?")
    out = parts[0]
    for index, part in enumerate(parts[1:]):
        params[f"p{index}"] = positional[index]
        out += f"$p{index}" + part
    return out


def liability_report(source: Source, filters: Filters) -> Table:
    first = filters.date_from or source.first
    last = filters.date_to or source.last
    if first is None or last is None:
        return liability.roll_forward([], filters, datetime.date.min, datetime.date.min)
    users, user_params = source.selected(filters)
    commodity, commodity_params = _commodity(filters, "g.commodity")
    # Every valued movement (liability.movements), dated, summed per day and basis.
    sql = f"""
        WITH g AS (
            SELECT g.*, coalesce(g.unit_cost, 1) AS value, coalesce(unit_cost_places, 0) AS places,
                coalesce(g.cost_currency, '{liability.FREE}') AS basis
            FROM grants g JOIN users u ON u.account = g.account
            WHERE {users} AND {commodity}
        ), moves AS (
            SELECT date, commodity, basis, 'issued' AS move, amount * value AS value,
                amount_places + places AS places
            FROM g
            UNION ALL
            SELECT date, commodity, basis, 'redeemed', repaid * value, repaid_places + places
            FROM g WHERE repaid <> 0
            UNION ALL
            SELECT r.date, g.commodity, g.basis,
                CASE WHEN r.kind = 'grant' THEN 'issued' ELSE 'redeemed' END,
                -r.amount * g.value, r.places + g.places
            FROM reversals r JOIN g ON g.grant_id = r.grant_id
            UNION ALL
            SELECT c.date, g.commodity, g.basis, 'redeemed', c.amount * g.value,
                c.places + g.places FROM consumption c JOIN g ON g.grant_id = c.grant_id
            UNION ALL
            SELECT e.date, g.commodity, g.basis, 'expired', e.amount * g.value,
                e.places + g.places FROM expiries e JOIN g ON g.grant_id = e.grant_id
        )
        SELECT date, commodity, basis, move, sum(value), max(places) FROM moves WHERE date <= ?
        GROUP BY ALL ORDER BY date
    """
    params = [*user_params, *commodity_params, last]
    moves = [
        (date, (currency, basis), move, exact(value, places))
        for date, currency, basis, move, value, places in source.rows(sql, params)
    ]
    return liability.roll_forward(moves, filters, first, last)


def daily_report(source: Source, filters: Filters) -> Table:
    first = filters.date_from or source.first
    last = filters.date_to or source.last
    rows: Iterator[list[Cell]] = iter(())
    if first is not None and last is not None:
        rows = _daily_rows(source, filters, first, last)
    return Table(
        "Daily balances",
        daily.COLUMNS,
        rows,
        filters,
        notes=["balances carried forward over days without activity (Change empty)"],
        chart=Chart("step", x="Date", y=["Balance"], series="User ID", title="Balance over time"),
    )


def _daily_rows(
    source: Source, filters: Filters, first: datetime.date, last: datetime.date
) -> Iterator[list[Cell]]:
    """Every wallet's balance on every day: the log's last balance on or before the day."""
    users, user_params = source.selected(filters)
    commodity, commodity_params = _commodity(filters, "b.commodity")
    sql = f"""
        WITH days AS (
            SELECT CAST(unnest(range(CAST(? AS DATE), CAST(? AS DATE) + INTERVAL 1 DAY,
                INTERVAL 1 DAY)) AS DATE) AS day
        ), wallets AS (
            SELECT b.account, b.user_id, b.commodity, min(b.date) AS since, any_value(u.close_date)
                AS closed
            FROM balances b JOIN users u ON u.account = b.account
            WHERE {users} AND {commodity} AND b.date <= ?
            GROUP BY b.account, b.user_id, b.commodity
        ), grid AS (
            SELECT d.day, w.* FROM days d JOIN wallets w
            ON w.since <= d.day AND (w.closed IS NULL OR d.day <= w.closed)
        )
        SELECT g.day, g.user_id, g.commodity,
            CASE WHEN b.date = g.day THEN b.change END, b.change_places, b.balance,
            b.balance_places
        FROM grid g ASOF JOIN balances b
        ON g.account = b.account AND g.commodity = b.commodity AND g.day >= b.date
        ORDER BY g.day, g.user_id, g.commodity, g.account
    """
    cursor = source.db.execute(sql, [first, last, *user_params, *commodity_params, last])
    while True:
        batch = cursor.fetchmany(FETCH)
        if not batch:
            return
        for day, user_id, currency, change, change_places, balance, balance_places in batch:
            yield [
                day,
                user_id,
                currency,
                exact(change, change_places),
                exact(balance, balance_places),
            ]


MAKERS: dict[str, Callable[[Source, Filters], Table]] = {
    "daily": daily_report,
    "liability": liability_report,
    "rates": rates_report,
    "usage": usage_report,
}


def run(name: str, folder: Path, filters: Filters) -> Table:
    """Report ``name`` from the export in ``folder``, as :func:`reports.run` makes it."""
    make = MAKERS.get(name)
    if make is None:
        raise ReportError(
            f"report {name!r} does not run on a columnar export; --source works for "
            f"{', '.join(SOURCE_REPORTS)}"
        )
    for field, names in USED_BY.items():
        if getattr(filters, field) is not None and name not in names:
            raise ReportError(
                f"--{field} does not apply to report {name!r} (it applies to: "
                f"{', '.join(sorted(names))})"
            )
    source = Source(folder)
    source.check_range(filters)
    return common.sort_table(make(source, filters), filters.sort, filters.desc, name)
