"""The two steps of Beancount's loader that the package calls on their own.

Beancount 3's public loader (``loader.load_file``) parses, books, runs the
plugins and validates in one call, through its pickle cache. The package needs
two of its steps apart:

- :func:`parse_tree`: the directives of a ledger's files, includes followed,
  with no booking and no plugins (the importer's plan, the period close's chart
  of accounts, a closed period's archive, the incremental check's parse);
- :func:`load_uncached`: a full load that neither reads nor writes the pickle
  cache (a staging copy's check, whose cache would be thrown away and costs
  seconds to write on a large ledger).

Beancount keeps both private (``loader._parse_recursive``,
``loader._uncached_load_file``). This module is the only caller, so a Beancount
release that changes them breaks here, and ``tests/test_pipeline.py`` pins
what the package relies on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from beancount import loader
from beancount.core import data

Parsed = tuple[list[data.Directive], list[Any], dict[str, Any]]


def parse_tree(files: Sequence[Path], log_timings: Callable[[str], Any] | None = None) -> Parsed:
    """Parse ``files`` and every file they include: (directives, parse errors, options).

    The options are the first file's; ``options["include"]`` lists every file
    parsed. A relative path is resolved; an absolute one is kept as given (the
    entries' ``filename`` is that path). A file parsed twice or missing is an error.
    """
    sources = [(str(path if path.is_absolute() else path.resolve()), True) for path in files]
    entries, errors, options = loader._parse_recursive(sources, log_timings)
    return entries, errors, options


def load_uncached(main: Path) -> Parsed:
    """Load ``main`` as ``bean-check`` does, without Beancount's pickle cache."""
    entries, errors, options = loader._uncached_load_file(
        str(main if main.is_absolute() else main.resolve()), None, None, None
    )
    return entries, errors, options
