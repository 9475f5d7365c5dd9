"""Period close: carry open grants forward, archive the closed period, read across it.

``bean-credits close-period LEDGER --through D`` ends the active period on day D:

- every grant still open at the end of D is **carried forward** into the new
  period's opening file ``opening/<D+1>.beancount``: one ``#carried``
  transaction per wallet, dated D, from the opening account
  (``Equity:Credits:Opening`` by default), one posting per grant holding its
  remaining amount and, as posting metadata, the original grant id
  (``grant:``), date (``granted:``), Transaction ID (``grant_txn:``), source
  (``source:``), amount (``granted_amount:``), ``expires:``, ``priority:`` and
  ``unit_cost:``; and a balance assertion dated D+1 for every carried wallet
  the log does not assert that day. The grant
  engine books such a posting as the original grant: same id, same
  consumption order, same expiry (``<grant>:expiry`` on the same date), a
  reversal of the original grant still removes what is left of it. An
  overdraft outstanding on a credit limit is carried as a negative posting
  (the engine books it as overdraft, repaid by the next grant);
- every dated entry of the closed period (transactions, balance assertions,
  notes, documents, pads dated D or earlier) moves, as text, to
  ``archive/<start>--<D>/`` under the same relative path; files left empty are
  removed and ``main.beancount`` no longer includes them. Opens, closes,
  commodities, prices, events and ``custom`` settings stay in the active
  ledger: they are the chart of accounts and the settings in force. git keeps
  the archive (``archive/<period>/index.beancount`` lists its files);
- the new period's log (balance assertions dated D+1 and later, expiries from
  D+1) is untouched and stays valid: the carried balances are the balances
  those assertions check.

Dating the carry-forward on D (not D+1) keeps it out of every date range
inside the new period, so reports for such ranges give the same rows as
before the close: the carry-forward is opening balance, not activity.

A reversal in the new period of a *redemption* made before the close is
refused (an error naming the closed period): the draw-down's consumption is in
the archive. Book an adjustment instead. Reversals of carried grants work.

**Reading across periods.** :func:`report_path` gives the file a report
should load: the active ``main.beancount`` when the report's range lies in the
active period, else the *history view* ``.bean-credits-history.beancount``
next to it (written on demand, only when its text changes, so Beancount's
pickle cache keeps working): ``main.beancount`` with its opening include
replaced by the archive indexes, i.e. the whole history without carry-forward.

The close requires the daily log to be written through D (``close-day --date
D``), so every balance of the closed period is recorded before it is archived.
:func:`plan` is pure apart from reading the ledger's files; writing goes
through :mod:`beancount_credits.ledger.write` as one all-or-nothing change.
What is carried (the ``#carried`` transactions, the opening balances) is
computed by :mod:`beancount_credits.jobs.carry_forward`; this module cuts the
files, archives the closed period and reads across periods.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from pathlib import Path

from beancount.core import data
from beancount.parser import parser

from beancount_credits.engine import seal
from beancount_credits.jobs import close_day
from beancount_credits.jobs.carry_forward import (
    PeriodError,
    carry_forward,
    opening_balances,
    other_balances,
)
from beancount_credits.ledger import Ledger, write
from beancount_credits.ledger.render import render
from beancount_credits.ledger.text import read_text, split_lines

OPENING_DIR = "opening"
ARCHIVE_DIR = "archive"
INDEX_NAME = "index.beancount"
HISTORY_NAME = ".bean-credits-history.beancount"
ONE_DAY = datetime.timedelta(days=1)
# Dated activity moves to the archive; the rest is the chart of accounts and settings.
MOVED = (data.Transaction, data.Balance, data.Note, data.Document, data.Pad)
# Reports whose rows for a range depend on more than the balances before it
# (audit: "unusual" compares a day with the user's median day over all history;
# low-balance: an episode may start before the range; users: a user's last
# activity may be before it).
WHOLE_HISTORY = frozenset({"audit", "low-balance", "users"})

_OPENING_RE = re.compile(r'^include\s+"opening/(\d{4}-\d{2}-\d{2})\.beancount"\s*(;.*)?$', re.M)
_INCLUDE_RE = re.compile(r'^include\s+"([^"]+)"\s*(;.*)?$')
_DIRECTIVE_LINE_RE = re.compile(r"^(option|plugin|include|pushtag|poptag|pushmeta|popmeta)\b")


# --- Splitting the text ------------------------------------------------------------


@dataclasses.dataclass
class Split:
    """One ledger file cut at ``through``: the text that stays and the text archived."""

    path: Path
    stays: str | None  # None: nothing dated stays (the file is removed, unless it is main)
    archived: str | None  # None: nothing moves


def split_file(path: Path, through: datetime.date, is_main: bool) -> Split:
    """Cut a file's text at directive boundaries: dated entries up to ``through`` move."""
    text = read_text(path)
    entries, errors, _options = parser.parse_file(str(path))
    if errors:
        raise PeriodError(f"{path}: {errors[0].message}")
    lines = split_lines(text)
    starts = sorted({entry.meta["lineno"] for entry in entries})
    moving = {entry.meta["lineno"] for entry in entries if moves(entry, through)}
    if not moving:
        return Split(path, text, None)
    first = starts[0] - 1
    header = lines[:first]
    stays: list[str] = list(header)
    archived: list[str] = []
    kept = 0
    previous_moved = False
    for index, start in enumerate(starts):
        end = starts[index + 1] - 1 if index + 1 < len(starts) else len(lines)
        block = lines[start - 1 : end]
        if start in moving:
            # What stays keeps its line numbers: Beancount orders a day's
            # entries of different files by line, e.g. a recorded expiry in the
            # log before or after a grant of the same day.
            if previous_moved:
                stays.extend("\n" for _line in block)
            else:
                stays.append(f"; (entries through {through} moved to the archive)\n")
                stays.extend("\n" for _line in block[1:])
            previous_moved = True
            for offset, line in enumerate(block):
                if _DIRECTIVE_LINE_RE.match(line):
                    raise PeriodError(
                        f"{path}:{start + offset}: close-period cannot move "
                        f"{line.split()[0]!r} lines with the entries around them; put them "
                        "in main.beancount or in a file of their own"
                    )
            archived.extend(block)
        else:
            stays.extend(block)
            kept += 1
            previous_moved = False
    for number, line in enumerate(header, 1):
        if _DIRECTIVE_LINE_RE.match(line) and line.split()[0] in ("pushtag", "pushmeta"):
            raise PeriodError(
                f"{path}:{number}: {line.split()[0]} applies to entries that would be "
                "split between periods; close-period does not split such a file"
            )
    comments = "".join(line for line in header if line.lstrip().startswith(";"))
    archived_text = comments + "".join(archived)
    if (
        kept == 0
        and not is_main
        and not any(line.strip() for line in header if not line.lstrip().startswith(";"))
    ):
        return Split(path, None, archived_text)
    return Split(path, "".join(stays), archived_text)


