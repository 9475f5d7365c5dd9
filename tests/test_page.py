"""The Credit Balance History page's figures (beancount_credits.page) without Fava.

The page answers a past day from the end state of the grants, undoing what the
expire plugin's annotations say happened after that day (``page.rewind``), and
its per-wallet index replaces walks over every entry. Both must give exactly
what the plain computations give: the engine re-run through that day (the
reports' ``grants_as_of``) and a walk over the entries.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from conftest import DEMO, ROOT

from beancount_credits import page
from beancount_credits.ledger import Ledger, load
from beancount_credits.reports import common

CASES = sorted(
    path
    for path in (ROOT / "tests" / "cases" / "expire").glob("*.beancount")
    if not path.name.endswith(".expected.beancount") and path.stem != "bad_plugin_configuration"
)
ONE_DAY = datetime.timedelta(days=1)


def open_grants(result: object, as_of: datetime.date) -> dict[str, object]:
    return {
        grant.id: grant.remaining
        for grant in result.grants.values()  # type: ignore[attr-defined]
        if grant.remaining and grant.date <= as_of
    }


def days(ledger: Ledger) -> list[datetime.date]:
    first, last = ledger.entries[0].date, ledger.entries[-1].date
    return [first + ONE_DAY * n for n in range((last - first).days)]


@pytest.mark.parametrize("path", CASES, ids=lambda path: path.stem)
def test_rewind_equals_the_engine_through_each_day(path: Path) -> None:
    ledger = load(path, cache=False)
    end = page.grants_as_of(ledger, datetime.date.max)
    for day in days(ledger):
        rewound = page.rewind(ledger, end, day)
        if rewound is None:
            continue
        expected = common.grants_as_of(ledger, day)
        assert open_grants(rewound, day) == open_grants(expected, day), day
        # The page reads open grants through the wallets (engine.open_grants).
        assert sorted(g.id for g in page.engine.open_grants(rewound)) == sorted(
            open_grants(expected, day)
        ), day


def test_rewind_is_used_and_exact_on_the_demo() -> None:
    ledger = load(DEMO)
    end = page.grants_as_of(ledger, datetime.date.max)
    used = 0
    for day in days(ledger):
        rewound = page.rewind(ledger, end, day)
        if rewound is None:
            continue
        used += 1
        assert open_grants(rewound, day) == open_grants(common.grants_as_of(ledger, day), day)
        assert page.grants_as_of(ledger, day) is not None
    # Before the demo's last reversal into an overdrawn wallet the engine runs again.
    assert used >= 20


def test_rewind_refuses_without_annotations(tmp_path: Path) -> None:
    text = (ROOT / "tests" / "cases" / "expire" / "reversal_of_redemption.beancount").read_text()
    plain = tmp_path / "plain.beancount"
    plain.write_text(
        text.replace(
            'plugin "beancount_credits.plugins.expire"',
            'plugin "beancount_credits.plugins.expire" "{\'annotate\': False}"',
        )
    )
    ledger = load(plain, cache=False)
    end = page.grants_as_of(ledger, datetime.date.max)
    assert page.rewind(ledger, end, ledger.entries[0].date) is None
    # ... and the page falls back to the engine: the same grants as the reports.
    day = ledger.entries[0].date + ONE_DAY * 20
    assert open_grants(page.grants_as_of(ledger, day), day) == open_grants(
        common.grants_as_of(ledger, day), day
    )


def test_index_equals_a_walk_over_the_entries() -> None:
    ledger = load(DEMO)
    for as_of in (datetime.date(2025, 12, 31), datetime.date(2026, 6, 15), datetime.date.max):
        walked: dict[tuple[str, str], object] = {}
        last: dict[str, datetime.date] = {}
        is_user: dict[str, bool] = {}
        for entry in ledger.entries:
            if entry.date > as_of:
                break
            if not hasattr(entry, "postings"):
                continue
            for key, number in page.user_postings(entry, ledger, is_user).items():
                walked[key] = walked.get(key, 0) + number
                if page.engine.EXPIRED_TAG not in entry.tags:
                    last[key[0]] = entry.date
        balances, activity = page.balances_and_last_activity(ledger, as_of)
        assert balances == walked
        assert activity == last
    for begin, end in ((None, None), (datetime.date(2026, 3, 1), datetime.date(2026, 4, 1))):
        period = page.Period.make(begin, end, datetime.date(2026, 11, 22))
        assert page.index(ledger).activity(period) == page.period_activity(
            ledger, ledger.entries, period
        )
