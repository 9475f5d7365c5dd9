"""Fava's import page for the demo ledger: the event importers (see fava-import.beancount)."""

from beancount_credits.importers.config import CONFIG, HOOKS

__all__ = ["CONFIG", "HOOKS"]
