"""Beancount's load pipeline, keeping what a check of a changed ledger can reuse.

Every write is checked by loading the ledger as it would be after the change
(:mod:`beancount_credits.ledger.write`). Loading it from scratch repeats the writer's
own load: on a 100k-transaction ledger that doubles the daily job. Parsing and
booking are two thirds of a load, and for a file that did not change they give
the same entries again. So a writer may load with :func:`load`, which runs the
same steps as Beancount's ``loader._load`` (parse, sort, book, plugins,
validate) and keeps the parsed and booked entries, and then :func:`check` a
change by parsing and booking only the changed files, putting them in place of
their old entries, and running the plugins and the validations over the whole
ledger again, as ``bean-check`` would.

:func:`check` says it cannot (returns None; the caller then loads a staging copy
from scratch) whenever reusing could give a different answer:

- a file of the ledger changed on disk since it was loaded;
- the change touches the main file, or adds an ``include``, ``option`` or
  ``plugin`` line (the set of files, the options or the plugins would change);
- a new file is not matched by an ``include`` glob of the loaded files;
- the changed entries, old or new, hold a posting at cost, or touch an account
  that holds lots at cost (booking such a posting depends on the others);
- the load had "file missing" or "glob matches nothing" errors.

Entries that sort equal (date, type, line) across files keep Beancount's order:
the order the files were parsed in, new files last.

Both run with the cyclic garbage collector paused: a load allocates millions
of objects that live on, and the collector's passes over them are a sixth of
the load's time while finding nothing to free (entries hold no cycles;
reference counting still frees everything else at once).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from beancount import loader
from beancount.core import data
from beancount.ops import validation
from beancount.parser import booking, parser
from beancount.utils import misc_utils

from beancount_credits.engine.collector import paused_gc
from beancount_credits.engine.includes import include_patterns as include_patterns
from beancount_credits.ledger import pipeline

# Lines that would change the files, the options or the plugins of the ledger.
_STRUCTURE_RE = re.compile(r"^[ \t]*(include|option|plugin)\b", re.MULTILINE)


@dataclasses.dataclass
class Prepared:
    """A load's parsed and booked entries (before plugins), per file."""

    main: Path
    options: dict[str, Any]
    booked: list[data.Directive]
    early_errors: list  # parse and booking errors
    stats: dict[str, tuple[int, int, int]]  # file -> (inode, size, mtime_ns) as parsed
    file_rank: dict[str, int]  # file -> order it was parsed in
    cost_accounts: frozenset[str]  # accounts with a posting at cost


def stat_key(filename: str) -> tuple[int, int, int]:
    status = os.stat(filename)
    return (status.st_ino, status.st_size, status.st_mtime_ns)


def _transform_and_validate(
    booked: list[data.Directive],
    early_errors: list,
    options: dict[str, Any],
    log_timings: Callable[[str], Any] | None = None,
) -> tuple[list[data.Directive], list]:
    """Plugins and validations, as ``loader._load`` runs them (``log_timings``: its timing log)."""
    saved_pythonpath = list(sys.path)
    try:
        if "pythonpath" in options:
            sys.path[0:0] = options["pythonpath"]
        with misc_utils.log_time("run_transformations", log_timings, indent=1):
            entries, errors = loader.run_transformations(booked, early_errors, options, log_timings)
    finally:
        sys.path[:] = saved_pythonpath
    with misc_utils.log_time("beancount.ops.validate", log_timings, indent=1):
        errors.extend(validation.validate(entries, options, log_timings, None))
    return entries, errors


def _filename(entry: data.Directive) -> str | None:
    meta = entry.meta
    return meta.get("filename") if meta else None


def load(main: Path) -> tuple[list[data.Directive], list, dict[str, Any], Prepared]:
    """Load ``main`` exactly as Beancount's loader does (no pickle cache), keeping a Prepared."""
    with paused_gc():
        return _load(main.resolve())


