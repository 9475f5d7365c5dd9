"""The reports' queries on the columnar export: one SQL text each, run by DuckDB and by Spark.

Each query is written once, in the SQL both engines read the same way (no
``GROUP BY ALL``, no ``ASOF`` join, no engine's own table functions), over
the export's datasets as views (``postings``, ``grants``, ``consumption``,
``expiries``, ``reversals``, ``balances``, ``users``) and, for ``daily``, a
``days`` view with one row per day of the range (``day``), which the engine
registers. Parameters are named ``:name`` and always bound, never pasted into
the text: DuckDB gets them as ``$name`` (:func:`duckdb_text`), Spark as they
are. A filter that is not set is bound as NULL and selects everything.

Decimal arithmetic is exact in both: numbers are ``decimal(38, 9)``, a product
``decimal(38, 18)``; Spark runs with
``spark.sql.decimalOperations.allowPrecisionLoss=false`` so that a sum keeps
its nine decimal places as DuckDB's does (Spark would otherwise round a sum of
two ``decimal(38, 9)`` to eight). Each query also returns the most decimal
places of the numbers it summed (the export's ``*places`` columns), so the
reports print ``10.50`` where the ledger path does.
"""

from __future__ import annotations

import re

from beancount_credits.reports import liability

_PARAMETER_RE = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

# --user and --segment on the users view ``u``.
SELECTED = "(:user IS NULL OR u.user_id = :user) AND (:segment IS NULL OR u.segment = :segment)"


def in_range(column: str) -> str:
    """--from / --to on a date column."""
    return (
        f"(:date_from IS NULL OR {column} >= :date_from) "
        f"AND (:date_to IS NULL OR {column} <= :date_to)"
    )


def of_commodity(column: str) -> str:
    return f"(:commodity IS NULL OR {column} = :commodity)"


USER_COUNT = "SELECT count(*) FROM users WHERE user_id = :user"

USERS = "SELECT user_id, account, segment FROM users"

# usage: earned / redeemed / expired per wallet, credit type and period start.
USAGE = f"""
SELECT p.account, p.commodity,
    CASE :period
        WHEN 'day' THEN p.date
        WHEN 'week' THEN CAST(date_trunc('week', p.date) AS DATE)
        ELSE CAST(date_trunc('month', p.date) AS DATE)
    END AS period_start,
    sum(CASE WHEN p.kind = 'earned' THEN p.number ELSE 0 END) AS earned,
    sum(CASE WHEN p.kind = 'redeemed' THEN -p.number ELSE 0 END) AS redeemed,
    sum(CASE WHEN p.kind = 'expired' THEN -p.number ELSE 0 END) AS expired,
    max(CASE WHEN p.kind = 'earned' THEN p.places ELSE 0 END) AS earned_places,
    max(CASE WHEN p.kind = 'redeemed' THEN p.places ELSE 0 END) AS redeemed_places,
    max(CASE WHEN p.kind = 'expired' THEN p.places ELSE 0 END) AS expired_places
FROM postings p JOIN users u ON u.account = p.account
WHERE {SELECTED} AND {in_range("p.date")} AND {of_commodity("p.commodity")}
    AND (:member IS NULL OR p.member = :member)
GROUP BY p.account, p.commodity, period_start
"""

# rates: each grant's fate as of --to (its dated movements through that day),
# summed by source, segment, month of issue and credit type.
RATES = f"""
WITH used AS (
    SELECT grant_id, sum(amount) AS consumed, max(places) AS places
    FROM consumption
    WHERE grant_id IS NOT NULL AND (:date_to IS NULL OR date <= :date_to)
    GROUP BY grant_id
), undone AS (
    SELECT grant_id,
        sum(CASE WHEN kind = 'grant' THEN amount ELSE 0 END) AS reversed,
        sum(CASE WHEN kind = 'redemption' THEN amount ELSE 0 END) AS restored,
        max(CASE WHEN kind = 'grant' THEN places ELSE 0 END) AS reversed_places,
        max(CASE WHEN kind = 'redemption' THEN places ELSE 0 END) AS restored_places
    FROM reversals
    WHERE :date_to IS NULL OR date <= :date_to
    GROUP BY grant_id
), lapsed AS (
    SELECT grant_id, sum(amount) AS expired, max(places) AS places
    FROM expiries
    WHERE :date_to IS NULL OR date <= :date_to
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
    WHERE {SELECTED} AND {in_range("g.date")} AND {of_commodity("g.commodity")}
)
SELECT source, segment, cohort, commodity,
    sum(amount - reversed) AS issued, sum(consumed + repaid) AS redeemed,
    sum(expired) AS expired,
    max(issued_places) AS issued_places, max(redeemed_places) AS redeemed_places,
    max(expired_places) AS expired_places
FROM fate
GROUP BY source, segment, cohort, commodity
"""

