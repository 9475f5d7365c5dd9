"""``python -m beancount_credits.cli``: the bean-credits command line."""

from beancount_credits.cli import main

main()
