"""No stale results after a code change, whatever Beancount's pickle cache holds.

A copy of the package is put first on the path of fresh processes, which run
``bean-check`` and ``bean-credits report`` with the pickle cache on (its
one-second threshold lowered, so a small ledger is cached). After an edit of
the copy's engine, the next cached run gives the new code's output, in both
directions: a new error appears, and a fixed one goes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from beancount import loader

import beancount_credits
from beancount_credits.engine import loadstamp

PACKAGE = Path(beancount_credits.__file__).resolve().parent

LEDGER = """\
plugin "beancount_credits.plugins.expire"

2024-01-01 commodity CREDIT
2024-01-01 open Income:Credits:Purchase
2024-01-01 open Expenses:Credits:Sessions
2024-01-01 open Equity:Credits:Breakage
2024-01-01 open Assets:Credits:Users:Alice
  user_id: "alice"

2024-01-02 * "Purchase"
  txn_id: "p-1"
  expires: 2024-02-01
  Assets:Credits:Users:Alice   20 CREDIT
  Income:Credits:Purchase

2024-01-03 * "Session"
  txn_id: "r-1"
  Assets:Credits:Users:Alice   -30 CREDIT
  Expenses:Credits:Sessions

2024-03-01 balance Assets:Credits:Users:Alice  -10 CREDIT
"""

CACHED = """\
import sys
from beancount import loader
loader.PICKLE_CACHE_THRESHOLD = 0  # cache even a small ledger
loader.initialize(True)
if sys.argv[1] == "check":
    from beancount.scripts.check import main
    sys.argv = ["bean-check", *sys.argv[2:]]
else:
    from beancount_credits.cli import main
    sys.argv = ["bean-credits", *sys.argv[1:]]
main()
"""


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root / "site")}
    return subprocess.run(
        [sys.executable, "-c", CACHED, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,  # python -c puts the working folder first on the path
        check=False,
    )


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / "site" / "beancount_credits" / relative
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_cached_load_reflects_the_installed_code(tmp_path: Path) -> None:
    shutil.copytree(PACKAGE, tmp_path / "site" / "beancount_credits")
    ledger = tmp_path / "ledger.beancount"
    ledger.write_text(LEDGER)
    cache = Path(loader.get_cache_filename(loader.PICKLE_CACHE_FILENAME, str(ledger)))

    first = run(tmp_path, "check", str(ledger))
    assert "exceeds the 20 CREDIT available" in first.stderr, first.stderr
    assert cache.exists()
    assert run(tmp_path, "check", str(ledger)).stderr == first.stderr  # from the cache

    # The error's wording changes: the cached run says it the new way.
    edit(
        tmp_path,
        "engine/booking.py",
        'f"{self.user_label(wallet.account)!r} on {entry.date} exceeds the "',
        'f"{self.user_label(wallet.account)!r} on {entry.date} goes beyond the "',
    )
    second = run(tmp_path, "check", str(ledger))
    assert "goes beyond the 20 CREDIT available" in second.stderr, second.stderr
    assert "exceeds the" not in second.stderr

    # A credit limit by default: the error goes, and so does it from the cache.
    edit(
        tmp_path,
        "engine/booking.py",
        "limit, limit_currency = self.limits.get(account, (ZERO, None))",
        "limit, limit_currency = self.limits.get(account, (Decimal(100), None))",
    )
    third = run(tmp_path, "check", str(ledger))
    assert third.returncode == 0 and third.stderr == "", third.stderr

    # bean-credits reads through the same cache: the new code's report.
    report = run(
        tmp_path, "report", "statement", str(ledger), "--user", "alice", "--to", "2024-03-01"
    )
    assert report.returncode == 0, report.stderr
    assert "Expired credits of grant p-1" not in report.stdout  # nothing left to expire
    edit(
        tmp_path,
        "engine/booking.py",
        "limit, limit_currency = self.limits.get(account, (Decimal(100), None))",
        "limit, limit_currency = self.limits.get(account, (ZERO, None))",
    )
    again = run(
        tmp_path, "report", "statement", str(ledger), "--user", "alice", "--to", "2024-03-01"
    )
    assert again.returncode == 2 and "exceeds the" not in again.stderr
    assert "goes beyond the 20 CREDIT available" in again.stderr


def test_the_stamp_keeps_fava_s_file_list_and_the_result_out_of_the_cache(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.beancount"
    ledger.write_text(LEDGER)
    _entries, _errors, options = loader._load([(str(ledger), True)], None, None, None)
    assert options["include"] == [str(ledger)]  # no Python file in Fava's editor list
    stamp = options[loadstamp.OPTION_KEY]
    assert stamp.digest == loadstamp.code_digest() and stamp.result is not None
    import pickle

    revived = pickle.loads(pickle.dumps(options))
    assert revived[loadstamp.OPTION_KEY].result is None
    assert revived["include"] == [str(ledger)]
    assert not loader.needs_refresh(revived)


MAIN_WITH_GLOB = """\
plugin "beancount_credits.plugins.expire"
include "imports/*.beancount"

2024-01-01 commodity CREDIT
2024-01-01 open Income:Credits:Purchase
2024-01-01 open Assets:Credits:Users:Alice
  user_id: "alice"
"""

BATCH = """\
2024-01-0{day} * "Purchase"
  txn_id: "p-{day}"
  Assets:Credits:Users:Alice   {amount} CREDIT
  Income:Credits:Purchase
"""


def test_a_cached_load_sees_a_file_new_under_an_include_glob(tmp_path: Path) -> None:
    """An import batch or a new month of the log, added under an include glob: Beancount's
    cache hashes only the files its load parsed, the stamp notices the new one."""
    shutil.copytree(PACKAGE, tmp_path / "site" / "beancount_credits")
    ledger = tmp_path / "main.beancount"
    ledger.write_text(MAIN_WITH_GLOB)
    (tmp_path / "imports").mkdir()
    (tmp_path / "imports" / "a.beancount").write_text(BATCH.format(day=2, amount=20))
    cache = Path(loader.get_cache_filename(loader.PICKLE_CACHE_FILENAME, str(ledger)))
    args = ("report", "balances", str(ledger), "--to", "2024-01-31")

    first = run(tmp_path, *args)
    assert first.returncode == 0, first.stderr
    assert cache.exists()
    assert first.stdout.splitlines()[-1].split() == ["alice", "20"]
    (tmp_path / "imports" / "b.beancount").write_text(BATCH.format(day=3, amount=5))
    second = run(tmp_path, *args)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1].split() == ["alice", "25"], second.stdout
    third = run(tmp_path, *args)  # the cache written by the second run holds both
    assert third.stdout == second.stdout
