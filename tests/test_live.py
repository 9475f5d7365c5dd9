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
)
def test_a_live_pass_fed_a_stream_equals_one_pass_over_it(
    history: tuple[list, int],
    split: float,
    size: int,
    shuffled: object,
    shuffle: bool,
    later: int,
) -> None:
    entries = parsed(history)
    head = [entry for entry in entries if not isinstance(entry, data.Transaction)]
    stream = [entry for entry in entries if isinstance(entry, data.Transaction)]
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
    if not shuffle and cut == 0 and rest:
        # In date order, nothing but the first batch could need a new pass.
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
