"""The one place that runs git: a list of arguments, never a shell, messages in English.

The write path commits what it wrote (:mod:`.write`), and the audit tools read
who changed which line (:mod:`beancount_credits.audit.git_history`,
:mod:`beancount_credits.audit.seal_history`); both go through :func:`run`.
A ledger outside git is legitimate: :func:`work_tree` answers None then.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class GitError(Exception):
    """A git command that failed; the message names it and quotes git's own."""


def run(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``git ARGS`` in ``cwd``; the completed process, whatever its exit status."""
    env = {**os.environ, "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"}
    return subprocess.run(
        ["git", *args], cwd=cwd, input=stdin, capture_output=True, env=env, check=False
    )


def failure(what: str, result: subprocess.CompletedProcess[bytes]) -> GitError:
    """The GitError of a failed command (git's message, else its exit status)."""
    message = (result.stderr or result.stdout).decode("utf-8", "replace").strip()
    return GitError(f"{what}: {message or f'exit {result.returncode}'}")


def output(repo: Path, *args: str) -> bytes:
    """The output of ``git ARGS`` in ``repo``; GitError when it fails."""
    result = run(repo, *args)
    if result.returncode != 0:
        raise failure(f"git {args[0]} in {repo}", result)
    return result.stdout


def text(repo: Path, *args: str) -> str:
    """:func:`output` as text."""
    return output(repo, *args).decode("utf-8", "replace")


def work_tree(path: str | os.PathLike[str]) -> Path | None:
    """The root of the git work tree holding ``path`` (a file or directory), or None.

    None covers every reason there is no history to read: not in a
    repository, git not installed, a repository git refuses to use.
    """
    target = Path(path).resolve()
    directory = target if target.is_dir() else target.parent
    try:
        result = run(directory, "rev-parse", "--show-toplevel")
    except OSError:
        return None
    top = os.fsdecode(result.stdout).rstrip("\n")
    if result.returncode != 0 or not top:
        return None
    return Path(top).resolve()


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    """True when commit ``older`` is an ancestor of ``newer`` (or the same commit).

    History order, not commit times: two commits made in the same second
    (a script, a rebase) still come out in the order git recorded them.
    """
    result = run(repo, "merge-base", "--is-ancestor", older, newer)
    if result.returncode not in (0, 1):
        raise failure(f"git merge-base --is-ancestor {older} {newer}", result)
    return result.returncode == 0
