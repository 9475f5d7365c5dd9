"""Seals: a hash chain over the closed days of the ledger text, so recorded history cannot
change unseen.

``bean-credits close-day`` writes, with each closed day's expiries and end-of-day
balances, a **seal** for the day::

    2026-03-01 custom "credits-seal" "5d0c…e1"      ; SHA-256, 64 hex digits
      items: "k3Fq1w9Z…"                            ; 8 characters per sealed entry

The digest covers the day's written entries in a canonical form (:func:`canonical`),
the seal's ``items`` and the previous seal's digest. The seal plugin
(:mod:`beancount_credits.plugins.seal`) recomputes the chain at every load: a
changed, added, removed or re-dated entry of a sealed day, and a removed, edited
or reordered seal, fails ``bean-check`` at the first broken seal, naming the day
and what differs. ``items`` holds a short fingerprint of every sealed entry (its
identity, accounts, amounts and terms, hashed apart), so the check can say *what*
differs ("r-000869: amount changed", "u-1008 2026-03-01: recorded balance
removed") without the text it replaced.

The contract (the canonical form, the chain, amendments, period close) is
``docs/seals.md``; this module is its one implementation. Pure: entries in,
values out; no I/O, no clock.

What a seal of day D covers (its *items*):

- every written transaction dated D (recorded expiries included), as date,
  ``txn_id``, flag, the tags the engine reads (``#expired``, ``#carried``), the
  engine's metadata keys (:data:`ENGINE_KEYS`, on the transaction and on each
  posting) and each posting's account and units;
- every written ``balance`` dated D+1 (the end of day D);
- every ``open`` dated D with the keys that identify or limit a wallet or set a
  source's policy (:data:`OPEN_KEYS`), and every ``close`` dated D;
- every ``custom "credits-amend"`` record dated D.

The first seal of a ledger covers everything up to its day; every later seal
covers the days after the seal before it (one day: close-day seals every day).
Entries a plugin generated (:func:`beancount_credits.engine.is_generated`) are
never sealed: they follow from the written ones.
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import datetime
import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from beancount.core import amount as amount_lib
from beancount.core import data
from beancount.parser.grammar import ValueType

from beancount_credits import engine

SEAL = "credits-seal"
AMEND = "credits-amend"
VERSION = "credits-seal/1"
GENESIS = "0" * 64  # the "previous digest" of a chain's first seal
ONE_DAY = datetime.timedelta(days=1)

#: Metadata that changes what the grant engine books, on a transaction or a posting.
ENGINE_KEYS = (
    "expires",
    "priority",
    "unit_cost",
    "reverses",
    "grant",
    "granted",
    "grant_txn",
    "source",
    "granted_amount",
)
#: Metadata of an ``open`` that is sealed: whose wallet it is, its limit, a source's policy.
OPEN_KEYS = ("user_id", "credit_limit", "expire_after", "priority", "unit_cost")
#: Tags the grant engine reads.
ENGINE_TAGS = (engine.CARRIED_TAG, engine.EXPIRED_TAG)
#: Metadata of a seal: its fingerprints, and on an opening seal the closed period's last digest.
ITEMS_KEY = "items"
CLOSED_KEY = "closed"
#: Metadata of an amendment record that is sealed (with its date and the day it amends).
AMEND_KEYS = ("through", "old", "new", "reason", "approved_by", "changed")

FINGERPRINT_BYTES = 6  # 3 identity, 1 accounts, 1 amounts, 1 terms
FINGERPRINT_CHARS = 8  # base64url of 6 bytes, no padding

_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
_ENGINE_KEY_SET = frozenset(ENGINE_KEYS)
_OPEN_KEY_SET = frozenset(OPEN_KEYS)
_TAG_SET = frozenset(ENGINE_TAGS)


# --- The canonical form ---------------------------------------------------------------------


def escape(text: str) -> str:
    """A string as the canonical form writes it: backslash, tab and newline escaped."""
    if "\\" in text or "\t" in text or "\n" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return text


def number(value: Decimal) -> str:
    """A number in plain decimal notation, as written (``-50``, ``10.50``), never an exponent."""
    text = str(value)
    return format(value, "f") if "E" in text else text


def value_text(value: Any) -> str:
    """A metadata value in the canonical form."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, Decimal):
        return number(value)
    if isinstance(value, amount_lib.Amount):
        return f"{number(value.number)} {value.currency}"  # type: ignore[arg-type]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return escape(str(value))