# --- The close -----------------------------------------------------------------------


@dataclasses.dataclass
class ClosePlan:
    through: datetime.date
    start: datetime.date  # first day of the new period
    archive: Path  # archive/<start of closed period>--<through>, absolute
    carried: list[data.Transaction]
    changes: list[write.FileChange]
    removed: list[Path]  # ledger files whose every entry moved
    files: list[Path]  # the ledger's files after the close

    def summary(self) -> str:
        grants = sum(
            1
            for entry in self.carried
            for posting in entry.postings
            if posting.meta and "grant" in posting.meta
        )
        overdrafts = sum(
            1
            for entry in self.carried
            for posting in entry.postings
            if posting.meta and "overdraft_carried" in posting.meta
        )
        return (
            f"{grants} open grant(s) and {overdrafts} overdraft(s) of {len(self.carried)} "
            f"wallet(s) carried forward to {self.start}; closed period archived in "
            f"{ARCHIVE_DIR}/{self.archive.name}"
        )


def moves(entry: data.Directive, through: datetime.date) -> bool:
    """Whether a close through ``through`` moves the entry to the archive.

    The balance assertions dated the next day move too: they log the closed
    period's last day, so its seal and its log hold in the archive alone.
    """
    if isinstance(entry, data.Balance) and entry.date == through + ONE_DAY:
        return True
    return (isinstance(entry, MOVED) or seal.is_record(entry)) and entry.date <= through


def in_folder(entry: data.Directive, folder: Path) -> bool:
    """Whether the entry was written in a file under ``folder``."""
    filename = entry.meta.get("filename") if entry.meta else None
    if not isinstance(filename, str) or filename.startswith("<"):
        return False
    return Path(filename).resolve().is_relative_to(folder.resolve())


def period_start(main_text: str) -> datetime.date | None:
    """The active period's first day, from main's opening include (None: never closed)."""
    found = _OPENING_RE.search(main_text)
    return None if found is None else datetime.date.fromisoformat(found.group(1))


