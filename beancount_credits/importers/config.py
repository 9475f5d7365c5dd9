"""beangulp configuration for the event exports: ``CONFIG`` (and no ``HOOKS``).

beangulp's own command line::

    python -m beancount_credits.importers.config identify exports/
    python -m beancount_credits.importers.config extract -e main.beancount exports/ > new.beancount
    python -m beancount_credits.importers.config archive -o documents/ exports/

Fava's import page reads the same ``CONFIG`` when the ledger sets
``custom "fava-option" "import-config" "<a file that imports CONFIG>"``.
"""

from __future__ import annotations

import beangulp

from beancount_credits.importers import CsvImporter, JsonlImporter

CONFIG = [CsvImporter(), JsonlImporter()]
HOOKS: list = []


def main() -> None:
    beangulp.Ingest(CONFIG, HOOKS).cli()


if __name__ == "__main__":
    main()
