"""The git history of ledger lines: the commit of each line, and every commit that changed a range.

Operators change the ledger by committing its text to git, so who wrote a
line, when and why is git's answer. This module asks git (through
:mod:`beancount_credits.ledger.git`, one subprocess per file or question,
arguments passed as a list -- never a shell -- so any file name is safe) and
parses what it says into plain values:

- :func:`blame`: every line of each ledger file with the commit that added or
  last changed it (``git blame --porcelain``, :func:`parse_porcelain`);
- :func:`line_history`: every commit that changed a range of lines, newest
  first (``git log -L`` on the HEAD lines the working tree's lines map to,
  :func:`map_to_head`, :func:`parse_log`);
- :func:`find_work_tree`, :func:`git_output`, :func:`is_ancestor` for the
  audit tools that read the history of seals (:mod:`beancount_credits.audit.seal_history`).

A ledger outside git is not an error: its files are left out (provenance is
unavailable). Lines git has not recorded yet (edited or new since the last
commit, or files git does not track) are :data:`UNCOMMITTED` -- exactly what
an auditor needs to see. What an entry's lines say about the entry is
:mod:`beancount_credits.audit.provenance`.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from beancount_credits.ledger import git
from beancount_credits.ledger.text import entry_span, split_lines

ZERO_SHA: Final = "0" * 40
SHORT_SHA: Final = 10  # long enough to stay unique in a ledger's history, short enough to read


class ProvenanceError(Exception):
    """Git failed in a way that is not "no repository" or "not committed yet"."""


@dataclasses.dataclass(frozen=True)
class Commit:
    """A commit as the audit trail shows it (or :data:`UNCOMMITTED`)."""

    sha: str
    author: str
    email: str
    date: str  # author date, ISO 8601 with the author's UTC offset
    summary: str  # first line of the message
    committer_time: int = 0  # seconds since the epoch; orders commits by when they were made

    @property
    def committed(self) -> bool:
        return self.sha != ZERO_SHA

    @property
    def short(self) -> str:
        """The abbreviated sha, or ``"uncommitted"``."""
        return self.sha[:SHORT_SHA] if self.committed else "uncommitted"

    @property
    def day(self) -> datetime.date | None:
        """The author date's calendar day (in the author's time zone)."""
        return datetime.date.fromisoformat(self.date[:10]) if self.date else None


#: What git has not recorded yet: working-tree edits and untracked files.
UNCOMMITTED: Final = Commit(ZERO_SHA, "", "", "", "")


@dataclasses.dataclass(frozen=True)
class FileBlame:
    """One ledger file's lines with the commit each line comes from."""

    path: str  # absolute, as the loader names files in entry metadata
    lines: tuple[str, ...]  # lines[0] is line 1
    commits: tuple[Commit, ...]  # commits[0] made line 1

    def commit_at(self, lineno: int) -> Commit:
        """The commit that added or last changed line ``lineno`` (1-based).

        A line the file no longer has (it changed since it was loaded) is
        reported as uncommitted rather than guessed.
        """
        if 1 <= lineno <= len(self.commits):
            return self.commits[lineno - 1]
        return UNCOMMITTED

    def entry_span(self, lineno: int) -> tuple[int, int]:
        """The lines of the entry whose header is ``lineno`` (see ``ledger.text.entry_span``)."""
        return entry_span(self.lines, lineno)


#: Blame of ledger files by absolute path; files outside git are absent.
BlameMap = dict[str, FileBlame]


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return git.run(cwd, *args, stdin=stdin)


def _fail(what: str, result: subprocess.CompletedProcess[bytes]) -> ProvenanceError:
    return ProvenanceError(str(git.failure(what, result)))


def git_output(repo: Path, *args: str) -> bytes:
    """Run git in ``repo`` (a list of arguments, never a shell); its output or ProvenanceError."""
    try:
        return git.output(repo, *args)
    except git.GitError as exc:
        raise ProvenanceError(str(exc)) from None


find_work_tree = git.work_tree


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    """True when commit ``older`` is an ancestor of ``newer`` (see :func:`git.is_ancestor`)."""
    try:
        return git.is_ancestor(repo, older, newer)
    except git.GitError as exc:
        raise ProvenanceError(str(exc)) from None


