"""Reports: each is a function from a loaded ledger and filters to a Table.

The CLI, the Fava page and the exporters all take reports from
:data:`REPORTS`, so a report is written once and shown everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

from beancount_credits.ledger import Ledger
from beancount_credits.reports import (
    audit,
    balances,
    common,
    daily,
    expiring,
    hybrid,
    liability,
    rates,
    statement,
    top,
    usage,
)
from beancount_credits.reports.table import Filters, ReportError, Table

Report = Callable[[Ledger, Filters], Table]

REPORTS: dict[str, Report] = {
    "audit": audit.report,
    "balances": balances.report,
    "daily": daily.report,
    "expiring": expiring.report,
    "hybrid": hybrid.report,
    "liability": liability.report,
    "rates": rates.report,
    "statement": statement.report,
    "top": top.report,
    "usage": usage.report,
}

# Filters only some reports read: any other report given one refuses it, so
# a filter is never silently ignored.
USED_BY: dict[str, set[str]] = {
    "member": {"hybrid", "statement", "usage"},
    "period": {"liability", "top", "usage"},
    "days": {"expiring"},
}


def run(name: str, ledger: Ledger, filters: Filters) -> Table:
    """Report ``name`` of the ledger with the filters, sorted as ``filters.sort`` asks.

    Raises ReportError (unknown report, a filter the report does not use, a
    range outside the ledger, an unknown sort column) and LedgerError
    (unknown user id), each with a message for one line.
    """
    make = REPORTS.get(name)
    if make is None:
        raise ReportError(f"unknown report {name!r}; reports: {', '.join(sorted(REPORTS))}")
    for field, users in USED_BY.items():
        if getattr(filters, field) is not None and name not in users:
            raise ReportError(
                f"--{field} does not apply to report {name!r} (it applies to: "
                f"{', '.join(sorted(users))})"
            )
    view = ledger
    if filters.date_to is not None and ledger.day != filters.date_to:
        # Every report reads the ledger as of the end of --to (beancount_credits.engine.asof).
        view = ledger.at(filters.date_to)
    common.check_range(ledger, filters, view)
    table = make(view, filters)
    return common.sort_table(table, filters.sort, filters.desc, name)


__all__ = ["REPORTS", "USED_BY", "Filters", "Report", "ReportError", "Table", "run"]
