"""The cyclic garbage collector paused while the engine builds or walks a ledger.

A load keeps millions of objects that hold no reference cycles (entries,
postings, amounts, the engine's records); the collector's passes over them
are a sixth of a load and free nothing, while reference counting frees the
rest as usual (``bench/profile_load.py``). Loads, the plugins' pass and the
as-of timeline run inside :func:`paused_gc`.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic collector off for the block (back to its previous state after)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
