"""``top``: the users who consistently redeem the most, and a credit limit for them.

The rule (over the periods of the range, ``--period``, default month):

- a user is **consistent** when they redeemed something in at least two thirds
  of the periods (quiet periods count as 0);
- consistent users are ranked by their **median** redemption per period, so
  one big period (a spike) does not make a heavy user: the median ignores it
  where an average would not;
- **Cover** is their balance at the end of ``--to`` (0 when negative) over
  their average use per period: how many periods the credits they hold last;
- **Suggested limit**: the median use per period rounded up to the next 10
  credits, so a consistent user can run one typical period on credit while a
  top-up is under way. Compare it with the current credit limit.

At most ``TOP`` users are listed (``--sort`` re-sorts them). The range must
hold at least ``MIN_PERIODS`` periods.
"""

from __future__ import annotations

import math
import statistics
from decimal import ROUND_CEILING, Decimal

from beancount_credits.ledger import Ledger
from beancount_credits.reports import common
from beancount_credits.reports.balances import wallet_balances
from beancount_credits.reports.table import Cell, Column, Filters, ReportError, Table
from beancount_credits.reports.usage import usage_by_period

TOP = 20
MIN_PERIODS = 3
CONSISTENT_SHARE = Decimal(2) / 3
ROUND_TO = Decimal(10)

COLUMNS = [
    Column("Rank", "number"),
    Column("User ID"),
    Column("Segment"),
    Column("Credit type"),
    Column("Active periods"),
    Column("Median use", "number"),
    Column("Average use", "number"),
    Column("Peak use", "number"),
    Column("Balance", "number"),
    Column("Cover", "number"),
    Column("Credit limit", "number"),
    Column("Suggested limit", "number"),
]


def suggested_limit(median: Decimal) -> Decimal:
    """The median use per period, rounded up to the next multiple of ROUND_TO."""
    return (median / ROUND_TO).to_integral_value(rounding=ROUND_CEILING) * ROUND_TO


def report(ledger: Ledger, filters: Filters) -> Table:
    period = filters.period or common.DEFAULT_PERIOD
    first = filters.date_from or common.first_date(ledger)
    last = filters.date_to or common.last_date(ledger)
    if first is None or last is None:
        return Table("Top users", COLUMNS, [], filters)
    starts = common.periods(first, last, period)
    if len(starts) < MIN_PERIODS:
        raise ReportError(
            f"the top report needs at least {MIN_PERIODS} periods; {first} .. {last} holds "
            f"{len(starts)} {period}(s): widen --from/--to or use a shorter --period"
        )
    needed = math.ceil(CONSISTENT_SHARE * len(starts))
    found = usage_by_period(ledger, filters, period)
    users = {user.account: user for user in ledger.users.values()}
    balances = wallet_balances(ledger, filters)
    wallets = ledger.grants.wallets
    ranked = []
    for (account, currency), by_period in found.items():
        used = [by_period[s]["redeemed"] if s in by_period else common.ZERO for s in starts]
        active = sum(1 for number in used if number > 0)
        if active < needed:
            continue
        median = Decimal(statistics.median(used))
        ranked.append((median, account, currency, used, active))
    ranked.sort(key=lambda item: (-item[0], users[item[1]].user_id, item[2]))
    rows: list[list[Cell]] = []
    for rank, (median, account, currency, used, active) in enumerate(ranked[:TOP], start=1):
        average = (sum(used, common.ZERO) / len(used)).quantize(Decimal("0.01"))
        balance = balances.get(account, {}).get(currency, common.ZERO)
        wallet = wallets.get((account, currency))
        rows.append(
            [
                Decimal(rank),
                users[account].user_id,
                users[account].segment,
                currency,
                f"{active}/{len(starts)}",
                median,
                average,
                max(used),
                balance,
                (max(balance, common.ZERO) / average).quantize(Decimal("0.1")) if average else None,
                wallet.limit if wallet is not None else common.ZERO,
                suggested_limit(median),
            ]
        )
    return Table(
        f"Top users by median use per {period}",
        COLUMNS,
        rows,
        filters,
        notes=[
            f"consistent: redeemed in at least {needed} of {len(starts)} {period}s; "
            f"ranked by median use per {period}; at most {TOP} users",
            "Cover: balance / average use; Suggested limit: median use rounded up to 10",
        ],
    )
