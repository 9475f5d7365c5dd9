"""Whole-history reports on the columnar export, on DuckDB or on Apache Spark.

``bean-credits report NAME LEDGER --source DIR`` runs ``usage``, ``rates``,
``liability``, ``daily`` or ``balances`` on the Parquet export in DIR
(:mod:`.columnar`) instead of loading the ledger; ``--engine spark`` runs them
on Spark (local, or a cluster through ``spark-submit``, reading the export from
shared storage such as ``s3a://`` or ``hdfs://``). Both engines run the same
queries (:mod:`.columnar_sql`: one SQL text each) and the report modules shape
the sums into their ``Table`` (same columns, filters, notes and order), so the
ledger path, DuckDB and Spark give the same rows (tests compare them).

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
from typing import Any, Protocol

from beancount_credits import columnar
from beancount_credits.columnar import sql
from beancount_credits.engine import asof
from beancount_credits.ledger.render import is_commodity
from beancount_credits.reports import (
    balances,
    check_filters,
    common,
    daily,
    liability,
    rates,
    usage,
)
from beancount_credits.reports.table import Cell, Chart, Filters, ReportError, Table

SOURCE_REPORTS = ("balances", "daily", "liability", "rates", "usage")
ENGINES = ("duckdb", "spark")
FETCH = 50_000  # rows per batch when streaming the daily report
ONE_DAY = datetime.timedelta(days=1)
Row = tuple[Any, ...]


class Source(Protocol):
    """An export opened by an engine: the manifest, and the queries of :mod:`.columnar_sql`."""

    location: str
    manifest: dict[str, Any]

    def rows(self, query: str, params: dict[str, Any]) -> list[Row]: ...

    def stream(self, query: str, params: dict[str, Any]) -> Iterator[Row]: ...

    def register_days(self, first: datetime.date, last: datetime.date) -> None: ...


def not_an_export(location: object) -> ReportError:
    return ReportError(
        f"{location} is not a columnar export of this version "
        f"(no {columnar.MANIFEST} with format {columnar.FORMAT}); "
        "write one with bean-credits export parquet LEDGER -o DIR"
    )


def used(query: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters a query uses (neither engine takes extra ones)."""
    return {name: params.get(name) for name in sql.parameters(query)}


class DuckDBSource:
    """An export folder opened with DuckDB: its datasets as views."""

    def __init__(self, folder: Path) -> None:
        import duckdb  # only when asked for

        self.folder = folder
        self.location = str(folder)
        self.manifest = columnar.read_manifest(folder)
        if not self.manifest:
            raise not_an_export(folder)
        self.db = duckdb.connect()
        for name in columnar.PARTITIONED:
            if any((folder / name).glob(f"month=*/{columnar.PART_GLOB}")):
                pattern = str(folder / name / "month=*" / columnar.PART_GLOB).replace("'", "''")
                self.db.execute(
                    f"CREATE VIEW {name} AS SELECT * FROM "
                    f"read_parquet('{pattern}', hive_partitioning = true)"
                )
            else:  # an empty dataset: the schema alone
                self.db.execute(f"CREATE VIEW {name} AS {columnar.empty_select(name)}")
        users = str(folder / "users" / "users.parquet").replace("'", "''")
        self.db.execute(f"CREATE VIEW users AS SELECT * FROM read_parquet('{users}')")

    def rows(self, query: str, params: dict[str, Any] | None = None) -> list[Row]:
        return self.db.execute(sql.duckdb_text(query), used(query, params or {})).fetchall()

    def stream(self, query: str, params: dict[str, Any]) -> Iterator[Row]:
        cursor = self.db.execute(sql.duckdb_text(query), used(query, params))
        while True:
            batch = cursor.fetchmany(FETCH)
            if not batch:
                return
            yield from batch

    def register_days(self, first: datetime.date, last: datetime.date) -> None:
        self.db.execute(
            "CREATE OR REPLACE TEMP TABLE days AS SELECT CAST(range AS DATE) AS day FROM "
            "range(CAST($first AS DATE), CAST($last AS DATE) + INTERVAL 1 DAY, INTERVAL 1 DAY)",
            {"first": first, "last": last},
        )


