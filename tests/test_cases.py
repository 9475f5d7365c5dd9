"""Ledger cases: each ``tests/cases/<plugin>/<name>.beancount`` is an input ledger.

Beside it, ``<name>.expected.beancount`` holds the ledger as Beancount sees it
after the plugins ran (every directive, generated ones included, printed by
Beancount's printer), and ``<name>.errors`` the expected errors, one per line as
``<line>: <message>`` (``<line>`` is the input line the error points at, or the
generated entry's origin). No ``.errors`` file means no errors.

Set ``UPDATE_CASES=1`` to rewrite the expected files from the current output;
review the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data
from beancount.parser import printer

CASES = Path(__file__).parent / "cases"
CASE_FILES = sorted(
    path for path in CASES.rglob("*.beancount") if not path.name.endswith(".expected.beancount")
)


def render(path: Path) -> tuple[str, str]:
    entries, errors, _options = loader.load_file(str(path))
    text = "\n".join(printer.format_entry(entry).rstrip("\n") for entry in entries) + "\n"
    lines = []
    for error in errors:
        source = error.source or {}
        filename = source.get("filename", "")
        where = source.get("lineno") if filename == str(path) else Path(str(filename)).name
        # Paths inside messages are written relative to the case's folder, so
        # the expected files hold wherever the repository is checked out.
        message = " ".join(error.message.replace(f"{path.parent}/", "").split())
        lines.append(f"{where}: {message}")
    return text, "".join(line + "\n" for line in lines)


@pytest.mark.parametrize("case", CASE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_case(case: Path) -> None:
    expected_path = case.with_suffix(".expected.beancount")
    errors_path = case.with_suffix(".errors")
    text, errors = render(case)
    if os.environ.get("UPDATE_CASES"):
        expected_path.write_text(text)
        if errors:
            errors_path.write_text(errors)
        elif errors_path.exists():
            errors_path.unlink()
    assert errors == (errors_path.read_text() if errors_path.exists() else "")
    assert text == expected_path.read_text()


def test_every_case_has_expected_output() -> None:
    assert CASE_FILES, "no ledger cases found"
    for case in CASE_FILES:
        assert case.with_suffix(".expected.beancount").exists(), case


def test_generated_entries_are_marked() -> None:
    """Whatever a plugin adds says so (generated: TRUE) and names the plugin as its file."""
    for case in CASE_FILES:
        entries, _errors, _options = loader.load_file(str(case))
        for entry in entries:
            filename = entry.meta.get("filename", "")
            if filename.startswith("<beancount_credits"):
                assert entry.meta.get("generated") is True, (case, entry)
            if isinstance(entry, data.Transaction) and "expired" in entry.tags:
                assert "grant" in entry.meta, (case, entry)
