"""The HTTP API of ``bean-credits service`` (FastAPI on uvicorn); the logic is in :mod:`.state`.

Endpoints (``/v1/openapi.json`` describes them):

- ``POST /v1/events``: one event or a JSON array of them, the importer's
  format (docs/importing.md). 201 when an event of the batch was new, 200
  when every one was already in the ledger (the same answer as the first
  time), 409 for an id that names another event, 422 for a bad event (the
  importer's message: event, field, reason); all or nothing.
- ``GET /v1/users/{user_id}/balance[?date=D]``, ``.../statement[?from&to]``,
  ``.../grants[?date=D]``: the ledger as of D (default today), as every tool
  answers it (docs/as-of.md).
- ``GET /v1/health`` (no token), ``POST /v1/admin/verify`` (the warm state
  against a full load of the files).

Errors are JSON ``{"error": ..., "problems": [...]}``; nothing answers 500
with a traceback, and no message quotes a ledger file's content.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any

from beancount.core import data
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from beancount_credits.ledger import LedgerError
from beancount_credits.ledger.render import render
from beancount_credits.reports.table import ReportError, format_cell
from beancount_credits.service import auth
from beancount_credits.service.state import Accepted, ServiceError, WarmLedger

MAX_BODY = 8 * 1024 * 1024  # bytes of one POST
MAX_EVENTS = 5000  # events of one batch
log = logging.getLogger("bean-credits.service")


# --- Models (the OpenAPI document) ---------------------------------------------


class Event(BaseModel):
    """One platform event, as ``bean-credits import`` reads it (docs/importing.md)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="user, purchase, promotion, referral, loyalty, topup, ...")
    id: str = Field(description="the event id: its idempotency key (the entry's txn_id)")
    timestamp: str = Field(description="ISO 8601 with a UTC offset")
    user: str | None = None
    amount: str | None = Field(None, description="a number (JSON number or string)")
    commodity: str | None = None
    description: str | None = None


class EntryOut(BaseModel):
    file: str
    line: int
    date: datetime.date
    text: str = Field(description="the entry as the ledger text holds it")


class BalanceOut(BaseModel):
    user: str
    date: datetime.date
    balances: dict[str, str] = Field(description="per credit type")


class EventResult(BaseModel):
    id: str
    status: str = Field(description="created, or duplicate (already in the ledger)")
    entry: EntryOut | None
    balance: BalanceOut | None


class EventsOut(BaseModel):
    results: list[EventResult]


class Problem(BaseModel):
    index: int | None = Field(None, description="the event's place in the batch (0 first)")
    id: str | None = None
    field: str | None = None
    reason: str | None = None
    message: str


class ErrorOut(BaseModel):
    error: str
    problems: list[Problem] = []


class GrantOut(BaseModel):
    id: str
    commodity: str
    remaining: str
    amount: str
    date: datetime.date
    expires: datetime.date | None
    priority: int
    source: str | None


class GrantsOut(BaseModel):
    user: str
    date: datetime.date
    grants: list[GrantOut]


class StatementOut(BaseModel):
    user: str
    title: str
    columns: list[str]
    rows: list[list[str]]


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    404: {"model": ErrorOut},
    409: {"model": ErrorOut},
    422: {"model": ErrorOut},
    503: {"model": ErrorOut},
}


def _error(status: int, message: str, problems: list[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "problems": problems or []}, status_code=status)


# --- The app -------------------------------------------------------------------