def _meta_items(meta: dict[str, Any], keys: Sequence[str]) -> list[str]:
    return [f"{key}={value_text(meta[key])}" for key in keys if key in meta]


def _meta_fields(meta: dict[str, Any], keys: Sequence[str]) -> str:
    return "".join("\t" + item for item in _meta_items(meta, keys))


def canonical(
    entries: Iterable[data.Directive],
    sealed: Callable[[data.Directive], bool] | None = None,
) -> dict[datetime.date, list[str]]:
    """The canonical line of every sealed entry, by the day it belongs to (unsorted).

    One pass, the check's whole cost: a line per transaction, balance, open,
    close and amendment record that ``sealed`` accepts (default: every entry
    not generated by a plugin). A balance dated D+1 belongs to day D.

    Lines (fields separated by a tab; strings escaped by :func:`escape`)::

        txn  DATE TXN_ID FLAG TAGS [KEY=VALUE...] {posting ACCOUNT NUMBER CURRENCY [KEY=VALUE...]}
        balance  DATE ACCOUNT NUMBER CURRENCY
        open  DATE ACCOUNT [KEY=VALUE...]
        close  DATE ACCOUNT
        amend  DATE VALUES [KEY=VALUE...]

    TAGS is the engine's tags present, sorted, joined by commas; KEY=VALUE the
    keys of :data:`ENGINE_KEYS` (transactions, postings) or :data:`OPEN_KEYS`
    (opens) present, in that order. A transaction's postings are sorted by their
    text (Beancount's booking regroups the postings of several commodities, so
    the order written is not the order loaded).
    """
    skip: Callable[[data.Directive], bool]
    if sealed is None:
        skip = engine.is_generated
    else:

        def skip(entry: data.Directive) -> bool:
            return not sealed(entry)

    days: dict[datetime.date, list[str]] = {}
    # date -> (ISO text, the lines of its day, the lines of the day before): a balance
    # dated D+1 is the end of day D.
    dates: dict[datetime.date, tuple[str, list[str], list[str]]] = {}

    def known_date(date: datetime.date) -> tuple[str, list[str], list[str]]:
        known = dates[date] = (
            date.isoformat(),
            days.setdefault(date, []),
            days.setdefault(date - ONE_DAY, []),
        )
        return known

    transaction, balance = data.Transaction, data.Balance
    engine_keys, tags_wanted = _ENGINE_KEY_SET, _TAG_SET
    for entry in entries:
        kind = type(entry)
        if kind is transaction:
            if skip(entry):
                continue
            known = dates.get(entry.date) or known_date(entry.date)
            meta = entry.meta
            txn_id = meta.get("txn_id")
            if txn_id.__class__ is not str:
                txn_id = "" if txn_id is None else str(txn_id)
            if "\\" in txn_id or "\t" in txn_id or "\n" in txn_id:
                txn_id = escape(txn_id)
            tags = entry.tags
            tag_text = ",".join(sorted(tags_wanted & tags)) if tags else ""
            head = f"txn\t{known[0]}\t{txn_id}\t{entry.flag}\t{tag_text}"
            if not engine_keys.isdisjoint(meta):
                head += _meta_fields(meta, ENGINE_KEYS)
            postings = entry.postings
            line = ""
            if len(postings) == 2:
                # Most transactions: two f-strings, the same text as the general case.
                first, second = postings
                one, two = first.units, second.units
                meta_one, meta_two = first.meta, second.meta
                if (
                    one is not None
                    and two is not None
                    and one.number is not None
                    and two.number is not None
                    and not (meta_one and not engine_keys.isdisjoint(meta_one))
                    and not (meta_two and not engine_keys.isdisjoint(meta_two))
                ):
                    a = f"posting\t{first.account}\t{one.number!s}\t{one.currency}"
                    b = f"posting\t{second.account}\t{two.number!s}\t{two.currency}"
                    # An exponent (or a look-alike in an account name): the general case.
                    if not ("E-" in a or "E+" in a or "E-" in b or "E+" in b):
                        line = f"{head}\t{a}\t{b}" if a <= b else f"{head}\t{b}\t{a}"
            if not line:
                line = "\t".join([head, *sorted(_posting_text(posting) for posting in postings)])
            known[1].append(line)
            continue
        elif kind is balance:
            if skip(entry):
                continue
            known = dates.get(entry.date) or known_date(entry.date)
            units = entry.amount
            text = str(units.number)
            if "E" in text:
                text = format(units.number, "f")
            known[2].append(f"balance\t{known[0]}\t{entry.account}\t{text}\t{units.currency}")
            continue
        elif kind is data.Open:
            if skip(entry):
                continue
            day = entry.date
            line = f"open\t{day.isoformat()}\t{entry.account}"
            if entry.meta and not _OPEN_KEY_SET.isdisjoint(entry.meta):
                line += _meta_fields(entry.meta, OPEN_KEYS)
        elif kind is data.Close:
            if skip(entry):
                continue
            day = entry.date
            line = f"close\t{day.isoformat()}\t{entry.account}"
        elif kind is data.Custom and entry.type == AMEND:
            if skip(entry):
                continue
            day = entry.date
            values = "\t".join(value_text(custom_value(value)) for value in entry.values)
            line = f"amend\t{day.isoformat()}\t{values}"
            line += _meta_fields(entry.meta, AMEND_KEYS)
        else:
            continue
        days.setdefault(day, []).append(line)
    return {day: lines for day, lines in days.items() if lines}


