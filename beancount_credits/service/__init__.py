"""``bean-credits service``: the ledger kept warm behind an HTTP API (docs/service.md).

:mod:`.state` is the warm ledger (the engine's live pass, the importer's
index, the files' fingerprint; posting, reading, verifying), :mod:`.app` the
FastAPI endpoints and their pydantic models, :mod:`.auth` the bearer token and
the Standard Webhooks signatures.
"""
