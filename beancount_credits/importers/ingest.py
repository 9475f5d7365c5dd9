"""``bean-credits import``: a batch of events into the ledger, through the write path.

:func:`import_events` is the one entry point (the CLI and in-process callers
use it). Under the ledger's writer lock it

1. indexes what the ledger holds by parsing its files (no booking or plugins:
   the full check of step 3 does those, once);
2. plans the batch (:mod:`.plan`): new entries go to one file
   ``imports/<date>-<batch>-<hash>.beancount``, included from the main file by
   the glob ``imports/*.beancount`` (added the first time); a settled or
   cancelled pending redemption and a moved expiry are edits of the file that
   holds the entry;
3. hands the changed files to :func:`beancount_credits.ledger.write.apply`, which
   loads the ledger as it would be with Beancount's full loader and writes
   only if that has no error. Errors of the check that point into the batch
   (a redemption beyond the balance, a missing ``reason:``...) are traced back
   to their rows.

All or nothing: any bad row and nothing is written, and every bad row is
listed (line, event id, user, field, reason). With ``skip_invalid`` the good
rows are imported and the rejected records are written beside the input, in
its format, ready to be fixed and imported again.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import re
import sys
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from beancount_credits.audit.amend import AmendError
from beancount_credits.importers import plan as planning
from beancount_credits.importers import sealing
from beancount_credits.importers.edits import Edit
from beancount_credits.importers.events import (
    NotText,
    Problem,
    ReadError,
    Row,
    decode,
    read_rows,
    rows_of,
)
from beancount_credits.importers.index import LedgerIndex
from beancount_credits.ledger import find_config, incremental, pipeline, write
from beancount_credits.ledger.render import quote, render
from beancount_credits.ledger.text import read_text, split_lines
from beancount_credits.reports.table import format_cell

IMPORT_DIR = "imports"
IMPORT_GLOB = f"{IMPORT_DIR}/*.beancount"
_LINE_RE = re.compile(r"^(.*?):(\d+): ")
_MAX_RETRIES = 20
_MAX_REASON = 300  # characters of one problem's reason


class ImportFailed(Exception):
    """An import that wrote nothing; ``lines`` says why, one line per problem."""

    def __init__(self, message: str, lines: Iterable[str] = ()):
        super().__init__(message)
        self.lines = list(lines)

    def __str__(self) -> str:
        return "\n".join([self.args[0], *self.lines])


@dataclasses.dataclass
class ImportResult:
    source: str
    new: int
    already: int
    rejected: list[str]  # one line per rejected row (skip_invalid)
    written: list[Path]
    batch_file: Path | None
    rejects_file: Path | None = None
    rejected_rows: int = 0
    commit: str | None = None

    def summary(self) -> str:
        text = f"import {self.source}: {self.new} new, {self.already} already imported"
        if self.rejected_rows:
            text += f", {self.rejected_rows} rejected"
        return text


@dataclasses.dataclass
class Source:
    """Where a batch comes from: its name for messages and files, its text or records."""

    name: str
    fmt: str
    text: str | None = None
    records: list[Mapping[str, Any]] | None = None
    path: Path | None = None

    def rows(self) -> list[Row | tuple[int, Problem]]:
        if self.records is not None:
            return list(rows_of(self.records))
        assert self.text is not None
        return list(read_rows(self.text, self.fmt))


Events = str | Path | IO[str] | Iterable[Mapping[str, Any]]


def source_of(events: Events, fmt: str | None) -> Source:
    """A file path, ``-`` (standard input), an open text stream, or event dicts."""
    from beancount_credits.importers.events import sniff_format

    if isinstance(events, str | Path):
        if str(events) == "-":
            text = _decoded("<stdin>", sys.stdin.buffer.read())
            return Source("<stdin>", fmt or sniff_format("", text), text)
        path = Path(events)
        text = read_export(path)
        return Source(str(path), fmt or sniff_format(path.name, text), text, path=path)
    if hasattr(events, "read"):
        text = events.read()  # type: ignore[union-attr]
        name = getattr(events, "name", "<stream>")
        return Source(str(name), fmt or sniff_format(str(name), text), text)
    return Source("<events>", fmt or "jsonl", records=list(events))  # type: ignore[arg-type]


def read_export(path: Path) -> str:
    """An export file's text, or ImportFailed (never quoting the file).

    Read as bytes and decoded here: no newline translation (a CR inside a
    quoted CSV field is data), and bad UTF-8 is reported by line and column.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFailed(f"cannot read {path}: {exc.strerror or exc}") from None
    return _decoded(str(path), data)


