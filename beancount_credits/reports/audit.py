"""``audit``: what an auditor looks at first, one line per finding.

- **adjustment**: a manual adjustment of a wallet: why (``reason:``), who
  approved it (``approved_by:``) and who wrote it (git, when the ledger is in a
  repository);
- **reversal**: a transaction that undoes another (``reverses:``);
- **overdraft**: a draw-down that went below zero on a credit limit;
- **changed-history**: a recorded balance or expiry the ledger no longer
  agrees with (see ``bean-credits verify``);
- **unusual**: a day on which a user drew down more than ``factor`` times
  their median day (over at least ``MIN_DAYS`` active days);
- **amendment**: a recorded change of sealed days (``custom "credits-amend"``):
  the first day changed, the reason, the approver and the git author;
- **broken-seal**: a sealed day whose entries changed without an amendment,
  what differs and who changed it (git).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal

from beancount.core import data

from beancount_credits.audit import git_history, provenance, seal_history, verify
from beancount_credits.engine import is_generated
from beancount_credits.ledger import Ledger
from beancount_credits.reports.table import Cell, Column, Filters, Table

DEFAULT_FACTOR = Decimal(5)
MIN_DAYS = 5  # a median of fewer active days says little about what is usual

COLUMNS = [
    Column("Date", "date"),
    Column("Kind"),
    Column("User ID"),
    Column("Transaction ID"),
    Column("Credit type"),
    Column("Amount", "number"),
    Column("Details"),
    Column("Written by"),
]


def in_range(filters: Filters, date: object) -> bool:
    return (filters.date_from is None or date >= filters.date_from) and (  # type: ignore[operator]
        filters.date_to is None or date <= filters.date_to  # type: ignore[operator]
    )


def report(ledger: Ledger, filters: Filters) -> Table:
    config = ledger.config
    users = {user.account: user for user in ledger.users.values()}
    if filters.user is not None:
        wanted = {ledger.user(filters.user).account}
    else:
        wanted = {
            account
            for account, user in users.items()
            if filters.segment is None or user.segment == filters.segment
        }
    blame = git_history.blame(ledger.options.get("include", [])) if ledger.options else {}

    def written_by(entry: data.Directive) -> str:
        found = provenance.entry_provenance(entry, blame)
        if found is None:
            return ""
        return "uncommitted" if found.last.sha == git_history.UNCOMMITTED.sha else found.last.author

    rows: list[list[Cell]] = []

    def add(entry_date, kind, account, txn_id, currency, number, details, who=""):  # type: ignore[no-untyped-def]
        if account not in wanted or not in_range(filters, entry_date):
            return
        if filters.commodity is not None and currency != filters.commodity:
            return
        user_id = users[account].user_id if account in users else account
        rows.append([entry_date, kind, user_id, txn_id, currency, number, details, who])

    def under(account: str, root: str) -> bool:
        return account == root or account.startswith(root + ":")

    for entry in ledger.entries:
        if not isinstance(entry, data.Transaction) or is_generated(entry):
            continue
        txn_id = entry.meta.get("txn_id")
        reverses = entry.meta.get("reverses")
        adjustment = any(under(p.account, config.adjustments) for p in entry.postings)
        for posting in entry.postings:
            if not config.is_user_account(posting.account):
                continue
            units = posting.units
            if adjustment:
                details = f"reason: {entry.meta.get('reason') or '(none)'}"
                details += f"; approved by: {entry.meta.get('approved_by') or '(none)'}"
                add(
                    entry.date,
                    "adjustment",
                    posting.account,
                    txn_id,
                    units.currency,
                    units.number,
                    details,
                    written_by(entry),
                )
            if reverses is not None:
                add(
                    entry.date,
                    "reversal",
                    posting.account,
                    txn_id,
                    units.currency,
                    units.number,
                    f"reverses {reverses}: {entry.narration}",
                    written_by(entry),
                )

    for drawdown in ledger.grants.drawdowns:
        overdraft = sum((part.amount for part in drawdown.parts if part.grant is None), Decimal(0))
        if overdraft:
            wallet = ledger.grants.wallets[(drawdown.account, drawdown.currency)]
            add(
                drawdown.date,
                "overdraft",
                drawdown.account,
                drawdown.txn_id,
                drawdown.currency,
                -overdraft,
                f"drew {drawdown.amount}, {overdraft} on credit (limit {wallet.limit})",
            )

    records = verify.broken_records(ledger)
    if blame:
        verify.explain(ledger, records)
    root = str(ledger.path.resolve().parent)
    for record in records:
        # Who changed the entries behind the record since it was written.
        authors = {c.commit.author if c.commit else "uncommitted" for c in record.culprits}
        add(
            record.day,
            "changed-history",
            record.account,
            record.entry.meta.get("txn_id"),
            record.commodity,
            record.now - record.recorded,
            f"recorded {record.kind} {record.recorded}, now {record.now} "
            f"({verify.where(record.entry.meta, root)})",
            ", ".join(sorted(authors)),
        )

    if filters.user is None and filters.segment is None and filters.commodity is None:
        # Amendments and broken seals concern days of the whole ledger, not one user.
        rows += [row for row in seal_history.audit_rows(ledger, blame) if in_range(filters, row[0])]

    factor = filters.factor if filters.factor is not None else DEFAULT_FACTOR
    for (account, currency, date), total, median in unusual_days(ledger, factor):
        add(
            date,
            "unusual",
            account,
            None,
            currency,
            -total,
            f"drew {total} in the day, {total / median:.1f}x the median day ({median})",
        )

    rows.sort(key=lambda row: (row[0], row[1], str(row[2])))
    return Table("Audit", COLUMNS, rows, filters, notes=audit_notes(blame, factor))


def audit_notes(blame: git_history.BlameMap, factor: Decimal) -> list[str]:
    notes = [f"unusual: a day's draw-down above {factor}x the user's median day"]
    if not blame:
        notes.append("written by: unavailable (the ledger is not in a git repository)")
    return notes


def unusual_days(
    ledger: Ledger, factor: Decimal, is_user: Callable[[str], bool] | None = None
) -> list[tuple[tuple[str, str, object], Decimal, Decimal]]:
    """(wallet, commodity, day), the day's draw-down and the median day, above factor x median."""
    is_user = is_user or ledger.config.is_user_account
    daily: dict[tuple[str, str], dict[object, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for entry in ledger.entries:
        if not isinstance(entry, data.Transaction) or is_generated(entry):
            continue
        if "reverses" in entry.meta:
            continue
        for posting in entry.postings:
            if is_user(posting.account) and posting.units.number < 0:
                key = (posting.account, posting.units.currency)
                daily[key][entry.date] -= posting.units.number
    found = []
    for (account, currency), days in daily.items():
        if len(days) < MIN_DAYS:
            continue
        median = Decimal(statistics.median(days.values()))
        for date, total in days.items():
            if median > 0 and total > factor * median:
                found.append(((account, currency, date), total, median))
    return found
