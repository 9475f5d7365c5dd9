"""The grant engine's pass kept open: a warm state that takes new entries as they come.

:func:`beancount_credits.engine.run` is one pass over every written entry.
:class:`LivePass` is the same pass, stopped before its end and kept: new
entries that sort after everything the pass acted on extend it (the loop of
``run`` goes on from where it was); an earlier one (a back-dated event, or one
that sorts before an entry of its day in another file) makes it start again
over the entries it holds, in memory (no file is read). Pure: entries in,
state and errors out; the service (:mod:`beancount_credits.service.state`)
owns the files.

What the pass stands for is ``engine.run(entries)`` cut before its final
flush: :meth:`LivePass.result` finishes it without changing it (the flush is
:func:`engine.book_through`), so for any day on or after :attr:`LivePass.last`
the result equals :func:`beancount_credits.engine.asof.run_through` over the
same entries (``tests/test_live.py`` holds it to that on generated event
streams). :func:`wallet_at` and :func:`open_grants_at` answer one wallet at
such a day without copying the others.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
from collections.abc import Iterable, Sequence
from decimal import Decimal

from beancount.core import data

from beancount_credits.engine import allowances, expiries
from beancount_credits.engine.booking import Pass, scan
from beancount_credits.engine.config import CreditsConfig
from beancount_credits.engine.metadata import is_generated
from beancount_credits.engine.model import (
    CARRIED_TAG,
    EXPIRED_TAG,
    ZERO,
    CreditsError,
    EngineResult,
    Grant,
    Wallet,
    consumption_order,
)

SortKey = tuple[datetime.date, int, int]


def sort_key(entry: data.Directive) -> SortKey:
    """Beancount's order of entries (date, kind, line); ties keep the load's order."""
    return data.entry_sortkey(entry)  # type: ignore[no-any-return]


def _acts(entry: data.Directive) -> bool:
    """Whether the pass's state depends on where this entry sorts (not only on its date)."""
    if isinstance(entry, data.Transaction):
        # A recorded expiry is applied when its grant comes due, not where it sorts.
        return not (entry.meta and "grant" in entry.meta and EXPIRED_TAG in entry.tags)
    return isinstance(entry, data.Open | data.Close)


