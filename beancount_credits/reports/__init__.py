"""Reports: each is a function from a loaded ledger and filters to a Table.

The CLI, the Credit page and the exporters all take reports from
:data:`REPORTS` through :func:`run`, so a report is written once and shown
everywhere: the page's all-users table is ``users``, a user's open grants
``grants``, an organisation's members ``members``, its alerts ``low-balance``,
``expiring``, ``overdraft`` and ``failed-topups``, a user's statement and
daily balance ``statement`` and ``daily``. To add a report: a module with
``report(ledger, filters) -> Table`` and a line in :data:`REPORTS` (and in
:data:`USED_BY` for a filter only it reads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from beancount_credits.ledger import Ledger
from beancount_credits.reports import (
    audit,
    balances,
    common,
    daily,
    expiring,
    grants,
    hybrid,
    liability,
    low_balance,
    members,
    overdraft,
    rates,
    statement,
    top,
    topups,
    usage,
    users,
)
from beancount_credits.reports.table import Filters, ReportError, Table

Report = Callable[..., Table]  # (ledger, filters, **options) -> Table

REPORTS: dict[str, Report] = {
    "audit": audit.report,
    "balances": balances.report,
    "daily": daily.report,
    "expiring": expiring.report,
    "failed-topups": topups.report,
    "grants": grants.report,
    "hybrid": hybrid.report,
    "liability": liability.report,
    "low-balance": low_balance.report,
    "members": members.report,
    "overdraft": overdraft.report,
    "rates": rates.report,
    "statement": statement.report,
    "top": top.report,
    "usage": usage.report,
    "users": users.report,
}

# Filters only some reports read: any other report given one refuses it, so
# a filter is never silently ignored. The one table of it (the export's
# reports and the Credit page read it too). ``--user`` and ``--to`` apply to
# every report; ``--sort`` to every column a report prints.
USED_BY: dict[str, set[str]] = {
    "segment": set(REPORTS) - {"members", "statement"},  # one user's tables
    "commodity": set(REPORTS) - {"failed-topups"},  # a record of money, not credits
    "date_from": set(REPORTS) - {"balances", "expiring", "grants", "low-balance", "overdraft"},
    "member": {"hybrid", "statement", "usage"},
    "period": {"liability", "top", "usage"},
    "days": {"expiring"},
    "factor": {"audit"},
    "search": {"users"},
}

# The command line's name of a filter, where it is not the field's.
OPTION = {"date_from": "from"}


def check_filters(name: str, filters: Filters) -> None:
    """ReportError when a filter is given to a report that does not read it."""
    for field, names in USED_BY.items():
        if getattr(filters, field) is not None and name not in names:
            raise ReportError(
                f"--{OPTION.get(field, field)} does not apply to report {name!r} (it applies "
                f"to: {', '.join(sorted(names))})"
            )


def run(
    name: str, ledger: Ledger, filters: Filters, *, strict_range: bool = True, **options: Any
) -> Table:
    """Report ``name`` of the ledger with the filters, sorted as ``filters.sort`` asks.

    ``options`` go to the report (the page's ``activity``: the entries its
    account or tag filter keeps, for ``users`` and ``members``). Raises
    ReportError (unknown report, a filter the report does not use, a range
    outside the ledger, an unknown sort column) and LedgerError (unknown user
    id), each with a message for one line. ``strict_range=False`` (the page:
    a quiet or future month is a view, not a typo) answers a range outside the
    ledger's history with the table it makes.
    """
    make = REPORTS.get(name)
    if make is None:
        raise ReportError(f"unknown report {name!r}; reports: {', '.join(sorted(REPORTS))}")
    check_filters(name, filters)
    view = ledger
    if filters.date_to is not None and ledger.day != filters.date_to:
        # Every report reads the ledger as of the end of --to (beancount_credits.engine.asof).
        view = ledger.at(filters.date_to)
    if strict_range:
        common.check_range(ledger, filters, view)
    table = make(view, filters, **options)
    return common.sort_table(table, filters.sort, filters.desc, name)


__all__ = [
    "OPTION",
    "REPORTS",
    "USED_BY",
    "Filters",
    "Report",
    "ReportError",
    "Table",
    "check_filters",
    "run",
]
