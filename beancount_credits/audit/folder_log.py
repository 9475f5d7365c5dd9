"""The ledger folder's history from git: each commit's patch, and file texts at a commit.

What :mod:`beancount_credits.audit.seal_history` walks: :func:`log`
gives every commit that touched the ledger's folder, oldest first, with its
``-U0`` patch cut into :class:`FileHunk` s (:func:`parse_patch`; removed lines
numbered in the parent's text, added ones in the commit's), and
:func:`working_tree` the working tree's edits since HEAD as one more
:class:`CommitPatch`; :class:`Versions` reads a file's text at a commit once.
Git is asked through :func:`beancount_credits.audit.git_history.git_output`
(a list of arguments, never a shell; file names unquoted by
``core.quotepath=off``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

from beancount_credits.audit import git_history

# git log: a record per commit (0x1e), fields (0x1f), the patch after 0x1d.
_FORMAT = "%x1e%H%x1f%P%x1f%aN%x1f%aE%x1f%aI%x1f%ct%x1f%s%x1d"
_FILE_RE = re.compile(r"^\+\+\+ (?:b/(.*)|/dev/null)$")
_OLD_FILE_RE = re.compile(r"^--- (?:a/(.*)|/dev/null)$")


@dataclasses.dataclass
class FileHunk:
    path: str
    removed: list[tuple[int, str]]  # (old line number, text)
    added: list[tuple[int, str]]  # (new line number, text)


@dataclasses.dataclass
class CommitPatch:
    commit: git_history.Commit
    parent: str | None
    hunks: list[FileHunk]


def parse_patch(patch: str) -> list[FileHunk]:
    hunks: list[FileHunk] = []
    path: str | None = None
    old_path: str | None = None
    old = new = 0
    for line in patch.split("\n"):
        if line.startswith("diff --git "):
            path = old_path = None
            continue
        found = _OLD_FILE_RE.match(line)
        if found and line.startswith("--- "):
            old_path = found.group(1)
            continue
        found = _FILE_RE.match(line)
        if found and line.startswith("+++ "):
            path = found.group(1) or old_path
            continue
        header = git_history.HUNK.match(line.encode())
        if header:
            old, new = int(header.group(1)), int(header.group(3))
            hunks.append(FileHunk(path or "", [], []))
            continue
        if not hunks:
            continue
        if line.startswith("-") and not line.startswith("--- "):
            hunks[-1].removed.append((old, line[1:]))
            old += 1
        elif line.startswith("+") and not line.startswith("+++ "):
            hunks[-1].added.append((new, line[1:]))
            new += 1
    return hunks


def log(repo: Path, folder: str) -> Iterator[CommitPatch]:
    """Every commit that touched the folder, oldest first, with its -U0 patch."""
    output = git_history.git_output(
        repo,
        "-c",
        "core.quotepath=off",
        "log",
        "--reverse",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--no-renames",
        "-p",
        "-U0",
        f"--format={_FORMAT}",
        "HEAD",
        "--",
        folder,
    ).decode("utf-8", "replace")
    for record in output.split("\x1e")[1:]:
        head, _sep, patch = record.partition("\x1d")
        sha, parents, author, email, date, committed, summary = head.split("\x1f", 6)
        commit = git_history.Commit(sha, author, email, date, summary, int(committed))
        yield CommitPatch(
            commit, parents.split()[0] if parents.split() else None, parse_patch(patch)
        )


def working_tree(repo: Path, folder: str) -> CommitPatch | None:
    output = git_history.git_output(
        repo,
        "-c",
        "core.quotepath=off",
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--no-renames",
        "-U0",
        "HEAD",
        "--",
        folder,
    ).decode("utf-8", "replace")
    hunks = parse_patch(output)
    return CommitPatch(git_history.UNCOMMITTED, "HEAD", hunks) if hunks else None


class Versions:
    """File texts at commits (``None`` sha: the working tree), read once each."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.cache: dict[tuple[str | None, str], list[str]] = {}

    def lines(self, sha: str | None, path: str) -> list[str]:
        key = (sha, path)
        if key not in self.cache:
            if sha is None:
                file = self.repo / path
                text = file.read_bytes().decode("utf-8", "replace") if file.exists() else ""
            else:
                text = git_history.git_output(self.repo, "show", f"{sha}:{path}").decode(
                    "utf-8", "replace"
                )
            lines = text.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            self.cache[key] = lines
        return self.cache[key]