def _committed_paths(root: Path, relpaths: Sequence[str]) -> set[str]:
    """Which of these paths (relative to ``root``) exist in HEAD.

    One ``git cat-file --batch-check`` per repository answers it for all
    files, with exact names (no pathspec globbing) and without parsing
    translated error messages; an unborn HEAD simply reports every path missing.
    """
    asked = [relpath for relpath in relpaths if "\n" not in relpath]
    if not asked:
        return set()
    stdin = b"".join(b"HEAD:" + os.fsencode(relpath) + b"\n" for relpath in asked)
    result = _git(root, "cat-file", "--batch-check", stdin=stdin)
    if result.returncode != 0:
        raise _fail(f"git cat-file in {root}", result)
    answers = result.stdout.split(b"\n")
    return {
        relpath
        for relpath, answer in zip(asked, answers, strict=False)
        if not answer.endswith(b" missing") and answer.split(b" ")[1:2] == [b"blob"]
    }


def _blame_file(root: Path, relpath: str, line_count: int) -> tuple[Commit, ...]:
    result = _git(root, "blame", "--porcelain", "--", relpath)
    if result.returncode != 0:
        raise _fail(f"git blame {relpath} in {root}", result)
    by_line = parse_porcelain(result.stdout)
    return tuple(by_line.get(number, UNCOMMITTED) for number in range(1, line_count + 1))


def _iso_date(epoch: str, tz: str) -> str:
    """Git's ``<seconds> <+hhmm>`` as ISO 8601, the form ``git log --format=%aI`` prints."""
    sign = -1 if tz.startswith("-") else 1
    offset = datetime.timedelta(hours=int(tz[1:3]), minutes=int(tz[3:5])) * sign
    when = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone(offset))
    return when.isoformat()


def parse_porcelain(output: bytes) -> dict[int, Commit]:
    """Commit by final line number, from ``git blame --porcelain`` output.

    Each line's record is a header ``<sha> <orig> <final> [<count>]``, the
    commit's ``key value`` lines (only the first time a commit appears), and
    the line's content prefixed by a TAB, which ends the record. Contents are
    skipped by that TAB, so no line of the ledger can be mistaken for a key.
    """
    infos: dict[str, dict[str, str]] = {}
    shas: dict[int, str] = {}
    sha: str | None = None
    for raw in output.split(b"\n"):
        if sha is None:
            if not raw:
                continue
            fields = raw.decode("ascii", "replace").split(" ")
            sha = fields[0]
            shas[int(fields[2])] = sha
            infos.setdefault(sha, {})
        elif raw.startswith(b"\t"):
            sha = None
        else:
            key, _, value = raw.decode("utf-8", "replace").partition(" ")
            infos[sha][key] = value
    commits = {sha: _porcelain_commit(sha, info) for sha, info in infos.items()}
    return {number: commits[sha] for number, sha in shas.items()}


def _porcelain_commit(sha: str, info: dict[str, str]) -> Commit:
    if sha == ZERO_SHA:
        return UNCOMMITTED  # git's "Not Committed Yet": one value, so callers can compare
    return Commit(
        sha=sha,
        author=info.get("author", ""),
        email=info.get("author-mail", "").removeprefix("<").removesuffix(">"),
        date=_iso_date(info.get("author-time", "0"), info.get("author-tz", "+0000")),
        summary=info.get("summary", ""),
        committer_time=int(info.get("committer-time", "0")),
    )


def _read_lines(path: Path) -> tuple[str, ...]:
    """The file's lines, split on ``\\n`` only, as Beancount counts line numbers."""
    text = path.read_bytes().decode("utf-8", "replace")
    return tuple(line.removesuffix("\n") for line in split_lines(text))


def _locate(
    path: str | os.PathLike[str], roots: dict[Path, Path | None]
) -> tuple[Path, str] | None:
    """(work tree root, path relative to it in git's form), or None outside git."""
    resolved = Path(path).resolve()
    if resolved.parent not in roots:
        roots[resolved.parent] = find_work_tree(resolved.parent)
    root = roots[resolved.parent]
    if root is None:
        return None
    try:
        return root, resolved.relative_to(root).as_posix()
    except ValueError:  # e.g. inside .git: not part of the work tree
        return None


def blame(paths: Iterable[str | os.PathLike[str]]) -> BlameMap:
    """Blame each ledger file: for every line, the commit that added or last changed it.

    One ``git blame --porcelain`` per file tracked in HEAD (run at the work
    tree root, the path after ``--``); lines changed since the last commit
    come back as :data:`UNCOMMITTED`, and so does every line of a file HEAD
    does not have (untracked or newly added). Files outside any git work tree
    are left out of the result: their provenance is unavailable.
    """
    roots: dict[Path, Path | None] = {}
    located: dict[str, tuple[Path, str]] = {}
    for path in paths:
        key = os.path.abspath(path)
        where = _locate(key, roots)
        if where is not None:
            located[key] = where
    by_root: dict[Path, list[str]] = {}
    for root, relpath in located.values():
        by_root.setdefault(root, []).append(relpath)
    committed = {root: _committed_paths(root, relpaths) for root, relpaths in by_root.items()}
    result: BlameMap = {}
    for key, (root, relpath) in located.items():
        lines = _read_lines(Path(key))
        if relpath in committed[root]:
            commits = _blame_file(root, relpath, len(lines))
        else:
            commits = (UNCOMMITTED,) * len(lines)
        result[key] = FileBlame(key, lines, commits)
    return result


HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
Hunk = tuple[int, int, int, int]  # old start, old count, new start, new count (git diff -U0)


def _worktree_hunks(root: Path, relpath: str) -> list[Hunk]:
    result = _git(
        root,
        "--literal-pathspecs",
        "diff",
        "--no-ext-diff",
        "--no-textconv",
        "--no-color",
        "--no-renames",
        "-U0",
        "HEAD",
        "--",
        relpath,
    )
    if result.returncode != 0:
        raise _fail(f"git diff {relpath} in {root}", result)
    hunks = []
    for line in result.stdout.split(b"\n"):
        match = HUNK.match(line)
        if match:
            old, old_count, new, new_count = match.groups()
            hunks.append(
                (
                    int(old),
                    1 if old_count is None else int(old_count),
                    int(new),
                    1 if new_count is None else int(new_count),
                )
            )
    return hunks


def map_to_head(hunks: Sequence[Hunk], start: int, end: int) -> tuple[bool, tuple[int, int] | None]:
    """Map working-tree lines ``start..end`` to HEAD through ``git diff -U0`` hunks.

    Returns whether the working tree changed any of those lines, and the HEAD
    line range that holds them (including lines a working-tree edit replaced),
    or None when every line is new. ``git log -L`` reads HEAD, while the
    loader (and so every entry's line number) reads the working tree. Lines
    deleted right before ``start`` or after ``end`` count as the neighbours'.
    """
    touched = False
    head_lines: list[int] = []

    def replaced(old: int, old_count: int) -> None:
        if old_count:
            head_lines.extend((old, old + old_count - 1))

    for number in range(start, end + 1):
        delta = 0
        inside = None
        for hunk in hunks:
            old, old_count, new, new_count = hunk
            if new_count and new <= number < new + new_count:
                inside = hunk
                break
            if (new_count and new + new_count - 1 < number) or (not new_count and new < number):
                delta += old_count - new_count
            else:
                break
        if inside is None:
            head_lines.append(number + delta)
        else:
            touched = True
            replaced(inside[0], inside[1])
    for old, old_count, new, new_count in hunks:
        if not new_count and start <= new < end:  # lines deleted from inside the range
            touched = True
            replaced(old, old_count)
    return touched, (min(head_lines), max(head_lines)) if head_lines else None


LOG_FORMAT: Final = "%x1e%H%x1f%aN%x1f%aE%x1f%aI%x1f%ct%x1f%B"


def parse_log(output: bytes) -> list[Commit]:
    """Commits from ``git log --format=LOG_FORMAT`` output (records start with 0x1E)."""
    commits = []
    for record in output.decode("utf-8", "replace").split("\x1e")[1:]:
        fields = record.split("\x1f", 5)
        if len(fields) != 6:
            raise ProvenanceError(f"unexpected git log output: {record[:200]!r}")
        sha, author, email, date, committer_time, message = fields
        summary = message.strip("\n").split("\n", 1)[0]
        commits.append(Commit(sha, author, email, date, summary, int(committer_time)))
    return commits


def line_history(path: str | os.PathLike[str], start: int, end: int) -> list[Commit]:
    """Every commit that changed lines ``start..end`` of ``path``, newest first.

    Line numbers are the working tree's (what the loader read and entries'
    ``lineno`` say). If the working tree changed any of those lines, the list
    starts with :data:`UNCOMMITTED`; the committed part comes from ``git log
    -L`` on the matching HEAD lines, which follows the lines back through
    every edit to the commit that added them (the last item). Outside git the
    list is empty; for a file HEAD does not have it is ``[UNCOMMITTED]``.
    """
    where = _locate(os.path.abspath(path), {})
    if where is None:
        return []
    root, relpath = where
    if relpath not in _committed_paths(root, [relpath]):
        return [UNCOMMITTED]
    touched, head_range = map_to_head(_worktree_hunks(root, relpath), start, end)
    changed = [UNCOMMITTED] if touched else []
    if head_range is None:
        return changed
    first, last = head_range
    result = _git(
        root,
        "log",
        "--no-patch",
        "--no-show-signature",
        f"--format={LOG_FORMAT}",
        f"-L{first},{last}:{relpath}",
        "HEAD",
    )
    if result.returncode != 0:
        raise _fail(f"git log -L {first},{last}:{relpath} in {root}", result)
    return changed + parse_log(result.stdout)
