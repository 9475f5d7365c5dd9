"""Check the ledger's seals: recorded history that changed without an amendment is an error.

``bean-credits close-day`` seals every day it closes (``custom "credits-seal"``: a
SHA-256 over the day's written entries in a canonical form and the previous
seal's digest; see :mod:`beancount_credits.engine.seal` and ``docs/seals.md``). This
plugin recomputes the chain at every load. If any entry of a sealed day was
changed, added, removed or re-dated, or a seal was removed or edited, it reports
one error at the first broken seal, naming the day and what differs::

    log/2026/02.beancount:1234: sealed history changed on 2026-02-28:
      u-1008 2026-03-01: recorded balance removed; ...

``bean-credits verify`` then names the commits that made the change;
``bean-credits amend`` records a legitimate change and seals the days again.
A ledger without seals is not affected. Enable it in the main file (anywhere
among the plugins; it reads written entries only)::

    plugin "beancount_credits.plugins.seal"

It takes the same optional configuration dict as the other plugins (no key
changes what it checks).
"""

from __future__ import annotations

from typing import Any

from beancount.core import data

from beancount_credits.engine import CreditsError, loadstamp
from beancount_credits.engine import seal as seals
from beancount_credits.engine.config import ConfigError, parse_config

__plugins__ = ("seal",)

PLUGIN = "beancount_credits.plugins.seal"


def seal(
    entries: list[data.Directive], options_map: dict[str, Any], config_str: str | None = None
) -> tuple[list[data.Directive], list[CreditsError]]:
    """Recompute the seals' chain; one error at the first broken seal."""
    loadstamp.stamp(options_map)
    try:
        parse_config(config_str)
    except ConfigError as exc:
        meta = data.new_metadata("<" + PLUGIN + ">", 0)
        return entries, [CreditsError(meta, f"{PLUGIN}: {exc}", None)]
    state = seals.check(entries)
    if not state.problems:
        return entries, []
    return entries, [error_of(state)]


def error_of(state: seals.ChainState) -> CreditsError:
    """The first broken seal as an error; later broken days are counted in its message."""
    first = state.problems[0]
    later = [problem for problem in state.problems[1:] if problem.content_changed]
    message = first.message
    if len(later) == 1:
        message += f"; 1 later sealed day changed too ({later[0].day})"
    elif later:
        message += (
            f"; {len(later)} later sealed days changed too ({later[0].day} .. {later[-1].day})"
        )
    message += " (bean-credits verify names the commits; bean-credits amend records a change)"
    return CreditsError(first.entry.meta, message, first.entry)


def enabled(options_map: dict[str, Any]) -> bool:
    """True when the ledger lists this plugin: close-day then seals the days it closes."""
    return any(name == PLUGIN for name, _config in options_map.get("plugin") or ())
