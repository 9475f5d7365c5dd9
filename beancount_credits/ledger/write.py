"""The one write path: every command that changes the ledger text goes through here.

A write is:

- **locked**: :func:`ledger_lock` takes an exclusive ``flock`` on
  ``<ledger dir>/.bean-credits.lock`` for the whole read-compute-write, so two
  writers never interleave (the kernel drops the lock if a writer dies);
- **checked**: the ledger as it would be after the change is loaded with
  Beancount's full loader (plugins on) from a staging copy; any error aborts
  and nothing is written. A writer that loaded the ledger with
  ``ledger.load(..., for_write=True)`` gets the same check cheaper: the parse
  and booking of the files it does not change are reused, and the plugins and
  validations run over the whole changed ledger (:mod:`beancount_credits.ledger.incremental`
  says when that is allowed; otherwise the staging copy is loaded);
- **atomic**: each file is written to a temporary sibling, fsynced and renamed
  over the old one, so a crash leaves the old file or the new one, never half.
  A change of several files (or one that removes a file) is all or nothing:
  the new texts are staged as temporary siblings first, then a journal
  (``<ledger dir>/.bean-credits-pending.json``) marks them ready, then they
  are renamed into place (new files before the files that include them) and
  removed files deleted. A crash before "ready" leaves the ledger as it was; a
  crash after it is rolled forward by the next writer as soon as it holds the
  lock (:func:`finish_pending`; ``bean-credits recover`` does only that), and
  :func:`pending_write` lets readers refuse a half-applied ledger;
- **escaped**: entries are rendered by :mod:`beancount_credits.ledger.render`,
  whose ``quote`` every string from outside goes through, so no input can end
  a string and start a directive;
- **line-exact**: ledger text is read without newline translation and split
  into lines by ``\n`` only, as Beancount counts them
  (:mod:`beancount_credits.ledger.text`): a U+2028, form feed or lone carriage
  return inside a string is data, never a line end, so an edit made at a line
  Beancount reported lands on that line;
- optionally **committed** to git with a message that says what was written,
  refusing when unrelated changes are already staged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from beancount.core import data

from beancount_credits.ledger import git, incremental, pipeline
from beancount_credits.ledger.render import WriteError, render
from beancount_credits.ledger.render import quote as quote  # re-exported for hand-built text
from beancount_credits.ledger.text import read_text

log = logging.getLogger(__name__)

LOCK_NAME = ".bean-credits.lock"
PENDING_NAME = ".bean-credits-pending.json"


# --- Lock ----------------------------------------------------------------------


@contextlib.contextmanager
def ledger_lock(main: Path, timeout: float = 120.0) -> Iterator[str | None]:
    """Hold the ledger's writer lock (an exclusive flock) for the block.

    A write a crashed writer left half-applied is completed first
    (:func:`finish_pending`; said on stderr, and yielded), so the block reads
    a whole ledger.
    """
    path = main.resolve().parent / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise WriteError(
                        f"another bean-credits writer has held {path} for {timeout:.0f} s; "
                        "try again later"
                    ) from None
                time.sleep(0.05)
        finished = finish_pending(main)
        if finished is not None:
            log.warning("%s", finished)
        yield finished
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# --- Check, write, commit --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FileChange:
    """The new full text of one ledger file (absolute path); ``text`` None removes the file."""

    path: Path
    text: str | None


def ledger_files(main: Path, options: dict[str, Any]) -> list[Path]:
    """Every file the loaded ledger consists of (Beancount's ``include`` list)."""
    files = [Path(name) for name in options.get("include", [])]
    return files or [main.resolve()]


def month_files(
    main: Path,
    options: dict[str, Any],
    folder: str,
    entries: Sequence[data.Directive],
    header: str,
    include_comment: str,
) -> list[FileChange]:
    """Append ``entries`` to ``<folder>/YYYY/MM.beancount`` by date; include the glob once.

    The month files of close-day's log, the notification records and the
    top-up requests. ``header`` (with ``{month}`` for ``YYYY-MM``) starts a new
    file; a file on disk that the ledger does not include yet (a crash before
    the include was added) is rewritten, not appended to.
    """
    root = main.resolve().parent
    included = {Path(name).resolve() for name in options.get("include", [])}
    by_month: dict[Path, list[data.Directive]] = {}
    for entry in sorted(entries, key=lambda entry: entry.date):  # stable: keeps their order
        path = root / folder / f"{entry.date.year:04d}" / f"{entry.date.month:02d}.beancount"
        by_month.setdefault(path, []).append(entry)
    result = []
    for path, month in sorted(by_month.items()):
        if path in included:
            text = read_text(path)
            if text and not text.endswith("\n"):
                text += "\n"
        else:
            text = "; " + header.format(month=f"{path.parent.name}-{path.stem}") + "\n"
        text += "".join("\n" + render(entry) for entry in month)
        result.append(FileChange(path, text))
    main_text = read_text(main)
    include = f'include "{folder}/*/*.beancount"'
    if result and include not in main_text:
        separator = "" if main_text.endswith("\n") else "\n"
        main_text += f"{separator}\n; {include_comment}\n{include}\n"
        result.append(FileChange(main, main_text))
    return result


@contextlib.contextmanager
def staging(
    main: Path, files: Sequence[Path], changes: Sequence[FileChange]
) -> Iterator[tuple[Path, str, str]]:
    """A staging copy of the ledger after ``changes``: (its main file, its folder, the ledger's)."""
    main = main.resolve()
    changed = {change.path.resolve(): change.text for change in changes}
    removed = {path for path, text in changed.items() if text is None}
    everything = ({path.resolve() for path in files} | set(changed) | {main}) - removed
    root = Path(os.path.commonpath([str(path.parent) for path in everything]))
    with tempfile.TemporaryDirectory(prefix="bean-credits-check-") as staging_dir:
        stage = Path(staging_dir)
        for path in everything:
            target = stage / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            text = changed.get(path)
            if text is not None:
                target.write_text(text, encoding="utf-8", newline="")
            elif path.exists():
                shutil.copyfile(path, target)
        yield stage / main.relative_to(root), staging_dir, str(root)


def staged_check(main: Path, files: Sequence[Path], changes: Sequence[FileChange]) -> list[str]:
    """Load the ledger as it would be after ``changes`` (a staging copy); return its errors."""
    with staging(main, files, changes) as (staged_main, staging_dir, root):
        # Beancount's own loader, minus its pickle cache: a cache of a staging
        # copy would be thrown away, and dumping it costs seconds on a large ledger.
        _entries, errors, _options = pipeline.load_uncached(staged_main)
        return error_messages(errors, (staging_dir, root))


def staged_load(
    main: Path, files: Sequence[Path], changes: Sequence[FileChange]
) -> tuple[list[data.Directive], list[Any], dict[str, Any]]:
    """The ledger as it would be after ``changes``, loaded from a staging copy.

    Entries, errors and the include list name the ledger's own files, so a
    writer can plan further edits of them from this load.
    """
    with staging(main, files, changes) as (staged_main, staging_dir, root):
        entries, errors, options = pipeline.load_uncached(staged_main)

    def real(name: object) -> object:
        if isinstance(name, str) and name.startswith(staging_dir):
            return root + name[len(staging_dir) :]
        return name

    for entry in entries:
        if entry.meta:
            entry.meta["filename"] = real(entry.meta.get("filename"))
    for error in errors:
        if error.source and "filename" in error.source:
            error.source["filename"] = real(error.source["filename"])
    options["include"] = [real(name) for name in options.get("include", [])]
    return entries, errors, options


def error_messages(errors: Sequence[Any], rename: tuple[str, str] | None = None) -> list[str]:
    """Errors as ``file:line: message``; ``rename`` maps a staging folder back to the ledger's."""
    messages = []
    for error in errors:
        source = error.source or {}
        filename = str(source.get("filename", "?"))
        if rename is not None:
            filename = filename.replace(*rename)
        messages.append(f"{filename}:{source.get('lineno', '?')}: {error.message}")
    return messages


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: temporary sibling, fsync, rename, fsync the folder."""
    temporary = write_temporary(path, text)
    os.replace(temporary, path)
    fsync_folder(path.parent)


def write_temporary(path: Path, text: str) -> Path:
    """``text`` in a fsynced temporary sibling of ``path`` (a name no include glob matches)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    with open(temporary, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return temporary


def temporary_path(path: Path) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}.tmp"


def fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- Several files as one change: a journal, rolled forward after a crash --------


def pending_path(main: Path) -> Path:
    return main.resolve().parent / PENDING_NAME


def pending_write(main: Path) -> str | None:
    """What a write left half-applied in the ledger's folder says it was doing (None: nothing)."""
    journal = read_journal(main)
    if journal is None or journal.get("state") != "ready":
        return None
    return str(journal.get("message") or "a write")


def read_journal(main: Path) -> dict[str, Any] | None:
    try:
        text = pending_path(main).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        journal = json.loads(text)
    except ValueError:
        raise WriteError(
            f"{pending_path(main)} is not a bean-credits journal; it was written by "
            "something else, or by hand: move it away and check the ledger"
        ) from None
    return journal if isinstance(journal, dict) else None


def write_journal(main: Path, journal: dict[str, Any]) -> None:
    write_atomic(pending_path(main), json.dumps(journal, indent=1) + "\n")


def write_files(main: Path, changes: Sequence[FileChange], message: str) -> None:
    """Apply ``changes`` all or nothing (see the module docstring): stage, mark ready, finish."""
    stage(main, changes, message)
    finish_pending(main)


def stage(main: Path, changes: Sequence[FileChange], message: str) -> None:
    """Write the new texts as temporaries and the journal that says how to put them in place.

    Until the journal says "ready" (its last step) the ledger is untouched and
    :func:`finish_pending` drops the temporaries; after, it renames them into
    place and removes the files to remove, in ``changes``' order.
    """
    steps: list[dict[str, str | None]] = []
    for change in changes:
        path = change.path.resolve()
        temporary = None if change.text is None else str(temporary_path(path))
        steps.append({"path": str(path), "temporary": temporary})
    journal = {"state": "staging", "message": message, "steps": steps}
    write_journal(main, journal)  # names the temporaries before they exist: a crash drops them
    for change in changes:
        if change.text is not None:
            write_temporary(change.path.resolve(), change.text)
    for folder in {Path(str(step["path"])).parent for step in steps if step["temporary"]}:
        fsync_folder(folder)
    write_journal(main, {**journal, "state": "ready"})


def finish_pending(main: Path) -> str | None:
    """Complete (or, if it never got ready, drop) the write a journal describes.

    Safe to repeat: a step already done has no temporary left or no file to
    remove. Returns what was done, or None when no write was pending.
    """
    journal = read_journal(main)
    if journal is None:
        return None
    root = main.resolve().parent
    steps = journal.get("steps", [])
    ready = journal.get("state") == "ready"
    for step in steps:
        path, temporary = Path(step["path"]), step.get("temporary")
        if not ready:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
                prune_folders(path.parent, root)  # folders made for new files
        elif temporary is not None:
            if Path(temporary).exists():
                os.replace(temporary, path)
                fsync_folder(path.parent)
        elif path.exists():
            path.unlink()
            prune_folders(path.parent, root)
    pending_path(main).unlink()
    fsync_folder(root)
    message = journal.get("message") or "a write"
    if ready:
        return f"completed an interrupted write ({len(steps)} file(s)): {message}"
    return f"dropped an interrupted write that had not started changing the ledger: {message}"


def prune_folders(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents up to ``root`` while they are empty."""
    while folder != root and folder.is_relative_to(root) and folder.is_dir():
        if any(folder.iterdir()):
            return
        folder.rmdir()
        folder = folder.parent


def git_root(path: Path) -> Path | None:
    """The git work tree holding the ledger file ``path`` (None: not in git)."""
    return git.work_tree(path)


def git_text(repo: Path, *args: str) -> str:
    """``git ARGS`` in ``repo`` for the write path; a failure is a WriteError."""
    try:
        return git.text(repo, *args)
    except git.GitError as exc:
        raise WriteError(str(exc)) from None


def commit_preflight(main: Path) -> Path:
    """The repository to commit in; refuses if it is missing or has unrelated staged changes."""
    repo = git_root(main.resolve())
    if repo is None:
        raise WriteError(f"--commit: {main} is not in a git repository")
    staged = [
        line for line in git_text(repo, "diff", "--cached", "--name-only", "-z").split("\0") if line
    ]
    if staged:
        raise WriteError(
            "--commit: refusing to commit while other changes are staged; commit or unstage them",
            [f"staged: {name}" for name in staged],
        )
    git_text(repo, "var", "GIT_COMMITTER_IDENT")  # fails early when git has no identity
    return repo


def uncommitted_files(main: Path, files: Sequence[Path]) -> list[Path]:
    """The ledger files that differ from git's HEAD (changed or not tracked yet)."""
    repo = git_root(main.resolve())
    if repo is None:
        return []
    names = [str(Path(path).resolve()) for path in files]
    changed = git_text(repo, "diff", "--name-only", "-z", "HEAD", "--", *names).split("\0")
    new = git_text(repo, "ls-files", "-z", "--others", "--exclude-standard", "--", *names).split(
        "\0"
    )
    return sorted({(repo / name).resolve() for name in [*changed, *new] if name})


def uncommitted_output(main: Path, files: Sequence[Path], folder: str) -> tuple[list[Path], str]:
    """A job's earlier output in ``<folder>/`` that git does not have yet, and what stops it.

    The files under ``folder`` that differ from HEAD, with the main file when
    its only change is the ``include`` of that folder (what :func:`month_files`
    adds); ``reason`` names a main file changed otherwise (by hand), which a
    job must not commit for the user ("" when nothing stops it).
    """
    repo = git_root(main.resolve())
    if repo is None:
        return [], ""
    base = (main.resolve().parent / folder).resolve()
    changed = uncommitted_files(main, files)
    output = [path for path in changed if path.is_relative_to(base)]
    if not output or main.resolve() not in changed:
        return output, ""
    diff = git_text(repo, "diff", "--unified=0", "HEAD", "--", str(main.resolve()))
    lines = [
        line
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    include = f'include "{folder}/*/*.beancount"'
    ours = all(
        (line.startswith("+") and line[1:].strip() in ("", include)) or line.startswith("+;")
        for line in lines
    )
    if ours:
        return [*output, main.resolve()], ""
    return output, f"{main.name} has other uncommitted changes"


@dataclasses.dataclass
class WriteResult:
    written: list[Path]
    commit: str | None = None
    check: str = ""  # "incremental" or "staged": how the new text was checked
    removed: list[Path] = dataclasses.field(default_factory=list)


def check_changes(
    main: Path,
    files: Sequence[Path],
    changes: Sequence[FileChange],
    prepared: incremental.Prepared | None = None,
) -> tuple[list[str], str]:
    """The errors of the ledger after ``changes``, and which check found them."""
    if prepared is not None and all(change.text is not None for change in changes):
        errors = incremental.check(
            prepared, {change.path: change.text for change in changes if change.text is not None}
        )
        if errors is not None:
            return error_messages(errors), "incremental"
    return staged_check(main, files, changes), "staged"


def commit_only(main: Path, paths: Sequence[Path], message: str) -> str:
    """Commit files already written (by a run without --commit); the new commit's sha."""
    repo = commit_preflight(main)
    git_text(repo, "add", "--", *sorted(str(path.resolve()) for path in paths))
    git_text(repo, "commit", "--quiet", "-m", message)
    sha = git_text(repo, "rev-parse", "HEAD").strip()
    log.info("committed %s: %s", sha[:12], message)
    return sha


def apply(
    main: Path,
    files: Sequence[Path],
    changes: Sequence[FileChange],
    *,
    message: str,
    commit: bool = False,
    prepared: incremental.Prepared | None = None,
    also_commit: Sequence[Path] = (),
) -> WriteResult:
    """Check the changed ledger with the full loader, then write it, then commit.

    ``files`` are the ledger's current files (from the load that computed the
    changes); ``prepared`` is that load's reusable part, if it kept one;
    ``also_commit`` are files changed by hand that the commit takes with the
    write (an amendment's corrections). Call inside :func:`ledger_lock`. On any
    error nothing is written.
    """
    if not changes:
        return WriteResult([])
    repo = commit_preflight(main) if commit else None
    errors, how = check_changes(main, files, changes, prepared)
    if errors:
        raise WriteError(
            f"the ledger would have {len(errors)} error(s) after this write; nothing was written",
            errors,
        )
    log.info("checked %d changed file(s) (%s check): no errors", len(changes), how)
    main = main.resolve()
    # Files that others include go first, the including main file last (a
    # reader between two renames sees new files not yet included rather than
    # an include of a missing file).
    ordered = sorted(changes, key=lambda change: change.path.resolve() == main)
    only = ordered[0]
    if len(ordered) == 1 and only.text is not None:
        write_atomic(only.path, only.text)  # one rename: atomic without a journal
    else:
        write_files(main, ordered, message)
    written = [change.path for change in ordered if change.text is not None]
    removed = [change.path for change in ordered if change.text is None]
    sha = None
    if repo is not None:
        if written or also_commit:
            paths = {str(path.resolve()) for path in [*written, *also_commit]}
            git_text(repo, "add", "--", *sorted(paths))
        if removed:
            paths = [str(path.resolve()) for path in removed]  # type: ignore[assignment]
            git_text(repo, "rm", "--cached", "--quiet", "--ignore-unmatch", "--", *paths)
        git_text(repo, "commit", "--quiet", "-m", message)
        sha = git_text(repo, "rev-parse", "HEAD").strip()
        log.info("committed %s: %s", sha[:12], message)
    log.info("wrote %d file(s), removed %d", len(written), len(removed))
    return WriteResult(written, sha, how, removed)
