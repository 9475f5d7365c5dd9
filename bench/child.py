"""Time one child process: wall time, CPU time and peak RSS, the way every bench does.

CPU time (user + system of the child, from ``os.wait4``) is the figure a shared
machine does not inflate; wall time is printed beside it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import NamedTuple


class Run(NamedTuple):
    wall: float  # seconds
    cpu: float  # seconds, user + system
    rss_mib: int  # peak resident set
    output: str  # stdout and stderr

    def figures(self) -> dict[str, float | int]:
        """The figures, rounded, without the output (for JSON logs)."""
        return {"wall": round(self.wall, 2), "cpu": round(self.cpu, 2), "rss_mib": self.rss_mib}


def timed(command: list[str], cwd: Path | None = None) -> Run:
    """Run ``command`` to the end; a non-zero exit stops the bench with its output."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output[-3000:]}")
    return Run(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, output)