class LivePass:
    """The pass over ``entries`` (written entries, date-sorted), kept open for more.

    ``restarts`` counts the passes started again from the first entry (a
    back-dated entry, a removal).
    """

    def __init__(self, entries: Iterable[data.Directive], config: CreditsConfig) -> None:
        # As the ledger as of a day computes it: no annotations, expiries through the day only.
        self.config = dataclasses.replace(config, annotate=False, future_expiries=False)
        self.entries: list[data.Directive] = sorted(entries, key=sort_key)
        self.restarts = 0
        self._start()

    # -- the loop of engine.run, one entry at a time

    def _start(self) -> None:
        found = scan(self.entries)
        # Every draw-down kept (keep=None): a reversal posted later may name any of them.
        self.state = Pass(self.config, found.recorded, None)
        self.state.errors.extend(found.errors)
        if found.allowances:  # as engine.run builds them
            self.state.allowances, errors = allowances.build(
                found.allowances, found.wallets, self.config, found.allowance_grants, found.opened
            )
            self.state.errors.extend(errors)
        self.horizon = found.horizon
        self.current: datetime.date | None = None  # date of the last entry stepped over
        self.flushed: datetime.date | None = None  # expiries booked through this day
        self.last_key: SortKey | None = None  # the last entry the state depends on the place of
        self.late_close = False  # a wallet closed after the horizon (asof: no extension)
        self.booked: list[data.Transaction] = []  # the expiries the pass booked so far
        for entry in self.entries:
            self._step(entry)

    def _step(self, entry: data.Directive) -> None:
        state = self.state
        if entry.date != self.current:
            self.current = entry.date
            if self.horizon is not None:
                through = min(entry.date, self.horizon)
                expiries.flush(state, through)
                if self.flushed is None or through > self.flushed:
                    self.flushed = through
        book = state.allowances
        if (
            book is not None
            and book.due
            and book.due[0][0] <= entry.date
            and isinstance(entry, data.Transaction | data.Close)
            and self.horizon is not None
        ):
            # As engine.run: a period's allowance after its day's opens, before
            # anything spends; a period close's carried grants before it.
            day = entry.date
            if isinstance(entry, data.Transaction) and CARRIED_TAG in entry.tags:
                day -= datetime.timedelta(days=1)
            allowances.flush(state, min(day, self.horizon))
        if isinstance(entry, data.Transaction):
            if _acts(entry):
                state.transaction(entry)
                self.last_key = sort_key(entry)
        elif isinstance(entry, data.Open):
            state.open(entry)
            self.last_key = sort_key(entry)
        elif isinstance(entry, data.Close):
            state.close(entry)
            self.last_key = sort_key(entry)
            if (
                self.horizon is not None
                and entry.date > self.horizon
                and state.is_user(entry.account)
            ):
                self.late_close = True
        # Of the output only the expiries are kept (the entries are self.entries).
        if state.out:
            self.booked += state.out
            state.out.clear()
        if state.after:
            self.booked += state.after
            state.after.clear()

    # -- new entries

    @property
    def last(self) -> datetime.date | None:
        """The last day the state holds an entry of: results answer for it and later days."""
        if self.last_key is None:
            return self.flushed
        if self.flushed is None:
            return self.last_key[0]
        return max(self.last_key[0], self.flushed)

    def extends(self, new: Sequence[data.Directive]) -> bool:
        """Whether ``new`` (written entries) goes on from the state, or needs a new pass."""
        if not new:
            return True
        first = min(new, key=sort_key)
        if self.late_close:
            return False
        if self.last_key is not None and sort_key(first) <= self.last_key:
            return False
        return self.flushed is None or first.date >= self.flushed

    def add(self, new: Sequence[data.Directive]) -> list[CreditsError]:
        """Book ``new`` entries; returns the errors they cause (the state keeps them booked)."""
        before = _error_keys(self.state.errors)
        new = sorted(new, key=sort_key)
        extend = self.extends(new)
        for entry in new:
            bisect.insort_right(self.entries, entry, key=sort_key)
        if extend:
            for entry in new:
                if (
                    isinstance(entry, data.Transaction | data.Balance)
                    and not is_generated(entry)
                    and (self.horizon is None or entry.date > self.horizon)
                ):
                    self.horizon = entry.date
                self._step(entry)
        else:
            self.restarts += 1
            self._start()
        return [error for error in self.state.errors if _error_key(error) not in before]

    def remove(self, gone: Sequence[data.Directive]) -> None:
        """Take entries out again (a refused batch) and book the rest from the start."""
        ids = {id(entry) for entry in gone}
        self.entries = [entry for entry in self.entries if id(entry) not in ids]
        self.restarts += 1
        self._start()

    # -- reading

    def result(self, day: datetime.date | None = None) -> EngineResult:
        """The state booked through ``day`` (default: its horizon), as ``engine.run`` returns it.

        Not changed by the call: the expiries due by then are booked on copies.
        """
        return self.finish(day)[0]

    def finish(
        self, day: datetime.date | None = None
    ) -> tuple[EngineResult, list[data.Transaction]]:
        """:meth:`result`, and the expiry transactions booked to finish it (not in ``booked``)."""
        partial = self.state.result([], list(self.state.errors))
        through = day
        if through is None:
            through = self.horizon if self.horizon is not None else self.last
        if through is None:
            return partial, []
        if self.last is not None and through < self.last:
            raise ValueError(f"the live state answers for {self.last} and later, not {through}")
        return expiries.book_through(partial, through, self.config.breakage)

    def allowance_due(self, day: datetime.date) -> bool:
        """Whether an allowance period begins by ``day`` that the state has not granted:
        then :func:`wallet_at` and :func:`open_grants_at` do not answer for ``day``."""
        book = self.state.allowances
        return book is not None and bool(book.due) and book.due[0][0] <= day

    def wallet(self, account: str, currency: str) -> Wallet | None:
        return self.state.wallets.get((account, currency))

    def wallets_of(self, account: str) -> list[Wallet]:
        """The account's wallets (one per credit type), from an index made again when
        the pass opened a wallet (wallets are only ever added)."""
        wallets = self.state.wallets
        index = getattr(self, "_by_account", None)
        if index is None or index[0] is not wallets or index[1] != len(wallets):
            by_account: dict[str, list[Wallet]] = {}
            for (name, _currency), wallet in wallets.items():
                by_account.setdefault(name, []).append(wallet)
            index = self._by_account = (wallets, len(wallets), by_account)
        return list(index[2].get(account, ()))


def _error_key(error: CreditsError) -> tuple[object, object, str]:
    source = error.source or {}
    return (source.get("filename"), source.get("lineno"), error.message)


def _error_keys(errors: Iterable[CreditsError]) -> set[tuple[object, object, str]]:
    return {_error_key(error) for error in errors}


def _due_by(grant: Grant, day: datetime.date) -> bool:
    return grant.remaining > 0 and grant.expires is not None and grant.expires <= day


def wallet_at(wallet: Wallet, day: datetime.date) -> tuple[Decimal, Decimal]:
    """(balance, credits available) of a wallet of a pass at ``day``, on or after its last day.

    What :func:`engine.book_through` would leave it with, read without copying:
    the expiries due by then taken off.
    """
    expiring = sum(
        (grant.remaining for _key, _seq, grant in wallet.heap if _due_by(grant, day)), ZERO
    )
    available = wallet.available - expiring
    return available - wallet.debt, available


def open_grants_at(wallet: Wallet, day: datetime.date) -> list[Grant]:
    """The wallet's grants with credits left at ``day`` (on or after the pass's last day)."""
    return sorted(
        (
            grant
            for _key, _seq, grant in wallet.heap
            if grant.remaining > 0 and not _due_by(grant, day)
        ),
        key=consumption_order,
    )
