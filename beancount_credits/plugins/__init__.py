"""Beancount plugins of beancount-credits (one module each)."""
