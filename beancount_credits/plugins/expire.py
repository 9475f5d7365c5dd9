"""Book credit grants, draw-downs and expiries (the grant engine as a plugin).

Every positive posting to a user wallet (``Assets:Credits:Users:<User>``) is a
grant; every negative one draws down the wallet's open grants of the same
commodity, lowest ``priority`` first, then soonest expiry, then oldest. A grant
expires at the start of its ``expires:`` date (from the posting, else the
transaction, else the source account's ``expire_after:``); on that date this
plugin adds an ``#expired`` transaction moving the remainder to
``Equity:Credits:Breakage``. Draw-downs beyond the available credits plus the
user's ``credit_limit`` are errors, duplicate ``txn_id`` values are errors,
``reverses:`` undoes a redemption or a grant, and each draw-down posting is
annotated with ``consumed:`` (the grants it used) and ``overdraft:``.

Enable it (before ``daily_balances``, which logs what this plugin books)::

    plugin "beancount_credits.plugins.expire"

or with a configuration dict (see :mod:`beancount_credits.config` for the keys)::

    plugin "beancount_credits.plugins.expire" "{'breakage': 'Equity:Expired'}"

Expiries written into the ledger text (by ``bean-credits close-day``) are
recognised by their Transaction ID (``<grant id>:expiry``) and not generated
again; if their amount or date no longer matches, that is an error.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from beancount.core import data

from beancount_credits import engine
from beancount_credits.config import ConfigError, parse_config

__plugins__ = ("expire",)

# The grant ledger of the last run and the options map it ran with: the Fava
# page (beancount_credits.page) reads the grants of the ledger Fava just loaded
# from here instead of running the engine again. Without the entries and
# errors, which the loader returns anyway.
last_result: tuple[dict[str, Any], engine.EngineResult] | None = None


def expire(
    entries: list[data.Directive], options_map: dict[str, Any], config_str: str | None = None
) -> tuple[list[data.Directive], list[engine.CreditsError]]:
    """Run the grant engine over the entries."""
    try:
        config = parse_config(config_str)
    except ConfigError as exc:
        meta = data.new_metadata(engine.GENERATED_FILENAME, 0)
        return entries, [
            engine.CreditsError(meta, f"beancount_credits.plugins.expire: {exc}", None)
        ]
    result = engine.run(entries, config, record=False)
    global last_result
    last_result = (options_map, dataclasses.replace(result, entries=[], errors=[]))
    return result.entries, result.errors
