"""The platform's event exports: reading CSV and JSON Lines rows into typed events.

One event per row. Every event has ``type``, ``id`` (it becomes the entry's
``txn_id``) and ``timestamp`` (ISO 8601; UTC unless it carries an offset; its
ledger date is the UTC day, or the day in the configured time zone). The other
fields depend on the type; :data:`FIELDS` is the table docs/importing.md documents.

Reading is pure and total: :func:`read_rows` never raises on bad content, and
:func:`parse_event` returns an event or the list of everything wrong with the
row (field and reason), so a batch can list every bad row at once.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import functools
import io
import json
import re
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from beancount.core import amount as amount_lib

from beancount_credits.engine.accounts import UserIdError, user_component
from beancount_credits.ledger.render import COMMODITY, is_commodity
from beancount_credits.ledger.text import split_lines

EVENT_TYPES = (
    "user",
    "purchase",
    "promotion",
    "referral",
    "loyalty",
    "topup",
    "redeem",
    "adjust",
    "reverse",
    "expiry_change",
)
GRANT_TYPES = ("purchase", "promotion", "referral", "loyalty", "topup")
#: The source each grant type books from (``Income:Credits:<Source>``; a top-up's own
#: ``source`` field wins).
SOURCES = {
    "purchase": "Purchase",
    "promotion": "Promotion",
    "referral": "Referral",
    "loyalty": "Loyalty",
    "topup": "TopUp",
}
REDEEM_STATUSES = ("pending", "settled", "cancelled")
TOPUP_STATUSES = ("succeeded", "failed")

COMMON = ("type", "id", "timestamp", "user", "commodity", "description")
GRANT_EXTRA = ("expires", "priority", "unit_cost")
# Fields per type besides COMMON: (required, optional). ``user`` is required
# except for reverse and expiry_change, which name the entry they act on.
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "user": ((), ("segment", "email", "credit_limit")),
    "purchase": (("amount",), ("price", "order", *GRANT_EXTRA)),
    "promotion": (("amount",), ("campaign", *GRANT_EXTRA)),
    "referral": (("amount",), ("referred", *GRANT_EXTRA)),
    "loyalty": (("amount",), GRANT_EXTRA),
    "topup": (("status", "amount"), ("source", "request", "reason", *GRANT_EXTRA)),
    "redeem": (("amount",), ("status", "session", "order", "member", "cash")),
    "adjust": (("amount", "reason"), ("approver",)),
    "reverse": (("reverses",), ("amount", "reason")),
    "expiry_change": (("grant", "expires"), ()),
}
USER_OPTIONAL = ("reverse", "expiry_change")

_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_AMOUNT_RE = re.compile(rf"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s+({COMMODITY})$")
_SOURCE_RE = re.compile(r"^[A-Z][A-Za-z0-9-]*$")
# The last day an event may fall on: the balance log asserts a day's balance on the next day.
LAST_DAY = datetime.date.max - datetime.timedelta(days=1)
# Lone surrogates (JSON can spell them, "\ud800") are not text: no UTF-8 file holds them.
_UNWRITABLE_RE = re.compile("[\ud800-\udfff]")
_UNDECODED_RE = re.compile("[\udc80-\udcff]")  # bytes that "surrogateescape" kept


@dataclasses.dataclass(frozen=True)
class Row:
    """One record of an export: its line in the file and its fields as read."""

    line: int
    fields: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Problem:
    """Something wrong with a row: the field (or "row") and the reason."""

    field: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Event:
    """A validated event. ``fields`` holds the type's fields, parsed."""

    line: int
    type: str
    id: str
    timestamp: datetime.datetime
    date: datetime.date
    user: str | None
    commodity: str
    fields: Mapping[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


class ReadError(Exception):
    """An export that cannot be read at all (not CSV/JSON Lines, no header)."""


class NotText(ReadError):
    """An export that is not UTF-8 text; ``lines`` says where, one line per bad line."""

    def __init__(self, lines: list[tuple[int, str]]):
        super().__init__(f"not UTF-8 text ({len(lines)} line(s))")
        self.lines = lines


def decode(data: bytes) -> str:
    """An export's bytes as text (UTF-8, a leading BOM dropped); :class:`NotText` if not.

    A file that is not UTF-8 is reported by line and column (never by byte
    offset, and never by echoing the bytes' neighbours).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "surrogateescape")
        bad = []
        for number, line in enumerate(split_lines(text), start=1):
            found = _UNDECODED_RE.search(line)
            if found is not None:
                byte, column = ord(found.group()) - 0xDC00, found.start() + 1
                bad.append((number, f"not UTF-8 text (byte 0x{byte:02x} at column {column})"))
        raise NotText(bad) from None
    return text.removeprefix("\ufeff")


# --- Reading ---------------------------------------------------------------------


def sniff_format(name: str, text: str) -> str:
    """'csv' or 'jsonl', from the file name, else from the first character."""
    lowered = name.lower()
    if lowered.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lowered.endswith(".csv"):
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def read_rows(text: str, fmt: str) -> Iterator[Row | tuple[int, Problem]]:
    """Rows of an export; a line that is not a record yields (line, Problem)."""
    if fmt == "jsonl":
        yield from _jsonl_rows(text)
    elif fmt == "csv":
        yield from _csv_rows(text)
    else:
        raise ReadError(f"unknown event format {fmt!r} (csv or jsonl)")


def _jsonl_rows(text: str) -> Iterator[Row | tuple[int, Problem]]:
    # Only "\n" ends a record (split_lines): str.splitlines would also split
    # at U+2028 and the like, which JSON leaves unescaped inside strings.
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        try:
            # Decimal, not float: 0.1 credits must stay 0.1.
            record = json.loads(line, parse_float=Decimal)
        except ValueError as exc:
            # The decoder's message names a position, never the text itself.
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not JSON"
            yield number, Problem("row", f"not a JSON object: {reason}")
            continue
        if not isinstance(record, dict):
            yield number, Problem("row", f"not a JSON object but {type(record).__name__}")
            continue
        yield Row(number, record)


def _csv_rows(text: str) -> Iterator[Row | tuple[int, Problem]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise ReadError(f"line 1: not a CSV header: {exc}") from None
    header = [name.strip() for name in header]
    if "type" not in header:
        # Not an event export: say so without echoing the file (it may be anything).
        raise ReadError(f"line 1: the CSV header has no 'type' column ({len(header)} column(s))")
    start = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, Problem("row", f"not a CSV record: {exc}")
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            yield line, Problem("row", f"{len(record)} cells for {len(header)} columns")
            continue
        # An empty cell is an absent field: CSV cannot tell them apart.
        yield Row(line, {name: cell for name, cell in zip(header, record, strict=True) if cell})


# --- Parsing fields -----------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise ValueError(f"expected text, got {json.dumps(value, default=str)}")
    return value if isinstance(value, str) else str(value)


def writable(value: str) -> str:
    """``value`` if a UTF-8 ledger file can hold it, else ValueError.

    Any other character is fine: :func:`beancount_credits.ledger.render.quote` escapes
    what would end the string literal, and Beancount reads the rest verbatim.
    """
    bad = _UNWRITABLE_RE.search(value)
    if bad:
        raise ValueError(f"holds a lone surrogate U+{ord(bad.group()):04X}, not text")
    return value


def parse_number(value: Any) -> Decimal:
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return Decimal(value)
    text = _text(value).strip()
    if not _NUMBER_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a number")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None


def parse_money(value: Any) -> amount_lib.Amount:
    """An amount with its currency: ``0.10 USD``."""
    text = _text(value).strip()
    match = _AMOUNT_RE.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not an amount such as '0.10 USD'")
    return amount_lib.Amount(Decimal(match.group(1)), match.group(2))


def parse_date(value: Any) -> datetime.date:
    text = _text(value).strip()
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    if day > LAST_DAY:
        raise ValueError(f"{day} is after {LAST_DAY}, the last day a ledger can log a balance on")
    return day


def parse_timestamp(value: Any) -> datetime.datetime:
    text = _text(value).strip()
    try:
        if len(text) == 10:
            return datetime.datetime.combine(
                datetime.date.fromisoformat(text), datetime.time(), datetime.UTC
            )
        stamp = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 timestamp") from None
    return stamp.replace(tzinfo=datetime.UTC) if stamp.tzinfo is None else stamp


def ledger_date(stamp: datetime.datetime, timezone: zoneinfo.ZoneInfo | None) -> datetime.date:
    """The ledger day of a timestamp (UTC, or the configured zone); ValueError out of range.

    The day after it must exist too: the balance log asserts a day's balance on
    the next day, so 9999-12-31 cannot be a ledger day.
    """
    try:
        day = stamp.astimezone(timezone or datetime.UTC).date()
    except OverflowError:
        raise ValueError(
            f"{stamp.isoformat()} falls outside the dates a ledger can hold "
            f"({datetime.date.min} to {LAST_DAY})"
        ) from None
    if day > LAST_DAY:
        raise ValueError(f"{day} is after {LAST_DAY}, the last day a ledger can log a balance on")
    return day


def parse_email(value: Any) -> str:
    """An email address (one, without a display name), checked by :func:`settings.check_email`."""
    from beancount_credits.engine.settings import check_email

    return check_email(_text(value).strip())


def parse_credit_limit(value: Any) -> Decimal | amount_lib.Amount:
    """A number (every credit type) or an amount (one credit type), never negative."""
    text = _text(value).strip()
    limit: Decimal | amount_lib.Amount = parse_money(text) if " " in text else parse_number(text)
    number = limit.number if isinstance(limit, amount_lib.Amount) else limit
    if number is None or number < 0:
        raise ValueError(f"{text!r} is negative")
    return limit


def _positive(value: Any) -> Decimal:
    number = parse_number(value)
    if number <= 0:
        raise ValueError(f"{number} is not above zero")
    return number


def _nonzero(value: Any) -> Decimal:
    number = parse_number(value)
    if number == 0:
        raise ValueError("is zero")
    return number


def _priority(value: Any) -> Decimal:
    """A whole number, kept as the Decimal Beancount reads ``priority: 10`` as."""
    number = parse_number(value)
    if number != number.to_integral_value():
        raise ValueError(f"{number} is not a whole number")
    return number


def _choice(options: tuple[str, ...]):  # type: ignore[no-untyped-def]
    def parse(value: Any) -> str:
        text = _text(value).strip()
        if text not in options:
            raise ValueError(f"{text!r} is not one of {', '.join(options)}")
        return text

    return parse


def _source(value: Any) -> str:
    text = _text(value).strip()
    if not _SOURCE_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not an account name part (TopUp, Card-Refill)")
    return text


def _string(value: Any) -> str:
    return writable(_text(value))


def _required_string(value: Any) -> str:
    text = _string(value)
    if not text.strip():
        raise ValueError("is empty")
    return text


PARSERS = {
    "timestamp": parse_timestamp,
    "id": _required_string,
    "user": _required_string,
    "amount": parse_number,
    "price": parse_money,
    "unit_cost": parse_money,
    "cash": parse_money,
    "expires": parse_date,
    "priority": _priority,
    "credit_limit": parse_credit_limit,
    "source": _source,
    "reason": _required_string,
    "reverses": _required_string,
    "grant": _required_string,
    "email": parse_email,
}


@functools.lru_cache(maxsize=65536)
def _unmappable(user_id: str) -> str | None:
    """Why a user id has no account name, or None (cached: a batch repeats its users)."""
    try:
        user_component(user_id)
    except UserIdError as exc:
        return str(exc)
    return None


def parse_event(row: Row, timezone: zoneinfo.ZoneInfo | None = None) -> Event | list[Problem]:
    """The row as an event, or every problem with it."""
    fields = {key: value for key, value in row.fields.items() if value is not None}
    problems: list[Problem] = []
    kind = fields.get("type")
    if kind is None:
        return [Problem("type", "missing")]
    if not isinstance(kind, str) or kind.strip() not in EVENT_TYPES:
        return [Problem("type", f"unknown event type {kind!r} (one of {', '.join(EVENT_TYPES)})")]
    kind = kind.strip()
    required, optional = FIELDS[kind]
    known = {*COMMON, *required, *optional}
    for name in sorted(set(fields) - known):
        problems.append(Problem(name, f"not a field of a {kind} event"))
    needed = ["id", "timestamp", *required]
    if kind not in USER_OPTIONAL:
        needed.append("user")
    for name in needed:
        if name not in fields or (isinstance(fields[name], str) and not fields[name].strip()):
            problems.append(Problem(name, "missing"))
    parsed: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "type" or name not in known:
            continue
        if name in needed and any(p.field == name for p in problems):
            continue
        parse = PARSERS.get(name, _string)
        if name == "amount":
            # Only an adjustment may take credits away; every other amount is a size.
            parse = _nonzero if kind == "adjust" else _positive
        elif name == "status":
            parse = _choice(TOPUP_STATUSES if kind == "topup" else REDEEM_STATUSES)
        try:
            parsed[name] = parse(value)
        except ValueError as exc:
            problems.append(Problem(name, str(exc)))
    if "user" in parsed:
        unmappable = _unmappable(parsed["user"])
        if unmappable:
            problems.append(Problem("user", f"cannot be mapped to an account: {unmappable}"))
    if "id" in parsed and not parsed["id"].strip():
        problems.append(Problem("id", "is empty"))
    commodity = str(parsed.pop("commodity", "CREDIT")).strip()
    if not is_commodity(commodity):
        problems.append(Problem("commodity", f"{commodity!r} is not a commodity name"))
    if kind == "purchase" and "price" in parsed and "unit_cost" in parsed:
        problems.append(Problem("price", "give price (total paid) or unit_cost, not both"))
    if kind == "redeem" and not ("session" in parsed or "order" in parsed):
        problems.append(Problem("session", "a redemption needs a session or an order id"))
    if kind == "topup" and parsed.get("status") == "failed" and "reason" not in parsed:
        problems.append(Problem("reason", "missing (a failed top-up says why)"))
    if problems:
        return problems
    stamp: datetime.datetime = parsed.pop("timestamp")
    try:
        date = ledger_date(stamp, timezone)
    except ValueError as exc:
        return [Problem("timestamp", str(exc))]
    return Event(
        line=row.line,
        type=kind,
        id=parsed.pop("id"),
        timestamp=stamp,
        date=date,
        user=parsed.pop("user", None),
        commodity=commodity,
        fields=parsed,
    )


def rows_of(records: Iterable[Mapping[str, Any]]) -> Iterator[Row]:
    """In-process events (dicts) as rows numbered from 1."""
    for number, record in enumerate(records, start=1):
        yield Row(number, dict(record))
