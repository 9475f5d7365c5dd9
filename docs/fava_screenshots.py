"""Screenshots of the Credit Balance History page on the demo ledger, at 1024 and 1440 px.

    make docs-screenshots    # or: .venv/bin/python docs/fava_screenshots.py

Serves the demo with ``bean-credits serve`` on a free loopback port and
drives Debian's headless chromium (``/usr/bin/chromium``, through
Playwright, which never downloads a browser): the all-users table filtered to
the enterprise segment and sorted by balance, and one user (u-1019, who
holds CREDIT and SESSION), each at both widths, as
``docs/fava-credit-balance-history[-user]-WIDTH.png``. Look at them before
committing.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servekit import chromium, serving  # noqa: E402

DEMO = ROOT / "ledgers" / "demo" / "main.beancount"
PAGE = "/credits-demo/extension/CreditBalanceHistory/"
WIDTHS = (1024, 1440)
USER = "u-1019"  # holds CREDIT (thousands) and SESSION (tens)


def main() -> None:
    with serving(DEMO, PAGE) as base, chromium() as browser:
        for width in WIDTHS:
            context = browser.new_context(viewport={"width": width, "height": 1500})
            page = context.new_page()
            page.on("pageerror", lambda error: print(f"page error: {error}", file=sys.stderr))
            page.goto(base + PAGE)
            page.wait_for_selector("#cbh-users tbody tr td")
            page.select_option("#cbh-segment", "enterprise")
            page.click("#cbh-users thead th[data-column='Balance']")
            target = ROOT / "docs" / f"fava-credit-balance-history-{width}.png"
            page.screenshot(path=str(target), full_page=True)
            print(f"wrote {target.relative_to(ROOT)}")
            page.goto(f"{base}{PAGE}#user={USER}")
            page.reload()  # a new hash alone does not load the page again
            page.wait_for_selector("#cbh-user:not([hidden]) #cbh-chart svg")
            page.wait_for_timeout(300)
            target = ROOT / "docs" / f"fava-credit-balance-history-user-{width}.png"
            page.screenshot(path=str(target), full_page=True)
            print(f"wrote {target.relative_to(ROOT)}")
            context.close()


if __name__ == "__main__":
    main()
