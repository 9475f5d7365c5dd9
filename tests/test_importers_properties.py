"""Property tests of the importer: outside strings are data only; one bad row writes nothing."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beancount_credits.importers import ImportFailed, import_events

BASE = Path(__file__).parent / "importers" / "base"

# Strings meant to break out of a literal or a line, beside anything hypothesis finds.
NASTY = [
    '"',
    "\\",
    '\\"',
    "\n2024-01-01 open Assets:Credits:Users:Evil\n",
    '"\n2024-01-01 * "x"\n  Assets:Credits:Users:Carol  1000 CREDIT\n  Income:Credits:Purchase',
    'plugin "os.system"',
    "\r\n\t\x00\x01\x1b[31m\x7f",
    "\u2028\u2029\x85\ufeff",
    "é" * 300 + "🙂" * 200,
    "; comment",
]
strings = st.one_of(
    st.sampled_from(NASTY),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=80),
).filter(lambda text: text.strip() != "")
# User ids: anything mappable to an account (no control characters).
user_ids = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc",)), min_size=1, max_size=30
).filter(lambda text: text.strip() != "")


def fresh_ledger() -> tuple[tempfile.TemporaryDirectory, Path]:
    holder = tempfile.TemporaryDirectory(prefix="import-prop-")
    root = Path(holder.name) / "ledger"
    shutil.copytree(BASE, root)
    return holder, root / "main.beancount"


def as_file(folder: Path, fmt: str, events: list[dict]) -> Path:
    path = folder / f"events.{fmt}"
    if fmt == "jsonl":
        text = "".join(json.dumps(event, ensure_ascii=False) + "\n" for event in events)
    else:
        columns = sorted({key for event in events for key in event})
        out = io.StringIO()
        writer = csv.DictWriter(out, columns)  # RFC 4180: CRLF, and CR or LF in a cell quoted
        writer.writeheader()
        writer.writerows(events)
        text = out.getvalue()
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return path


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    user=user_ids,
    ids=st.lists(strings, min_size=4, max_size=4, unique=True),
    texts=st.lists(strings, min_size=8, max_size=8),
    fmt=st.sampled_from(["records", "jsonl", "csv"]),
)
def test_arbitrary_strings_import_as_data_only(
    user: str, ids: list[str], texts: list[str], fmt: str
) -> None:
    events = [
        {"type": "user", "id": ids[0], "timestamp": "2024-03-01T00:00:00Z", "user": user,
         "segment": texts[0], "email": "ops+credits@mail.example"},
        {"type": "purchase", "id": ids[1], "timestamp": "2024-03-01T01:00:00Z", "user": user,
         "amount": 100, "description": texts[2], "order": texts[3]},
        {"type": "redeem", "id": ids[2], "timestamp": "2024-03-02T01:00:00Z", "user": user,
         "amount": 10, "session": texts[4], "member": texts[5]},
        {"type": "adjust", "id": ids[3], "timestamp": "2024-03-03T01:00:00Z", "user": user,
         "amount": 5, "reason": texts[6], "approver": texts[7]},
    ]  # fmt: skip
    holder, ledger = fresh_ledger()
    with holder:
        source = events if fmt == "records" else as_file(Path(holder.name), fmt, events)
        result = import_events(ledger, source)
        assert (result.new, result.already) == (4, 0)
        entries, errors, _options = loader.load_file(str(ledger))
        assert errors == []
        imported = [
            entry for entry in entries if "/imports/" in str(entry.meta.get("filename", ""))
        ]
        kinds = sorted((type(entry).__name__, getattr(entry, "account", "")) for entry in imported)
        wallet = result.batch_file and next(
            entry.account for entry in imported if isinstance(entry, data.Open)
            and entry.meta.get("user_id") == user
        )  # fmt: skip
        assert kinds == sorted(
            [
                ("Open", wallet),
                ("Open", "Equity:Credits:Adjustments"),
                ("Transaction", ""),
                ("Transaction", ""),
                ("Transaction", ""),
            ]
        )
        opened = next(entry for entry in imported if getattr(entry, "account", "") == wallet)
        assert opened.meta["user_id"] == user
        # (email is validated: tests/test_security.py feeds it hostile text)
        assert opened.meta["segment"] == texts[0]
        assert opened.meta["email"] == "ops+credits@mail.example"
        by_id = {entry.meta["txn_id"]: entry for entry in imported if "txn_id" in entry.meta}
        assert by_id[ids[0]] is opened
        assert by_id[ids[1]].narration == texts[2] and by_id[ids[1]].meta["order"] == texts[3]
        assert by_id[ids[2]].meta["session"] == texts[4]
        assert by_id[ids[2]].meta["member"] == texts[5]
        assert by_id[ids[3]].meta["reason"] == texts[6]
        assert by_id[ids[3]].meta["approved_by"] == texts[7]
        again = import_events(ledger, source)
        assert (again.new, again.already) == (0, 4)


BAD_ROWS = {
    "bad number": ({"amount": "1O"}, "amount"),
    "unknown type": ({"type": "gift"}, "type"),
    "missing field": ({"amount": None}, "amount"),
    "bad date": ({"timestamp": "2024-02-30T00:00:00Z"}, "timestamp"),
    "beyond the balance": ({"amount": 100_000}, "amount"),
    "unmappable user": ({"user": "bad\x01id"}, "user"),
    "unknown reversal": ({"type": "reverse", "reverses": "no-such-id"}, "reverses"),
}


@settings(max_examples=20, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=12),
    position=st.integers(min_value=0),
    bad=st.sampled_from(sorted(BAD_ROWS)),
)
def test_one_bad_row_in_a_random_batch_writes_nothing(
    sizes: list[int], position: int, bad: str
) -> None:
    events: list[dict] = [
        {"type": "purchase", "id": "g-0", "timestamp": "2024-03-01T00:00:00Z", "user": "carol",
         "amount": 1000}
    ]  # fmt: skip
    for number, size in enumerate(sizes, start=1):
        kind = "redeem" if number % 2 else "promotion"
        event = {"type": kind, "id": f"e-{number}", "user": "carol", "amount": size,
                 "timestamp": f"2024-03-{1 + number:02d}T12:00:00Z"}  # fmt: skip
        if kind == "redeem":
            event["session"] = f"s-{number}"
        events.append(event)
    changes, field = BAD_ROWS[bad]
    index = 1 + position % len(sizes)
    row = {**events[index], **changes}
    if row["type"] == "reverse":
        for key in ("amount", "session"):
            row.pop(key, None)
    if row["type"] == "redeem" and row.get("amount") == 100_000:
        pass
    elif bad == "beyond the balance":
        row = {**row, "type": "redeem", "session": "s-big"}
    events[index] = {key: value for key, value in row.items() if value is not None}
    holder, ledger = fresh_ledger()
    with holder:
        before = snapshot(ledger.parent)
        with pytest.raises(ImportFailed) as failure:
            import_events(ledger, events)
        message = str(failure.value)
        assert f"<events>:{index + 1}: " in message
        assert f": {field}: " in message
        assert "nothing was imported" in message
        assert snapshot(ledger.parent) == before
