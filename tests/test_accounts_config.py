"""The user-id mapping and the plugin configuration."""

from __future__ import annotations

import pytest
from beancount.core import account as account_lib
from hypothesis import given
from hypothesis import strategies as st

from beancount_credits.engine.accounts import UserIdError, user_account, user_component, user_id_of
from beancount_credits.engine.config import ConfigError, CreditsConfig, parse_config

user_ids = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)


@pytest.mark.parametrize(
    ("user_id", "component"),
    [
        ("alice", "Alice"),
        ("org-acme", "Org--acme"),
        ("u_1234", "U-5F1234"),
        ("42", "42"),
        ("Alice", "X-41lice"),
        ("xavier", "X-78avier"),
        ("maria.lopez@example.com", "Maria-2Elopez-40example-2Ecom"),
        ("josé", "Jos-C3-A9"),
    ],
)
def test_known_mappings(user_id: str, component: str) -> None:
    assert user_component(user_id) == component
    assert user_id_of(component) == user_id


@given(user_ids)
def test_every_id_maps_to_a_valid_account_and_back(user_id: str) -> None:
    account = user_account(user_id)
    assert account_lib.is_valid(account), account
    assert user_id_of(account.rpartition(":")[2]) == user_id


@given(user_ids, user_ids)
def test_distinct_ids_never_collide(first: str, second: str) -> None:
    if first != second:
        assert user_component(first) != user_component(second)


@pytest.mark.parametrize("bad", ["", "a\nb", "tab\there", None])
def test_unmappable_ids_are_refused(bad: object) -> None:
    with pytest.raises(UserIdError):
        user_component(bad)  # type: ignore[arg-type]


def test_config_defaults_and_overrides() -> None:
    assert parse_config(None) == CreditsConfig()
    config = parse_config("{'users': 'Assets:Wallets', 'annotate': False}")
    assert config.users == "Assets:Wallets"
    assert config.annotate is False
    assert config.is_user_account("Assets:Wallets:Alice")
    assert not config.is_user_account("Assets:Wallets:Alice:Sub")
    assert not config.is_user_account("Assets:Credits:Users:Alice")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "must be a dict"),
        ("{'users': 'not an account'}", "is not an account name"),
        ("{'annotate': 'yes'}", "must be True or False"),
        ("{'colour': 'red'}", "unknown plugin configuration key 'colour'"),
        ("{'users': __import__('os')}", "not a Python dict literal"),
    ],
)
def test_bad_config_is_explained(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text)