def _posting_text(posting: data.Posting) -> str:
    """A posting in the canonical form: ``posting ACCOUNT NUMBER CURRENCY [KEY=VALUE...]``."""
    units = posting.units
    if units is None or units.number is None:
        fields = ["posting", posting.account, "", ""]
    else:
        fields = ["posting", posting.account, number(units.number), units.currency]
    if posting.meta and not _ENGINE_KEY_SET.isdisjoint(posting.meta):
        fields += _meta_items(posting.meta, ENGINE_KEYS)
    return "\t".join(fields)


def custom_value(value: Any) -> Any:
    """A custom directive's value without Beancount's type tag."""
    return value.value if isinstance(value, ValueType) else value


def digest(day: datetime.date, previous: str, items: str, lines: Sequence[str]) -> str:
    """The seal's SHA-256: version, day, previous digest, ``items``, then the sorted lines.

    The input is UTF-8 text: ``credits-seal/1 TAB DAY TAB PREVIOUS LF ITEMS LF``
    followed by each canonical line and a LF, the lines in code-point order.
    """
    head = f"{VERSION}\t{day.isoformat()}\t{previous}\n{items}\n"
    body = "\n".join(sorted(lines)) + "\n" if lines else ""
    return hashlib.sha256((head + body).encode("utf-8")).hexdigest()


# --- Fingerprints: what lets the check say what differs ------------------------------------


@dataclasses.dataclass(frozen=True)
class Item:
    """A canonical line taken apart: identity, accounts, amounts and the rest (terms)."""

    kind: str  # txn, balance, open, close, amend
    date: str
    key: str  # txn_id; account and currency of a balance; account of an open or close
    accounts: tuple[str, ...]
    amounts: tuple[str, ...]
    terms: tuple[str, ...]
    line: str

    @property
    def identity(self) -> str:
        return f"{self.kind}\t{self.key}"

    def fingerprint(self) -> bytes:
        return (
            _hash(self.identity, 3)
            + _hash("\t".join(self.accounts), 1)
            + _hash("\t".join(self.amounts), 1)
            + _hash("\t".join(self.terms), 1)
        )


def _hash(text: str, size: int) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:size]


