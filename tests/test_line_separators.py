"""Every Unicode line and paragraph separator in every string field: the right entry is edited.

Beancount ends a line at ``\\n`` only; Python's ``str.splitlines`` also ends one
at each of :data:`SEPARATORS`. These tests drive the write path — import,
settle, cancel, ``expiry_change``, ``close-day``, ``close-period`` — with
events whose every free-text field (and id, and user id, where the id rules
allow) holds those separators, and check after each step, on the ledger
text as Beancount parses it, that exactly the intended entries changed.
"""

from __future__ import annotations

import copy
import datetime
import tempfile
from pathlib import Path
from typing import Any

from beancount import loader
from beancount.core import data
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beancount_credits.cli import main
from beancount_credits.importers import import_events
from beancount_credits.importers.ingest import parse_ledger
from beancount_credits.jobs import close_period

# Every character (or pair) at which str.splitlines ends a line.
SEPARATORS = ["\n", "\r", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
# A user id holds no control characters (accounts.user_component); these three are not.
USER_SEPARATORS = ["\x85", "\u2028", "\u2029"]
TEXT_FIELDS = [
    "segment", "desc1", "desc2", "desc3", "order", "order2", "campaign", "session0",
    "session1", "member", "reason", "approver", "request", "reason2", "referred",
]  # fmt: skip
ID_FIELDS = ["id_user", "g1", "g2", "p0", "p1", "p2", "a1", "t1", "r1", "x1"]

LEDGER = """option "title" "Line separators"
plugin "beancount_credits.plugins.expire"
plugin "beancount_credits.plugins.daily_balances"

2024-01-01 open Income:Credits:Purchase
2024-01-01 open Income:Credits:Promotion
2024-01-01 open Income:Credits:Referral
2024-01-01 open Expenses:Credits:Sessions
2024-01-01 open Expenses:Credits:Orders
2024-01-01 open Equity:Credits:Adjustments
2024-01-01 open Equity:Credits:Breakage
2024-01-01 open Equity:Credits:Opening
"""


def day(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


def batches(t: dict[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The first batch: users, grants, pending redemptions and the rest; the second edits."""
    u1, u2 = t["u1"], t["u2"]
    first = [
        {"type": "user", "id": t["id_user"], "timestamp": "2024-03-01T08:00:00Z", "user": u1,
         "segment": t["segment"], "email": "ops@mail.example"},
        {"type": "purchase", "id": t["g1"], "timestamp": "2024-03-01T09:00:00Z", "user": u1,
         "amount": 100, "price": "10.00 USD", "description": t["desc1"], "order": t["order"]},
        {"type": "promotion", "id": t["g2"], "timestamp": "2024-03-01T09:30:00Z", "user": u2,
         "amount": 50, "description": t["desc2"], "campaign": t["campaign"],
         "expires": "2024-06-01"},
        {"type": "redeem", "id": t["p0"], "timestamp": "2024-03-02T10:00:00Z", "user": u1,
         "amount": 5, "session": t["session0"], "member": t["member"], "status": "pending"},
        {"type": "redeem", "id": t["p1"], "timestamp": "2024-03-02T11:00:00Z", "user": u1,
         "amount": 7, "session": t["session1"], "status": "pending"},
        {"type": "redeem", "id": t["p2"], "timestamp": "2024-03-02T12:00:00Z", "user": u2,
         "amount": 3, "order": t["order2"], "status": "pending"},
        {"type": "adjust", "id": t["a1"], "timestamp": "2024-03-02T13:00:00Z", "user": u2,
         "amount": 2, "reason": t["reason"], "approver": t["approver"]},
        {"type": "topup", "id": t["t1"], "timestamp": "2024-03-02T14:00:00Z", "user": u2,
         "status": "failed", "amount": 10, "request": t["request"], "reason": t["reason2"]},
        {"type": "referral", "id": t["r1"], "timestamp": "2024-03-02T15:00:00Z", "user": u1,
         "amount": 4, "referred": t["referred"], "description": t["desc3"]},
    ]  # fmt: skip
    second = [
        {"type": "redeem", "id": t["p1"], "timestamp": "2024-03-03T09:00:00Z", "user": u1,
         "amount": 7, "session": t["session1"], "status": "settled"},
        {"type": "redeem", "id": t["p0"], "timestamp": "2024-03-03T10:00:00Z", "user": u1,
         "amount": 5, "session": t["session0"], "member": t["member"], "status": "cancelled"},
        {"type": "expiry_change", "id": t["x1"], "timestamp": "2024-03-03T11:00:00Z",
         "grant": t["g2"], "expires": "2024-07-01"},
    ]  # fmt: skip
    return first, second


def key(entry: data.Directive) -> tuple[Any, ...]:
    txn_id = (entry.meta or {}).get("txn_id")
    if txn_id is not None:
        return ("id", txn_id)
    if isinstance(entry, data.Balance):
        return ("balance", entry.account, entry.amount.currency, entry.date)
    return (type(entry).__name__, getattr(entry, "account", None), entry.date)


def without_place(meta: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (meta or {}).items() if k not in ("filename", "lineno")}


def content(entry: data.Directive) -> dict[str, Any]:
    """An entry as the text says it: every field, metadata without its place in a file."""
    fields = entry._asdict()
    fields["meta"] = without_place(entry.meta)
    if isinstance(entry, data.Transaction):
        fields["postings"] = [
            (posting.account, posting.units, without_place(posting.meta))
            for posting in entry.postings
        ]
    if isinstance(entry, data.Custom):
        fields["values"] = [value.value for value in entry.values]
    return fields


def snapshot(main: Path) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The ledger's written entries, parsed as Beancount parses the text (no plugins)."""
    entries, _options = parse_ledger(main)
    result: dict[tuple[Any, ...], dict[str, Any]] = {}
    for entry in entries:
        assert key(entry) not in result, f"two entries with the key {key(entry)}"
        result[key(entry)] = content(entry)
    return result


def check_loads(main: Path) -> None:
    _entries, errors, _options = loader._uncached_load_file(str(main), None, None, None)
    assert errors == [], [error.message for error in errors[:3]]


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def run_write_path(t: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        ledger = Path(folder) / "main.beancount"
        ledger.write_text(LEDGER, encoding="utf-8")
        first, second = batches(t)

        before = snapshot(ledger)
        result = import_events(ledger, first)
        assert (result.new, result.already) == (len(first), 0)
        check_loads(ledger)
        imported = snapshot(ledger)
        assert {k: v for k, v in imported.items() if k in before} == before
        by_id = {k[1]: v for k, v in imported.items() if k[0] == "id"}
        assert by_id[t["g1"]]["narration"] == t["desc1"]
        assert by_id[t["g1"]]["meta"]["order"] == t["order"]
        assert by_id[t["g2"]]["narration"] == t["desc2"]
        assert by_id[t["p0"]]["meta"]["member"] == t["member"]
        assert by_id[t["a1"]]["meta"]["reason"] == t["reason"]
        assert by_id[t["t1"]]["meta"]["reason"] == t["reason2"]
        assert by_id[t["id_user"]]["meta"]["segment"] == t["segment"]
        assert {by_id[t[name]]["flag"] for name in ("p0", "p1", "p2")} == {"!"}

        # Settle p1, cancel p0, move g2's expiry: those entries change, nothing else.
        result = import_events(ledger, second)
        assert result.new == 3, result
        check_loads(ledger)
        edited = snapshot(ledger)
        expected = copy.deepcopy(imported)
        p0, p1, g2 = (("id", t[name]) for name in ("p0", "p1", "g2"))
        expected[p1]["flag"] = "*"
        expected[p1]["meta"]["settled"] = day("2024-03-03")
        expected[p0]["flag"] = "*"
        expected[p0]["meta"]["cancelled"] = day("2024-03-03")
        expected[g2]["meta"]["expires"] = day("2024-07-01")
        expected[g2]["meta"]["expiry_changes"] = t["x1"]
        reversal = ("id", t["p0"] + ":cancelled")
        assert edited[reversal]["meta"]["reverses"] == t["p0"]
        assert {k: v for k, v in edited.items() if k != reversal} == expected

        # close-day: only the log is added.
        cli("close-day", str(ledger), "--date", "2024-03-05")
        check_loads(ledger)
        closed = snapshot(ledger)
        assert {k: v for k, v in closed.items() if k in edited} == edited
        assert all(k[0] == "balance" for k in closed.keys() - edited.keys())

        # close-period: the whole history (archive included) is the same text.
        cli("close-period", str(ledger), "--through", "2024-03-04")
        check_loads(ledger)
        history = snapshot(close_period.history_path(ledger))
        assert history == closed


def fields(texts: dict[str, str], ids: dict[str, str], users: tuple[str, str]) -> dict[str, str]:
    return {**texts, **ids, "u1": users[0], "u2": users[1]}


def test_every_separator_in_every_field_at_once() -> None:
    every = "".join(SEPARATORS)
    users = "".join(USER_SEPARATORS)
    assert all(len(f"a{sep}b".splitlines()) == 2 for sep in SEPARATORS)
    texts = {name: f"{name} {every} end" for name in TEXT_FIELDS}
    ids = {name: f"{name}{every}" for name in ID_FIELDS}
    run_write_path(fields(texts, ids, (f"alice{users}", f"bob{users}")))


def text_with(separators: list[str]) -> st.SearchStrategy[str]:
    pieces = st.sampled_from([*separators, "a", " ", '"', "\\", ";", "2024-01-01 * "])
    return st.lists(pieces, min_size=1, max_size=6).map("".join)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.fixed_dictionaries({name: text_with(SEPARATORS) for name in TEXT_FIELDS}),
    ids=st.fixed_dictionaries({name: text_with(SEPARATORS) for name in ID_FIELDS}),
    users=st.tuples(text_with(USER_SEPARATORS), text_with(USER_SEPARATORS)),
)
def test_separators_anywhere_edit_only_the_intended_entries(
    texts: dict[str, str], ids: dict[str, str], users: tuple[str, str]
) -> None:
    # Distinct, non-blank ids and user ids: the name in front of each makes them so.
    run_write_path(
        fields(
            {name: f"{name}{text}" for name, text in texts.items()},
            {name: f"{name}{text}" for name, text in ids.items()},
            (f"alice{users[0]}", f"bob{users[1]}"),
        )
    )