def _load(
    main: Path, log_timings: Callable[[str], Any] | None = None
) -> tuple[list[data.Directive], list, dict[str, Any], Prepared]:
    """The steps of ``loader._load``; ``log_timings`` gets its timing lines (bench/profile_load)."""
    with misc_utils.log_time("parse", log_timings, indent=1):
        entries, early_errors, options = pipeline.parse_tree([main], log_timings)
        stats = {name: stat_key(name) for name in options["include"] if os.path.exists(name)}
        file_rank: dict[str, int] = {}
        for entry in entries:
            name = _filename(entry)
            if name is not None and name not in file_rank:
                file_rank[name] = len(file_rank)
        entries.sort(key=data.entry_sortkey)
    with misc_utils.log_time("booking", log_timings, indent=1):
        booked, booking_errors = booking.book(entries, options)
    early_errors.extend(booking_errors)
    cost_accounts = frozenset(
        posting.account
        for entry in booked
        if isinstance(entry, data.Transaction)
        for posting in entry.postings
        if posting.cost is not None
    )
    prepared = Prepared(main, options, booked, list(early_errors), stats, file_rank, cost_accounts)
    entries, errors = _transform_and_validate(booked, early_errors, options, log_timings)
    options["input_hash"] = loader.compute_input_hash(options["include"])
    return entries, errors, options, prepared


def _included_by_globs(prepared: Prepared, path: Path) -> bool:
    """Whether an ``include`` of a loaded file matches ``path`` (as glob would)."""
    target = os.path.normpath(str(path))
    for name in prepared.stats:
        with open(name, "rb") as handle:
            text = handle.read()
        for pattern in include_patterns(name, text):
            if "**" in pattern or "\\" in pattern:
                continue  # recursive globs and escapes: leave them to the full check
            if _glob_matches(pattern, target):
                return True
    return False


def _glob_matches(pattern: str, path: str) -> bool:
    """``glob``'s matching for one path: component by component, hidden names explicit."""
    parts, names = pattern.split(os.sep), path.split(os.sep)
    if len(parts) != len(names):
        return False
    for part, name in zip(parts, names, strict=True):
        if name.startswith(".") and not part.startswith("."):
            return False
        if not fnmatch.fnmatchcase(name, part):
            return False
    return True


def _touches_cost(entries: Sequence[data.Directive], cost_accounts: frozenset[str]) -> bool:
    for entry in entries:
        if isinstance(entry, data.Transaction):
            for posting in entry.postings:
                if posting.cost is not None or posting.account in cost_accounts:
                    return True
    return False


def check(prepared: Prepared, changes: dict[Path, str]) -> list | None:
    """The errors of the ledger with ``changes`` (path -> new text), or None if not reusable."""
    with paused_gc():
        return _check(prepared, changes)


def _check(prepared: Prepared, changes: dict[Path, str]) -> list | None:
    main = str(prepared.main)
    changed = {os.path.normpath(str(path.resolve())): text for path, text in changes.items()}
    if main in changed:
        return None
    for name, key in prepared.stats.items():
        if not os.path.exists(name) or stat_key(name) != key:
            return None
    if any(
        error.source and error.source.get("filename") == "<load>" for error in prepared.early_errors
    ):
        return None
    for name, text in changed.items():
        if _STRUCTURE_RE.search(text):
            return None
        if name not in prepared.stats and not _included_by_globs(prepared, Path(name)):
            return None

    new_entries: list[data.Directive] = []
    new_errors: list = []
    for name, text in changed.items():
        entries, errors, file_options = parser.parse_string(text, report_filename=name)
        new_entries.extend(entries)
        new_errors.extend(errors)
        prepared.options["dcontext"].update_from(file_options["dcontext"])
    old_entries = [entry for entry in prepared.booked if _filename(entry) in changed]
    if _touches_cost(new_entries, prepared.cost_accounts) or _touches_cost(
        old_entries, prepared.cost_accounts
    ):
        return None
    new_entries.sort(key=data.entry_sortkey)
    new_booked, booking_errors = booking.book(new_entries, prepared.options)

    rank = dict(prepared.file_rank)
    for name in sorted(changed):
        rank.setdefault(name, len(rank))
    last = len(rank)
    merged = [entry for entry in prepared.booked if _filename(entry) not in changed]
    merged.extend(new_booked)
    merged.sort(key=lambda entry: (data.entry_sortkey(entry), rank.get(_filename(entry), last)))  # type: ignore[arg-type]

    early_errors = [
        error
        for error in prepared.early_errors
        if (error.source or {}).get("filename") not in changed
    ]
    early_errors.extend(new_errors)
    early_errors.extend(booking_errors)
    _entries, errors = _transform_and_validate(merged, early_errors, prepared.options)
    return errors