def open_source(location: str | Path, engine: str = "duckdb") -> Source:
    """The export at ``location`` (a folder; for Spark also a URI) opened by ``engine``."""
    if engine == "spark":
        from beancount_credits.columnar import spark as columnar_spark  # pyspark when asked

        return columnar_spark.SparkSource(location)
    if engine != "duckdb":
        raise ReportError(f"unknown engine {engine!r}; engines: {', '.join(ENGINES)}")
    folder = Path(location)
    if "://" in str(location) or not folder.is_dir():
        raise ReportError(
            f"{location} is not a folder; DuckDB reads a local export (a URI needs --engine spark)"
        )
    return DuckDBSource(folder)


def span(source: Source) -> tuple[datetime.date | None, datetime.date | None]:
    """The first and last date of the export's transactions."""
    manifest = source.manifest
    return (
        _date(source, "first_date", manifest.get("first_date")),
        _date(source, "last_date", manifest.get("last_date")),
    )


def filter_params(source: Source, filters: Filters) -> dict[str, Any]:
    """The filters as query parameters; an unknown ``--user`` is a ReportError."""
    if filters.user is not None and not source.rows(sql.USER_COUNT, {"user": filters.user})[0][0]:
        raise ReportError(
            f"unknown user id {filters.user!r}: no such user in the export {source.location}"
        )
    return {
        "user": filters.user,
        "segment": filters.segment,
        "commodity": filters.commodity,
        "member": filters.member,
        "date_from": filters.date_from,
        "date_to": filters.date_to,
    }


def horizon_notice(source: Source, day: datetime.date) -> str | None:
    """One line when ``day`` is past what the export's ledger text recorded, else None.

    The ledger path books the engine through ``day`` (:mod:`beancount_credits.engine.asof`):
    the expiries and allowances due after the horizon count there; the export
    holds what the text recorded when it was made, and the manifest what the
    engine books past it (``pending``, by day), so this says what it leaves
    out, in the words of the ledger path's notice.
    """
    horizon = _date(source, "horizon", source.manifest.get("horizon"))
    if horizon is None or day <= horizon:
        return None
    pending = source.manifest.get("pending")
    if not isinstance(pending, dict) or not isinstance(pending.get("days"), list):
        raise damaged(source, "pending")
    found: dict[str, asof.Counted] = {}
    kinds = {kind for kind, _many in asof.PENDING_KINDS}
    for row in pending["days"]:
        try:
            date, kind, currency, count, number = row
            when = datetime.date.fromisoformat(date)
            credits = Decimal(number)
            valid = (
                kind in kinds
                and is_commodity(currency)
                and isinstance(count, int)
                and count >= 0
                and credits.is_finite()
            )
        except (TypeError, ValueError, ArithmeticError):
            valid = False
        if not valid:
            raise damaged(source, "pending")
        if horizon < when <= day:
            counted = found.setdefault(kind, asof.Counted())
            counted.count += count
            counted.add_credits(currency, credits)
    through = _date(source, "pending", pending.get("through"))
    known = (
        f"; past {through} the export does not know what is due"
        if through is not None and day > through
        else ""
    )
    count = sum(counted.count for counted in found.values())
    if not count:
        return (
            f"as of {day}: the export records the ledger through {horizon}; "
            f"no expiry is due since then{known}"
        )
    return (
        f"export recorded through {horizon}; {asof.describe_pending(found)} "
        f"{'is' if count == 1 else 'are'} not counted here (the report without "
        f"--source counts them): run bean-credits close-day, then export again{known}"
    )


def check_range(source: Source, filters: Filters) -> None:
    """The ledger path's empty-range errors, from the export's date span."""
    first, last = span(source)
    common.check_span(first, last, filters, f"the export {source.location}")


def _date(source: Source, field: str, value: object) -> datetime.date | None:
    if value is None:
        return None
    try:
        return datetime.date.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise damaged(source, field) from None


def damaged(source: Source, field: str) -> ReportError:
    """A manifest the export did not write as it stands (its text is not repeated)."""
    return ReportError(
        f"{source.location}: {columnar.MANIFEST} is damaged ({field}); "
        "write the export again with bean-credits export parquet LEDGER -o DIR"
    )


