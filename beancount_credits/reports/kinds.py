"""What a wallet posting is: earned, redeemed or expired (the statement's columns).

The kind follows from the transaction's counter-accounts (docs/design.md):
breakage or an ``#expired`` tag is expired, an expenses account is redeemed,
an income account is earned; other counter-accounts (adjustments, transfers,
openings) count as earned when positive and redeemed when negative. One
owner for the statement, the wallet index, the usage and members reports and
the columnar export's rows.
"""

from __future__ import annotations

from decimal import Decimal

from beancount.core import data

from beancount_credits.engine import EXPIRED_TAG
from beancount_credits.engine.config import CreditsConfig


def classify(entry: data.Transaction, account: str, config: CreditsConfig, number: Decimal) -> str:
    """'earned', 'redeemed' or 'expired' for a user posting, from its counter-accounts."""
    counter = [posting.account for posting in entry.postings if posting.account != account]
    if EXPIRED_TAG in entry.tags or config.breakage in counter:
        return "expired"
    if any(name.startswith(config.expenses + ":") or name == config.expenses for name in counter):
        return "redeemed"
    if any(name.startswith(config.income + ":") or name == config.income for name in counter):
        return "earned"
    return "earned" if number > 0 else "redeemed"
