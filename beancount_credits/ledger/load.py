"""Load a credits ledger for the tools: entries, errors, users and the grant ledger.

Every command and report reads the ledger through :func:`load`, which runs
Beancount's own loader (plugins on, exactly what ``bean-check`` sees), finds the
plugin configuration the ledger uses and indexes the users by their
``user_id``. What a tool answers for a day comes from :meth:`Ledger.at`: the
ledger as of that day (:mod:`beancount_credits.engine.asof`), its entries and grant
ledger booked by the engine through the day.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
import time
from pathlib import Path

from beancount import loader
from beancount.core import data

from beancount_credits import engine
from beancount_credits.engine import asof
from beancount_credits.engine.config import EXPIRE_PLUGIN, ConfigError, CreditsConfig, parse_config
from beancount_credits.engine.users import User, index_users
from beancount_credits.ledger import incremental, pipeline, write

log = logging.getLogger(__name__)


class LedgerError(Exception):
    """A ledger the tools cannot use; the message says why."""


@dataclasses.dataclass
class Ledger:
    """A loaded credits ledger, or (``day`` set) that ledger as of a day."""

    path: Path
    entries: list[data.Directive]
    errors: list
    options: dict
    config: CreditsConfig
    users: dict[str, User]  # by user_id
    # A writer's load keeps its parsed and booked entries to check its change cheaply.
    prepared: incremental.Prepared | None = None
    # The day this view answers for (None: the ledger as loaded).
    day: datetime.date | None = None
    # The ledger as of any day, shared by a load and its views (one owner: asof).
    timeline: asof.Timeline = dataclasses.field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.timeline is None:
            self.timeline = asof.Timeline(self.entries, self.config)

    @functools.cached_property
    def grants(self) -> engine.EngineResult:
        """The grant ledger: as of ``day`` on a view, else through the ledger's horizon."""
        if self.day is not None:
            return self.timeline.at(self.day).result
        with incremental.paused_gc():  # as for the load: its records hold no cycles
            return self.timeline.base

    def as_of(self, day: datetime.date) -> asof.AsOf:
        """The ledger as of the end of ``day`` (:mod:`beancount_credits.engine.asof`)."""
        with incremental.paused_gc():
            return self.timeline.at(day)

    def at(self, day: datetime.date) -> Ledger:
        """This ledger as of the end of ``day``: its entries through the day with the
        expiries due by then booked, and the grant ledger at its end."""
        view = self.as_of(day)
        ledger = dataclasses.replace(self, entries=view.entries, day=day, prepared=None)
        ledger.__dict__["grants"] = view.result
        return ledger

    def user(self, user_id: str) -> User:
        """The user with this id, or LedgerError naming the id."""
        try:
            return self.users[user_id]
        except KeyError:
            raise LedgerError(
                f'unknown user id {user_id!r}: no open directive with user_id: "{user_id}" '
                f"under {self.config.users} in {self.path}"
            ) from None


def find_config(options: dict) -> CreditsConfig:
    """The configuration of the ledger's expire plugin (defaults if it has none)."""
    for name, config_str in options.get("plugin", []):
        if name == EXPIRE_PLUGIN:
            try:
                return parse_config(config_str)
            except ConfigError as exc:
                raise LedgerError(f"{EXPIRE_PLUGIN}: {exc}") from None
    return CreditsConfig()


def load(path: str | Path, cache: bool = True, for_write: bool = False) -> Ledger:
    """Load a ledger with Beancount's loader and index it for the tools.

    Runs with the cyclic garbage collector paused (:func:`incremental.paused_gc`):
    the same entries and errors as bean-check, faster (``bench/profile_load.py``).
    ``cache=False`` skips Beancount's pickle cache: a command that is about to
    change the ledger would only pay for dumping a cache it makes stale.
    ``for_write=True`` (implies no cache) runs the same steps keeping the
    parsed and booked entries, so the write path can check the change without
    parsing and booking the unchanged files again (:mod:`.incremental`).
    """
    path = Path(path)
    if not path.is_file():
        raise LedgerError(f"no ledger file at {path}")
    try:
        pending = write.pending_write(path)
    except write.WriteError as exc:
        raise LedgerError(str(exc)) from None
    if pending is not None:
        raise LedgerError(
            f"{path}: a write was interrupted half-way ({pending}); run "
            f"bean-credits recover {path} to complete it (the next bean-credits write "
            "also completes it first)"
        )
    prepared = None
    started = time.perf_counter()
    if for_write:
        entries, errors, options, prepared = incremental.load(path)
    else:
        # The collector paused, as for writers: its passes over the millions of
        # objects a load keeps are a sixth of the load and free nothing.
        with incremental.paused_gc():
            if cache:
                entries, errors, options = loader.load_file(str(path))
            else:
                entries, errors, options = pipeline.load_uncached(path.resolve())
    log.info(
        "loaded %s: %d entries, %d error(s) in %.2f s%s",
        path,
        len(entries),
        len(errors),
        time.perf_counter() - started,
        " (kept for the write's check)" if for_write else "",
    )
    config = find_config(options)
    return Ledger(
        path=path,
        entries=entries,
        errors=errors,
        options=options,
        config=config,
        users=index_users(entries, config),
        prepared=prepared,
    )


def format_errors(errors: list, limit: int = 20) -> str:
    """Errors as Beancount prints them (file:line: message), at most ``limit``."""
    lines = []
    for error in errors[:limit]:
        source = error.source or {}
        lines.append(f"{source.get('filename', '?')}:{source.get('lineno', '?')}: {error.message}")
    if len(errors) > limit:
        lines.append(f"... and {len(errors) - limit} more")
    return "\n".join(lines)
