"""``members``: an organisation's use per team member, from ``--from`` through ``--to``.

The redemptions of the user given by ``--user`` grouped by their ``member:``
(on the posting or the transaction): credits redeemed, number of redemptions,
last use; the heaviest first. Empty for a user whose redemptions name no
member. The Credit page shows it for the user it opens; with Fava's account
or tag filter on, it passes the entries that filter keeps as ``activity``.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from beancount.core import data

from beancount_credits.ledger import Ledger
from beancount_credits.reports import common
from beancount_credits.reports.index import index
from beancount_credits.reports.kinds import classify
from beancount_credits.reports.table import Cell, Column, Filters, ReportError, Table

ZERO = Decimal(0)


def report(
    ledger: Ledger, filters: Filters, *, activity: Iterable[data.Directive] | None = None
) -> Table:
    if not filters.user:
        raise ReportError("the members report needs --user USER_ID (an organisation)")
    user = ledger.user(filters.user)
    as_of = filters.date_to or common.last_date(ledger) or datetime.date.today()
    if activity is None:
        activity = index(ledger).transactions.get(user.account, [])
    used: dict[tuple[str, str], list[Any]] = {}
    for entry in activity:
        if not isinstance(entry, data.Transaction) or entry.date > as_of:
            continue
        if filters.date_from is not None and entry.date < filters.date_from:
            continue
        for posting in entry.postings:
            if posting.account != user.account or posting.units is None:
                continue
            member = (posting.meta or {}).get("member") or entry.meta.get("member")
            if member is None or not common.wants_commodity(filters, posting.units.currency):
                continue
            if classify(entry, user.account, ledger.config, posting.units.number) != "redeemed":  # type: ignore[arg-type]
                continue
            row = used.setdefault((str(member), posting.units.currency), [ZERO, 0, entry.date])
            row[0] -= posting.units.number
            row[1] += 1
            row[2] = max(row[2], entry.date)
    rows: list[list[Cell]] = [
        [member, currency, total, Decimal(count), last]
        for (member, currency), (total, count, last) in sorted(
            used.items(), key=lambda item: (-item[1][0], item[0])
        )
    ]
    return Table(
        f"Use per team member of {user.user_id}",
        [
            Column("Member"),
            Column("Credit type"),
            Column("Redeemed", "number"),
            Column("Redemptions", "number"),
            Column("Last use", "date"),
        ],
        rows,
        filters,
    )