def create_app(
    warm: WarmLedger,
    token: str | None = None,
    webhook_secret: str | None = None,
    verify_every: float = 0,
) -> FastAPI:
    """The API over one warm ledger; ``verify_every`` seconds between verifications (0: never)."""
    stop = threading.Event()

    def verifier() -> None:
        while not stop.wait(verify_every):
            try:
                outcome = warm.verify()
                if not outcome["equal"]:
                    log.error("verify: the warm state differed and was loaded again: %s", outcome)
            except Exception:  # a failed check is logged; the next one tries again
                log.exception("verify failed")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        thread = None
        if verify_every > 0:
            thread = threading.Thread(target=verifier, name="verify", daemon=True)
            thread.start()
        yield
        stop.set()

    app = FastAPI(
        title="bean-credits service",
        version="1",
        description="Credits events in, balances out, over a plain-text Beancount ledger.",
        openapi_url="/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )

    if token is None:
        # Without a token only loopback names are answered (no DNS rebinding from a page).
        app.add_middleware(
            TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"]
        )

    def authorised(request: Request) -> None:
        try:
            auth.check_bearer(request.headers.get("authorization"), token)
        except auth.AuthError as exc:
            raise ServiceError(401, str(exc)) from None

    @app.exception_handler(ServiceError)
    async def service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        response = _error(exc.status, exc.message, exc.problems)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(LedgerError)
    async def ledger_error(_request: Request, exc: LedgerError) -> JSONResponse:
        return _error(422, str(exc).splitlines()[0])

    @app.exception_handler(ReportError)
    async def report_error(_request: Request, exc: ReportError) -> JSONResponse:
        return _error(422, str(exc).splitlines()[0])

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "field": ".".join(str(part) for part in error.get("loc", ())[1:]) or None,
                "reason": str(error.get("msg")),
                "message": f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg')}",
            }
            for error in exc.errors()
        ]
        return _error(422, "invalid request", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    guarded = [Depends(authorised)]

    @app.get("/v1/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Whether the service runs and its ledger loads clean (no token needed)."""
        found = warm.health()
        verified = found["verified"] or {}
        return {
            "status": found["status"],
            "version": found["version"],
            "verified": {key: verified.get(key) for key in ("equal", "at")} if verified else None,
        }

    @app.post(
        "/v1/events",
        tags=["events"],
        dependencies=guarded,
        response_model=EventsOut,
        status_code=201,
        responses={
            200: {"model": EventsOut, "description": "every event already in the ledger"},
            **ERRORS,
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                {"$ref": "#/components/schemas/Event"},
                                {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                            ]
                        }
                    }
                },
            }
        },
    )
    async def post_events(request: Request) -> JSONResponse:
        """Book one event or a batch (all or nothing) and answer once they are in the files."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            # A web page can send other types to a local service without asking first.
            raise ServiceError(415, "send the events as Content-Type: application/json")
        body = await _body(request)
        auth_check_signature(body, request)
        records = _records(body)
        from starlette.concurrency import run_in_threadpool

        def book() -> tuple[list[Accepted], list[dict[str, Any]]]:
            accepted = warm.post(records)
            return accepted, _results(warm, accepted)

        accepted, results = await run_in_threadpool(book)
        status = 201 if any(item.created for item in accepted) else 200
        return JSONResponse({"results": results}, status_code=status)

    def auth_check_signature(body: bytes, request: Request) -> None:
        try:
            auth.check_signature(body, request.headers, webhook_secret)
        except auth.AuthError as exc:
            raise ServiceError(401, str(exc)) from None

    @app.get(
        "/v1/users/{user_id}/balance",
        tags=["users"],
        dependencies=guarded,
        response_model=BalanceOut,
        responses=ERRORS,
    )
    def balance(user_id: str, date: datetime.date | None = None) -> BalanceOut:
        """The user's balance per credit type at the end of ``date`` (default: today)."""
        day = warm.day(date)
        found = warm.balances(user_id, day)
        return BalanceOut(user=user_id, date=day, balances=_numbers(found))

    @app.get(
        "/v1/users/{user_id}/grants",
        tags=["users"],
        dependencies=guarded,
        response_model=GrantsOut,
        responses=ERRORS,
    )
    def grants(user_id: str, date: datetime.date | None = None) -> GrantsOut:
        """The user's grants with credits left at the end of ``date``, in spending order."""
        day = warm.day(date)
        found = warm.open_grants(user_id, day)
        return GrantsOut(
            user=user_id,
            date=day,
            grants=[
                GrantOut(
                    id=grant.id,
                    commodity=grant.currency,
                    remaining=str(grant.remaining),
                    amount=str(grant.amount),
                    date=grant.date,
                    expires=grant.expires,
                    priority=grant.priority,
                    source=grant.source,
                )
                for grant in found
            ],
        )

    @app.get(
        "/v1/users/{user_id}/statement",
        tags=["users"],
        dependencies=guarded,
        response_model=StatementOut,
        responses=ERRORS,
    )
    def statement(
        user_id: str,
        date_from: Annotated[datetime.date | None, Query(alias="from")] = None,
        date_to: Annotated[datetime.date | None, Query(alias="to")] = None,
    ) -> StatementOut:
        """The user's history (the statement report): earned, redeemed, expired, balance."""
        if date_from is not None and date_to is not None and date_from > date_to:
            raise ServiceError(422, f"from {date_from} is after to {date_to}")
        table = warm.statement(user_id, date_from, date_to)
        return StatementOut(
            user=user_id,
            title=table.title,
            columns=[column.name for column in table.columns],
            rows=[[format_cell(cell) for cell in row] for row in table.rows],
        )

    @app.post("/v1/admin/verify", tags=["service"], dependencies=guarded, responses=ERRORS)
    def verify() -> dict[str, Any]:
        """Load the files from scratch and compare with the warm state (reloaded if unequal)."""
        return warm.verify()

    return app


