"""``rates``: redemption and breakage rates by source, segment and cohort.

For the grants issued in the range (``--from``/``--to``, by grant date), as
the grant engine left them at the end of ``--to``:

- issued: what the grants granted, less what reversals of grants removed;
- redeemed: what draw-downs consumed of them (net of reversals; repaying an
  overdraft counts as redeemed);
- expired: what expired unspent (breakage), forfeitures of closed wallets
  included;
- open: what is still left to spend or expire.

issued = redeemed + expired + open, so Redemption % + Breakage % + Open % =
100 (up to rounding to 0.1). Groups: ``source`` (the account the credits were
earned from), ``segment`` (of the user), ``cohort`` (month of issue), and
``all``.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from beancount_credits import engine
from beancount_credits.ledger import Ledger
from beancount_credits.reports import common
from beancount_credits.reports.table import Cell, Column, Filters, Table

COLUMNS = [
    Column("Dimension"),
    Column("Group"),
    Column("Credit type"),
    Column("Issued", "number"),
    Column("Redeemed", "number"),
    Column("Expired", "number"),
    Column("Open", "number"),
    Column("Redemption %", "number"),
    Column("Breakage %", "number"),
    Column("Open %", "number"),
]
DIMENSIONS = ("source", "segment", "cohort", "all")
TENTH = Decimal("0.1")


def fate(grant: engine.Grant) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(issued, redeemed, expired, open) of a grant."""
    return (
        grant.amount - grant.reversed,
        grant.consumed - grant.reversed,
        grant.expired,
        grant.remaining,
    )


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    return (part * 100 / whole).quantize(TENTH) if whole else None


def report(ledger: Ledger, filters: Filters) -> Table:
    users = {user.account: user for user in common.selected_users(ledger, filters)}
    result = common.grants_as_of(ledger, filters.date_to)
    totals: dict[tuple[str, str, str], list[Decimal]] = defaultdict(lambda: [common.ZERO] * 4)
    for grant in result.grants.values():
        user = users.get(grant.account)
        if user is None or not common.in_range(filters, grant.date):
            continue
        if not common.wants_commodity(filters, grant.currency):
            continue
        groups = {
            "source": grant.source.rpartition(":")[2] if grant.source else "(none)",
            "segment": user.segment or "(none)",
            "cohort": common.period_label(grant.date, "month"),
            "all": "all",
        }
        numbers = fate(grant)
        for dimension, group in groups.items():
            sums = totals[(dimension, group, grant.currency)]
            for index, number in enumerate(numbers):
                sums[index] += number
    return rates_table(totals, filters)


def rates_table(totals: dict[tuple[str, str, str], list[Decimal]], filters: Filters) -> Table:
    """The report from its totals by (dimension, group, credit type) (ledger or export)."""
    rows: list[list[Cell]] = []
    for key in sorted(totals, key=lambda k: (DIMENSIONS.index(k[0]), k[2], k[1])):
        issued, redeemed, expired, still_open = totals[key]
        rows.append(
            [
                *key,
                issued,
                redeemed,
                expired,
                still_open,
                percent(redeemed, issued),
                percent(expired, issued),
                percent(still_open, issued),
            ]
        )
    return Table(
        "Redemption and breakage rates",
        COLUMNS,
        rows,
        filters,
        notes=["issued = redeemed + expired + open; rates are shares of issued"],
    )
