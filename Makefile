# Task runner: `make demo` (the main job on the demo ledger) and `make test`.
# Both set up .venv on first use, so a fresh clone needs nothing else.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := ledgers/demo/main.beancount

.PHONY: demo test lint chromium java bench-plugins bench-fava demo-ledger demo-queries docs-pdf docs-screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## The main job on the demo ledger: check it, every user's balance, then the
## Credit Balance History page in Fava (PORT=5000; Ctrl-C stops it).
PORT ?= 5000
demo: $(VENV)/.installed
	$(BIN)/bean-check $(DEMO)
	$(BIN)/bean-credits report balances $(DEMO)
	$(BIN)/bean-credits serve $(DEMO) --port $(PORT)

## Lint and the whole test suite. The browser test drives Debian's chromium
## (installed here if missing; Playwright never downloads a browser); the Spark
## tests run pyspark in local mode on Debian's Java (installed here if missing).
## Installing them runs apt-get, which needs root (or install both beforehand:
## sudo apt-get install --no-install-recommends chromium fonts-liberation default-jre-headless).
## fonts-liberation is chromium's recommended font, which --no-install-recommends leaves out.
test: $(VENV)/.installed lint chromium java
	$(BIN)/python -m pytest -q

chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium fonts-liberation)

java:
	command -v java >/dev/null || (apt-get update && apt-get install -y --no-install-recommends default-jre-headless)

## ruff (lint and format) and mypy (non-strict, over the package: pyproject's [tool.mypy]).
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Regenerate the demo ledger from its seeded generator, then its daily log.
demo-ledger: $(VENV)/.installed
	rm -rf ledgers/demo/log
	$(BIN)/python ledgers/demo/generate.py
	$(BIN)/bean-credits close-day $(DEMO) --date 2026-11-20

## The demo ledger's named queries (Fava's Query page) from queries/*.bql.
demo-queries: $(VENV)/.installed
	$(BIN)/python -m beancount_credits.reports.queries queries 2025-09-01 > ledgers/demo/queries.beancount

## Plugin overhead on bean-check, 100k transactions (see bench/README.md).
bench-plugins: $(VENV)/.installed
	$(BIN)/python bench/bench_plugins.py

## Fava's load with and without the credits page, and the page's server time (100k).
bench-fava: $(VENV)/.installed
	$(BIN)/python bench/bench_fava.py

## The Credit page on the demo in headless chromium, at 1024 and 1440 px, as docs/fava-*.png.
docs-screenshots: $(VENV)/.installed chromium
	$(BIN)/python docs/fava_screenshots.py

## Page 1 of every report's PDF export on the demo ledger, as docs/report-NAME.png.
docs-pdf: $(VENV)/.installed
	$(BIN)/python docs/pdf_previews.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
