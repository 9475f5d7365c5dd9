"""Test kit for the served page: ``bean-credits serve`` on a free loopback port, and chromium.

Playwright drives Debian's chromium (``/usr/bin/chromium``; ``make test``
installs it when missing) and never downloads a browser.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BEAN_CREDITS = str(Path(sys.executable).parent / "bean-credits")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(ledger: Path, ready: str, *args: str) -> Iterator[str]:
    """``bean-credits serve LEDGER`` until ``ready`` (a path) answers 200; yields the base URL."""
    port = free_port()
    command = [BEAN_CREDITS, "serve", str(ledger), "--port", str(port), *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"bean-credits serve exited ({process.returncode}):\n{output}")
            try:
                with urllib.request.urlopen(base + ready, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("bean-credits serve did not answer within 90 s")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """One headless chromium (launch it once per test module: it takes a while)."""
    assert CHROMIUM.exists(), (
        "the browser tests need Debian's chromium: apt-get install -y chromium (make test does)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        instance.close()
