"""The tamper suite: ten ways to change the sealed demo ledger's history behind its back.

Each test takes a fresh copy of one prepared git repository (the demo ledger as
``make demo-ledger`` writes it, sealed through 2026-11-20, committed by the daily
job), changes it the way a dishonest operator would, commits the change as a
second author, and checks that ``bean-check`` (Beancount's loader, plugins on)
fails at the first broken seal naming the day and what differs, and that
``bean-credits verify`` names the user, the day and the commit.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DEMO, git

from beancount_credits.cli import main
from beancount_credits.ledger import load

MALLORY = "Mallory Ops <mallory@example.com>"


@pytest.fixture(scope="session")
def prepared_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sealed demo ledger in a git repository, committed once for every test."""
    root = tmp_path_factory.mktemp("sealed-demo") / "ledger"
    shutil.copytree(
        DEMO.parent, root, ignore=shutil.ignore_patterns(".*.picklecache", "outbox", ".*")
    )
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "Demo ledger, sealed by close-day", author="Daily Job <job@ex.com>")
    return root


@pytest.fixture
def sealed_demo(prepared_demo: Path, tmp_path: Path) -> Path:
    """A copy of the prepared repository (history included): its main file."""
    root = tmp_path / "ledger"
    shutil.copytree(prepared_demo, root)
    return root / "main.beancount"


def replace(path: Path, old: str, new: str, after: str | None = None) -> None:
    """Replace the first ``old`` (after the first ``after``, if given) in a file."""
    text = path.read_text()
    start = text.index(after) if after is not None else 0
    index = text.index(old, start)
    path.write_text(text[:index] + new + text[index + len(old) :])


def remove_block(path: Path, header: str) -> None:
    """Remove the entry whose header line starts with ``header`` (and its blank line)."""
    lines = path.read_text().split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    end = start + 1
    while end < len(lines) and lines[end].startswith(" "):
        end += 1
    del lines[start - 1 if not lines[start - 1].strip() else start : end]
    path.write_text("\n".join(lines))


def amount(root: Path) -> None:
    path, after = root / "transactions/2026.beancount", 'txn_id: "r-000869"'
    replace(path, "Org--acme            -50 CREDIT", "Org--acme            -49 CREDIT", after)
    replace(path, "Sessions                  50", "Sessions                  49", after)


def delete_balance(root: Path) -> None:
    replace(
        root / "log/2026/03.beancount",
        "2026-03-01 balance Assets:Credits:Users:U--1008  125 CREDIT\n\n",
        "",
    )


def delete_expiry(root: Path) -> None:
    remove_block(root / "log/2026/03.beancount", '2026-03-01 * "Expired credits of grant p-000044"')


def delete_seal(root: Path) -> None:
    remove_block(root / "log/2026/03.beancount", '2026-03-10 custom "credits-seal"')


def edit_digest(root: Path) -> None:
    path = root / "log/2026/03.beancount"
    text = path.read_text()
    found = re.search(r'2026-03-10 custom "credits-seal" "([0-9a-f])', text)
    assert found is not None
    digit = "0" if found.group(1) != "0" else "1"
    path.write_text(text[: found.start(1)] + digit + text[found.end(1) :])


def move_posting(root: Path) -> None:
    replace(
        root / "transactions/2026.beancount",
        "Assets:Credits:Users:Org--acme            -50 CREDIT",
        "Assets:Credits:Users:Org--globex          -50 CREDIT",
        after='txn_id: "r-000869"',
    )


def backdated(root: Path) -> None:
    with (root / "transactions/2026.beancount").open("a") as handle:
        handle.write(
            '\n2026-03-05 * "Goodwill, added later by hand"\n'
            '  txn_id: "x-hand-1"\n'
            "  Assets:Credits:Users:U--1008   10 CREDIT\n"
            "  Income:Credits:Promotion      -10 CREDIT\n"
        )


def redate(root: Path) -> None:
    replace(
        root / "transactions/2026.beancount",
        '2026-02-09 * "Acme Corp" "Session booking s-10736',
        '2026-02-11 * "Acme Corp" "Session booking s-10736',
    )


def amount_and_later_balances(root: Path) -> None:
    amount(root)
    for path in sorted((root / "log").glob("*/*.beancount")):
        lines = path.read_text().split("\n")
        kept = [
            line
            for line in lines
            if not (
                re.match(r"^(\d{4}-\d{2}-\d{2}) balance Assets:Credits:Users:Org--acme ", line)
                and line[:10] >= "2026-02-10"
            )
        ]
        path.write_text("\n".join(kept))


def expires(root: Path) -> None:
    replace(
        root / "transactions/2026.beancount",
        "expires: 2026-04-25",
        "expires: 2026-05-25",
        after='txn_id: "a-000005"',
    )


@dataclasses.dataclass(frozen=True)
class Tamper:
    change: Callable[[Path], None]
    day: str  # the first broken day bean-check names
    what: str  # ... and what differs
    verify: tuple[str, ...]  # "<users> <day>: <what>" heads verify prints, each with the commit
    absent: tuple[str, ...] = ()  # what verify must not say


