"""Render page 1 of every report's PDF export on the demo ledger to docs/report-NAME.png.

    make docs-pdf        # or: .venv/bin/python docs/pdf_previews.py

Each report is exported the way a user would (``bean-credits report NAME
ledgers/demo/main.beancount --format pdf -o ...``), then its first page is
rendered with pdftoppm (Debian package poppler-utils). A report missing from
ARGS is rendered with ``--to`` only, so a new report gets a preview too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "ledgers" / "demo" / "main.beancount"
END = "2026-11-20"  # the demo ledger's last closed day
DPI = 80

# The filters that make each report's preview say something (beyond --to).
ARGS: dict[str, list[str]] = {
    "statement": ["--user", "org-acme"],
    "daily": ["--user", "org-acme", "--from", "2026-01-01"],
    "usage": ["--period", "month", "--from", "2026-01-01"],
}


def main() -> None:
    from beancount_credits.reports import REPORTS

    if shutil.which("pdftoppm") is None:
        sys.exit("pdftoppm not found: install poppler-utils (apt-get install poppler-utils)")
    cli = Path(sys.executable).parent / "bean-credits"
    with tempfile.TemporaryDirectory() as scratch:
        for name in sorted(REPORTS):
            pdf = Path(scratch) / f"{name}.pdf"
            ledger = str(DEMO.relative_to(ROOT))
            command = [str(cli), "report", name, ledger, "--to", END, *ARGS.get(name, [])]
            subprocess.run([*command, "-o", str(pdf)], check=True, cwd=ROOT)
            target = ROOT / "docs" / f"report-{name}"
            subprocess.run(
                [
                    *("pdftoppm", "-f", "1", "-l", "1", "-r", str(DPI), "-png", "-singlefile"),
                    *(str(pdf), str(target)),
                ],
                check=True,
            )
            print(f"docs/report-{name}.png  <- {' '.join(command[1:])}")


if __name__ == "__main__":
    main()
