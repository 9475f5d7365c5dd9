"""What the Credit page asks of a request: the period, the ledger it serves, the tables.

Fava's time filter becomes a :class:`Period` (its balances are taken at its
last day, or today while it runs); the ledger Fava loaded becomes a
:class:`~beancount_credits.ledger.Ledger` whose grant state starts from the
expire plugin's own result for that load (:func:`plugin_result`: no second
engine pass). Every table the page shows is a report of
:data:`beancount_credits.reports.REPORTS`, made by :func:`table` with the
period's filters, so the page and ``bean-credits report`` give the same rows.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from beancount.core import data

from beancount_credits import engine
from beancount_credits.engine import asof, loadstamp
from beancount_credits.engine.config import CreditsConfig
from beancount_credits.ledger import Ledger, find_config, index_users
from beancount_credits.reports import USED_BY, run
from beancount_credits.reports.table import Filters, Table

ZERO = Decimal(0)
ONE_DAY = datetime.timedelta(days=1)
EXPIRING_DAYS = 30  # the page's "credits expiring soon" alert


@dataclasses.dataclass(frozen=True)
class Period:
    """The days the page looks at: ``begin`` inclusive, ``end`` exclusive (None: open).

    ``as_of`` is the day balances and open grants are taken at (end of day).
    """

    begin: datetime.date | None
    end: datetime.date | None
    as_of: datetime.date

    @classmethod
    def make(
        cls, begin: datetime.date | None, end: datetime.date | None, today: datetime.date
    ) -> Period:
        """A period whose balances are taken at its last day, or today while it runs."""
        as_of = today
        if end is not None:
            last = end - ONE_DAY
            running = (begin is None or begin <= today) and today < last
            as_of = today if running else last
        return cls(begin, end, as_of)

    def __contains__(self, date: datetime.date) -> bool:
        return (self.begin is None or date >= self.begin) and (self.end is None or date < self.end)

    def counts(self, date: datetime.date) -> bool:
        """Whether activity on ``date`` counts: in the period and not after ``as_of``."""
        return date in self and date <= self.as_of

    def describe(self) -> str:
        if self.begin is None and self.end is None:
            return f"whole history, balances as of {self.as_of}"
        begin = self.begin or "start"
        end = (self.end - ONE_DAY) if self.end else "end"
        return f"{begin} to {end}, balances as of {self.as_of}"

    def filters(self, **more: Any) -> Filters:
        """The report filters of this period: from its first day through ``as_of``."""
        return Filters(date_from=self.begin, date_to=self.as_of, **more)


def table(
    ledger: Ledger,
    name: str,
    period: Period,
    activity: Iterable[data.Directive] | None = None,
    **filters: Any,
) -> Table:
    """Report ``name`` over the period (``activity``: the entries Fava's account or tag
    filter keeps, for the reports that count activity)."""
    options = {} if activity is None else {"activity": activity}
    chosen = period.filters(**filters)
    if name not in USED_BY["date_from"]:
        # A table as of a day (open grants, balances) reads only the period's end.
        chosen = dataclasses.replace(chosen, date_from=None)
    return run(name, ledger, chosen, strict_range=False, **options)


def ledger_from_entries(
    path: str | Path, entries: Sequence[data.Directive], errors: list, options: dict
) -> Ledger:
    """A Ledger over entries someone else loaded (Fava): no second load of the file.

    Its grant state starts from the expire plugin's own result for this load
    (:func:`plugin_result`), so the page runs no second engine pass over the
    whole ledger; days come from :mod:`beancount_credits.engine.asof` like every tool's.
    """
    config = find_config(options)
    entries = list(entries)
    base = plugin_result(entries, options, config)
    ledger = Ledger(
        path=Path(path),
        entries=entries,
        errors=list(errors),
        options=options,
        config=config,
        users=index_users(entries, config),
        timeline=asof.Timeline(entries, config, base=base, record=False),
    )
    # The wallet index is built by the first request that needs it (once per
    # load, under the timeline's lock), not here: Fava reloads on every change
    # of a file, most of them with nobody on the Credit page.
    return ledger


def plugin_result(
    entries: Sequence[data.Directive], options: dict, config: CreditsConfig
) -> engine.EngineResult | None:
    """The expire plugin's result for this load, if it agrees with the entries.

    The plugin keeps its result on the load's options map
    (:mod:`beancount_credits.engine.loadstamp`); it is used only when every wallet's
    balance in it equals what the loaded entries add up to, so a later plugin
    that changed wallet postings falls back to an engine pass. A load from
    Beancount's cache has none.
    """
    result = loadstamp.engine_result(options)
    if result is None:
        return None
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    is_user: dict[str, bool] = {}
    for entry in entries:
        if isinstance(entry, data.Transaction):
            for posting in entry.postings:
                account = posting.account
                user = is_user.get(account)
                if user is None:
                    user = is_user[account] = config.is_user_account(account)
                if user and posting.units is not None:
                    totals[account, posting.units.currency] += posting.units.number
    for key in set(totals) | set(result.wallets):
        wallet = result.wallets.get(key)
        if totals.get(key, ZERO) != (wallet.balance if wallet else ZERO):
            return None
    return result
