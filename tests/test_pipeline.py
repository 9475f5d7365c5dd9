"""What the package relies on in Beancount's private loader steps (ledger/pipeline.py).

A Beancount release that changes ``loader._parse_recursive`` or
``loader._uncached_load_file`` in a way the package would feel fails here.
"""

from __future__ import annotations

from pathlib import Path

from beancount import loader
from beancount.core.number import MISSING
from beancount.parser import printer

from beancount_credits.ledger import pipeline

MAIN = """\
option "operating_currency" "USD"
plugin "beancount.plugins.auto_accounts"
include "more/*.beancount"

2024-01-01 open Assets:Cash
2024-01-02 * "coffee"
  Assets:Cash  -3 USD
  Expenses:Food
"""
MORE = """\
2024-01-03 * "tea"
  Assets:Cash  -2 USD
  Expenses:Food
"""


def ledger(tmp_path: Path) -> Path:
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "a.beancount").write_text(MORE)
    main = tmp_path / "main.beancount"
    main.write_text(MAIN)
    return main


def test_parse_tree_follows_includes_without_plugins_or_booking(tmp_path: Path) -> None:
    main = ledger(tmp_path)
    entries, errors, options = pipeline.parse_tree([main])
    assert errors == []
    assert options["include"] == [str(main), str(tmp_path / "more" / "a.beancount")]
    assert options["operating_currency"] == ["USD"]
    assert [name for name, _config in options["plugin"]] == ["beancount.plugins.auto_accounts"]
    # No plugin ran (auto_accounts would open Expenses:Food), nothing was booked.
    assert [type(entry).__name__ for entry in entries] == ["Open", "Transaction", "Transaction"]
    assert {entry.meta["filename"] for entry in entries} == set(options["include"])
    assert entries[1].postings[1].units is MISSING  # interpolation is booking's work


def test_parse_tree_reports_a_missing_file_and_a_relative_path_resolves(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    main = ledger(tmp_path)
    monkeypatch.chdir(tmp_path)
    entries, errors, _options = pipeline.parse_tree([Path("main.beancount"), tmp_path / "gone"])
    assert len(entries) == 3
    assert len(errors) == 1 and "does not exist" in errors[0].message
    assert entries[0].meta["filename"] == str(main)


def test_load_uncached_is_load_file_without_the_cache(tmp_path: Path) -> None:
    main = ledger(tmp_path)
    entries, errors, options = pipeline.load_uncached(main)
    assert not list(tmp_path.glob(".*picklecache"))
    cached = loader.load_file(str(main))
    assert errors == cached[1] == []
    assert [printer.format_entry(e) for e in entries] == [
        printer.format_entry(e) for e in cached[0]
    ]
    assert options["include"] == cached[2]["include"]
