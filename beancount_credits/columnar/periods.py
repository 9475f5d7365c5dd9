"""The periods of a ledger for the columnar export: which they are, their keys, their loads.

A ledger that was never closed is one period, the active one. After
``close-period`` it is the closed periods (``archive/<first>--<last>/``, read
through their ``index.beancount``) and the active period (main's opening
include names its first day). The export (:mod:`.columnar`) writes every
period's rows into files of their own and loads one period at a time, so its
memory is bounded by the largest period, never by the history.

A closed period is loaded from its archive alone: the archived files, the
carry-forward it opened with (the previous close's ``opening/`` file, which
the archive keeps beside its index) and the chart of accounts and settings of
the active ledger (opens, closes, commodities, custom directives: a close
leaves them in place), with the active ledger's options and plugins. That is
Beancount's own pipeline (parse, book, plugins, validation) on those entries:
the grant engine books the carried grants as their originals, so the period's
rows are those of the whole history.

:func:`period_key` says when a closed period must be exported again: a hash
of its archive files, of the opens, closes and commodities dated in or before
it (a source's ``unit_cost:`` or a wallet's ``credit_limit:`` changes its
rows) and of the plugins. Settings and users added later do not change it.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import glob
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from beancount.core import data
from beancount.parser import booking

from beancount_credits import engine
from beancount_credits.engine import seal
from beancount_credits.jobs import close_period as periods
from beancount_credits.ledger import (
    Ledger,
    find_config,
    format_errors,
    incremental,
    index_users,
    pipeline,
)

ONE_DAY = datetime.timedelta(days=1)
_ARCHIVE_NAME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})--(\d{4}-\d{2}-\d{2})$")
# What a closed period's rows depend on besides its archive.
CHART = (data.Open, data.Close, data.Commodity)


class PeriodError(Exception):
    """Periods the export cannot read as they are; the message says why."""


@dataclasses.dataclass(frozen=True)
class Period:
    """A closed period (``last`` and ``archive`` set) or the active one (open-ended)."""

    first: datetime.date | None  # None: an empty ledger that was never closed
    last: datetime.date | None = None
    archive: Path | None = None

    @property
    def closed(self) -> bool:
        return self.last is not None

    @property
    def tag(self) -> str:
        """What names the period's files: its first day."""
        return "0" if self.first is None else self.first.isoformat()

    @property
    def name(self) -> str:
        return f"{self.tag}--{self.last.isoformat() if self.last else ''}"

    def holds(self, date: datetime.date) -> bool:
        return (self.first is None or date >= self.first) and (
            self.last is None or date <= self.last
        )


def closed_periods(main: Path) -> list[Period]:
    """The closed periods behind the active ledger ``main``, oldest first (none if never closed)."""
    if periods.period_start(main.read_text(encoding="utf-8")) is None:
        return []  # as period.history_path: no opening include, no closed period
    found = []
    for index in periods.archives(main):
        match = _ARCHIVE_NAME_RE.fullmatch(index.parent.name)
        if match is None:
            raise PeriodError(
                f"{index.parent} is not named <first day>--<last day> as close-period names "
                "an archive"
            )
        first, last = (datetime.date.fromisoformat(day) for day in match.groups())
        found.append(Period(first, last, index.parent))
    return found


def check_contiguous(closed: list[Period], active: Period) -> None:
    """Every day belongs to one period: each starts the day after the one before it ends."""
    for before, after in zip(closed, [*closed[1:], active], strict=True):
        assert before.last is not None
        if after.first != before.last + ONE_DAY:
            where = f"archive {after.archive.name}" if after.archive else "the active period"
            raise PeriodError(
                f"the closed period archive/{before.archive.name if before.archive else '?'} "
                f"ends {before.last} but {where} starts {after.first}: the history has a gap "
                "or an overlap, so the export cannot tell which period a day belongs to"
            )


def first_day(ledger: Ledger) -> datetime.date | None:
    """The first day of a never-closed ledger's period, as close-period would name it."""
    return min(
        (entry.date for entry in ledger.entries if isinstance(entry, periods.MOVED)), default=None
    )