def _decoded(name: str, data: bytes) -> str:
    try:
        return decode(data)
    except NotText as exc:
        raise ImportFailed(
            f"{name}: not UTF-8 text; nothing was imported",
            [f"{name}:{line}: {reason}" for line, reason in exc.lines],
        ) from None


def describe(source: str, line: int, problem: Problem, plan: planning.Plan) -> str:
    """One error line: file, line, event id, user, field and reason."""
    event = plan.events.get(line)
    who = []
    event_id = event.id if event is not None else plan.ids.get(line)
    if event_id is not None:
        who.append(f"event {event_id!r}")
    user = plan.users.get(line)
    if user is not None:
        who.append(f"user {user!r}")
    where = f"{source}:{line}: " + (", ".join(who) + ": " if who else "")
    reason = problem.reason
    if len(reason) > _MAX_REASON:  # a huge field value is quoted in part
        reason = reason[: _MAX_REASON - 1] + "…"
    return f"{where}{problem.field}: {reason}"


def parse_ledger(main: Path) -> tuple[list, dict]:
    """The ledger's directives as parsed (includes followed), and its options."""
    entries, errors, options = pipeline.parse_tree([main.resolve()])
    if errors:
        lines = []
        for error in errors[:20]:
            where = error.source or {}
            place = f"{where.get('filename', '?')}:{where.get('lineno', '?')}"
            lines.append(f"{place}: {error.message}")
        raise ImportFailed(f"{main}: the ledger does not parse; nothing was imported", lines)
    return entries, options


def _safe_name(name: str) -> str:
    stem = Path(name).name
    for suffix in (".csv", ".jsonl", ".ndjson", ".json"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.")
    return cleaned[:60] or "events"


def batch_text(entries: list) -> tuple[str, dict[int, int]]:
    """The batch file's text and, for each entry's first line, the row it came from."""
    head = "; Imported by bean-credits import (one batch); edit through bean-credits.\n"
    parts = [head]
    starts: dict[int, int] = {}
    line = head.count("\n") + 1
    for entry in entries:
        line += 1  # the blank line before each entry
        starts[line] = entry.meta["lineno"]
        text = render(_written(entry))
        parts.append("\n" + text)
        line += text.count("\n")
    return "".join(parts), starts


def _written(entry: Any) -> Any:
    """The entry as written: without the row bookkeeping."""
    meta = {k: v for k, v in entry.meta.items() if k not in ("filename", "lineno")}
    return entry._replace(meta=meta)


_HEADER_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})(\s+)([!*])(\s)")
_META_RE = re.compile(r"^\s+([a-z][a-zA-Z0-9_-]*):")