async def _body(request: Request) -> bytes:
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY:
        raise ServiceError(413, f"the body is over {MAX_BODY} bytes; send smaller batches")
    chunks = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY:
            raise ServiceError(413, f"the body is over {MAX_BODY} bytes; send smaller batches")
        chunks.append(chunk)
    return b"".join(chunks)


def _records(body: bytes) -> list[dict[str, Any]]:
    try:
        # Decimal, not float: 0.1 credits stay 0.1 (as the importer reads JSON Lines).
        parsed = json.loads(body.decode("utf-8"), parse_float=Decimal)
    except UnicodeDecodeError:
        raise ServiceError(422, "the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ServiceError(422, f"the body is not JSON: {exc.msg} at position {exc.pos}") from None
    except ValueError:
        raise ServiceError(422, "the body is not JSON") from None
    records = parsed if isinstance(parsed, list) else [parsed]
    if not records:
        raise ServiceError(422, "no events: send an event object or a non-empty array")
    if len(records) > MAX_EVENTS:
        raise ServiceError(422, f"{len(records)} events in one batch; at most {MAX_EVENTS}")
    for number, record in enumerate(records):
        if not isinstance(record, dict):
            raise ServiceError(
                422,
                "invalid event",
                [
                    {
                        "index": number,
                        "field": "row",
                        "reason": f"not a JSON object but {type(record).__name__}",
                        "message": f"request:{number + 1}: not a JSON object",
                    }
                ],
            )
    return records


def _numbers(values: dict[str, Decimal]) -> dict[str, str]:
    return {currency: str(number) for currency, number in sorted(values.items())}


def _results(warm: WarmLedger, accepted: list[Accepted]) -> list[dict[str, Any]]:
    with warm.lock:  # one check of the files for the whole batch
        warm.fresh()
        return [_result(warm, item) for item in accepted]


def _result(warm: WarmLedger, item: Accepted) -> dict[str, Any]:
    entry = None
    if item.entry is not None:
        entry = {
            "file": _relative(warm, str(item.entry.meta.get("filename"))),
            "line": item.entry.meta.get("lineno"),
            "date": item.entry.date.isoformat(),
            "text": _text(item.entry),
        }
    balance = None
    if item.user is not None and item.user in warm.index.users:
        day = warm.day(None)
        if item.entry is not None and item.entry.date > day:
            day = item.entry.date
        balance = {
            "user": item.user,
            "date": day.isoformat(),
            "balances": _numbers(warm.balances(item.user, day, fresh=False)),
        }
    status = "created" if item.created else "duplicate"
    return {"id": item.event_id, "status": status, "entry": entry, "balance": balance}


def _relative(warm: WarmLedger, filename: str) -> str:
    root = str(warm.main.resolve().parent)
    return filename[len(root) + 1 :] if filename.startswith(root + "/") else filename


def _text(entry: data.Directive) -> str:
    meta = {k: v for k, v in (entry.meta or {}).items() if k not in ("filename", "lineno")}
    if isinstance(entry, data.Transaction):
        entry = entry._replace(postings=[posting._replace(meta=None) for posting in entry.postings])
    return render(entry._replace(meta=meta))