def exact(number: Decimal | None, places: int | None) -> Decimal | None:
    """A decimal(38, 9) with the decimal places the ledger's number has (10.50, not 10.500000000).

    ``places`` comes from the export's ``*places`` columns: the most any
    number summed into ``number`` has, which is what Decimal arithmetic gives
    the ledger path's sum (and a product has the places of both factors).
    """
    if number is None:
        return None
    return number.quantize(Decimal(1).scaleb(-(places or 0)))


# --- The reports ---------------------------------------------------------------------------


def usage_report(source: Source, filters: Filters) -> Table:
    period = filters.period or common.DEFAULT_PERIOD
    params = {**filter_params(source, filters), "period": period}
    found: dict[tuple[str, str], dict[datetime.date, usage.Totals]] = defaultdict(dict)
    for account, currency, start, *sums in source.rows(sql.USAGE, params):
        earned, redeemed, expired, earned_places, redeemed_places, expired_places = sums
        found[(account, currency)][start] = {
            "earned": exact(earned, earned_places),  # type: ignore[dict-item]
            "redeemed": exact(redeemed, redeemed_places),  # type: ignore[dict-item]
            "expired": exact(expired, expired_places),  # type: ignore[dict-item]
        }
    user_ids = {account: user_id for user_id, account, _segment in source.rows(sql.USERS, {})}
    return usage.usage_table(found, user_ids, filters, period)


def rates_report(source: Source, filters: Filters) -> Table:
    totals: dict[tuple[str, str, str], list[Decimal]] = defaultdict(lambda: [common.ZERO] * 4)
    for source_account, segment, cohort, currency, *sums in source.rows(
        sql.RATES, filter_params(source, filters)
    ):
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


def liability_report(source: Source, filters: Filters) -> Table:
    first_date, last_date = span(source)
    first = filters.date_from or first_date
    last = filters.date_to or last_date
    if first is None or last is None:
        return liability.roll_forward([], filters, datetime.date.min, datetime.date.min)
    params = {**filter_params(source, filters), "last": last}
    moves = [
        (date, (currency, basis), move, exact(value, places))
        for date, currency, basis, move, value, places in source.rows(sql.LIABILITY, params)
    ]
    return liability.roll_forward(moves, filters, first, last)  # type: ignore[arg-type]


def daily_report(source: Source, filters: Filters) -> Table:
    first_date, last_date = span(source)
    first = filters.date_from or first_date
    last = filters.date_to or last_date
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
    params = {**filter_params(source, filters), "last": last}
    source.register_days(first, last)
    for day, user_id, currency, change, change_places, balance, balance_places in source.stream(
        sql.DAILY, params
    ):
        yield [
            day,
            user_id,
            currency,
            exact(change, change_places),
            exact(balance, balance_places),
        ]


def balances_report(source: Source, filters: Filters) -> Table:
    params = filter_params(source, filters)
    totals: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for account, currency, balance, places in source.rows(sql.BALANCES, params):
        number = exact(balance, places)
        assert number is not None
        totals[account][currency] = number
    users = [
        (user_id, segment, account)
        for user_id, account, segment in source.rows(sql.USERS, {})
        if filters.user is None or user_id == filters.user
    ]
    return balances.balances_table(totals, users, filters)


MAKERS: dict[str, Callable[[Source, Filters], Table]] = {
    "balances": balances_report,
    "daily": daily_report,
    "liability": liability_report,
    "rates": rates_report,
    "usage": usage_report,
}


def run(name: str, source: Source | str | Path, filters: Filters, engine: str = "duckdb") -> Table:
    """Report ``name`` from an export (opened, or its location), as :func:`reports.run` makes it."""
    make = MAKERS.get(name)
    if make is None:
        raise ReportError(
            f"report {name!r} does not run on a columnar export; --source works for "
            f"{', '.join(SOURCE_REPORTS)}"
        )
    check_filters(name, filters)
    if isinstance(source, str | Path):
        source = open_source(source, engine)
    check_range(source, filters)
    return common.sort_table(make(source, filters), filters.sort, filters.desc, name)
