"""Write the seal plugin's ledger cases (run from the repository root, then UPDATE_CASES=1).

    .venv/bin/python tests/cases/seal/make_cases.py
    UPDATE_CASES=1 .venv/bin/python -m pytest tests/test_cases.py -k seal

Each case is one file: a small ledger sealed by the real ``bean-credits
close-day`` (its log folded into the file, as a seal does not depend on where an
entry is written), then changed the way its name says. Run it again only when
the canonical form changes (docs/seals.md), and review the diff.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

LEDGER = """\
plugin "beancount_credits.plugins.expire"
plugin "beancount_credits.plugins.daily_balances"
plugin "beancount_credits.plugins.seal"

2024-01-01 commodity CREDIT
2024-01-01 open Income:Credits:Promotion
  expire_after: "30d"
2024-01-01 open Income:Credits:Purchase
2024-01-01 open Expenses:Credits:Sessions
2024-01-01 open Equity:Credits:Breakage
2024-01-01 open Assets:Credits:Users:Alice
  user_id: "alice"
2024-01-01 open Assets:Credits:Users:Bob
  user_id: "bob"

2024-01-02 * "Purchase"
  txn_id: "p-1"
  Assets:Credits:Users:Alice   100 CREDIT
  Income:Credits:Purchase

2024-01-02 * "Welcome"
  txn_id: "promo-1"
  Assets:Credits:Users:Bob   20 CREDIT
  Income:Credits:Promotion

2024-01-03 * "Session s-1"
  txn_id: "r-1"
  Assets:Credits:Users:Alice   -30 CREDIT
  Expenses:Credits:Sessions

2024-01-04 * "Session s-2"
  txn_id: "r-2"
  Assets:Credits:Users:Bob   -5 CREDIT
  Expenses:Credits:Sessions
"""


def sealed(through: str) -> str:
    """The ledger sealed by close-day through ``through``, log folded in."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "main.beancount").write_text(LEDGER)
        command = [str(BIN / "bean-credits"), "close-day", "main.beancount", "--date", through]
        subprocess.run(command, cwd=root, check=True, capture_output=True)
        main = (root / "main.beancount").read_text()
        main = main.split("\n; The daily job's log")[0].rstrip("\n") + "\n"
        logs = "".join(
            re.sub(r"^; .*\n", "", path.read_text())
            for path in sorted((root / "log").glob("*/*.beancount"))
        )
        return main + "\n; --- the daily log and its seals, as close-day wrote them ---\n" + logs


def change(text: str, old: str, new: str, count: int = 1) -> str:
    assert old in text, old
    return text.replace(old, new, count)


def main() -> None:
    clean = sealed("2024-02-05")  # promo-1 expires on 2024-02-01: a recorded expiry
    expiry = r'2024-02-01 \* "Expired credits of grant promo-1"[^\n]*\n(  [^\n]*\n)*'
    seal_10 = r'2024-01-10 custom "credits-seal"[^\n]*\n(  [^\n]*\n)*'
    digest_03 = r'(2024-01-03 custom "credits-seal" ")(.)'
    by_hand = (
        '\n2024-01-06 * "By hand"\n  txn_id: "x-1"\n'
        "  Assets:Credits:Users:Bob   5 CREDIT\n  Income:Credits:Purchase\n"
    )
    cases = {
        "clean": "; A sealed ledger: every seal holds.\n" + clean,
        "unsealed": "; The plugin on a ledger without seals: nothing to check.\n" + LEDGER,
        "amount_changed": "; r-1's amount changed after its day was sealed.\n"
        + change(clean, "Alice   -30 CREDIT", "Alice   -31 CREDIT"),
        "balance_removed": "; A recorded end-of-day balance removed.\n"
        + change(clean, "2024-01-04 balance Assets:Credits:Users:Alice  70 CREDIT\n", ""),
        "expiry_removed": "; The recorded expiry of promo-1 removed (the plugin makes it again).\n"
        + re.sub(expiry, "", clean),
        "seal_removed": "; The seal of 2024-01-10 removed.\n" + re.sub(seal_10, "", clean),
        "digest_edited": "; The digest of the seal of 2024-01-03 edited.\n"
        + re.sub(digest_03, lambda m: m.group(1) + "01"[m.group(2) == "0"], clean),
        "moved_to_another_wallet": "; r-1 moved from Alice's wallet to Bob's.\n"
        + change(clean, "Users:Alice   -30 CREDIT", "Users:Bob   -30 CREDIT"),
        "redated": "; r-2 re-dated from 2024-01-04 to 2024-01-05.\n"
        + change(clean, '2024-01-04 * "Session s-2"', '2024-01-05 * "Session s-2"'),
        "backdated_added": "; A transaction added by hand on a sealed day.\n" + clean + by_hand,
    }
    for name, text in cases.items():
        (HERE / f"{name}.beancount").write_text(text)
        print(f"wrote tests/cases/seal/{name}.beancount")


if __name__ == "__main__":
    main()
