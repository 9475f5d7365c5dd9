"""Importers for the platform's event exports (CSV and JSON Lines).

Three ways in, one planner (:mod:`.plan`):

- ``bean-credits import LEDGER FILE...`` (or ``-`` for standard input) and
  :func:`import_events` for in-process callers: the normal path, which also
  settles and cancels pending redemptions already in the text and writes
  through the write path (:mod:`.ingest`);
- beangulp's ``identify/extract/archive`` command line, with
  :data:`beancount_credits.importers.config.CONFIG`;
- Fava's import page (the ``import-config`` option names the same config).

:class:`CsvImporter` and :class:`JsonlImporter` are beangulp 0.2 ``Importer``
subclasses. Their ``extract`` only *adds* entries (that is all beangulp and
Fava can do with them): a batch that would settle or cancel a pending
redemption already in the ledger, or move an existing grant's expiry, is
refused with a message pointing at ``bean-credits import``.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import beangulp
from beancount.core import data

from beancount_credits.engine.config import CreditsConfig
from beancount_credits.importers import sealing
from beancount_credits.importers.events import ReadError, Row, read_rows, sniff_format
from beancount_credits.importers.index import LedgerIndex
from beancount_credits.importers.ingest import (
    ImportFailed,
    ImportResult,
    describe,
    import_events,
    read_export,
)
from beancount_credits.importers.plan import Plan, plan_batch

__all__ = [
    "CsvImporter",
    "EventsImporter",
    "ImportFailed",
    "ImportResult",
    "JsonlImporter",
    "import_events",
]


class EventsImporter(beangulp.Importer):
    """A beangulp importer for one format of the event export."""

    fmt = "jsonl"
    suffixes: tuple[str, ...] = ()

    def __init__(self, config: CreditsConfig | None = None, timezone: str | None = None):
        import zoneinfo

        self.config = config or CreditsConfig()
        self.timezone = zoneinfo.ZoneInfo(timezone) if timezone else None

    @property
    def name(self) -> str:
        return f"beancount_credits.events.{self.fmt}"

    def _read(self, filepath: str) -> str:
        """The export's text; ImportFailed (by line, never echoing the file) if it is none."""
        if not filepath.lower().endswith(self.suffixes):
            # Only event exports: Fava's extract may name any file with any importer.
            raise ImportFailed(
                f"{filepath}: not a {self.fmt} export (the name ends in {', '.join(self.suffixes)})"
            )
        return read_export(Path(filepath))

    def identify(self, filepath: str) -> bool:
        try:
            text = self._read(filepath)
        except ImportFailed:
            return False
        if sniff_format(filepath, text) != self.fmt:
            return False
        try:
            first = next((row for row in read_rows(text, self.fmt) if isinstance(row, Row)), None)
        except Exception:  # not our format at all
            return False
        return first is not None and "type" in first.fields and "id" in first.fields

    def account(self, filepath: str) -> data.Account:
        return self.config.users

    def date(self, filepath: str) -> datetime.date | None:
        result = self._plan(filepath, [], strict=False)
        dates = [event.date for event in result.events.values()]
        return max(dates) if dates else None

    def _plan(self, filepath: str, existing: data.Entries, strict: bool = True) -> Plan:
        text = self._read(filepath)
        index = LedgerIndex.from_entries(existing or [], self.config)
        try:
            rows = list(read_rows(text, self.fmt))
        except ReadError as exc:
            raise ImportFailed(f"{filepath}: {exc}") from None
        result = plan_batch(index, rows, self.timezone)
        if strict:
            lines = [
                describe(filepath, line, problem, result)
                for line, problems in sorted(result.problems.items())
                for problem in problems
            ]
            for edit in result.edits:
                lines.append(
                    f"{filepath}:{edit.line}: event {edit.event_id!r}: changes an entry already "
                    f"in the ledger ({edit.kind}); import this file with bean-credits import"
                )
            for what in sealing.touching(result, index, sealing.sealed_day(existing or [])):
                lines.append(
                    f"{filepath}: event {what}: changes a sealed day; import this file with "
                    "bean-credits import, which records the amendment"
                )
            for entry in result.entries:
                if isinstance(entry, data.Custom) and any(
                    isinstance(value, str) and any(char in value for char in '"\\\n')
                    for value, _dtype in entry.values
                ):
                    # Beancount's printer writes custom values unescaped.
                    lines.append(
                        f"{filepath}:{entry.meta['lineno']}: user id {entry.values[0].value!r} "
                        "cannot be printed safely by beangulp; use bean-credits import"
                    )
            if lines:
                raise ImportFailed(f"{filepath}: nothing extracted", lines)
        return result

    def extract(self, filepath: str, existing: data.Entries) -> data.Entries:
        result = self._plan(filepath, existing)
        return [
            entry._replace(meta={**entry.meta, "filename": filepath}) for entry in result.entries
        ]

    def deduplicate(self, entries: data.Entries, existing: data.Entries) -> None:
        """Nothing to do: extract already left out every event id the ledger holds."""


class CsvImporter(EventsImporter):
    fmt = "csv"
    suffixes = (".csv",)


class JsonlImporter(EventsImporter):
    fmt = "jsonl"
    suffixes = (".jsonl", ".ndjson")