# --- Keys --------------------------------------------------------------------------------


def archive_files(period: Period) -> list[Path]:
    """The files of a closed period: its index, what the index includes, its opening file."""
    assert period.archive is not None
    index = period.archive / periods.INDEX_NAME
    files = {index}
    for pattern in incremental.include_patterns(str(index), index.read_bytes()):
        files.update(Path(found) for found in glob.glob(pattern, recursive=True))
    files.update((period.archive / periods.OPENING_DIR).glob("*.beancount"))
    return sorted(files)


def file_record(path: Path) -> dict[str, Any]:
    content = path.read_bytes()
    stat = path.stat()
    return {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": hashlib.sha256(content).hexdigest(),
    }


def chart_lines(entries: Iterable[data.Directive]) -> list[tuple[datetime.date, str]]:
    """Each open, close and commodity as a dated line of text (file and line left out)."""
    lines = []
    for entry in entries:
        if not isinstance(entry, CHART) or engine.is_generated(entry):
            continue
        meta = sorted(
            (key, repr(value))
            for key, value in (entry.meta or {}).items()
            if key not in ("filename", "lineno")
        )
        fields = tuple(getattr(entry, field) for field in entry._fields if field != "meta")
        lines.append((entry.date, repr((type(entry).__name__, fields, meta))))
    return lines


def period_key(
    fmt: str,
    period: Period,
    files: dict[str, dict[str, Any]],
    chart: list[tuple[datetime.date, str]],
    plugins: list[Any],
) -> str:
    """What a closed period's rows depend on, hashed: archive files, chart, plugins, format."""
    assert period.archive is not None and period.last is not None
    hasher = hashlib.sha256(f"{fmt}\n{period.name}\n{plugins!r}\n".encode())
    for name in sorted(files):
        relative = Path(name).relative_to(period.archive)
        hasher.update(f"{relative.as_posix()} {files[name]['sha256']}\n".encode())
    for _date, line in sorted(item for item in chart if item[0] <= period.last):
        hasher.update(line.encode())
        hasher.update(b"\n")
    return hasher.hexdigest()


# --- Loading a closed period -------------------------------------------------------------


@dataclasses.dataclass
class Chart:
    """The active ledger's undated part: chart of accounts, settings, options, plugins."""

    entries: list[data.Directive]
    options: dict[str, Any]


def parse_chart(main: Path) -> Chart:
    """Parse the active ledger and keep what a close leaves in place (no dated activity)."""
    with incremental.paused_gc():
        entries, errors, options = pipeline.parse_tree([main.resolve()])
    if errors:
        raise PeriodError(f"{len(errors)} error(s) parsing {main}:\n{format_errors(errors)}")
    # Seal and amendment records belong to the days they seal, like the activity.
    kept = [
        entry
        for entry in entries
        if not isinstance(entry, periods.MOVED) and not seal.is_record(entry)
    ]
    return Chart(kept, options)  # type: ignore[arg-type]


def load_closed(period: Period, chart: Chart) -> Ledger:
    """A closed period as Beancount loads it: its archive on the chart of accounts."""
    assert period.archive is not None
    index = period.archive / periods.INDEX_NAME
    sources = [path for path in archive_files(period) if path != index]
    with incremental.paused_gc():
        archived, errors, _options = pipeline.parse_tree(sources)
        options = copy.deepcopy(chart.options)
        options["include"] = [str(source) for source in sources]
        entries = [*chart.entries, *archived]
        entries.sort(key=data.entry_sortkey)
        booked, booking_errors = booking.book(entries, options)
        errors.extend(booking_errors)
        entries, errors = incremental._transform_and_validate(booked, errors, options)
    if errors:
        raise PeriodError(
            f"the closed period in {period.archive} has {len(errors)} error(s) when loaded "
            f"from its archive:\n{format_errors(errors)}"
        )
    config = find_config(options)
    return Ledger(
        path=index,
        entries=entries,
        errors=[],
        options=options,
        config=config,
        users=index_users(entries, config),
    )
