"""Changes to sealed history, from git: who removed or rewrote recorded lines, and when.

The seal plugin says *that* a sealed day changed and what differs; git says *who*.
:func:`changes` walks the history of the ledger's folder, oldest commit first and
then the uncommitted edits of the working tree, and reports every line of a
sealed entry -- a transaction, balance, open, close, seal or amendment record of
a day sealed before the commit -- that a commit removed and that is gone now, or
added and that is still there, with the users and the day it concerns. A line
moved between wallets is a removal from one user's entry and an addition to
another's: both users are named, with the commit.

A commit that records an amendment (adds a ``custom "credits-amend"``) changes
sealed lines legitimately: its changes are that amendment's, shown with the
commit's author. A change made without one that a later amendment covers (the
day is in the amendment's ``day .. through``) is shown as amended by it.

Only git is asked, for the folder's commits and their patches
(:mod:`beancount_credits.audit.folder_log`); the rest is pure text work on
what it returns.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import re

from beancount.core import data

from beancount_credits import engine
from beancount_credits.audit import folder_log, git_history, provenance
from beancount_credits.engine.accounts import UserIdError, user_id_of
from beancount_credits.ledger import Ledger
from beancount_credits.ledger.text import entry_span
from beancount_credits.reports.table import Cell

ONE_DAY = datetime.timedelta(days=1)
_HEADER_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})[ \t]+(\S+)(?:[ \t]+(.*))?$")
_CUSTOM_RE = re.compile(r'^"([^"]*)"[ \t]*(.*)$')
_TXN_ID_RE = re.compile(r'^[ \t]+txn_id:[ \t]*"((?:[^"\\]|\\.)*)"')
_META_RE = re.compile(r'^[ \t]+([a-z][a-zA-Z0-9_-]*):[ \t]*"?((?:[^"\\]|\\.)*)"?')
_FLAGS = frozenset("*!&#?%PSTCURM") | {"txn"}
SEAL_TYPE = "credits-seal"
AMEND_TYPE = "credits-amend"


@dataclasses.dataclass(frozen=True)
class Amendment:
    """A ``credits-amend`` record as a commit added it."""

    commit: git_history.Commit
    date: datetime.date  # when it was made
    day: datetime.date  # the first day it amended
    through: datetime.date  # the last day it sealed again
    reason: str
    approved_by: str


@dataclasses.dataclass
class Change:
    """The lines of one sealed entry a commit removed (gone now) or added (still there)."""

    commit: git_history.Commit
    path: str  # relative to the ledger's folder
    kind: str  # transaction, balance, open, close, seal, amendment
    key: str  # txn_id, account, or the seal's day
    day: datetime.date  # the sealed day the entry belongs to
    users: tuple[str, ...]
    removed: list[str] = dataclasses.field(default_factory=list)
    added: list[str] = dataclasses.field(default_factory=list)
    amendment: Amendment | None = None  # made by, or covered by, this amendment
    made_by_amendment: bool = False  # the commit itself recorded the amendment

    @property
    def amended(self) -> bool:
        return self.amendment is not None


@dataclasses.dataclass
class History:
    """What git says about the sealed days."""

    changes: list[Change]
    amendments: list[Amendment]

    @property
    def unamended(self) -> list[Change]:
        return [change for change in self.changes if not change.amended]


@dataclasses.dataclass(frozen=True)
class Entry:
    """An entry found in one version of a file: what it is and what it concerns."""

    kind: str
    key: str
    day: datetime.date
    accounts: tuple[str, ...]


def parse_entry(lines: list[str], header_line: int, users_root: str) -> Entry | None:
    """The sealed entry whose header is line ``header_line`` (1-based), or None if not sealed."""
    match = _HEADER_RE.match(lines[header_line - 1])
    if match is None:
        return None
    try:
        date = datetime.date.fromisoformat(match.group(1))
    except ValueError:
        return None
    word, rest = match.group(2), match.group(3) or ""
    first, last = entry_span(lines, header_line)
    span = lines[first - 1 : last]
    prefix = users_root + ":"
    accounts = tuple(
        sorted(
            {
                part
                for line in span
                for part in line.split()
                if part.startswith(prefix) and ":" not in part[len(prefix) :]
            }
        )
    )
    if word in _FLAGS:
        txn_id = next((m.group(1) for m in map(_TXN_ID_RE.match, span) if m), None)
        return Entry("transaction", txn_id or lines[header_line - 1], date, accounts)
    if word == "balance":
        account = rest.split()[0] if rest.split() else ""
        return Entry("balance", f"{account} {date}", date - ONE_DAY, accounts)
    if word in ("open", "close"):
        account = rest.split()[0] if rest.split() else ""
        return Entry(word, account, date, accounts)
    if word == "custom":
        custom = _CUSTOM_RE.match(rest)
        if custom is None:
            return None
        if custom.group(1) == SEAL_TYPE:
            return Entry("seal", str(date), date, ())
        if custom.group(1) == AMEND_TYPE:
            return Entry("amendment", f"{date} {custom.group(2)}", date, ())
    return None


def header_of(lines: list[str], lineno: int) -> int | None:
    """The header line of the entry holding line ``lineno`` (None: outside any entry)."""
    text = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    if not text.strip():
        return None
    number = lineno
    while number >= 1:
        text = lines[number - 1]
        if not text.strip():
            return None
        if text[0] not in " \t":
            return number
        number -= 1
    return None


def _present(ledger: Ledger, users_root: str) -> dict[tuple[str, str], set[str]]:
    """The lines of every sealed entry now, by (kind, key): the archive's included."""
    root = ledger.path.resolve().parent
    present: dict[tuple[str, str], set[str]] = {}
    for path in sorted(root.rglob("*.beancount")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        lines = path.read_bytes().decode("utf-8", "replace").split("\n")  # "\n" only
        for number, text in enumerate(lines, 1):
            if not text[:1].isdigit():
                continue
            entry = parse_entry(lines, number, users_root)
            if entry is None:
                continue
            first, last = entry_span(lines, number)
            present.setdefault((entry.kind, entry.key), set()).update(lines[first - 1 : last])
    return present


def _amendment_of(commit: git_history.Commit, lines: list[str], header: int) -> Amendment | None:
    match = _HEADER_RE.match(lines[header - 1])
    custom = _CUSTOM_RE.match(match.group(3) or "") if match else None
    if match is None or custom is None:
        return None
    try:
        date = datetime.date.fromisoformat(match.group(1))
        day = datetime.date.fromisoformat(custom.group(2).split()[0])
    except (ValueError, IndexError):
        return None
    first, last = entry_span(lines, header)
    meta = {}
    for line in lines[first:last]:
        found = _META_RE.match(line)
        if found:
            meta[found.group(1)] = found.group(2)
    try:
        through = datetime.date.fromisoformat(meta.get("through", ""))
    except ValueError:
        through = day
    return Amendment(
        commit, date, day, through, meta.get("reason", ""), meta.get("approved_by", "")
    )


def changes(ledger: Ledger) -> History | None:
    """The changes of sealed history git knows of (None: the ledger is not in git)."""
    root = ledger.path.resolve().parent
    repo = git_history.find_work_tree(root)
    if repo is None:
        return None
    folder = root.relative_to(repo).as_posix() or "."
    users_root = ledger.config.users
    user_ids = {user.account: user.user_id for user in ledger.users.values()}
    versions = folder_log.Versions(repo)
    present = _present(ledger, users_root)
    by_day: dict[datetime.date, set[str]] | None = None

    def day_users(day: datetime.date) -> set[str]:
        nonlocal by_day
        if by_day is None:
            by_day = _users_by_day(ledger, user_ids)
        return by_day.get(day, set())

    sealed: datetime.date | None = None
    found: dict[tuple[str, str, str, str], Change] = {}
    amendments: list[Amendment] = []
    commits = list(folder_log.log(repo, folder))
    uncommitted = folder_log.working_tree(repo, folder)
    if uncommitted is not None:
        commits.append(uncommitted)
    for item in commits:
        new_sha = None if item.commit is git_history.UNCOMMITTED else item.commit.sha
        made: list[Amendment] = []
        newly_sealed: list[datetime.date] = []
        closing = False
        touched: list[tuple[str, Entry, str, str]] = []  # path, entry, side, line
        for hunk in item.hunks:
            if sealed is None:
                # Nothing sealed yet: only the seals and amendments this commit adds matter.
                for _number, text in hunk.added:
                    match = _HEADER_RE.match(text)
                    if match and match.group(2) == "custom":
                        custom = _CUSTOM_RE.match(match.group(3) or "")
                        if custom is not None and custom.group(1) == SEAL_TYPE:
                            newly_sealed.append(datetime.date.fromisoformat(match.group(1)))
                continue
            for side, lines_of, numbered in (
                ("removed", item.parent, hunk.removed),
                ("added", new_sha, hunk.added),
            ):
                if not numbered or (side == "removed" and item.parent is None):
                    continue
                lines = versions.lines(lines_of, hunk.path)
                for number, text in numbered:
                    header = header_of(lines, number)
                    if header is None:
                        continue
                    entry = parse_entry(lines, header, users_root)
                    if entry is None:
                        continue
                    if side == "added" and header == number:
                        if entry.kind == "seal":
                            newly_sealed.append(entry.day)
                            span = entry_span(lines, header)
                            if any(
                                line.strip().startswith("closed:")
                                for line in lines[span[0] - 1 : span[1]]
                            ):
                                closing = True  # an opening seal: the commit closes a period
                        elif entry.kind == "amendment":
                            amendment = _amendment_of(item.commit, lines, header)
                            if amendment is not None:
                                made.append(amendment)
                    touched.append((hunk.path, entry, side, text))
        # Text a commit moves (a period close to the archive, an entry to another file)
        # is removed and added alike: not a change.
        sides: dict[str, collections.Counter[tuple[str, str, str]]] = {
            "removed": collections.Counter(),
            "added": collections.Counter(),
        }
        for _path, entry, side, text in touched:
            sides[side][(entry.kind, entry.key, text.strip())] += 1
        moved = sides["removed"] & sides["added"]
        for path, entry, side, text in touched:
            key_text = (entry.kind, entry.key, text.strip())
            if moved[key_text] > 0 and side == "added":
                continue
            if closing:
                continue  # what a period close writes (the carry-forward, the opening seal)
            if sealed is None or entry.day > sealed:
                continue  # not sealed before this commit: writing it is not changing history
            if entry.kind == "amendment" and side == "added":
                continue
            still = text in present.get((entry.kind, entry.key), ())
            if (side == "removed") == still:
                continue  # restored since, or added and gone again
            relative = str((repo / path).relative_to(root)) if path else path
            key = (item.commit.sha, relative, entry.kind, entry.key)
            change = found.get(key)
            if change is None:
                change = found[key] = Change(
                    item.commit, relative, entry.kind, entry.key, entry.day, ()
                )
                if made:
                    change.amendment, change.made_by_amendment = made[0], True
            # Both sides' users: a posting moved between wallets concerns both; a seal
            # concerns the users whose entries it sealed.
            users = {user_ids.get(account) or _user(account) for account in entry.accounts}
            if entry.kind == "seal":
                users |= day_users(entry.day)
            change.users = tuple(sorted(users | set(change.users)))
            change.day = min(change.day, entry.day)
            getattr(change, side).append(text)
        amendments.extend(made)
        if newly_sealed:
            sealed = max([*newly_sealed, *([sealed] if sealed else [])])
    result = sorted(found.values(), key=lambda change: (change.day, change.key))
    for change in result:
        if change.amendment is None:
            change.amendment = _covering(change, amendments, commits)
    return History(result, amendments)


def _users_by_day(ledger: Ledger, user_ids: dict[str, str]) -> dict[datetime.date, set[str]]:
    """The users with written transactions or recorded balances of each day (a seal's users)."""
    by_day: dict[datetime.date, set[str]] = {}
    for entry in ledger.entries:
        if engine.is_generated(entry):
            continue
        if isinstance(entry, data.Transaction):
            accounts = [posting.account for posting in entry.postings]
            day = entry.date
        elif isinstance(entry, data.Balance):
            accounts, day = [entry.account], entry.date - ONE_DAY
        else:
            continue
        for account in accounts:
            if account in user_ids:
                by_day.setdefault(day, set()).add(user_ids[account])
    return by_day


def _user(account: str) -> str:
    try:
        return user_id_of(account.rpartition(":")[2])
    except UserIdError:
        return account


def _covering(
    change: Change, amendments: list[Amendment], commits: list[folder_log.CommitPatch]
) -> Amendment | None:
    """A later amendment whose days hold the change's day."""
    order = {item.commit.sha: index for index, item in enumerate(commits)}
    made_at = order.get(change.commit.sha, len(commits))
    for amendment in amendments:
        if (
            order.get(amendment.commit.sha, len(commits)) >= made_at
            and amendment.day <= change.day <= amendment.through
        ):
            return amendment
    return None


def describe(change: Change) -> list[str]:
    """A change as verify prints it: who, day, what, then the commit."""
    who = ", ".join(change.users) or "(no user)"
    what = {
        "transaction": f"transaction {change.key}",
        "balance": "recorded balance",
        "seal": f"seal of {change.key}",
        "amendment": "amendment record",
        "open": f"open {change.key}",
        "close": f"close {change.key}",
    }[change.kind]
    done = "changed" if change.removed and change.added else "added" if change.added else "removed"
    lines = [f"{who} {shown_day(change)}: {what} {done} ({change.path})"]
    lines += [f"  - {text.strip()}" for text in change.removed]
    lines += [f"  + {text.strip()}" for text in change.added]
    commit = change.commit
    if commit.committed:
        by = f"{commit.short} {commit.date} {commit.author} <{commit.email}>: {commit.summary}"
    else:
        by = "uncommitted (working tree)"
    if change.made_by_amendment:
        lines.append(f"  amended in {by}")
    else:
        lines.append(f"  in {by}")
        if change.amendment is not None:
            lines.append(f"  amended later: {describe_amendment(change.amendment)}")
    return lines


def shown_day(change: Change) -> datetime.date | str:
    """The day a change is listed under: a balance line's own date, as the line and
    bean-check give it (it holds the sealed day before: ``change.day``)."""
    if change.kind == "balance":
        for text in [*change.removed, *change.added]:
            try:
                return datetime.date.fromisoformat(text.strip()[:10])
            except ValueError:
                continue
    return change.day


def describe_amendment(amendment: Amendment) -> str:
    commit = amendment.commit
    who = f"{commit.author} <{commit.email}>" if commit.committed else "uncommitted"
    approved = f", approved by {amendment.approved_by}" if amendment.approved_by else ""
    return (
        f"{amendment.day} .. {amendment.through} on {amendment.date} by {who} "
        f"({commit.short}){approved}: {amendment.reason}"
    )


def audit_rows(ledger: Ledger, blame: git_history.BlameMap) -> list[list[Cell]]:
    """The audit report's ledger-wide rows: every amendment and every broken seal.

    Columns as :mod:`beancount_credits.reports.audit` has them (Date, Kind, User
    ID, Transaction ID, Credit type, Amount, Details, Written by). An amendment
    is dated on the first day it changed and written by the git author of its
    record; a broken seal on its day, written by the authors of the changes of
    that day no amendment records (from git, when the ledger is in it).
    """
    from beancount_credits.engine import canonical, seal

    rows: list[list[Cell]] = []
    for entry in ledger.entries:
        if not (isinstance(entry, data.Custom) and entry.type == AMEND_TYPE):
            continue
        values = [canonical.custom_value(value) for value in entry.values]
        day = values[0] if values and isinstance(values[0], datetime.date) else entry.date
        meta = entry.meta
        details = (
            f"reason: {meta.get('reason') or '(none)'}; "
            f"approved by: {meta.get('approved_by') or '(none)'}; "
            f"sealed again through {meta.get('through')} on {entry.date}; "
            f"changed: {meta.get('changed') or '(not listed)'}"
        )
        found = provenance.entry_provenance(entry, blame)
        who = "" if found is None else (found.last.author or "uncommitted")
        rows.append([day, "amendment", None, None, None, None, details, who])
    state = seal.check(ledger.entries)
    if state.problems:
        history = changes(ledger) if blame else None
        for problem in state.problems:
            if not problem.content_changed:
                continue
            authors = sorted(
                {
                    change.commit.author or "uncommitted"
                    for change in (history.unamended if history else [])
                    if change.day == problem.day
                }
            )
            rows.append(
                [
                    problem.day,
                    "broken-seal",
                    None,
                    None,
                    None,
                    None,
                    problem.message,
                    ", ".join(authors),
                ]
            )
    return rows
