"""One bean-check run with the seal plugin timed from inside: its CPU and the whole run's.

    .venv/bin/python bench/seal_in_check.py bench/out/seal-100000/sealed.beancount

Runs Beancount's ``bean-check -C`` (its own ``main``) in this process with
:func:`beancount_credits.plugins.seal.seal` wrapped to measure its CPU time
(and the garbage collector's share of it), then prints one JSON line:
``{"plugin": seconds, "gc": seconds, "total": seconds}``. Both figures come from
the same process, so a busy machine moves them together.
"""

from __future__ import annotations

import gc
import json
import sys
import time

import beancount_credits.plugins.seal as plugin


def main() -> None:
    original = plugin.seal
    spent = {"plugin": 0.0, "gc": 0.0}
    inside = [False]
    started_gc = [0.0]

    def collector(phase: str, _info: dict) -> None:
        if not inside[0]:
            return
        if phase == "start":
            started_gc[0] = time.process_time()
        else:
            spent["gc"] += time.process_time() - started_gc[0]

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        inside[0] = True
        started = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent["plugin"] += time.process_time() - started
            inside[0] = False

    gc.callbacks.append(collector)
    plugin.seal = timed
    from beancount.scripts import check

    sys.argv = ["bean-check", "-C", sys.argv[1]]
    try:
        check.main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    spent["total"] = time.process_time()
    print(json.dumps({key: round(value, 3) for key, value in spent.items()}))


if __name__ == "__main__":
    main()