def apply_edits(text: str, edits: list[Edit], path: str) -> str:
    """The file's text with the edits made at their transactions' header lines."""
    lines = split_lines(text)
    for edit in sorted(edits, key=lambda edit: edit.lineno, reverse=True):
        index = edit.lineno - 1
        match = _HEADER_RE.match(lines[index]) if 0 <= index < len(lines) else None
        if match is None:
            raise ImportFailed(
                f"{path}:{edit.lineno}: expected the header of transaction for event "
                f"{edit.event_id!r}; the file changed under the import, nothing was written"
            )
        end = index + 1  # the end of the transaction's own metadata block
        while end < len(lines) and _META_RE.match(lines[end]):
            end += 1
        block = lines[index + 1 : end]
        if edit.kind in ("settle", "cancel"):
            lines[index] = lines[index][: match.start(3)] + "*" + lines[index][match.end(3) :]
            key = "settled" if edit.kind == "settle" else "cancelled"
            block.append(f"  {key}: {edit.date.isoformat()}\n")
        else:
            block = [
                line
                for line in block
                if _META_RE.match(line).group(1)  # type: ignore[union-attr]
                not in ("expires", "expiry_changes")
            ]
            block.append(f"  expires: {edit.date.isoformat()}\n")
            block.append(f"  expiry_changes: {quote(', '.join(edit.expiry_changes))}\n")
        lines[index + 1 : end] = block
    return "".join(lines)


def changes_for(
    main: Path, options: dict, plan: planning.Plan, source: Source
) -> tuple[list[write.FileChange], Path | None, dict[int, int]]:
    """The files an import writes, the batch file, and its line -> row map."""
    root = main.resolve().parent
    result: list[write.FileChange] = []
    batch_path = None
    starts: dict[int, int] = {}
    if plan.entries:
        text, starts = batch_text(plan.entries)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
        first = min(entry.date for entry in plan.entries)
        label = _safe_name(source.name)
        if label.startswith(first.isoformat()):  # an export named by its day: once is enough
            label = label[len(first.isoformat()) :].lstrip("-_.") or "events"
        name = f"{first.isoformat()}-{label}-{digest}.beancount"
        batch_path = root / IMPORT_DIR / name
        result.append(write.FileChange(batch_path, text))
    by_file: dict[str, list[Edit]] = {}
    for edit in plan.edits:
        by_file.setdefault(edit.filename, []).append(edit)
    for filename, edits in sorted(by_file.items()):
        path = Path(filename)
        result.append(write.FileChange(path, apply_edits(read_text(path), edits, filename)))
    main_text = read_text(main)
    include = f'include "{IMPORT_GLOB}"'
    if batch_path is not None and include not in main_text:
        separator = "" if main_text.endswith("\n") else "\n"
        main_text += f"{separator}\n; Imported events (bean-credits import).\n{include}\n"
        result.append(write.FileChange(main, main_text))
    return result, batch_path, starts


def trace(
    details: list[str], batch_path: Path | None, starts: dict[int, int], plan: planning.Plan
) -> tuple[dict[int, list[Problem]], list[str]]:
    """The check's errors by row where they point into the batch; the rest as they are."""
    by_row: dict[int, list[Problem]] = {}
    rest: list[str] = []
    edits = {(str(Path(edit.filename).resolve()), edit.lineno): edit.line for edit in plan.edits}
    batch = str(batch_path.resolve()) if batch_path is not None else None
    for detail in details:
        match = _LINE_RE.match(detail)
        row = None
        if match:
            filename, lineno = str(Path(match.group(1)).resolve()), int(match.group(2))
            if filename == batch and starts:
                candidates = [start for start in starts if start <= lineno]
                if candidates:
                    row = starts[max(candidates)]
            row = edits.get((filename, lineno), row)
        if row is None:
            rest.append(detail)
            continue
        message = detail[match.end() :] if match else detail
        field = "amount" if "exceeds the" in message else "ledger check"
        by_row.setdefault(row, []).append(Problem(field, message))
    return by_row, rest


