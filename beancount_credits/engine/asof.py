"""The ledger as of day D: the one answer every tool gives for a day.

**Definition.** The ledger as of day D is every written entry dated on or
before D, booked by the grant engine through D: every grant, draw-down,
overdraft and expiry dated on or before D counts, whatever the text's horizon
(its last written transaction or balance assertion). Reports, the Fava page,
notify, top-up, verify, close-day, close-period and the export all ask this
module for a day, so a balance is the same from every tool.

**The horizon.** The plugins read the text, never the clock: they book an
expiry only once the text has reached its date, so ``bean-check`` and
``bean-query`` give the same answer tomorrow as today. A day after the horizon
is answered here with the expiries due by then booked (:attr:`AsOf.pending`:
what ``close-day`` would record), and :meth:`AsOf.notice` says so in one line.

**One pass per load, then cheap days.** :class:`Timeline` belongs to one load
of the ledger (its entries never change) and remembers what it computed, under
a lock, so concurrent requests of a server share it safely. For a day on or
after the horizon it goes on from the end state of one pass over the written
entries (the expire plugin's own result when the load kept it, see
:mod:`beancount_credits.engine.loadstamp`) with :func:`engine.book_through`; an
earlier day is one engine pass over the entries up to it, or, for a timeline
that keeps grants and wallets only (the page's), the end state with the later
entries undone from the plugin's annotations (:func:`engine.rewind`). All
equal ``engine.run(written entries through D, through=D)``, which a test
checks for every day of every case ledger, the demo and a generated ledger.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import functools
import heapq
import threading
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from beancount.core import data

from beancount_credits import engine
from beancount_credits.engine.collector import paused_gc
from beancount_credits.engine.config import CreditsConfig

T = TypeVar("T")
ONE_DAY = datetime.timedelta(days=1)
KEEP_DAYS = 8  # days a timeline remembers (a page asks for the same few days)
ALLOWANCE_LOOKAHEAD = datetime.timedelta(days=366)  # allowances in the schedule past the horizon


@dataclasses.dataclass(frozen=True, eq=False)
class AsOf:
    """The ledger as of the end of ``day``."""

    day: datetime.date
    horizon: datetime.date | None  # the last day the text records
    result: engine.EngineResult  # grants, wallets (and draw-downs) at the end of ``day``
    # Expiries counted here that the loaded entries do not hold: past the
    # horizon, or every expiry of a ledger that does not run the expire plugin.
    pending: tuple[data.Transaction, ...]
    # The entries are ``source`` cut at ``day`` with ``added`` merged in.
    source: list[data.Directive] = dataclasses.field(repr=False)
    added: tuple[data.Transaction, ...] = dataclasses.field(default=(), repr=False)

    @functools.cached_property
    def entries(self) -> list[data.Directive]:
        """The entries through ``day`` with the engine's expiries through it, sorted.

        Besides, the balance assertions dated the next day: they log ``day``.
        """
        return merge(cut_at(self.source, self.day), self.added)

    def balances(self) -> dict[tuple[str, str], Decimal]:
        """Balance per (wallet, credit type) at the end of ``day``."""
        return {key: wallet.balance for key, wallet in self.result.wallets.items()}

    def notice(self) -> str | None:
        """One line when ``day`` is past what the text records, else None."""
        return self._notice

    @functools.cached_property
    def _notice(self) -> str | None:
        # Once per day's state: a page asks it on every request, and past a
        # long-ago horizon the expiries to count are many.
        if self.horizon is None or self.day <= self.horizon:
            return None
        unwritten = [entry for entry in self.pending if entry.date > self.horizon]
        if not unwritten:
            return (
                f"as of {self.day}: the ledger is recorded through {self.horizon}; "
                "no expiry is due since then"
            )
        verb = "is" if len(unwritten) == 1 else "are"
        return (
            f"ledger recorded through {self.horizon}; {describe_pending(tally(unwritten))} "
            f"{verb} counted here but not yet written: run bean-credits close-day"
        )


# --- What the engine books past the horizon, in words ----------------------------------

PENDING_KINDS = (("expiry", "expiries"), ("allowance", "allowances"))


@dataclasses.dataclass
class Counted:
    """Entries of one kind the engine books past the horizon: how many, what credits."""

    count: int = 0
    credits: dict[str, Decimal] = dataclasses.field(default_factory=dict)

    def add_credits(self, currency: str, number: Decimal) -> None:
        self.credits[currency] = self.credits.get(currency, Decimal(0)) + number


def pending_kind(entry: data.Transaction) -> str:
    """What an entry the engine books past the horizon is: an expiry or an allowance."""
    return "expiry" if engine.EXPIRED_TAG in entry.tags else "allowance"


def pending_credits(entry: data.Transaction) -> list[tuple[str, Decimal]]:
    """The credits it moves, by commodity: its positive postings (breakage, or the wallet)."""
    return [
        (posting.units.currency, posting.units.number)
        for posting in entry.postings
        if posting.units is not None
        and posting.units.number is not None
        and posting.units.number > 0
    ]


def tally(entries: Sequence[data.Transaction]) -> dict[str, Counted]:
    """How many of each kind, and their credits per commodity."""
    found: dict[str, Counted] = {}
    for entry in entries:
        counted = found.setdefault(pending_kind(entry), Counted())
        counted.count += 1
        for currency, number in pending_credits(entry):
            counted.add_credits(currency, number)
    return found


def describe_pending(found: dict[str, Counted]) -> str:
    """ "3 expiries since then (59 CREDIT) and 1 allowance (100 CREDIT)": the words of
    the ledger's notice and of the columnar export's (which keeps the tally by day)."""
    parts = []
    for kind, many in PENDING_KINDS:
        counted = found.get(kind)
        if counted is None or not counted.count:
            continue
        amounts = ", ".join(
            f"{number} {currency}" for currency, number in sorted(counted.credits.items())
        )
        since = "" if parts else " since then"
        noun = kind if counted.count == 1 else many
        parts.append(f"{counted.count} {noun}{since} ({amounts})")
    return " and ".join(parts)


def merge(entries: list[data.Directive], added: Sequence[data.Directive]) -> list[data.Directive]:
    """Sorted ``entries`` with sorted ``added`` merged in (Beancount's order).

    Only the tail from the first added date is merged: what the engine books
    past the horizon joins a long ledger at its end.
    """
    if not added:
        return entries
    start = _bisect_after(entries, min(entry.date for entry in added) - ONE_DAY)
    tail = heapq.merge(entries[start:], added, key=data.entry_sortkey)
    return entries[:start] + list(tail)


def cut_at(entries: list[data.Directive], day: datetime.date) -> list[data.Directive]:
    """The entries dated through ``day``, and the balance assertions of the next day."""
    end = _bisect_after(entries, day)
    return entries[:end] + next_day_balances(entries, day, end)


def next_day_balances(
    entries: list[data.Directive], day: datetime.date, start: int | None = None
) -> list[data.Directive]:
    """The balance assertions dated the day after ``day``: they log ``day``'s end."""
    index = _bisect_after(entries, day) if start is None else start
    after = day + ONE_DAY
    found = []
    while index < len(entries) and entries[index].date == after:
        if isinstance(entries[index], data.Balance):
            found.append(entries[index])
        index += 1
    return found


def _bisect_after(entries: list[data.Directive], day: datetime.date) -> int:
    low, high = 0, len(entries)
    while low < high:
        middle = (low + high) // 2
        if entries[middle].date <= day:
            low = middle + 1
        else:
            high = middle
    return low


def run_through(
    entries: list[data.Directive], config: CreditsConfig, day: datetime.date, record: bool = True
) -> engine.EngineResult:
    """The definition itself: one engine pass over the written entries through ``day``.

    ``entries`` are loaded entries (the expire plugin's generated expiries are
    left out and booked again, through ``day``).
    """
    written = engine.written_entries(entries)
    config = dataclasses.replace(config, annotate=False, future_expiries=False)
    return engine.run(written[: _bisect_after(written, day)], config, through=day, record=record)


class Timeline:
    """The ledger as of any day, for one load of it (thread-safe, memoised).

    ``entries``: the loaded entries (plugins applied or not). ``base``: the
    expire plugin's result for this very load, if it kept one (no second pass
    over the whole ledger). ``record``: keep every draw-down and expiry record
    (reports that trace where credits went); without it a day's result may
    hold grants and wallets only, which is what the page reads.
    """

    def __init__(
        self,
        entries: list[data.Directive],
        config: CreditsConfig,
        base: engine.EngineResult | None = None,
        record: bool = True,
    ) -> None:
        self.entries = entries
        # Through the day asked, never further: a ledger that books its whole
        # expiry schedule (future_expiries) still has a balance on each day.
        self.config = dataclasses.replace(config, annotate=False, future_expiries=False)
        self.record = record
        self._base = None if config.future_expiries else base
        # The plugin's own result over entries it annotated: an earlier day can
        # be read back from the annotations (engine.rewind) when only grants
        # and wallets are asked for.
        self._rewindable = self._base is not None and config.annotate and not record
        self._lock = threading.RLock()
        self._days: collections.OrderedDict[datetime.date, AsOf] = collections.OrderedDict()
        self._prepared = False
        self._memo: dict[str, Any] = {}
        # The state with every expiry to come booked (made with the schedule).
        self._final: tuple[engine.EngineResult, list[data.Transaction], datetime.date] | None = None

    # -- what one pass over the load tells

    def _prepare(self) -> None:
        if self._prepared:
            return
        # One walk over the load: the written entries (without the expire
        # plugin's expiries), the horizon, the expiries the load records, and
        # whether a wallet is closed after the horizon.
        written: list[data.Directive] = []
        recorded: set[str | None] = set()
        horizon: datetime.date | None = None
        closes: list[datetime.date] = []
        is_user = self.config.is_user_account
        for entry in self.entries:
            kind = type(entry)
            if kind is data.Transaction:
                if engine.is_expiry_record(entry):
                    recorded.add(engine.txn_id_of(entry))
                mark = engine.generated_by(entry)
                if mark == engine.EXPIRE_PLUGIN_NAME:
                    continue
                if mark is None and not engine.is_generated(entry):
                    horizon = entry.date
            elif kind is data.Balance:
                if not engine.is_generated(entry):
                    horizon = entry.date
            elif kind is data.Close and is_user(entry.account):  # type: ignore[attr-defined]
                closes.append(entry.date)
            written.append(entry)
        self._written = written
        self.horizon = horizon
        self._recorded = recorded
        base = self._base
        if base is None:
            run = engine.run(written, self.config, record=self.record)
            base, self._base_entries = run, run.entries
            self._unrecorded = tuple(entry for entry in run.entries if self._is_pending(entry))
        else:
            # The plugin's own expiries are in the load: none is unrecorded.
            self._base_entries = self.entries
            self._unrecorded = ()
        self._base = base
        # A wallet closed after the horizon: the pass forfeited its credits on
        # the close date without the expiries due before it; days past the
        # horizon then need a pass of their own.
        self._extendable = horizon is None or not any(date > horizon for date in closes)
        self._prepared = True

    def _is_pending(self, entry: data.Directive) -> bool:
        return (
            isinstance(entry, data.Transaction)
            and engine.generated_by(entry) == engine.EXPIRE_PLUGIN_NAME
            and engine.txn_id_of(entry) not in self._recorded
        )

    @property
    def base(self) -> engine.EngineResult:
        """The engine's state at the end of the loaded ledger (through its horizon)."""
        with self._lock, paused_gc():
            self._prepare()
            return self._base

    # -- days

    def at(self, day: datetime.date) -> AsOf:
        """The ledger as of the end of ``day``."""
        with self._lock, paused_gc():
            found = self._days.get(day)
            if found is None:
                self._prepare()
                found = self._compute(day)
                self._days[day] = found
                while len(self._days) > KEEP_DAYS:
                    self._days.popitem(last=False)
            else:
                self._days.move_to_end(day)
            return found

    def _compute(self, day: datetime.date) -> AsOf:
        if self._extendable and (self.horizon is None or day >= self.horizon):
            final = self._final
            if final is not None and day >= final[2]:
                result, booked = final[0], final[1]  # every expiry to come is due by then
            else:
                result, booked = engine.book_through(self._base, day, self.config.breakage)
            pending = [entry for entry in self._unrecorded if entry.date <= day]
            return AsOf(
                day, self.horizon, result, (*pending, *booked), self._base_entries, tuple(booked)
            )
        if self._rewindable and self.horizon is not None and day < self.horizon:
            start = _bisect_after(self.entries, day)
            # Undoing the later entries costs less than a pass over the earlier ones
            # once the day is past the first third of the ledger.
            if len(self.entries) - start < 2 * start:
                rewound = engine.rewind(self._base, self.entries[start:], day, self.config)
                if rewound is not None:
                    return AsOf(day, self.horizon, rewound, (), self.entries)
        end = _bisect_after(self._written, day)
        result = engine.run(self._written[:end], self.config, through=day, record=self.record)
        pending = tuple(entry for entry in result.entries if self._is_pending(entry))
        source = result.entries + next_day_balances(self._written, day, end)
        return AsOf(day, self.horizon, result, pending, source)

    def upcoming(self) -> tuple[tuple[data.Transaction, ...], datetime.date | None]:
        """What the engine books past the horizon that the text does not record yet,
        and the day that is complete through: None when it is every expiry to come;
        with allowances (which go on for ever), a year past the horizon and the last
        directive, as in :meth:`schedule`."""
        with self._lock, paused_gc():
            self._prepare()
            horizon = self.horizon
            if horizon is None:
                return (), None
            book = self._base.allowances
            through: datetime.date | None = None
            if book is not None and book.due:
                last = through = max([horizon, *book.dates()]) + ALLOWANCE_LOOKAHEAD
            else:
                last = max(
                    (
                        grant.expires
                        for grant in self._base.grants.values()
                        if grant.remaining > 0 and grant.expires is not None
                    ),
                    default=horizon,
                )
            view = self.at(max(last, horizon))
            return tuple(entry for entry in view.pending if entry.date > horizon), through

    def schedule(self) -> list[data.Directive]:
        """The loaded entries with every expiry still to come booked (sorted).

        Cut at any day D (:func:`cut_at`), they are the ledger as of D's
        entries: past the horizon nothing but expiries happens.
        """
        with self._lock, paused_gc():
            found = getattr(self, "_schedule", None)
            if found is None:
                self._prepare()
                if self._extendable:
                    book = self._base.allowances
                    if book is None or not book.due:
                        result, booked = engine.book_through(
                            self._base, datetime.date.max, self.config.breakage
                        )
                        last = max((entry.date for entry in booked), default=datetime.date.min)
                        self._final = (result, booked, last)
                    else:
                        # Allowances go on for ever: the schedule holds a year of them
                        # past the horizon (and past the last directive).
                        start = max([self.horizon or datetime.date.min, *book.dates()])
                        result, booked = engine.book_through(
                            self._base, start + ALLOWANCE_LOOKAHEAD, self.config.breakage
                        )
                    found = merge(self._base_entries, booked)
                else:
                    config = dataclasses.replace(self.config, future_expiries=True)
                    found = engine.run(self._written, config, record=False).entries
                self._schedule = found
            return found

    def memo(self, key: str, make: Callable[[], T]) -> T:
        """What ``make`` builds from this load, built once (the first caller builds it)."""
        with self._lock, paused_gc():
            found = self._memo.get(key)
            if found is None:
                found = self._memo[key] = make()
            return found  # type: ignore[no-any-return]
