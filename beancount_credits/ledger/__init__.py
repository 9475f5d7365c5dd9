"""The ledger as files: loading it, checking a change, writing it, and its git history.

- :mod:`.load`: :func:`load` (Beancount's loader, plugins on) gives a
  :class:`Ledger`: entries, errors, users, and the ledger as of any day;
- :mod:`.incremental`: Beancount's load pipeline run step by step, so a
  writer checks its change without parsing and booking unchanged files again;
- :mod:`.write`: the write path (lock, journal, atomic renames, the check,
  the commit); :mod:`.render` renders entries as text that cannot inject
  directives, and :mod:`.text` reads ledger text and cuts it into lines the
  way Beancount counts them.
"""

from beancount_credits.engine.users import User, index_users
from beancount_credits.ledger.load import (
    Ledger,
    LedgerError,
    find_config,
    format_errors,
    load,
)

__all__ = ["Ledger", "LedgerError", "User", "find_config", "format_errors", "index_users", "load"]
