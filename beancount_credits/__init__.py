"""beancount-credits: a double-entry ledger of user credits kept as Beancount text."""

__version__ = "0.1.0"
