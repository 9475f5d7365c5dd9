"""Every command in the README (and in the docs' shell examples) runs as written.

A newcomer follows the README after the quick start: `.venv` activated, in the
repository root, on the demo ledger. This test does the same on a copy: the
repository's `ledgers/` and `queries/` copied into a temporary folder made a git
repository (as a clone is), `.venv` linked to the running interpreter's
environment, and the commands run in order, each in `bash`, with `.venv/bin`
first on PATH.

What counts as a command:

- a line of a ```` ```sh ```` block (a trailing backslash continues it; blank
  lines and lines starting with ``#`` are not commands);
- a line starting with ``$ `` in a ```` ```console ```` block; the lines after
  it, up to the next ``$ `` or the block's end, are what the command prints on
  standard output: each is compared with the printed line (trailing spaces
  aside), a line ``...`` stands for any number of lines, and ``...`` inside a
  line for any text.

Blocks of any other kind (```` ```text ````, ```` ```beancount ````, ...) are
synopses, sample output or examples for a ledger of one's own, and are not run.

A command must exit with status 0, unless it ends with the comment
``# exit status N``. Not run, by rule:

- ``make ...``: the quick start and the other make targets set up the
  environment (the suite itself runs under ``make test``);
- commands that start a server and do not return: ``bean-credits serve``,
  ``bean-credits service``, ``fava``;
- ``. .venv/bin/activate`` (or ``source``): checked once to work, then applied
  to every later command through PATH.

Each file runs on its own fresh copy, so a page's examples may build on one
another (the README's do: import, then close-day, then verify, ...).

Besides, every relative link of these files names a file of the repository (and
a ``#fragment`` a heading of it), and none points outside the repository.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ROOT, git

DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

SERVERS = (("bean-credits", "serve"), ("bean-credits", "service"), ("fava",))
ACTIVATE = re.compile(r"^(\.|source)\s+\.venv/bin/activate$")
STATUS = re.compile(r"#\s*exit status (\d+)\s*$")
FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)")


@dataclass
class Command:
    """One command of a documentation file, where it is, and what it should give."""

    text: str
    line: int
    expected_output: list[str] | None = None
    status: int = 0
    output_lines: list[str] = field(default_factory=list)


def blocks(text: str) -> list[tuple[str, int, list[str]]]:
    """The fenced code blocks: (language, line of the first content line, lines)."""
    found: list[tuple[str, int, list[str]]] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index].strip())
        if opening is None:
            index += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        body: list[str] = []
        start = index + 2
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index])
            index += 1
        found.append((language, start, body))
        index += 1
    return found


def commands(path: Path) -> list[Command]:
    """The commands of a documentation file, in order."""
    found: list[Command] = []
    for language, start, body in blocks(path.read_text(encoding="utf-8")):
        if language == "sh":
            pending = ""
            for offset, raw in enumerate(body):
                line = raw.strip()
                if not pending and (not line or line.startswith("#")):
                    continue
                if line.endswith("\\"):
                    pending += line[:-1] + " "
                    continue
                found.append(Command(pending + line, start + offset))
                pending = ""
        elif language == "console":
            current: Command | None = None
            for offset, raw in enumerate(body):
                if raw.startswith("$ "):
                    current = Command(raw[2:].strip(), start + offset, expected_output=[])
                    found.append(current)
                elif current is not None and current.expected_output is not None:
                    current.expected_output.append(raw.rstrip())
    for command in found:
        status = STATUS.search(command.text)
        if status:
            command.status = int(status.group(1))
    return found


def skip_reason(command: str) -> str | None:
    """Why a command is not run (None: it is run)."""
    words = shlex.split(command, comments=True)
    if not words:
        return "empty"
    if words[0] == "make":
        return "a make target (environment set-up; the suite runs under make test)"
    for server in SERVERS:
        if tuple(words[: len(server)]) == server:
            return "starts a server"
    return None


def line_matches(expected: str, actual: str) -> bool:
    if "..." not in expected:
        return expected == actual
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Whether the printed lines match the shown ones (``...`` lines are wildcards)."""
    while expected and not expected[-1]:
        expected = expected[:-1]
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) in memo:
            return memo[i, j]
        if i == len(expected):
            result = j == len(actual)
        elif expected[i].strip() == "...":
            result = any(match(i + 1, k) for k in range(j, len(actual) + 1))
        else:
            result = (
                j < len(actual) and line_matches(expected[i], actual[j]) and match(i + 1, j + 1)
            )
        memo[i, j] = result
        return result

    return match(0, 0)


def workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the demo ledger and queries as a fresh clone would have them."""
    root = tmp_path / "clone"
    root.mkdir()
    ignore = shutil.ignore_patterns(".*.picklecache", ".bean-credits*", "outbox", "__pycache__")
    shutil.copytree(ROOT / "ledgers", root / "ledgers", ignore=ignore)
    shutil.copytree(ROOT / "queries", root / "queries")
    (root / ".venv").symlink_to(Path(sys.prefix))
    # A newcomer's shell has no channel configured: notify must not reach out.
    env = {
        name: value for name, value in os.environ.items() if not name.startswith("BEAN_CREDITS_")
    }
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "Clone")
    return root, env


def run_file(path: Path, tmp_path: Path) -> list[str]:
    """Run a file's commands in order; return what went wrong (empty: all well)."""
    root, env = workspace(tmp_path)
    activated = False
    failures: list[str] = []
    where = path.relative_to(ROOT)
    for command in commands(path):
        if ACTIVATE.match(command.text):
            check = subprocess.run(
                ["bash", "-c", f"{command.text} && command -v bean-credits"],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
            )
            assert check.returncode == 0 and ".venv/bin/bean-credits" in check.stdout, (
                f"{where}:{command.line}: {command.text!r} does not put bean-credits on PATH"
            )
            env = {**env, "PATH": f"{root / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"}
            activated = True
            continue
        if skip_reason(command.text):
            continue
        if not activated and path.name != "README.md":
            env = {**env, "PATH": f"{root / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"}
            activated = True
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command.text],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != command.status:
            failures.append(
                f"{where}:{command.line}: {command.text}\n  exit status {result.returncode}, "
                f"expected {command.status}\n  stderr: {result.stderr.strip()[-2000:]}"
            )
            continue
        if command.expected_output is not None:
            printed = [line.rstrip() for line in result.stdout.rstrip("\n").split("\n")]
            if not output_matches(command.expected_output, printed):
                failures.append(
                    f"{where}:{command.line}: {command.text}\n  shown:\n    "
                    + "\n    ".join(command.expected_output)
                    + "\n  printed:\n    "
                    + "\n    ".join(printed)
                )
    return failures


def test_the_readme_says_how_to_run_the_tools() -> None:
    """The README's commands run after an activation it shows; the first is the activation."""
    readme = commands(ROOT / "README.md")
    run = [c for c in readme if not skip_reason(c.text)]
    assert run and ACTIVATE.match(run[0].text), (
        "the README must show `. .venv/bin/activate` before its first command"
    )
    # Every later command is one a newcomer can type: no placeholders.
    for command in run:
        assert not re.search(r"\b(LEDGER|FILE|NAME)\b|\[--", command.text), command


@pytest.mark.parametrize(
    "path", [p for p in DOC_FILES if commands(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_documented_commands_run_as_written(path: Path, tmp_path: Path) -> None:
    failures = run_file(path, tmp_path)
    assert not failures, "\n\n".join(failures)


def test_the_readme_runs_commands_of_every_main_workflow() -> None:
    """Reports, export, import, close-day, verify, notify, top-up and close-period."""
    texts = [c.text for c in commands(ROOT / "README.md") if not skip_reason(c.text)]
    for needed in (
        "bean-credits report ",
        "bean-credits import ",
        "bean-credits close-day ",
        "bean-credits verify ",
        "bean-credits notify ",
        "bean-credits topup ",
        "bean-credits close-period ",
        "bean-credits export parquet ",
        "--source ",
        "bean-query ",
    ):
        assert any(needed in text for text in texts), needed


def test_the_output_matcher() -> None:
    """The comparison of shown and printed output can fail (and ``...`` is a wildcard)."""
    assert output_matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert output_matches(["a", "...", "b"], ["a", "b"])
    assert output_matches(["  wrote imports/..."], ["  wrote imports/x-1.beancount"])
    assert not output_matches(["a", "b"], ["a", "c"])
    assert not output_matches(["a"], ["a", "b"])
    assert not output_matches(["  wrote imports/..."], ["  wrote log/x"])


def test_skip_rules() -> None:
    assert skip_reason("make demo") is not None
    assert skip_reason("bean-credits serve ledgers/demo/main.beancount --port 5000") is not None
    assert skip_reason("fava ledgers/demo/main.beancount") is not None
    assert skip_reason("bean-credits report balances ledgers/demo/main.beancount") is None
    assert skip_reason("bean-check ledgers/demo/main.beancount") is None


LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    found = set()
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            found.add(title.replace(" ", "-"))
    return found


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_in_the_repository_and_resolve(path: Path) -> None:
    broken = []
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue  # a web address
        file_part, _, fragment = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        outside = not linked.is_relative_to(ROOT) or not linked.exists()
        if outside or (fragment and linked.suffix == ".md" and fragment not in anchors(linked)):
            broken.append(target)
    assert not broken, f"{path.relative_to(ROOT)}: links that do not resolve: {broken}"