def parse_line(line: str) -> Item:
    """A canonical line's parts (the inverse of :func:`canonical` for one line)."""
    fields = line.split("\t")
    kind, date = fields[0], fields[1]
    if kind == "txn":
        key = fields[2]
        accounts: list[str] = []
        amounts: list[str] = []
        terms = [date, fields[3], fields[4]]
        index = 5
        while index < len(fields):
            field = fields[index]
            if field == "posting":
                accounts.append(fields[index + 1])
                amounts.append(f"{fields[index + 2]} {fields[index + 3]}")
                terms.append("|")  # posting metadata stays with its posting
                index += 4
            else:
                terms.append(field)
                index += 1
        return Item(kind, date, key, tuple(accounts), tuple(amounts), tuple(terms), line)
    if kind == "balance":
        account, amount_text = fields[2], f"{fields[3]} {fields[4]}"
        return Item(kind, date, f"{account}\t{fields[4]}", (account,), (amount_text,), (), line)
    if kind in ("open", "close"):
        return Item(kind, date, fields[2], (fields[2],), (), (date, *fields[3:]), line)
    return Item(kind, date, "\t".join(fields[2:3]), (), (), tuple(fields[1:]), line)


def fingerprints(lines: Iterable[str]) -> str:
    """The ``items`` of a seal: every line's fingerprint, in the lines' sorted order."""
    raw = b"".join(parse_line(line).fingerprint() for line in sorted(lines))
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_items(items: str) -> list[bytes] | None:
    """The fingerprints a seal's ``items`` holds, or None when they are not well formed."""
    if len(items) % FINGERPRINT_CHARS:
        return None
    try:
        raw = base64.urlsafe_b64decode(items.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    return [raw[i : i + FINGERPRINT_BYTES] for i in range(0, len(raw), FINGERPRINT_BYTES)]


# --- Reading and checking the chain ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Seal:
    """A seal as written: its day, digest, fingerprints and (opening seal) closed-period digest."""

    day: datetime.date
    digest: str
    items: str
    closed: str | None
    entry: data.Custom


@dataclasses.dataclass
class Problem:
    """A seal that does not hold: where it is, the day it names, and what differs."""

    day: datetime.date
    entry: data.Directive  # the seal the error points at
    message: str
    content_changed: bool = True  # False: only the chain after an earlier break differs
    rewritten: bool = False  # the entries are as sealed: the seal (or the one before) was edited


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
        if not isinstance(value, str) or not _DIGEST_RE.match(value):
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


# --- Saying what differs -----------------------------------------------------------------------


class Context:
    """What a diagnosis looks up, built once on the first broken seal (never on a clean load)."""

    def __init__(
        self,
        entries: Sequence[data.Directive],
        seals: Sequence[Seal],
        days: dict[datetime.date, list[str]],
    ):
        self.users: dict[str, str] = {}
        for entry in entries:
            if isinstance(entry, data.Open) and entry.meta and "user_id" in entry.meta:
                self.users[entry.account] = str(entry.meta["user_id"])
        # Every current line by identity fingerprint: a sealed entry that is gone from
        # its day may be on another one.
        self.current: dict[bytes, list[Item]] = defaultdict(list)
        for lines in days.values():
            for line in lines:
                item = parse_line(line)
                self.current[_hash(item.identity, 3)].append(item)
        # What the plugins generated: a removed record is generated again.
        self.generated: dict[bytes, Item] = {}
        for lines in canonical(entries, engine.is_generated).values():
            for line in lines:
                item = parse_line(line)
                self.generated.setdefault(_hash(item.identity, 3), item)
        self.sealed_on: dict[bytes, datetime.date] = {}
        for seal in seals:
            for fingerprint in decode_items(seal.items) or ():
                self.sealed_on.setdefault(fingerprint[:3], seal.day)

    def who(self, account: str) -> str:
        return self.users.get(account, account)

    def say(self, item: Item, what: str) -> str:
        """A message about an entry: ``r-000869: amount changed``, ``u-1008 2026-03-01: ...``."""
        if item.kind == "txn":
            return f"{item.key or 'a transaction without txn_id'}: {what}"
        if item.kind == "balance":
            return f"{self.who(item.accounts[0])} {item.date}: recorded balance {what}"
        if item.kind in ("open", "close"):
            return f"{item.kind} {item.key}: {what}"
        return f"amendment record of {item.date}: {what}"


def diagnose(seal: Seal, lines: Sequence[str], context: Context, after_rewritten: bool) -> Problem:
    """A broken seal's problem: what differs between the sealed entries and the current ones."""
    stored = decode_items(seal.items)
    where = f"sealed history changed on {seal.day}"
    if stored is None:
        return Problem(seal.day, seal.entry, f"{where}: the seal's items were edited")
    items = [parse_line(line) for line in sorted(lines)]
    prints = [item.fingerprint() for item in items]
    if prints == stored:
        if after_rewritten:
            return Problem(
                seal.day,
                seal.entry,
                f"seal of {seal.day} no longer chains: the seal before it was rewritten",
                content_changed=False,
                rewritten=True,
            )
        return Problem(
            seal.day,
            seal.entry,
            f"{where}: the seal does not match its entries, which are unchanged: this seal "
            "or the one before it was rewritten",
            rewritten=True,
        )
    differences = differences_of(stored, items, prints, seal, context)
    shown = "; ".join(differences[:6])
    more = f"; and {len(differences) - 6} more" if len(differences) > 6 else ""
    return Problem(seal.day, seal.entry, f"{where}: {shown}{more}")


def differences_of(
    stored: list[bytes],
    items: list[Item],
    prints: list[bytes],
    seal: Seal,
    context: Context,
) -> list[str]:
    """Messages for the entries added, changed and removed since the seal was made."""
    unmatched = list(stored)
    for fingerprint in prints:
        if fingerprint in unmatched:
            unmatched.remove(fingerprint)
    by_identity: dict[bytes, list[bytes]] = defaultdict(list)
    for fingerprint in unmatched:
        by_identity[fingerprint[:3]].append(fingerprint)
    exact = [fingerprint for fingerprint in stored if fingerprint not in unmatched]
    messages: list[str] = []
    for item, fingerprint in zip(items, prints, strict=True):
        if fingerprint in exact:
            exact.remove(fingerprint)
            continue
        olds = by_identity.get(fingerprint[:3])
        if olds:
            messages.append(changed(item, olds.pop(0), fingerprint, context))
            continue
        sealed_on = context.sealed_on.get(fingerprint[:3])
        if item.kind == "txn" and sealed_on is not None and sealed_on != seal.day:
            what = f"re-dated (sealed on {sealed_on}, now {item.date})"
        else:
            what = f"added ({item.date})" if item.kind == "txn" else "added"
        messages.append(context.say(item, what))
    for key, olds in by_identity.items():
        for _old in olds:
            messages.append(removed(key, seal, context))
    return messages


def changed(item: Item, old: bytes, new: bytes, context: Context) -> str:
    what = []
    if old[3] != new[3]:
        accounts = ", ".join(context.who(account) for account in item.accounts)
        what.append(f"accounts changed (now {accounts})")
    if old[4] != new[4]:
        if item.kind == "balance":
            what.append(f"changed (now {item.amounts[0]})")
        else:
            wallets = [
                amount
                for account, amount in zip(item.accounts, item.amounts, strict=True)
                if account in context.users
            ]
            what.append(f"amount changed (now {', '.join(wallets or item.amounts)})")
    if old[5] != new[5]:
        what.append("date, flag or terms (expires, priority, unit_cost, ...) changed")
    return context.say(item, " and ".join(what) or "changed")


def removed(key: bytes, seal: Seal, context: Context) -> str:
    """Name a sealed entry that is gone: regenerated by a plugin, moved, or unknown."""
    regenerated = context.generated.get(key)
    if regenerated is not None:
        if regenerated.kind == "balance":
            return context.say(regenerated, "removed")
        return f"{regenerated.key}: recorded expiry removed"
    for item in context.current.get(key, ()):
        if item.kind == "txn" and item.date != seal.day.isoformat():
            return context.say(item, f"re-dated to {item.date}")
    return f"an entry sealed on {seal.day} was removed"


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
