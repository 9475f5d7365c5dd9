"""Carry-forward: what a period close carries into the new period, computed from the ledger.

Pure (a loaded ledger in, entries out); :mod:`beancount_credits.jobs.close_period`
writes them into the new period's opening file and archives the closed one.

- :func:`carry_forward`: one ``#carried`` transaction per wallet, dated the
  last closed day, from the opening account: a posting per grant still open
  at the end of that day (its remaining amount, with the original grant's id,
  date, Transaction ID, source, amount and terms as posting metadata, so the
  grant engine books it as the original grant), the overdraft outstanding as
  a negative posting, and a zero line for a wallet that held a credit type and
  holds none now. The grants carried must add up to the wallet's balance in
  the text, or the close is refused;
- :func:`opening_balances`: a balance assertion on the new period's first day
  for every carried wallet (not closed by then);
- :func:`other_balances`: balances of accounts a close does not carry (assets
  and liabilities other than the wallets), which refuse the close.

:class:`PeriodError` is the close's refusal (nothing is written); it is
defined here, where the first refusals are found.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from decimal import Decimal

from beancount.core import amount as amount_lib
from beancount.core import data

from beancount_credits import engine
from beancount_credits.ledger import Ledger

ONE_DAY = datetime.timedelta(days=1)
ZERO = Decimal(0)


class PeriodError(Exception):
    """A close that cannot be made as asked; nothing was written."""


def carry_forward(ledger: Ledger, through: datetime.date) -> list[data.Transaction]:
    """The ``#carried`` transactions: every grant and overdraft open at the end of ``through``.

    Every wallet and credit type with any posting in the period gets a line;
    one that holds nothing gets a zero line, so it still has an opening balance.
    """
    view = ledger.as_of(through)
    entries = [entry for entry in view.entries if entry.date <= through]
    result = view.result
    if result.errors:
        raise PeriodError(
            f"the grant engine reports {len(result.errors)} error(s) up to {through}: "
            f"{result.errors[0].message}"
        )
    closes = {
        user.account: user.close_date
        for user in ledger.users.values()
        if user.close_date is not None and user.close_date <= through
    }
    text_balance = wallet_balances(entries, ledger)
    start = through + ONE_DAY
    postings: dict[str, list[data.Posting]] = defaultdict(list)
    for (account, currency), wallet in sorted(result.wallets.items()):
        grants = sorted(
            (grant for _key, _seq, grant in wallet.heap if grant.remaining > 0),
            key=lambda grant: engine.consumption_order(grant, wallet.order),
        )
        if wallet.debt > 0 and grants:
            raise PeriodError(
                f"{account} holds open grants and an overdraft in {currency} at the end of "
                f"{through}; the engine never leaves both, so the ledger cannot be carried"
            )
        carried = sum((grant.remaining for grant in grants), ZERO) - wallet.debt
        if carried != text_balance.get((account, currency), ZERO):
            raise PeriodError(
                f"{account}: the grants carried ({carried} {currency}) differ from the "
                f"balance of the text ({text_balance.get((account, currency), ZERO)} {currency})"
            )
        for grant in grants:
            meta: dict[str, object] = {
                "grant": grant.id,
                "granted": grant.date,
                "granted_amount": grant.amount,
            }
            if grant.txn_id is not None:
                meta["grant_txn"] = grant.txn_id
            if grant.source is not None:
                meta["source"] = grant.source
            if grant.expires is not None:
                meta["expires"] = grant.expires
            meta["priority"] = grant.priority
            if grant.unit_cost is not None:
                meta["unit_cost"] = grant.unit_cost
            if grant.applies_to is not None:
                meta["applies_to"] = ", ".join(grant.applies_to)
            units = amount_lib.Amount(grant.remaining, currency)
            postings[account].append(data.Posting(account, units, None, None, None, meta))
        if wallet.debt > 0:
            units = amount_lib.Amount(-wallet.debt, currency)
            meta = {"overdraft_carried": wallet.debt}
            postings[account].append(data.Posting(account, units, None, None, None, meta))
    for account, currency in sorted(text_balance):
        if (account, currency) not in result.wallets or not any(
            posting.units.currency == currency for posting in postings.get(account, ())
        ):
            # A wallet that held this credit type and holds none now: a zero line,
            # so reports still show its (zero) opening balance.
            units = amount_lib.Amount(ZERO, currency)
            postings[account].append(data.Posting(account, units, None, None, None, None))
    carries = []
    for account, wallet_postings in sorted(postings.items()):
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for posting in wallet_postings:
            totals[posting.units.currency] += posting.units.number
        counter = [
            data.Posting(
                ledger.config.opening, amount_lib.Amount(-total, currency), None, None, None, None
            )
            for currency, total in sorted(totals.items())
        ]
        # A wallet closed in the period can only take its overdraft on its close date.
        date = min(through, closes.get(account) or through)
        meta = data.new_metadata("<close-period>", 0)
        meta["txn_id"] = f"carry:{start}:{account.rpartition(':')[2]}"
        carries.append(
            data.Transaction(
                meta,
                date,
                "*",
                None,
                f"Carried forward to the period from {start}",
                frozenset({engine.CARRIED_TAG}),
                data.EMPTY_SET,
                [*wallet_postings, *counter],
            )
        )
    return carries


def opening_balances(
    ledger: Ledger, carried: list[data.Transaction], start: datetime.date
) -> list[data.Balance]:
    """Balance assertions dated ``start`` for every carried wallet.

    Recorded, like the log's, so the new period's balance log starts with every
    wallet (the daily report reads it) and close-day finds nothing to add. The
    log's own assertions of that date moved to the archive with the day they log.
    """
    closed = {
        user.account
        for user in ledger.users.values()
        if user.close_date is not None and user.close_date < start
    }
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for entry in carried:
        for posting in entry.postings:
            if ledger.config.is_user_account(posting.account):
                totals[(posting.account, posting.units.currency)] += posting.units.number
    return [
        data.Balance(
            data.new_metadata("<close-period>", 0),
            start,
            account,
            amount_lib.Amount(total, currency),
            None,
            None,
        )
        for (account, currency), total in sorted(totals.items())
        if account not in closed
    ]


def wallet_balances(
    entries: list[data.Directive], ledger: Ledger
) -> dict[tuple[str, str], Decimal]:
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for entry in entries:
        if isinstance(entry, data.Transaction):
            for posting in entry.postings:
                if ledger.config.is_user_account(posting.account):
                    totals[(posting.account, posting.units.currency)] += posting.units.number
    return totals


def other_balances(entries: list[data.Directive], ledger: Ledger) -> dict[tuple[str, str], Decimal]:
    """Balances of Assets/Liabilities accounts other than wallets (a close does not carry them)."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for entry in entries:
        if isinstance(entry, data.Transaction):
            for posting in entry.postings:
                account = posting.account
                if account.split(":")[0] not in ("Assets", "Liabilities"):
                    continue
                if ledger.config.is_user_account(account):
                    continue
                totals[(account, posting.units.currency)] += posting.units.number
    return {key: value for key, value in totals.items() if value != 0}
