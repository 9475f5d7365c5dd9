"""What a load of the ledger carries from this package's plugins: the code that made it.

Beancount's pickle cache (``.<ledger>.picklecache``) is keyed on the ledger
files only: after a change or an upgrade of this package a cached
``bean-check`` or ``bean-credits`` command would return what the old code
made, errors included. Every plugin of the package therefore puts a
:class:`LoadStamp` in the options map of the load it runs in, naming the code
(package version and a SHA-256 over the package's Python sources). Unpickling
a cached options map revives the stamp through :func:`_revive`, which compares
that digest with the installed code; when they differ it adds a marker to the
cached ``include`` list, so Beancount's own freshness check
(``loader.needs_refresh``, a hash over the include list) fails and the ledger
is loaded again with the installed plugins. The include list Fava shows (its
editor's file list) is never touched in a live load.

The stamp also carries, in memory only, the expire plugin's result for that
load (:func:`engine_result`): the Fava page reads the grant engine's state of
the very load it serves instead of running the engine again. It is never
pickled (a cached load has no plugin result), and it belongs to one options
map, so concurrent loads of several ledgers never see each other's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from beancount_credits import __version__
from beancount_credits.engine.includes import unlisted

OPTION_KEY = "beancount_credits"
STALE_MARKER = "<beancount_credits: the code or the included files changed since the cache>"
_PACKAGE = Path(__file__).resolve().parent.parent  # beancount_credits/


def code_digest() -> str:
    """SHA-256 over the package version and every Python source of the package.

    Read anew on each call (a few milliseconds): no module-level cache, so an
    edited source is seen by the same process.
    """
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(_PACKAGE)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


class LoadStamp:
    """The code that made a load, and (in memory only) the expire plugin's result."""

    __slots__ = ("digest", "include", "result")

    def __init__(self, digest: str, include: list[str], result: Any = None) -> None:
        self.digest = digest
        self.include = include  # the load's include list (the same list object)
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:
        # The pickled form: the digest and the include list, never the result.
        return (_revive, (self.digest, self.include))

    def __repr__(self) -> str:  # Fava's options page prints it
        return f"beancount_credits {__version__} (code {self.digest[:12]})"


def _revive(digest: str, include: list[str]) -> LoadStamp:
    """Unpickle a stamp; mark the cached load stale when the code changed since, or
    when an include glob matches a file the cached load did not parse.

    Beancount's own check hashes the files the cached load included; a file
    added since under an ``include "imports/*.beancount"`` (an import batch, a
    new month of the balance log) is not among them.
    """
    if STALE_MARKER not in include and (
        digest != code_digest() or unlisted(name for name in include if not name.startswith("<"))
    ):
        include.append(STALE_MARKER)
    return LoadStamp(digest, include)


def stamp(options_map: dict[str, Any], result: Any = None) -> None:
    """Put the code's stamp in a load's options map (each plugin calls it).

    ``result``: the expire plugin's engine result for this load, kept in memory.
    """
    current = options_map.get(OPTION_KEY)
    if isinstance(current, LoadStamp):
        if result is not None:
            current.result = result
        return
    include = options_map.setdefault("include", [])
    options_map[OPTION_KEY] = LoadStamp(code_digest(), include, result)


def engine_result(options_map: dict[str, Any]) -> Any:
    """The expire plugin's result for the load of this options map (None if none ran)."""
    current = options_map.get(OPTION_KEY)
    return current.result if isinstance(current, LoadStamp) else None
