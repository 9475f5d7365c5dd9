"""The daily job: write the day's expiries, allowances and end-of-day balances into the text.

``bean-credits close-day LEDGER --date D`` records, in one file per month under
the ledger's log folder (``log/YYYY/MM.beancount``, included from the main file
by a glob), every expiry due on or before D, every allowance grant of a period
starting by then (recognised by its ``txn_id`` afterwards, never written
twice), and every end-of-day balance of a
wallet with activity on a day up to D, that the text does not hold yet. What
the plugins generate from then on for those days is the recorded text, which
Beancount checks: an edit of the past that changes a logged balance fails.

:func:`plan` is pure (a loaded ledger in, the entries to record out); writing
goes through :mod:`beancount_credits.ledger.write`.
"""

from __future__ import annotations

import dataclasses
import datetime

from beancount.core import data

from beancount_credits import engine
from beancount_credits.engine import seal
from beancount_credits.ledger import Ledger, write
from beancount_credits.plugins import daily_balances
from beancount_credits.plugins import seal as seal_plugin

LOG_DIR = "log"
ONE_DAY = datetime.timedelta(days=1)
# What the two plugins generate; other plugins' entries are not the log's business.
_GENERATED = (engine.EXPIRE_PLUGIN_NAME, daily_balances.PLUGIN)


@dataclasses.dataclass
class Plan:
    """What close-day records for a date."""

    through: datetime.date
    expiries: list[data.Transaction]  # and the allowance grants (engine.allowances)
    balances: list[data.Balance]
    seals: list[data.Custom] = dataclasses.field(default_factory=list)  # sealed ledgers

    @property
    def empty(self) -> bool:
        return not self.expiries and not self.balances and not self.seals

    def entries(self) -> list[data.Directive]:
        return sorted([*self.expiries, *self.balances, *self.seals], key=data.entry_sortkey)

    def summary(self) -> str:
        if self.empty:
            return f"nothing to write: the ledger is logged through {self.through}"
        parts = []
        expired = [entry for entry in self.expiries if engine.EXPIRED_TAG in entry.tags]
        granted = [entry for entry in self.expiries if engine.EXPIRED_TAG not in entry.tags]
        for found, one, many in (
            (granted, "allowance", "allowances"),
            (expired, "expiry", "expiries"),
        ):
            if found:
                days = sorted({entry.date for entry in found})
                noun = one if len(found) == 1 else many
                parts.append(f"{len(found)} {noun} ({span(days)})")
        if self.balances:
            days = sorted({entry.date for entry in self.balances})
            noun = "balance" if len(self.balances) == 1 else "balances"
            parts.append(f"{len(self.balances)} end-of-day {noun} ({span(days)})")
        if self.seals:
            noun = "seal" if len(self.seals) == 1 else "seals"
            parts.append(f"{len(self.seals)} {noun} ({span([entry.date for entry in self.seals])})")
        return " and ".join(parts)


def span(days: list[datetime.date]) -> str:
    return str(days[0]) if days[0] == days[-1] else f"{days[0]} .. {days[-1]}"


def plan(ledger: Ledger, through: datetime.date) -> Plan:
    """The expiries due by ``through`` and the balances of days up to it not in the text yet.

    Both come from the ledger as of ``through`` (:mod:`beancount_credits.engine.asof`):
    its expiries the text does not record, and the end-of-day balances of its
    active days that no assertion holds.
    """
    entries = ledger.as_of(through).entries
    logged = [*entries, *daily_balances.missing_balances(entries, ledger.config)]
    expiries = []
    balances = []
    for entry in logged:
        if engine.generated_by(entry) not in _GENERATED:
            continue
        if isinstance(entry, data.Transaction) and entry.date <= through:
            expiries.append(entry)
        elif isinstance(entry, data.Balance) and entry.date <= through + ONE_DAY:
            balances.append(entry)
    sealed = []
    if seal_plugin.enabled(ledger.options):
        records = [record(entry) for entry in [*expiries, *balances]]  # type: ignore[arg-type]
        sealed = seal.new_seals(ledger.entries, records, through)
    return Plan(through, expiries, balances, sealed)


def record(entry: data.Directive) -> data.Directive:
    """The entry as the text records it: its own metadata, not the plugin's bookkeeping."""
    meta = {
        key: value
        for key, value in entry.meta.items()
        if key not in ("generated", engine.GENERATED_KEY)
    }
    if isinstance(entry, data.Transaction):
        # The engine's annotations (an allowance repaying an overdraft) are not text.
        postings = [posting._replace(meta=None) for posting in entry.postings]
        return entry._replace(meta=meta, postings=postings)
    return entry._replace(meta=meta)


def changes(ledger: Ledger, planned: Plan) -> list[write.FileChange]:
    """The month files (and, the first time, the main file's include) for a plan."""
    return write.month_files(
        ledger.path,
        ledger.options,
        LOG_DIR,
        [record(entry) for entry in planned.entries()],
        "Daily balance log and expiries for {month}, written by bean-credits close-day.",
        "The daily job's log (bean-credits close-day).",
    )
