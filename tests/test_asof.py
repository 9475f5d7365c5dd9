"""The ledger as of day D (beancount_credits.engine.asof): one definition, however it is reached.

The definition is one engine pass over the written entries through D
(``asof.run_through``). The timelines every tool reads go faster (the
plugin's own end state continued past the horizon, a pass per earlier day);
here they are checked against the definition for every day of every case
ledger and of the demo, loaded the way the CLI loads (Beancount's cache) and
the way Fava does (the plugins run in the process, their result kept).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from beancount import loader
from beancount.core import data
from beancount.parser import printer
from conftest import DEMO, ROOT

from beancount_credits import engine
from beancount_credits.engine import asof
from beancount_credits.fava import view as fava_view
from beancount_credits.ledger import find_config, load

ONE_DAY = datetime.timedelta(days=1)
CASES = sorted(
    path
    for path in (ROOT / "tests" / "cases").glob("*/*.beancount")
    if not path.name.endswith(".expected.beancount")
)
# A configuration the tools refuse to read (the plugin reports it): no days to ask.
RUNNABLE = [path for path in CASES if path.stem != "bad_plugin_configuration"]


def state(result: engine.EngineResult, records: bool = True) -> tuple[Any, ...]:
    """What a day's grant state says: balances, open grants, the grants the wallets
    would spend, and (``records``) the expiries booked."""
    balances = {key: wallet.balance for key, wallet in result.wallets.items() if wallet.balance}
    open_grants = {grant.id: grant.remaining for grant in result.grants.values() if grant.remaining}
    spendable = sorted(grant.id for grant in engine.open_grants(result))
    if not records:
        return balances, open_grants, spendable
    expiries = sorted((expiry.txn_id, expiry.date, expiry.amount) for expiry in result.expiries)
    return balances, open_grants, spendable, expiries


def transactions(entries: list[data.Directive], day: datetime.date) -> Counter[tuple[Any, ...]]:
    """The transactions through ``day``, as (date, txn_id, postings): an order-free multiset."""
    return Counter(
        (
            entry.date,
            str(entry.meta.get("txn_id")),
            tuple(sorted((p.account, str(p.units)) for p in entry.postings)),
        )
        for entry in entries
        if isinstance(entry, data.Transaction) and entry.date <= day
    )


def days_of(entries: list[data.Directive], after: int = 40) -> list[datetime.date]:
    dated = [entry.date for entry in entries if isinstance(entry, data.Transaction)]
    if not dated:
        return []
    first, last = min(dated), max(dated)
    return [first - ONE_DAY + ONE_DAY * n for n in range((last - first).days + after + 2)]


def fava_like(path: Path) -> tuple[list[data.Directive], dict[str, Any]]:
    """A load as Fava makes it: uncached, so the plugins run here and keep their result."""
    entries, _errors, options = loader._load([(str(path), True)], None, None, None)
    return entries, options


def check_every_day(entries: list[data.Directive], options: dict[str, Any]) -> None:
    config = find_config(options)
    base = fava_view.plugin_result(entries, options, config)
    cli = asof.Timeline(entries, config)
    served = asof.Timeline(entries, config, base=base, record=False)  # as the page's
    schedule = served.schedule()
    for day in days_of(entries):
        expected = asof.run_through(entries, config, day)
        want_entries = transactions(expected.entries, day)
        view = cli.at(day)
        assert state(view.result) == state(expected), ("cli", day)
        assert transactions(view.entries, day) == want_entries, ("cli", day)
        view = served.at(day)
        assert state(view.result, records=False) == state(expected, records=False), ("page", day)
        assert transactions(view.entries, day) == want_entries, ("page", day)
        # The page's index reads the schedule cut at the day.
        assert transactions(asof.cut_at(schedule, day), day) == want_entries, day


@pytest.mark.parametrize("path", RUNNABLE, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_day_of_every_case_is_the_engine_through_that_day(path: Path) -> None:
    entries, options = fava_like(path)
    check_every_day(entries, options)


def running_balances(
    entries: list[data.Directive], days: list[datetime.date], config: Any
) -> dict[datetime.date, dict[tuple[str, str], Decimal]]:
    """Each day's end-of-day wallet balances, from one walk over date-sorted entries."""
    totals: dict[tuple[str, str], Decimal] = {}
    found = {}
    index = 0
    for day in days:
        while index < len(entries) and entries[index].date <= day:
            entry = entries[index]
            index += 1
            if isinstance(entry, data.Transaction):
                for posting in entry.postings:
                    if config.is_user_account(posting.account):
                        key = (posting.account, posting.units.currency)
                        totals[key] = totals.get(key, Decimal(0)) + posting.units.number
        found[day] = {key: number for key, number in totals.items() if number}
    return found


