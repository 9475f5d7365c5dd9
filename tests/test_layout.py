"""The package's folders are its architecture: the plugins stand on the engine alone.

Importing every plugin (what ``bean-check`` does) loads no module of the
ledger's file handling, the jobs, the reports, the exports, the columnar
export, the audit tools, the importers, the CLI or the Fava extension: a fresh
interpreter imports them and lists what of the package it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

PLUGINS = [
    "beancount_credits.plugins.expire",
    "beancount_credits.plugins.daily_balances",
    "beancount_credits.plugins.policy",
    "beancount_credits.plugins.settings",
    "beancount_credits.plugins.seal",
]
EDGE_LIBRARIES = [
    "fava",
    "flask",
    "beanquery",
    "duckdb",
    "pyarrow",
    "smtplib",
    "click",
    "urllib.request",
]
OUTSIDE = ("ledger", "jobs", "reports", "exports", "columnar", "audit", "importers", "cli", "fava")


def test_plugins_import_only_the_engine() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {PLUGINS!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('beancount_credits'))))\n"
        f"print(json.dumps([m for m in {EDGE_LIBRARIES!r} if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    package, libraries = result.stdout.splitlines()
    loaded = [name for name in json.loads(package) if "." in name]
    assert set(PLUGINS) <= set(loaded)
    outside = [name for name in loaded if name.split(".")[1] in OUTSIDE]
    assert outside == []
    assert {name.split(".")[1] for name in loaded} <= {"engine", "plugins"}
    # ... and none of the libraries of the edges (web, queries, columnar, mail, CLI).
    assert json.loads(libraries) == []


def test_no_module_points_outside_the_repository() -> None:
    sources = [*(ROOT / "beancount_credits").rglob("*.py"), *(ROOT / "tests").glob("*.py")]
    outside = ("DESIGN" + ".md", "../" + "shared")  # split: this file would match itself
    offenders = [
        str(path.relative_to(ROOT))
        for path in sources
        if any(text in path.read_text() for text in outside)
    ]
    assert offenders == []