def write_rejects(source: Source, rejected_lines: set[int], target: Path) -> None:
    """The rejected records, in the input's own format, so they can be fixed and re-imported."""
    rows = {row.line: row for row in source.rows() if isinstance(row, Row)}
    raw = [line.removesuffix("\n") for line in split_lines(source.text or "")]
    out = io.StringIO()
    if source.fmt == "csv":
        header = next(csv.reader(io.StringIO(source.text or ""))) if source.text else []
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for line in sorted(rejected_lines):
            if line in rows:
                writer.writerow([format_cell(rows[line].fields.get(name)) for name in header])
            elif 0 < line <= len(raw):
                out.write(raw[line - 1] + "\n")
    else:
        for line in sorted(rejected_lines):
            if line in rows:
                fields = dict(rows[line].fields)
                out.write(json.dumps(fields, default=format_cell, ensure_ascii=False))
                out.write("\n")
            elif 0 < line <= len(raw):
                out.write(raw[line - 1] + "\n")
    write.write_atomic(target, out.getvalue())


def rejects_path(source: Source) -> Path | None:
    if source.path is None:
        return None
    name = source.path.name
    stem, dot, ext = name.rpartition(".")
    base = stem if dot else name
    return source.path.with_name(f"{base}.rejects.{source.fmt if not dot else ext}")


def import_events(
    ledger: str | Path,
    events: Events,
    *,
    fmt: str | None = None,
    commit: bool = False,
    skip_invalid: bool = False,
    rejects: Path | None = None,
    timezone: str | None = None,
    step: Callable[[str], None] | None = None,
) -> ImportResult:
    """Import a batch of events into the ledger at ``ledger``; all or nothing.

    ``events`` is a CSV or JSON Lines file path, ``"-"`` for standard input, an
    open text stream, or an iterable of event dicts (in-process callers, e.g.
    an app recording a checkout the moment it happens). Raises
    :class:`ImportFailed` (nothing written) listing every problem. ``step(name)``
    is told of each phase as it starts (reading, planning, checking and
    writing): a progress bar's hook.
    """
    step = step or (lambda _name: None)
    main = Path(ledger)
    if not main.is_file():
        raise ImportFailed(f"no ledger file at {main}")
    try:
        zone = zoneinfo.ZoneInfo(timezone) if timezone else None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ImportFailed(f"unknown time zone {timezone!r}") from None
    source = source_of(events, fmt)
    if skip_invalid and rejects is None and source.path is None:
        raise ImportFailed(
            f"{source.name}: --skip-invalid without an input file needs --rejects FILE"
        )
    step(f"reading {source.name}")
    try:
        rows = source.rows()
    except ReadError as exc:
        raise ImportFailed(f"{source.name}: {exc}") from None
    try:
        # The collector off, as for the writers' loads: the import allocates
        # (and the check loads) millions of objects without cycles, and its
        # passes over them cost more than the planning.
        with write.ledger_lock(main), incremental.paused_gc():
            return import_locked(main, source, rows, commit, skip_invalid, rejects, zone, step)
    except write.WriteError as exc:
        raise ImportFailed(exc.args[0], exc.details) from None