def test_every_day_of_the_demo_is_the_engine_through_that_day() -> None:
    """Every day's balances, the horizon's neighbourhood and a sample of days in full.

    The demo is large for a per-day engine pass, so every day is checked
    against one pass of the engine through the last day (causal: cut at D it
    is the engine through D, which the sampled days confirm).
    """
    entries, options = fava_like(DEMO)
    config = find_config(options)
    base = fava_view.plugin_result(entries, options, config)
    assert base is not None
    cli = asof.Timeline(entries, config)
    served = asof.Timeline(entries, config, base=base, record=False)  # as the page's
    days = days_of(entries)
    complete = engine.run(
        engine.written_entries(entries),
        dataclasses.replace(config, annotate=False, future_expiries=False),
        through=days[-1],  # every expiry and allowance due by the last day asked
        record=False,
    )
    want = running_balances(complete.entries, days, config)
    got = running_balances(served.schedule(), days, config)
    for day in days:
        assert got[day] == want[day], day
    horizon = cli.base and cli.at(days[-1]).horizon
    assert horizon is not None
    # Every day the page reads back from the annotations (engine.rewind), in full.
    rewound = 0
    for day in days:
        start = asof._bisect_after(entries, day)
        if day >= horizon or len(entries) - start >= 2 * start:
            continue
        later = entries[start:]
        result = engine.rewind(base, later, day, dataclasses.replace(config, annotate=False))
        if result is None:
            continue
        rewound += 1
        expected = asof.run_through(entries, config, day)
        assert state(result, records=False) == state(expected, records=False), day
        assert state(served.at(day).result, records=False) == state(result, records=False)
    assert rewound >= 20  # before the demo's last reversal into an overdrawn wallet
    sample = [
        day
        for n, day in enumerate(days)
        if n % 20 == 0 or abs((day - horizon).days) <= 3 or (day - horizon).days in (9, 10, 25, 40)
    ]
    for day in sample:
        expected = asof.run_through(entries, config, day)
        assert {k: v for k, v in state(expected)[0].items()} == want[day], day
        view = cli.at(day)
        assert state(view.result) == state(expected), ("cli", day)
        assert transactions(view.entries, day) == transactions(expected.entries, day), day
        view = served.at(day)
        assert state(view.result, records=False) == state(expected, records=False), day
        assert transactions(view.entries, day) == transactions(expected.entries, day), day


