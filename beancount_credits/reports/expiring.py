"""``expiring``: grants with credits left that expire within ``--days N`` (default 30).

As of the end of ``--to`` (default: today), a grant expiring on a date D with
``--to`` < D <= ``--to`` + N is listed with what is left of it then (credits
expire at the start of their date, so a grant due on ``--to`` itself has
already expired). Remaining amounts come from the grant engine's pass over the
ledger through ``--to``.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from beancount_credits import engine
from beancount_credits.ledger import Ledger
from beancount_credits.reports import common
from beancount_credits.reports.table import Cell, Column, Filters, Table

DEFAULT_DAYS = 30

COLUMNS = [
    Column("Expires", "date"),
    Column("Days left", "number"),
    Column("User ID"),
    Column("Grant"),
    Column("Source"),
    Column("Granted on", "date"),
    Column("Credit type"),
    Column("Granted", "number"),
    Column("Remaining", "number"),
]


def expiring_grants(
    result: engine.EngineResult, as_of: datetime.date, days: int = DEFAULT_DAYS
) -> list[engine.Grant]:
    """The grants with credits left at the end of ``as_of`` that expire within ``days``
    after it (``as_of`` < expires <= ``as_of`` + ``days``), soonest first."""
    until = as_of + datetime.timedelta(days=days)
    # Only grants with credits left can expire: the wallets' queues hold them
    # (the engine's own "open grants"), a fraction of every grant ever made.
    grants = [
        grant
        for wallet in result.wallets.values()
        for _key, _seq, grant in wallet.heap
        if grant.remaining > 0
        and grant.expires is not None
        and as_of < grant.expires <= until
        and grant.date <= as_of
    ]
    grants.sort(key=lambda grant: (grant.expires, grant.account, grant.id))
    return grants


def report(ledger: Ledger, filters: Filters) -> Table:
    days = filters.days or DEFAULT_DAYS
    as_of = filters.date_to or common.last_date(ledger) or datetime.date.today()
    users = {user.account: user.user_id for user in common.selected_users(ledger, filters)}
    rows: list[list[Cell]] = []
    for grant in expiring_grants(common.grants_as_of(ledger, as_of), as_of, days):
        if grant.account not in users or not common.wants_commodity(filters, grant.currency):
            continue
        assert grant.expires is not None
        rows.append(
            [
                grant.expires,
                Decimal((grant.expires - as_of).days),
                users[grant.account],
                grant.id,
                grant.source.rpartition(":")[2] if grant.source else None,
                grant.date,
                grant.currency,
                grant.amount,
                grant.remaining,
            ]
        )
    rows.sort(key=lambda row: (row[0], row[2], row[3]))  # type: ignore[arg-type,return-value]
    left: dict[str, Decimal] = {}
    for row in rows:
        left[str(row[6])] = left.get(str(row[6]), common.ZERO) + row[8]  # type: ignore[operator]
    in_all = ", ".join(f"{number} {currency}" for currency, number in sorted(left.items()))
    return Table(
        f"Credits expiring within {days} days after {as_of}",
        COLUMNS,
        rows,
        filters,
        notes=[f"{len(rows)} grant(s) expiring" + (f": {in_all} in all" if rows else "")],
    )