def import_locked(
    main: Path,
    source: Source,
    rows: list[Row | tuple[int, Problem]],
    commit: bool,
    skip_invalid: bool,
    rejects: Path | None,
    zone: zoneinfo.ZoneInfo | None,
    step: Callable[[str], None] | None = None,
) -> ImportResult:
    """Plan, check, and write (or list every bad row); each round of rejects re-plans.

    The caller holds the ledger lock (``import_events`` takes it; the service
    holds it for its whole write).

    A check error rejects its row, except that of the draw-downs of one
    wallet beyond its balance only the earliest is rejected per round: the
    engine books an overdraw anyway, so the wallet's later draw-downs fail
    after it whether or not they are fine by themselves.
    """
    step = step or (lambda _name: None)
    step("reading the ledger")
    entries, options = parse_ledger(main)
    config = find_config(options)
    files = write.ledger_files(main, options)
    index = LedgerIndex.from_entries(entries, config)
    sealed = sealing.sealed_day(entries)
    # The parsed entries are not needed beyond the index: free them before the
    # staged check loads the ledger again (peak memory).
    del entries
    skip: set[int] = set()
    rejected: list[str] = []
    for attempt in range(_MAX_RETRIES):
        if attempt:  # planning changed the index; a retry starts from the text again
            index = LedgerIndex.from_entries(parse_ledger(main)[0], config)
        step(
            f"planning {len(rows) - len(skip)} row(s)"
            + (f", round {attempt + 1}" if attempt else "")
        )
        planned = planning.plan_batch(index, rows, zone, frozenset(skip))
        if planned.problems:
            rejected += _lines(source, planned.problems, planned)
            skip |= set(planned.problems)
            continue  # plan again without them: later rows may have leaned on them
        changes, batch_path, starts = changes_for(main, options, planned, source)
        touching = sealing.touching(planned, index, sealed)
        planned.entries.clear()  # they are text now; free them before the check loads
        if touching:
            # Events of days already sealed: the change is an amendment, made here.
            try:
                changes = sealing.amended(main, files, changes, source.name, touching)
            except AmendError as exc:
                raise ImportFailed(f"{source.name}: {exc}; nothing was imported") from None
        message = f"import {source.name}: {planned.new} new, {planned.already} already imported"
        step("checking and writing")
        try:
            if skip and not skip_invalid:
                # Already failing: only find the rest of the bad rows, write nothing.
                errors = write.staged_check(main, files, changes) if changes else []
                if not errors:
                    break
                raise write.WriteError("the ledger would have errors", errors)
            result = write.apply(main, files, changes, message=message, commit=commit)
        except write.WriteError as exc:
            if not exc.args[0].startswith("the ledger would have"):
                raise  # refused before the check (git), not about the rows
            by_row, rest = trace(exc.details, batch_path, starts, planned)
            if not by_row:
                # Nothing traced to a row (e.g. a back-dated event breaks a later entry
                # or a recorded balance): no row to reject, so nothing to retry.
                raise ImportFailed(
                    f"{source.name}: the ledger would have {len(exc.details)} error(s) "
                    "after this import; nothing was imported",
                    rejected + rest,
                ) from None
            by_row = first_overdraws(by_row, planned)
            rejected += _lines(source, by_row, planned)
            skip |= set(by_row)
            continue
        outcome = ImportResult(
            source.name,
            planned.new,
            planned.already,
            sorted(rejected, key=_line_key),  # found in rounds; listed in line order
            result.written,
            batch_path,
            rejected_rows=len(skip),
            commit=result.commit,
        )
        if skip:
            target = rejects or rejects_path(source)
            assert target is not None  # checked before anything was written
            write_rejects(source, skip, target)
            outcome.rejects_file = target
        return outcome
    else:
        raise ImportFailed(
            f"{source.name}: still finding bad rows after {_MAX_RETRIES} rounds; nothing was "
            "imported",
            rejected,
        )
    raise ImportFailed(
        f"{source.name}: {len(skip)} bad row(s); nothing was imported",
        sorted(rejected, key=_line_key),
    )


def _lines(source: Source, problems: dict[int, list[Problem]], plan: planning.Plan) -> list[str]:
    return [
        describe(source.name, line, problem, plan)
        for line, found in sorted(problems.items())
        for problem in found
    ]


def _line_key(text: str) -> int:
    match = _LINE_RE.match(text)
    return int(match.group(2)) if match else 0


def first_overdraws(
    by_row: dict[int, list[Problem]], plan: planning.Plan
) -> dict[int, list[Problem]]:
    """Every row with another error, and per wallet and credit type the earliest overdraw."""
    kept: dict[int, list[Problem]] = {}
    earliest: dict[tuple[str | None, str], tuple[object, int]] = {}
    for line, problems in by_row.items():
        if any(problem.field != "amount" for problem in problems):
            kept[line] = problems
            continue
        event = plan.events.get(line)
        key = (event.user, event.commodity) if event else (None, str(line))
        order = (event.date if event else None, line)
        if key not in earliest or order < earliest[key][0]:  # type: ignore[operator]
            earliest[key] = (order, line)
    for _order, line in earliest.values():
        kept[line] = by_row[line]
    return kept
