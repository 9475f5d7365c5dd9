"""The ``bean-credits`` command line (click); the logic lives in the modules it calls.

One module per family of commands, each registering on the group :data:`main`:
:mod:`.report` (report, export), :mod:`.jobs` (close-day, import, notify,
topup, close-period, recover), :mod:`.audit` (verify, history, amend),
:mod:`.serve` (serve), :mod:`.service` (service), :mod:`.trace` (trace); :mod:`.common` holds
what they share.
"""

from beancount_credits.cli import audit, jobs, report, serve, service, trace
from beancount_credits.cli.common import main

__all__ = ["audit", "jobs", "main", "report", "serve", "service", "trace"]