TAMPERS = {
    "change an amount": Tamper(
        amount,
        "2026-02-09",
        "r-000869: amount changed (now -49 CREDIT)",
        ("org-acme 2026-02-09: transaction r-000869 changed",),
    ),
    "delete a balance line": Tamper(
        delete_balance,
        "2026-02-28",
        "u-1008 2026-03-01: recorded balance removed",
        ("u-1008 2026-03-01: recorded balance removed",),
    ),
    "delete a recorded expiry": Tamper(
        delete_expiry,
        "2026-03-01",
        "p-000044:expiry:v-000009: recorded expiry removed",
        ("sara.patel 2026-03-01: transaction p-000044:expiry:v-000009 removed",),
    ),
    "delete a seal": Tamper(
        delete_seal,
        "2026-03-10",
        "the seal of 2026-03-10 was removed",
        ("2026-03-10: seal of 2026-03-10 removed",),
    ),
    "edit a seal's digest": Tamper(
        edit_digest,
        "2026-03-10",
        "the seal does not match its entries, which are unchanged",
        ("2026-03-10: seal of 2026-03-10 changed",),
    ),
    "move a posting to another wallet": Tamper(
        move_posting,
        "2026-02-09",
        "r-000869: accounts changed (now org-globex, Expenses:Credits:Sessions)",
        ("org-acme, org-globex 2026-02-09: transaction r-000869 changed",),
        # org-acme's broken balances name the commit too (issue 16: they did not).
        ("no later change to its entries found in git",),
    ),
    "add a back-dated transaction": Tamper(
        backdated,
        "2026-03-05",
        "x-hand-1: added (2026-03-05)",
        ("u-1008 2026-03-05: transaction x-hand-1 added",),
    ),
    "change a date": Tamper(
        redate,
        "2026-02-09",
        "r-000869: re-dated to 2026-02-11",
        ("org-acme 2026-02-09: transaction r-000869 changed",),
    ),
    "edit an amount and delete the user's later balances": Tamper(
        amount_and_later_balances,
        "2026-02-09",
        "r-000869: amount changed (now -49 CREDIT)",
        (
            "org-acme 2026-02-09: transaction r-000869 changed",
            "org-acme 2026-02-10: recorded balance removed",
            "org-acme 2026-11-20: recorded balance removed",
        ),
    ),
    "change a grant's expires by hand": Tamper(
        expires,
        "2026-01-25",
        "a-000005: date, flag or terms",
        ("sara.patel 2026-01-25: transaction a-000005 changed",),
    ),
}


@pytest.mark.parametrize("kind", TAMPERS)
def test_tampering_fails_the_check_and_verify_names_user_day_and_commit(
    sealed_demo: Path, kind: str
) -> None:
    tamper = TAMPERS[kind]
    root = sealed_demo.parent
    tamper.change(root)
    git(root, "commit", "-qam", f"Tidy up ({kind})", author=MALLORY)
    sha = git(root, "rev-parse", "--short=10", "HEAD").strip()

    loaded = load(sealed_demo)  # what bean-check runs (its pickle cache then serves verify)
    seal_errors = [error for error in loaded.errors if "sealed history changed" in error.message]
    assert len(seal_errors) == 1, [error.message for error in loaded.errors]
    message = seal_errors[0].message
    assert message.startswith(f"sealed history changed on {tamper.day}: "), message
    assert tamper.what in message
    assert seal_errors[0].source["filename"].startswith(str(root / "log"))
    assert seal_errors[0].source["lineno"] > 0

    result = CliRunner().invoke(main, ["verify", str(sealed_demo)])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"verify: the seals do not hold from {tamper.day}")
    for text in tamper.absent:
        assert text not in result.output
    for head in tamper.verify:
        found = [index for index, line in enumerate(lines) if head in line and "(" in line]
        assert found, f"{head!r} not in:\n{result.output}"
        block = lines[found[0] + 1 : found[0] + 400]
        commit = next(line for line in block if line.startswith("  in "))
        assert commit.startswith(f"  in {sha} "), commit
        assert "Mallory Ops <mallory@example.com>" in commit


def test_the_sealed_demo_verifies(sealed_demo: Path) -> None:
    loaded = load(sealed_demo, cache=False)
    assert loaded.errors == []
    result = CliRunner().invoke(main, ["verify", str(sealed_demo)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "verify: 446 seals hold, through 2026-11-20"


def test_make_demo_ledger_writes_the_committed_sealed_demo(tmp_path: Path) -> None:
    """The generator and close-day, as `make demo-ledger` runs them, give the committed files."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_generate", DEMO.parent / "generate.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generator  # its dataclasses look their module up
    spec.loader.exec_module(generator)
    root = tmp_path / "demo"
    shutil.copytree(DEMO.parent, root, ignore=shutil.ignore_patterns(".*", "outbox", "log"))
    files, _txns, _sims = generator.generate()
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    result = CliRunner().invoke(
        main, ["close-day", str(root / "main.beancount"), "--date", "2026-11-20"]
    )
    assert result.exit_code == 0, result.output
    assert "and 446 seals (2025-09-01 .. 2026-11-20)" in result.output
    committed = {
        path.relative_to(DEMO.parent): path.read_text()
        for path in DEMO.parent.rglob("*.beancount")
        if not path.name.startswith(".")
    }
    made = {
        path.relative_to(root): path.read_text()
        for path in root.rglob("*.beancount")
        if not path.name.startswith(".")
    }
    assert sorted(made) == sorted(committed)
    assert [name for name in committed if made[name] != committed[name]] == []
