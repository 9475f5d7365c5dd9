"""Reports: each is a function from a loaded ledger and filters to a Table.

The CLI, the Fava page and the exporters all take reports from
:data:`REPORTS`, so a report is written once and shown everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

from beancount_credits.ledger import Ledger
from beancount_credits.reports import audit, balances, statement
from beancount_credits.reports.table import Filters, ReportError, Table

Report = Callable[[Ledger, Filters], Table]

REPORTS: dict[str, Report] = {
    "audit": audit.report,
    "balances": balances.report,
    "statement": statement.report,
}

__all__ = ["REPORTS", "Filters", "Report", "ReportError", "Table"]