def plan(ledger: Ledger, through: datetime.date) -> ClosePlan:
    """What closing the active period through ``through`` writes and removes."""
    main = ledger.path.resolve()
    root = main.parent
    main_text = read_text(main)
    current = period_start(main_text)
    if current is not None and through < current:
        raise PeriodError(
            f"--through {through} is before the active period, which starts {current}"
        )
    if ledger.errors:
        raise PeriodError(f"the ledger has {len(ledger.errors)} error(s); bean-check lists them")
    logged = close_day.plan(ledger, through)
    if not logged.empty:
        raise PeriodError(
            f"the daily log is not written through {through} ({logged.summary()}): "
            f"run bean-credits close-day --date {through} first"
        )
    sealed = seal.sealed_through(ledger.entries)
    last_seal = seal.seal_of(ledger.entries, through) if sealed is not None else None
    if sealed is not None and last_seal is None:
        raise PeriodError(
            f"the seals reach {sealed.day} only: run bean-credits close-day --date {through} first"
        )
    closed = [entry for entry in ledger.entries if entry.date <= through]
    others = other_balances(closed, ledger)
    if others:
        (account, currency), number = sorted(others.items())[0]
        raise PeriodError(
            f"{account} holds {number} {currency} at the end of {through}: close-period "
            "carries credit wallets only; move other accounts out of the credits ledger"
        )
    carried = carry_forward(ledger, through)
    first = current or min(
        (entry.date for entry in ledger.entries if moves(entry, through)), default=through
    )
    archive = root / ARCHIVE_DIR / f"{first}--{through}"
    if archive.exists():
        raise PeriodError(f"{archive} exists already: this period was closed")
    files = [path.resolve() for path in write.ledger_files(ledger.path, ledger.options)]
    changes: list[write.FileChange] = []
    removed: list[Path] = []
    archived_paths: list[Path] = []
    new_main_text = main_text
    for path in files:
        try:
            relative = path.relative_to(root)
        except ValueError:
            raise PeriodError(
                f"{path} is outside the ledger's folder {root}; close-period archives "
                "files under it only"
            ) from None
        if relative.parts[0] == ARCHIVE_DIR:
            raise PeriodError(f"the active ledger includes the archive file {relative}")
        split = split_file(path, through, path == main)
        if split.archived is None:
            continue
        target = archive / relative
        note = (
            f"; Archived by bean-credits close-period: the entries of {relative} "
            f"through {through}.\n"
        )
        changes.append(write.FileChange(target, note + split.archived))
        archived_paths.append(relative)
        if split.stays is None:
            removed.append(path)
        elif path == main:
            new_main_text = split.stays
        else:
            changes.append(write.FileChange(path, split.stays))
    if not archived_paths:
        raise PeriodError(f"nothing dated on or before {through} to close")
    kept_files = [path for path in files if path not in removed]
    new_main_text = rewrite_includes(new_main_text, root, set(removed), kept_files)
    start = through + ONE_DAY
    opening = root / OPENING_DIR / f"{start}.beancount"
    opening_text = (
        f"; Opening of the period from {start}: grants and overdrafts open at the end of "
        f"{through},\n; carried forward by bean-credits close-period (the closed period is "
        f"in {ARCHIVE_DIR}/{archive.name}/).\n"
    )
    opened: list[data.Directive] = []
    # The opening account's open, unless a file that stays declares it: the
    # previous opening file, which may hold it, is no longer included after this.
    found = next(
        (
            entry
            for entry in ledger.entries
            if isinstance(entry, data.Open) and entry.account == ledger.config.opening
        ),
        None,
    )
    if found is None or in_folder(found, root / OPENING_DIR):
        date = through if found is None else found.date
        opening_text += f"\n{date} open {ledger.config.opening}\n"
        meta = data.new_metadata("<close-period>", 0)
        opened.append(data.Open(meta, date, ledger.config.opening, None, None))  # type: ignore[arg-type]
    opening_text += "".join("\n" + render(entry) for entry in carried)
    balances = opening_balances(ledger, carried, start)
    opening_text += "".join("\n" + render(entry) for entry in balances)
    if last_seal is not None:
        # The new period's chain starts from the closed period's last seal; the entries
        # the active ledger keeps up to the close (and the carry-forward) get a seal of
        # their own, so they cannot change unseen either.
        kept = [entry for entry in ledger.entries if not moves(entry, through)]
        written = [*opened, *carried, *balances]
        anchor = seal.opening_seal(kept, written, through, last_seal.digest)
        opening_text += "\n" + render(anchor)
    include = f'include "{OPENING_DIR}/{start}.beancount"'
    if _OPENING_RE.search(new_main_text):
        new_main_text = _OPENING_RE.sub(include, new_main_text, count=1)
    else:
        new_main_text = insert_include(new_main_text, include)
    index_lines = [
        f"; The period {first} .. {through}, closed by bean-credits close-period.\n"
        "; Not included by main.beancount; reports reaching before "
        f"{start} read it through {HISTORY_NAME}.\n",
    ]
    index_lines += [
        f'include "{relative.as_posix()}"\n'
        for relative in archived_paths
        if relative.parts[0] != OPENING_DIR  # an earlier carry-forward is not history
    ]
    changes.append(write.FileChange(archive / INDEX_NAME, "".join(index_lines)))
    changes.append(write.FileChange(opening, opening_text))
    changes.append(write.FileChange(main, new_main_text))
    new_files = sorted({*kept_files, opening})
    return ClosePlan(through, start, archive, carried, changes, removed, new_files)


