"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "ledgers" / "demo" / "main.beancount"


@pytest.fixture
def demo_ledger() -> Path:
    return DEMO
