"""Seals: a hash chain over the closed days of the ledger text, so recorded history cannot
change unseen.

``bean-credits close-day`` writes, with each closed day's expiries and end-of-day
balances, a **seal** for the day::

    2026-03-01 custom "credits-seal" "5d0c…e1"      ; SHA-256, 64 hex digits
      items: "k3Fq1w9Z…"                            ; 8 characters per sealed entry

The digest covers the day's written entries in a canonical form
(:func:`beancount_credits.engine.canonical.canonical`),
the seal's ``items`` and the previous seal's digest. The seal plugin
(:mod:`beancount_credits.plugins.seal`) recomputes the chain at every load: a
changed, added, removed or re-dated entry of a sealed day, and a removed, edited
or reordered seal, fails ``bean-check`` at the first broken seal, naming the day
and what differs. ``items`` holds a short fingerprint of every sealed entry (its
identity, accounts, amounts and terms, hashed apart), so the check can say *what*
differs ("r-000869: amount changed", "u-1008 2026-03-01: recorded balance
removed") without the text it replaced.

The contract (the canonical form, the chain, amendments, period close) is
``docs/seals.md``. This module owns the chain: reading the written seals,
checking them (:func:`check`) and making new ones (:func:`new_seals`,
:func:`opening_seal`); :mod:`beancount_credits.engine.canonical` owns the
canonical form, the digest and the fingerprints, and
:mod:`beancount_credits.engine.broken_seals` says what differs when a seal does
not hold. Pure: entries in, values out; no I/O, no clock.

What a seal of day D covers (its *items*):

- every written transaction dated D (recorded expiries included), as date,
  ``txn_id``, flag, the tags the engine reads (``#expired``, ``#carried``), the
  engine's metadata keys (``ENGINE_KEYS`` of
  :mod:`beancount_credits.engine.canonical`, on the transaction and on each
  posting) and each posting's account and units;
- every written ``balance`` dated D+1 (the end of day D);
- every ``open`` dated D with the keys that identify or limit a wallet or set a
  source's policy (its ``OPEN_KEYS``), and every ``close`` dated D;
- every ``custom "credits-amend"`` record dated D.

The first seal of a ledger covers everything up to its day; every later seal
covers the days after the seal before it (one day: close-day seals every day).
Entries a plugin generated (:func:`beancount_credits.engine.is_generated`) are
never sealed: they follow from the written ones.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import re
from collections.abc import Iterable, Sequence
from typing import Any

from beancount.core import data
from beancount.parser.grammar import ValueType

from beancount_credits import engine
from beancount_credits.engine.broken_seals import Context, Problem, diagnose
from beancount_credits.engine.canonical import (
    AMEND,
    ONE_DAY,
    canonical,
    custom_value,
    digest,
    fingerprints,
)

SEAL = "credits-seal"
GENESIS = "0" * 64  # the "previous digest" of a chain's first seal
#: Metadata of a seal: its fingerprints, and on an opening seal the closed period's last digest.
ITEMS_KEY = "items"
CLOSED_KEY = "closed"

_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


# --- Reading and checking the chain ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Seal:
    """A seal as written: its day, digest, fingerprints and (opening seal) closed-period digest."""

    day: datetime.date
    digest: str
    items: str
    closed: str | None
    entry: data.Custom


def is_record(entry: data.Directive) -> bool:
    """A seal or an amendment record (what a period close archives with its days)."""
    return isinstance(entry, data.Custom) and entry.type in (SEAL, AMEND)


def is_seal(entry: data.Directive) -> bool:
    return isinstance(entry, data.Custom) and entry.type == SEAL and not engine.is_generated(entry)


def read_seals(entries: Iterable[data.Directive]) -> tuple[list[Seal], list[Problem]]:
    """The written seals in day order, and the malformed or duplicate ones as problems."""
    seals: list[Seal] = []
    problems: list[Problem] = []
    by_day: dict[datetime.date, Seal] = {}
    custom = data.Custom
    for entry in entries:
        if type(entry) is not custom or not is_seal(entry):
            continue
        assert isinstance(entry, data.Custom)
        values = [custom_value(value) for value in entry.values]
        value = values[0] if len(values) == 1 else None
        items = entry.meta.get(ITEMS_KEY)
        closed = entry.meta.get(CLOSED_KEY)
        if not isinstance(value, str) or not _DIGEST_RE.fullmatch(value):
            problems.append(
                Problem(entry.date, entry, f"seal of {entry.date}: its digest is not 64 hex digits")
            )
            continue
        if not isinstance(items, str) or (closed is not None and not isinstance(closed, str)):
            problems.append(Problem(entry.date, entry, f"seal of {entry.date}: items: missing"))
            continue
        seal = Seal(entry.date, value, items, closed, entry)
        if entry.date in by_day:
            first = by_day[entry.date].entry.meta
            problems.append(
                Problem(
                    entry.date,
                    entry,
                    f"seal of {entry.date}: a second seal for the day (the first is at "
                    f"{first.get('filename')}:{first.get('lineno')})",
                )
            )
            continue
        by_day[entry.date] = seal
        seals.append(seal)
    seals.sort(key=lambda seal: seal.day)
    return seals, problems


def ranges(seals: Sequence[Seal]) -> list[tuple[datetime.date | None, datetime.date]]:
    """The days each seal covers: (after, through]; the first (or opening) seal from the start."""
    result: list[tuple[datetime.date | None, datetime.date]] = []
    previous: datetime.date | None = None
    for seal in seals:
        result.append((previous, seal.day))
        previous = seal.day
    return result


def lines_in(
    days: dict[datetime.date, list[str]],
    sorted_days: list[datetime.date],
    after: datetime.date | None,
    through: datetime.date,
) -> list[str]:
    """The lines of the days in (after, through]."""
    start = 0 if after is None else bisect.bisect_right(sorted_days, after)
    stop = bisect.bisect_right(sorted_days, through)
    if stop - start == 1:
        return days[sorted_days[start]]
    result: list[str] = []
    for day in sorted_days[start:stop]:
        result.extend(days[day])
    return result


@dataclasses.dataclass
class ChainState:
    """What a check found: the seals in day order and the problems, first broken day first."""

    seals: list[Seal]
    problems: list[Problem]

    @property
    def last(self) -> Seal | None:
        return self.seals[-1] if self.seals else None

    @property
    def broken(self) -> bool:
        return bool(self.problems)


def check(entries: Sequence[data.Directive]) -> ChainState:
    """Recompute the chain over the entries: every seal that does not hold, first broken first.

    Each seal is checked against the digest written in the seal before it, so a
    changed entry breaks the seal of its own day (and a re-dated one both days),
    a rewritten seal breaks itself or the next, and a removed seal breaks the
    day it sealed. Costs one pass over the entries and one SHA-256 per seal;
    what differs is worked out only for a seal that does not hold.
    """
    seals, problems = read_seals(entries)
    if not seals:
        return ChainState(seals, problems)
    days = canonical(entries)
    sorted_days = sorted(days)
    previous = GENESIS
    context: Context | None = None
    rewritten = False  # the seal before did not match its entries although they were unchanged
    for index, (seal, (after, through)) in enumerate(zip(seals, ranges(seals), strict=True)):
        if seal.closed is not None:
            if index:
                problems.append(
                    Problem(
                        seal.day,
                        seal.entry,
                        f"seal of {seal.day}: an opening seal (closed:) after the seals of "
                        "earlier days; it must be the first",
                    )
                )
            previous = seal.closed
        gap = after is not None and through - after > ONE_DAY
        if gap:
            assert after is not None
            missing = after + ONE_DAY
            problems.append(
                Problem(
                    missing,
                    seal.entry,
                    f"sealed history changed on {missing}: the seal of {missing} was removed "
                    f"(the seals go from {after} to {through})",
                )
            )
        lines = lines_in(days, sorted_days, after, through)
        if digest(seal.day, previous, seal.items, lines) != seal.digest:
            context = context or Context(entries, seals, days)
            problem = diagnose(seal, lines, context, after_rewritten=rewritten)
            if gap:
                problem.content_changed = False  # it covers the removed seal's day as well
            rewritten = problem.rewritten
            problems.append(problem)
        else:
            rewritten = False
        # The next seal chains from this one's digest as written (an opening seal: from the
        # closed period's, so the archive and the new period keep their seals unchanged).
        previous = seal.closed if seal.closed is not None else seal.digest
    problems.sort(key=lambda problem: problem.day)
    return ChainState(seals, problems)


# --- Writing seals -----------------------------------------------------------------------------


def seal_entry(
    day: datetime.date, previous: str, lines: Sequence[str], closed: str | None = None
) -> data.Custom:
    """The seal of a day over ``lines`` (the day's canonical lines), chained to ``previous``."""
    items = fingerprints(lines)
    value = digest(day, previous, items, lines)
    meta: dict[str, Any] = data.new_metadata("<credits-seal>", 0)
    if closed is not None:
        meta[CLOSED_KEY] = closed
    meta[ITEMS_KEY] = items
    return data.Custom(meta, day, SEAL, [ValueType(value, str)])


def seal_days(
    days: dict[datetime.date, list[str]],
    start: datetime.date,
    through: datetime.date,
    previous: str,
    from_beginning: bool,
) -> list[data.Custom]:
    """Seals for every day from ``start`` through ``through``, chained from ``previous``.

    ``from_beginning``: the first of them is the ledger's first seal and covers
    every day up to ``start``.
    """
    sorted_days = sorted(days)
    seals = []
    day = start
    after = None if from_beginning else start - ONE_DAY
    while day <= through:
        lines = lines_in(days, sorted_days, after, day) if sorted_days else []
        seal = seal_entry(day, previous, lines)
        seals.append(seal)
        previous = custom_value(seal.values[0])
        after = day
        day += ONE_DAY
    return seals


def first_day(days: dict[datetime.date, list[str]]) -> datetime.date | None:
    return min(days) if days else None


def sealed_through(entries: Iterable[data.Directive]) -> Seal | None:
    """The last written seal (the day the chain reaches), or None for an unsealed ledger."""
    seals, _problems = read_seals(entries)
    return seals[-1] if seals else None


def next_previous(seal: Seal) -> str:
    """The digest the seal after ``seal`` chains from (an opening seal: the closed period's)."""
    return seal.closed if seal.closed is not None else seal.digest


def new_seals(
    entries: Sequence[data.Directive],
    records: Sequence[data.Directive],
    through: datetime.date,
) -> list[data.Custom]:
    """The seals close-day writes: every day after the last seal through ``through``.

    ``entries`` are the loaded ledger (its written entries are sealed),
    ``records`` the entries close-day writes with the seals (sealed as written).
    A ledger's first seal covers every day up to the first day with entries.
    """
    last = sealed_through(entries)
    days = canonical(entries)
    for day, lines in canonical(records, lambda _entry: True).items():
        days.setdefault(day, []).extend(lines)
    if last is None:
        start = first_day(days)
        if start is None or start > through:
            return []
        return seal_days(days, start, through, GENESIS, from_beginning=True)
    if last.day >= through:
        return []
    return seal_days(days, last.day + ONE_DAY, through, next_previous(last), from_beginning=False)


def opening_seal(
    kept: Sequence[data.Directive],
    written: Sequence[data.Directive],
    through: datetime.date,
    closed: str,
) -> data.Custom:
    """The seal a period close writes in the opening file, dated the last closed day.

    It covers what the active ledger holds up to ``through`` after the close:
    the ``kept`` entries (loaded; their written ones) and the ``written`` ones
    the close adds (carried grants, opening balances). Its ``closed:`` is the
    closed period's last digest (the seal of ``through``), which the new
    period's next seal chains from, as it did before the close: the archive's
    seals and the new period's stay as they were.
    """
    days = canonical(kept)
    for day, lines in canonical(written, lambda _entry: True).items():
        days.setdefault(day, []).extend(lines)
    lines = [line for day, day_lines in days.items() if day <= through for line in day_lines]
    return seal_entry(through, closed, lines, closed=closed)


def seal_of(entries: Iterable[data.Directive], day: datetime.date) -> Seal | None:
    """The written seal of a day."""
    seals, _problems = read_seals(entries)
    return next((item for item in seals if item.day == day), None)