def rewrite_includes(text: str, root: Path, removed: set[Path], kept: list[Path]) -> str:
    """Drop include lines that would now match no file (Beancount errors on those)."""
    kept_set = set(kept)
    out = []
    for line in split_lines(text):
        found = _INCLUDE_RE.match(line.strip())
        if found is not None and not _OPENING_RE.match(line.strip()):
            pattern = found.group(1)
            matches = (
                {path.resolve() for path in root.glob(pattern)}
                if not Path(pattern).is_absolute()
                else {Path(pattern)}
            )
            if matches and matches <= removed and not (matches & kept_set):
                out.append(f"; {line.strip()}  -- archived by close-period\n")
                continue
        out.append(line)
    return "".join(out)


def insert_include(text: str, include: str) -> str:
    """Put the opening include before main's first include (or at the end)."""
    lines = split_lines(text)
    block = (
        "; Grants carried forward by the last period close (bean-credits close-period).\n"
        f"{include}\n\n"
    )
    for index, line in enumerate(lines):
        if line.startswith("include "):
            return "".join([*lines[:index], block, *lines[index:]])
    separator = "" if text.endswith("\n") else "\n"
    return text + separator + "\n" + block


def apply(ledger: Ledger, planned: ClosePlan, *, commit: bool = False) -> write.WriteResult:
    """Write the close as one change: new files, changed files and moved-out files removed.

    :func:`write.apply` checks it with the full loader first and writes it all
    or nothing, so a crash cannot leave a moved file both archived and still
    matched by an include glob.
    """
    removals = [write.FileChange(path, None) for path in planned.removed]
    return write.apply(
        ledger.path,
        planned.files,
        [*planned.changes, *removals],
        message=f"close-period through {planned.through}: {planned.summary()}",
        commit=commit,
    )


# --- Reading across periods -------------------------------------------------------------


def archives(main: Path) -> list[Path]:
    """The archive indexes of the closed periods, oldest first."""
    folder = main.resolve().parent / ARCHIVE_DIR
    return sorted(folder.glob(f"*/{INDEX_NAME}"))


def history_path(main: Path) -> Path:
    """The whole-history view of a closed ledger (main itself if it was never closed)."""
    main = main.resolve()
    text = read_text(main)
    indexes = archives(main)
    if period_start(text) is None or not indexes:
        return main
    includes = "".join(
        f'include "{index.relative_to(main.parent).as_posix()}"\n' for index in indexes
    )
    header = (
        f"; Whole history of {main.name} across its closed periods, written by bean-credits\n"
        "; for reports that reach before the active period. Derived: do not edit or commit.\n"
    )
    history = header + _OPENING_RE.sub(lambda _match: includes.rstrip("\n"), text, count=1)
    path = main.parent / HISTORY_NAME
    if not path.exists() or read_text(path) != history:
        write.write_atomic(path, history)
    return path


def report_path(
    main: Path,
    name: str,
    date_from: datetime.date | None,
    date_to: datetime.date | None = None,
) -> Path:
    """The file a report loads: the active period, or the history view when it reaches back."""
    start = period_start(read_text(main))
    if start is None:
        return main
    reaches_back = (
        name in WHOLE_HISTORY
        or date_from is None
        or date_from < start
        or (date_to is not None and date_to < start)
    )
    return history_path(main) if reaches_back else main
