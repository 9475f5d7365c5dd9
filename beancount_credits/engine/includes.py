"""The ``include`` lines of ledger text: which patterns a file includes (pure).

Beancount joins a relative pattern to the including file's folder and expands
it with ``glob`` (recursive); :func:`include_patterns` gives the patterns so
joined, and :func:`unlisted` the files they match now that a load did not
parse (a cached load that misses them is stale).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Iterator

_INCLUDE_RE = re.compile(rb'^[ \t]*include[ \t]+"((?:[^"\\]|\\.)*)"', re.MULTILINE)


def include_patterns(filename: str, text: bytes) -> Iterator[str]:
    """The ``include`` patterns in a ledger file's text, relative ones joined to its folder."""
    for match in _INCLUDE_RE.finditer(text):
        pattern = match.group(1).decode("utf-8", "replace")
        if not os.path.isabs(pattern):
            pattern = os.path.join(os.path.dirname(filename), pattern)
        yield os.path.normpath(pattern)


def unlisted(parsed: Iterable[str]) -> list[str]:
    """Files that an ``include`` of the ``parsed`` files matches now but that are not among them.

    Reads the parsed files (only those whose text holds an include line are
    searched). A file that is gone is left to Beancount's own check.
    """
    listed = {os.path.normpath(name) for name in parsed}
    found: list[str] = []
    for name in sorted(listed):
        try:
            with open(name, "rb") as handle:
                text = handle.read()
        except OSError:
            continue
        if b"include" not in text:
            continue
        for pattern in include_patterns(name, text):
            for match in glob.glob(pattern, recursive=True):
                path = os.path.normpath(os.path.abspath(match))
                if path not in listed and os.path.isfile(path):
                    found.append(path)
    return found
