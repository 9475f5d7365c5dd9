"""The warm ledger (beancount_credits.service.state) equals a full load, on generated streams.

In process (no HTTP): random batches of events (purchases, promotions that
expire, redemptions, some beyond the balance, reversals, new users, back-dated
days) are posted to a :class:`WarmLedger` over a small ledger; after every
stream :meth:`WarmLedger.verify` loads the files from scratch and must find
the warm state equal, every refused batch must have left the files as they
were, and the balances must be those of ``report balances``' ledger as of
the day.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_service import SMALL

from beancount_credits.ledger import load
from beancount_credits.service.state import ServiceError, WarmLedger

USERS = ("alice", "bob", "dora")
event = st.tuples(
    st.sampled_from(("purchase", "purchase", "promotion", "redeem", "redeem", "reverse", "user")),
    st.sampled_from(USERS),
    st.integers(1, 60),
    st.integers(0, 12),  # day offset from 2026-11-10 (earlier days come back: back-dated)
    st.integers(0, 1000),  # which earlier event a reversal names
)
streams = st.lists(st.lists(event, min_size=1, max_size=3), min_size=1, max_size=10)


def record(number: int, spec: tuple[str, str, int, int, int], ids: list[str]) -> dict:
    kind, user, amount, offset, pick = spec
    day = datetime.date(2026, 11, 10) + datetime.timedelta(days=offset)
    base = {"id": f"e-{number}", "timestamp": f"{day.isoformat()}T09:00:00Z", "user": user}
    if kind == "user":
        return {**base, "type": "user", "id": f"u-{user}-{number}"}
    if kind == "reverse":
        target = ids[pick % len(ids)] if ids else "g-1"
        return {"type": "reverse", "id": base["id"], "timestamp": base["timestamp"],
                "reverses": target}  # fmt: skip
    if kind == "redeem":
        return {**base, "type": "redeem", "amount": 1 + amount // 4, "session": f"s-{number}"}
    if kind == "promotion":
        return {**base, "type": "promotion", "amount": amount, "expires": "2026-11-16"}
    return {**base, "type": "purchase", "amount": amount}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(stream=streams)
def test_a_stream_of_batches_leaves_the_warm_state_equal_to_the_files(
    tmp_path_factory: object, stream: list[list[tuple[str, str, int, int, int]]]
) -> None:
    root = tmp_path_factory.mktemp("warm")  # type: ignore[attr-defined]
    main = Path(root) / "main.beancount"
    main.write_text(SMALL)
    warm = WarmLedger(main, today=lambda: datetime.date(2026, 11, 30))
    ids: list[str] = ["g-1"]
    number = 0
    for batch in stream:
        records = []
        for spec in batch:
            number += 1
            records.append(record(number, spec, ids))
        before = {path: path.read_bytes() for path in Path(root).rglob("*.beancount")}
        try:
            warm.post(records)
        except ServiceError as exc:
            assert exc.status in (409, 422), exc.message
            after = {path: path.read_bytes() for path in Path(root).rglob("*.beancount")}
            assert after == before  # a refused batch writes nothing
            continue
        ids += [r["id"] for r in records if r["type"] in ("purchase", "promotion", "redeem")]
    outcome = warm.verify()
    assert outcome["equal"], outcome["differences"]
    assert outcome["errors"] == 0
    ledger = load(main, cache=False)
    for day in (datetime.date(2026, 11, 15), datetime.date(2026, 11, 30)):
        view = ledger.at(day)
        for user in USERS:
            if user not in warm.index.users:
                continue
            account = warm.index.users[user].account
            expected = {
                currency: wallet.balance
                for (name, currency), wallet in view.grants.wallets.items()
                if name == account
            }
            got = warm.balances(user, day)
            assert {k: v for k, v in got.items() if v} == {k: v for k, v in expected.items() if v}


def test_a_write_a_crash_left_half_done_is_completed_when_the_service_starts(
    tmp_path: Path,
) -> None:
    from beancount_credits.ledger import write

    main = tmp_path / "main.beancount"
    main.write_text(SMALL)
    day = tmp_path / "imports" / "live-2026-11-20.beancount"
    text = '\n2026-11-20 * "Purchase"\n  txn_id: "p-9"\n  Assets:Credits:Users:Bob  5 CREDIT\n'
    text += "  Income:Credits:Purchase\n"
    changes = [
        write.FileChange(day, "; day file\n" + text),
        write.FileChange(main, SMALL + '\ninclude "imports/*.beancount"\n'),
    ]
    write.stage(main, changes, "events")  # killed after "ready", before the renames
    warm = WarmLedger(main, today=lambda: datetime.date(2026, 11, 30))
    assert warm.balances("bob") == {"CREDIT": 5}
    assert write.pending_write(main) is None
