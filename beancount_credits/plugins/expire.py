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

or with a configuration dict (see :mod:`beancount_credits.engine.config` for the keys)::

    plugin "beancount_credits.plugins.expire" "{'breakage': 'Equity:Expired'}"

Entries it makes carry the generated mark (``engine.GENERATED_KEY``), which
ledger text cannot hold: however the ledger is loaded (``load_file``,
``load_string``, Fava) they are told apart from written ones by it.

Expiries written into the ledger text (by ``bean-credits close-day``) are
recognised by their Transaction ID (``<grant id>:expiry``) and not generated
again; if their amount or date no longer matches, that is an error.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from beancount.core import data

from beancount_credits import engine
from beancount_credits.engine import loadstamp
from beancount_credits.engine.collector import paused_gc
from beancount_credits.engine.config import ConfigError, parse_config

__plugins__ = ("expire",)


def expire(
    entries: list[data.Directive], options_map: dict[str, Any], config_str: str | None = None
) -> tuple[list[data.Directive], list[engine.CreditsError]]:
    """Run the grant engine over the entries."""
    loadstamp.stamp(options_map)
    try:
        config = parse_config(config_str)
    except ConfigError as exc:
        meta = data.new_metadata(engine.GENERATED_FILENAME, 0)
        return entries, [
            engine.CreditsError(meta, f"beancount_credits.plugins.expire: {exc}", None)
        ]
    # The pass's records hold no reference cycles: the cyclic collector's
    # passes over the loaded ledger during it would free nothing.
    with paused_gc():
        # Unsorted: Beancount sorts the entries after every plugin (a stable
        # sort on the same key, so the order is the same as sorting here).
        result = engine.run(entries, config, record=False, sort=False)
    # The grant state of this load, for the tools that read the same load (the
    # Fava page): kept on this load's options map, in memory only.
    loadstamp.stamp(options_map, dataclasses.replace(result, entries=[], errors=[]))
    return result.entries, result.errors