# liability: every valued movement (liability.movements), summed per day,
# credit type, valuation basis and move, through :last.
LIABILITY = f"""
WITH g AS (
    SELECT g.grant_id, g.date, g.commodity, g.amount, g.amount_places, g.repaid,
        g.repaid_places, coalesce(g.unit_cost, 1) AS value,
        coalesce(g.unit_cost_places, 0) AS value_places,
        coalesce(g.cost_currency, '{liability.FREE}') AS basis
    FROM grants g JOIN users u ON u.account = g.account
    WHERE {SELECTED} AND {of_commodity("g.commodity")}
), moves AS (
    SELECT date, commodity, basis, 'issued' AS move, amount * value AS worth,
        amount_places + value_places AS places
    FROM g
    UNION ALL
    SELECT date, commodity, basis, 'redeemed', repaid * value, repaid_places + value_places
    FROM g WHERE repaid <> 0
    UNION ALL
    SELECT r.date, g.commodity, g.basis,
        CASE WHEN r.kind = 'grant' THEN 'issued' ELSE 'redeemed' END,
        -r.amount * g.value, r.places + g.value_places
    FROM reversals r JOIN g ON g.grant_id = r.grant_id
    UNION ALL
    SELECT c.date, g.commodity, g.basis, 'redeemed', c.amount * g.value,
        c.places + g.value_places
    FROM consumption c JOIN g ON g.grant_id = c.grant_id
    UNION ALL
    SELECT e.date, g.commodity, g.basis, 'expired', e.amount * g.value,
        e.places + g.value_places
    FROM expiries e JOIN g ON g.grant_id = e.grant_id
)
SELECT date, commodity, basis, move, sum(worth) AS worth, max(places) AS places
FROM moves
WHERE date <= :last
GROUP BY date, commodity, basis, move
ORDER BY date, commodity, basis, move
"""

# daily: every wallet's balance on every day of ``days``: the balance log's
# last row on or before the day (a span from one logged change to the next),
# from the wallet's first logged day through its close.
DAILY = f"""
WITH spans AS (
    SELECT b.account, b.user_id, b.commodity, b.date AS since,
        lead(b.date) OVER (PARTITION BY b.account, b.commodity ORDER BY b.date) AS until,
        b.change, b.change_places, b.balance, b.balance_places, u.close_date AS closed
    FROM balances b JOIN users u ON u.account = b.account
    WHERE {SELECTED} AND {of_commodity("b.commodity")} AND b.date <= :last
)
SELECT d.day, s.user_id, s.commodity,
    CASE WHEN s.since = d.day THEN s.change END AS change, s.change_places,
    s.balance, s.balance_places
FROM spans s JOIN days d
    ON d.day >= s.since AND (s.until IS NULL OR d.day < s.until)
    AND (s.closed IS NULL OR d.day <= s.closed)
ORDER BY d.day, s.user_id, s.commodity, s.account
"""

# balances: every wallet's balance per credit type at the end of --to.
BALANCES = """
SELECT p.account, p.commodity, sum(p.number) AS balance, max(p.places) AS places
FROM postings p
WHERE p.user_id IS NOT NULL AND (:date_to IS NULL OR p.date <= :date_to)
GROUP BY p.account, p.commodity
"""


def parameters(sql: str) -> set[str]:
    """The names of the ``:name`` parameters a query uses."""
    return set(_PARAMETER_RE.findall(sql))


def duckdb_text(sql: str) -> str:
    """The query with DuckDB's parameter marks (``$name``)."""
    return _PARAMETER_RE.sub(r"$\1", sql)