@pytest.mark.parametrize("path", CASES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_load_string_and_load_file_give_the_same_entries_and_errors(path: Path) -> None:
    from_file = loader.load_file(str(path))
    from_string = loader.load_string(path.read_text())

    def normal(result: tuple[Any, ...]) -> tuple[list[str], list[str]]:
        entries, errors, _options = result
        texts = [printer.format_entry(entry) for entry in entries]
        generated = [engine.is_generated(entry) for entry in entries]
        messages = [
            f"{error.source and error.source.get('lineno')}: "
            + error.message.replace(str(path), "<string>")
            for error in errors
        ]
        return [f"{flag} {text}" for flag, text in zip(generated, texts, strict=True)], messages

    assert normal(from_string) == normal(from_file)


def test_a_generated_entry_is_told_by_its_mark_not_its_file_name() -> None:
    cases = ROOT / "tests" / "cases" / "expire"
    # A recorded expiry (written by close-day, even with a visible generated: key)
    # is written text: load_string names it <string>, as it names the plugin's.
    text = (cases / "recorded_expiry_not_generated_twice.beancount").read_text()
    entries, errors, _options = loader.load_string(text)
    assert not errors
    recorded = [e for e in entries if isinstance(e, data.Transaction) and "expired" in e.tags]
    assert [e.meta["filename"] for e in recorded] == ["<string>"]
    assert recorded[0].meta["generated"] is True and not engine.is_generated(recorded[0])
    # What the plugin books carries the mark, however the ledger was loaded.
    text = (cases / "purchase_expires_after_partial_use.beancount").read_text()
    entries, errors, _options = loader.load_string(text)
    booked = [e for e in entries if isinstance(e, data.Transaction) and "expired" in e.tags]
    assert booked and all(engine.is_generated(e) for e in booked)
    assert all(engine.generated_by(e) == engine.EXPIRE_PLUGIN_NAME for e in booked)
    # The mark is a key ledger text cannot hold: Beancount's lexer refuses it.
    _entries, errors, _options = loader.load_string(
        '2024-01-01 open Assets:A\n2024-01-02 * "x"\n'
        f"  {engine.GENERATED_KEY}: TRUE\n  Assets:A 1 USD\n  Assets:A -1 USD\n"
    )
    assert errors


def test_the_notice_names_the_horizon_and_what_close_day_would_record() -> None:
    ledger = load(DEMO)
    horizon = ledger.timeline.base and ledger.as_of(datetime.date(2026, 11, 21)).horizon
    assert horizon == datetime.date(2026, 11, 21)
    assert ledger.as_of(horizon).notice() is None
    quiet = ledger.as_of(datetime.date(2026, 11, 29)).notice()
    assert quiet == (
        "as of 2026-11-29: the ledger is recorded through 2026-11-21; no expiry is due since then"
    )
    view = ledger.as_of(datetime.date(2026, 12, 1))
    assert [entry.meta["txn_id"] for entry in view.pending] == ["p-000057:expiry"]
    assert view.notice() == (
        "ledger recorded through 2026-11-21; 1 expiry since then (59 CREDIT) is counted here "
        "but not yet written: run bean-credits close-day"
    )
    user = ledger.user("u-1047")
    assert view.balances()[user.account, "CREDIT"] == Decimal(0)
    assert ledger.as_of(datetime.date(2026, 11, 29)).balances()[user.account, "CREDIT"] == 59


def test_each_load_keeps_its_own_engine_result(tmp_path: Path) -> None:
    """Two ledgers loaded in one process (as Fava serves several): no shared state."""
    from beancount_credits.engine import loadstamp
    from beancount_credits.plugins import expire

    assert not [name for name in vars(expire) if name.endswith("result")]
    other = ROOT / "tests" / "cases" / "expire" / "purchase_expires_after_partial_use.beancount"
    first_entries, first_options = fava_like(DEMO)
    _entries, second_options = fava_like(other)
    first = loadstamp.engine_result(first_options)
    second = loadstamp.engine_result(second_options)
    assert first is not None and second is not None and first is not second
    config = find_config(first_options)
    assert fava_view.plugin_result(first_entries, first_options, config) is first
    assert {account for account, _c in second.wallets} == {"Assets:Credits:Users:Alice"}
    assert len(first.wallets) > 10


def test_a_timeline_answers_concurrent_requests_alike() -> None:
    from concurrent.futures import ThreadPoolExecutor

    entries, options = fava_like(DEMO)
    config = find_config(options)
    days = days_of(entries)[::37]
    expected = {day: state(asof.run_through(entries, config, day), False) for day in days}
    base = fava_view.plugin_result(entries, options, config)
    timeline = asof.Timeline(entries, config, base=base, record=False)
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda day: (day, state(timeline.at(day).result, False)), days * 3))
    for day, answer in answers:
        assert answer == expected[day], day
