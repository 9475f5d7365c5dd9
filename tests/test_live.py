"""The live pass (beancount_credits.engine.live) equals one pass over the same entries.

Generated ledgers (the histories of ``test_properties``) are cut into a part
loaded first and a stream of entries fed one small batch at a time, in order
or shuffled (back-dated batches start the pass again); after every batch the
live state, finished through its last day, a later day and the wallets read
one by one, must be what :func:`asof.run_through` gives for the entries so far.
"""

from __future__ import annotations

import datetime

from beancount.core import data
from beancount.parser import parser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_asof import state
from test_properties import histories, ledger_days

from beancount_credits.engine import asof, live
from beancount_credits.engine.config import CreditsConfig

CONFIG = CreditsConfig()


def parsed(history: tuple[list, int]) -> list[data.Directive]:
    header, blocks = ledger_days(history)
    entries, errors, _options = parser.parse_string(header + "\n".join(blocks) + "\n")
    assert not errors
    return sorted(entries, key=data.entry_sortkey)


def errors_of(result: object) -> set[str]:
    return {error.message for error in result.errors}  # type: ignore[attr-defined]


def check(pass_: live.LivePass, fed: list[data.Directive], later: int) -> None:
    entries = sorted(fed, key=data.entry_sortkey)
    last = pass_.last
    if last is None:
        return
    horizon = pass_.horizon or last
    for day in sorted({max(last, horizon), last + datetime.timedelta(days=later)}):
        expected = asof.run_through(entries, CONFIG, day)
        got = pass_.result(day)
        assert state(got) == state(expected), day
        assert errors_of(got) == errors_of(expected)
        for (account, currency), wallet in pass_.state.wallets.items():
            balance, _available = live.wallet_at(wallet, day)
            want = expected.wallets.get((account, currency))
            assert balance == (want.balance if want else 0), (account, day)
            ids = [grant.id for grant in live.open_grants_at(wallet, day)]
            spendable = [
                grant.id
                for grant in sorted(
                    (g for g in expected.grants.values() if g.account == account and g.remaining),
                    key=lambda grant: grant.sort_key,
                )
                if grant.currency == currency
            ]
            assert ids == spendable


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=histories,
    split=st.floats(0, 1),
    size=st.integers(1, 4),
    shuffled=st.randoms(use_true_random=False),
    shuffle=st.booleans(),
    later=st.integers(0, 60),
    logged=st.lists(st.booleans(), max_size=40),
)
def test_a_live_pass_fed_a_stream_equals_one_pass_over_it(
    history: tuple[list, int],
    split: float,
    size: int,
    shuffled: object,
    shuffle: bool,
    later: int,
    logged: list[bool],
) -> None:
    entries = parsed(history)
    head = [entry for entry in entries if not isinstance(entry, data.Transaction)]
    stream: list[data.Directive] = []
    for number, entry in enumerate(e for e in entries if isinstance(e, data.Transaction)):
        stream.append(entry)
        if number < len(logged) and logged[number]:
            # A balance the next day (as close-day logs one): the horizon moves past the
            # entry's day, so a later entry of that day needs a new pass.
            posting = entry.postings[0]
            meta = data.new_metadata("<log>", 10_000 + number)
            day = entry.date + datetime.timedelta(days=1)
            stream.append(data.Balance(meta, day, posting.account, posting.units, None, None))
    cut = int(len(stream) * split)
    loaded, rest = head + stream[:cut], stream[cut:]
    if shuffle:
        shuffled.shuffle(rest)  # type: ignore[attr-defined]
    pass_ = live.LivePass(loaded, CONFIG)
    fed = list(loaded)
    check(pass_, fed, later)
    for start in range(0, len(rest), size):
        batch = rest[start : start + size]
        pass_.add(batch)
        fed += batch
        check(pass_, fed, later)
    if not shuffle and cut == 0 and rest and not any(logged):
        # In date order and no day logged, only the first batch may need a new pass.
        assert pass_.restarts <= 1


def test_a_refused_batch_taken_out_leaves_the_state_as_before() -> None:
    history = ([(1, [("grant", "alice", 10, 5, 50)]), (2, [("redeem", "alice", 4)])], 0)
    entries = parsed(history)
    pass_ = live.LivePass(entries, CONFIG)
    day = pass_.last
    assert day is not None
    before = state(pass_.result(day))
    extra = parsed(([(1, []), (3, [("redeem", "alice", 50)])], 0))
    overdraw = [entry for entry in extra if isinstance(entry, data.Transaction)]
    overdraw = [
        entry._replace(meta={**entry.meta, "txn_id": "big", "lineno": 9999}) for entry in overdraw
    ]
    errors = pass_.add(overdraw)
    assert errors and "exceeds" in errors[0].message
    pass_.remove(overdraw)
    assert state(pass_.result(day)) == before


def test_an_entry_of_a_day_already_logged_books_again_what_expired_the_next_morning() -> None:
    # A grant expiring on day 2; a balance dated day 2 (day 1 logged) moved the pass past
    # the expiry; a redemption of day 1 fed after it still spends the grant.
    text = """
2024-01-01 open Income:Credits:Purchase
2024-01-01 open Expenses:Credits:Sessions
2024-01-01 open Equity:Credits:Breakage
2024-01-01 open Assets:Credits:Users:Alice
  user_id: "alice"
2024-01-05 * "Grant"
  txn_id: "g"
  expires: 2024-01-06
  Assets:Credits:Users:Alice  10 CREDIT
  Income:Credits:Purchase
2024-01-06 balance Assets:Credits:Users:Alice  10 CREDIT
2024-01-05 * "Late redemption"
  txn_id: "r"
  Assets:Credits:Users:Alice  -4 CREDIT
  Expenses:Credits:Sessions
"""
    entries, errors, _options = parser.parse_string(text)
    assert not errors
    late = next(entry for entry in entries if entry.meta.get("txn_id") == "r")
    pass_ = live.LivePass([entry for entry in entries if entry is not late], CONFIG)
    assert pass_.add([late]) == []
    assert pass_.restarts == 1
    check(pass_, entries, 3)
    assert (
        live.wallet_at(
            pass_.state.wallets[("Assets:Credits:Users:Alice", "CREDIT")], datetime.date(2024, 1, 6)
        )[0]
        == 0
    )
