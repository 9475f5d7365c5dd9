"""Shared test helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "ledgers" / "demo" / "main.beancount"
DAILY = Path(__file__).parent / "daily"


@pytest.fixture
def demo_ledger() -> Path:
    return DEMO


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """A copy of the fixture ledger in a fresh git repository."""
    root = tmp_path / "ledger"
    shutil.copytree(DAILY, root)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "Ledger as imported")
    return root / "main.beancount"


def git(root: Path, *args: str, author: str = "Ops <ops@example.com>") -> str:
    name, _, email = author.partition(" <")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email.rstrip(">"),
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email.rstrip(">"),
    }
    result = subprocess.run(
        ["git", *args], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits made by the code under test need an identity, even on a fresh machine."""
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Daily Job")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "daily-job@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Daily Job")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "daily-job@example.com")


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    """One local Spark session for the whole run (Java from Debian, see the Makefile)."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("beancount-credits-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        # Inputs of a few thousand rows: planning and code generation are most of
        # a query's time, so skip adaptive re-planning and whole-stage codegen.
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
