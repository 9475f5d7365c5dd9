"""The users of a ledger, by the platform's ``user_id``.

A user (or organisation) is a wallet account under the users root whose
``open`` carries ``user_id:`` (else the id its account name encodes,
:mod:`.accounts`), an optional ``segment:`` and ``credit_limit:``. Every tool
looks users up by that id; the settings plugin checks the ids its directives
name against this index.
"""

from __future__ import annotations

import dataclasses
import datetime

from beancount.core import data

from beancount_credits.engine.accounts import UserIdError, user_id_of
from beancount_credits.engine.config import CreditsConfig


@dataclasses.dataclass(frozen=True)
class User:
    """A wallet and what its ``open`` directive says about its owner."""

    user_id: str
    account: str
    segment: str | None
    open: data.Open
    close_date: datetime.date | None

    @property
    def credit_limit(self) -> object:
        return self.open.meta.get("credit_limit")


def index_users(entries: list[data.Directive], config: CreditsConfig) -> dict[str, User]:
    """Users by ``user_id`` (falling back to the id the account name encodes)."""
    closes = {
        entry.account: entry.date
        for entry in entries
        if isinstance(entry, data.Close) and config.is_user_account(entry.account)
    }
    users: dict[str, User] = {}
    for entry in entries:
        if not isinstance(entry, data.Open) or not config.is_user_account(entry.account):
            continue
        user_id = entry.meta.get("user_id")
        if user_id is None:
            try:
                user_id = user_id_of(entry.account.rpartition(":")[2])
            except UserIdError:
                user_id = entry.account.rpartition(":")[2]
        segment = entry.meta.get("segment")
        users[str(user_id)] = User(
            user_id=str(user_id),
            account=entry.account,
            segment=None if segment is None else str(segment),
            open=entry,
            close_date=closes.get(entry.account),
        )
    return users
