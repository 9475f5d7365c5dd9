"""Fava extension: the Credit Balance History page.

Enable it in the ledger (``bean-credits serve`` prints the page's address)::

    2025-01-01 custom "fava-extension" "beancount_credits.fava"

The page (template ``templates/CreditBalanceHistory.html``, script
``CreditBalanceHistory.js``) asks these GET endpoints for JSON, each honouring
Fava's time (``time``), account (``account``) and tag/advanced (``filter``)
filters passed in the query string:

- ``users``: every user's balances and period figures (the ``users`` report);
- ``user?user_id=ID``: one user's daily balances, statement, open grants and
  per-member use;
- ``alerts``: users below their low-balance threshold, credits expiring soon,
  users in overdraft, failed top-ups;
- ``settings``: what the page's script presets in Fava (``journal_show``: the
  entry types Fava's journal shows by default, when the ledger asks for it);
- ``export?table=NAME&format=csv|xlsx|pdf``: one of those tables as a file,
  written by :func:`beancount_credits.exports.export` (the CLI's exporters);
  ``users`` takes the page's ``segment``, ``credit_type``, ``q``, ``sort`` and
  ``desc``, the one-user tables ``user_id``.

A ledger whose journal is mostly the daily balance lines can ask, in the
extension's configuration, to hide them by default (one click in the
journal's toggles shows them again)::

    2025-01-01 custom "fava-extension" "beancount_credits.fava" "{'journal_hide': ['balance']}"

Fava keeps the journal's choice in the browser (``localStorage``); the
script sets it only while the browser holds no choice of its own.

Every table is a report of :data:`beancount_credits.reports.REPORTS`
(:func:`beancount_credits.fava.view.table`), the same the CLI prints; this
class only maps requests to them. It reads the entries Fava loaded (no second load)
and never writes, so it works under ``--read-only``; its URLs are relative to
the page, so it works under ``--prefix``.
"""

from __future__ import annotations

import datetime
import io
from collections.abc import Callable, Sequence
from typing import Any, cast

from beancount.core import data
from fava.core.filters import AccountFilter, AdvancedFilter, FilterError, TimeFilter
from fava.ext import FavaExtensionBase, extension_endpoint
from flask import Response, jsonify, request, send_file
from werkzeug.utils import secure_filename

from beancount_credits import exports
from beancount_credits.audit import trace as tracing
from beancount_credits.fava import view
from beancount_credits.ledger import Ledger, LedgerError
from beancount_credits.reports.index import index
from beancount_credits.reports.table import ReportError, Table, format_cell

__all__ = ["CreditBalanceHistory"]

LATEST = datetime.date(9998, 12, 31)  # a period may end by then (the page looks ahead of it)
# The page's tables: its name for each (also the export endpoint's) -> the report.
USER_TABLES = {"statement": "statement", "daily": "daily", "grants": "grants", "members": "members"}
ALERT_TABLES = {
    "low_balance": "low-balance",
    "expiring": "expiring",
    "overdraft": "overdraft",
    "topups": "failed-topups",
}


class BadRequest(Exception):
    """A request the page cannot answer as asked; the message says why (HTTP 4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def table_json(table: Table) -> dict[str, Any]:
    """A Table for the page's script: cells as text (exact numbers), None as null."""
    return {
        "title": table.title,
        "columns": [{"name": column.name, "kind": column.kind} for column in table.columns],
        "rows": [[None if cell is None else format_cell(cell) for cell in row] for row in table],
        "notes": table.notes,
    }


# The entry types of Fava 1.30's journal toggles (its default: all shown).
JOURNAL_TYPES = (
    "balance",
    "budget",
    "cleared",
    "custom",
    "discovered",
    "document",
    "note",
    "pending",
    "query",
    "statement",
    "transaction",
)


def journal_show(config: object) -> list[str] | None:
    """The journal's default entry types from the extension's configuration, or None.

    ``{'journal_hide': ['balance']}`` shows every type but those; anything
    else (no configuration, another shape, unknown types) presets nothing.
    """
    if not isinstance(config, dict):
        return None
    hide = config.get("journal_hide")
    if not isinstance(hide, list | tuple) or not hide:
        return None
    if not all(isinstance(kind, str) and kind in JOURNAL_TYPES for kind in hide):
        return None
    return [kind for kind in JOURNAL_TYPES if kind not in hide]


def error_response(message: str, status: int) -> tuple[Response, int]:
    return jsonify({"error": message}), status


class CreditBalanceHistory(FavaExtensionBase):
    """Credit Balance History: every user's credits, one user's history, alerts, exports."""

    report_title = "Credit Balance History"
    has_js_module = True

    _credits: Ledger | None = None

    def after_load_file(self) -> None:
        # Index the users and wallets once per load, not per request; the grant
        # state starts from the expire plugin's result for this load (no second
        # engine pass). A new load makes a new Ledger: requests of the old one
        # keep reading theirs.
        fava = self.ledger
        # Fava types its entries, errors and options by its own protocols; they
        # are Beancount's.
        self._credits = view.ledger_from_entries(
            fava.beancount_file_path,
            cast(Any, fava.all_entries),
            list(fava.load_errors),
            cast(Any, fava.options),
        )

    @property
    def credits(self) -> Ledger:
        if self._credits is None:
            self.after_load_file()
        assert self._credits is not None
        return self._credits

    # --- the request's filters -------------------------------------------------

    def period(self) -> view.Period:
        """The period Fava's time filter chose (the whole history without one)."""
        # Only the dates: Fava's filtered ledger would also clamp every entry
        # (seconds on a large ledger), and the page reads the entries itself.
        time = (request.args.get("time") or "").strip()
        try:
            date_range = (
                TimeFilter(self.ledger.options, self.ledger.fava_options, time).date_range
                if time
                else None
            )
        except FilterError as exc:
            raise BadRequest(f"{exc.filter_type} filter: {exc.message}") from None
        except ValueError as exc:  # Fava's date parser lets e.g. month 13 through
            raise BadRequest(f"time filter: Failed to parse date: {time} ({exc})") from None
        today = datetime.date.today()
        if date_range is None:
            return view.Period.make(None, None, today)
        if date_range.end > LATEST:
            # The page looks ahead from the period's end (credits expiring soon...).
            raise BadRequest(f"time filter: {time!r} ends after {LATEST}, the last day it answers")
        return view.Period.make(date_range.begin, date_range.end, today)

    def activity_entries(self) -> Sequence[data.Directive] | None:
        """The entries Fava's account and tag filters keep (not clamped to the time
        filter: the period is applied by date); None when no such filter is on.

        Fava's own filters, applied to the ledger with its expiries still to
        come booked (:meth:`asof.Timeline.schedule`), so a period past the
        ledger's horizon counts the same expiries as the unfiltered view.
        """
        account = request.args.get("account") or None
        advanced = (request.args.get("filter") or "").strip() or None
        if account is None and advanced is None:
            return None
        entries: Sequence[data.Directive] = self.credits.timeline.schedule()
        try:
            if account is not None:
                entries = AccountFilter(account).apply(entries)  # type: ignore[arg-type, assignment]
            if advanced is not None:
                entries = AdvancedFilter(advanced).apply(entries)  # type: ignore[arg-type, assignment]
        except FilterError as exc:
            raise BadRequest(f"{exc.filter_type} filter: {exc.message}") from None
        return entries

    def user_id(self) -> str:
        user_id = request.args.get("user_id", "").strip()
        if not user_id:
            raise BadRequest("missing parameter user_id")
        if user_id not in self.credits.users:
            raise BadRequest(f"unknown user id {user_id!r}", 404)
        return user_id

    def sort(self) -> dict[str, Any]:
        """The all-users table's controls: segment, credit type, search, sort column."""
        return {
            "segment": request.args.get("segment") or None,
            "commodity": request.args.get("credit_type") or None,
            "search": (request.args.get("q") or "").strip() or None,
            "sort": request.args.get("sort") or None,
            "desc": request.args.get("desc", "") in ("1", "true"),
        }

    # --- page data: every table is a report (beancount_credits.reports) -------------

    def users_table(self) -> Table:
        period = self.period()
        found = view.table(self.credits, "users", period, self.activity_entries(), **self.sort())
        found.notes.insert(0, f"Period: {period.describe()}")
        return found

    def user_tables(self, only: str | None = None) -> dict[str, Table]:
        """One user's tables (``only``: just that one), each a report for that user."""
        user_id = self.user_id()
        period = self.period()
        made: dict[str, Table] = {}
        for name, report in USER_TABLES.items():
            if only not in (None, name):
                continue
            activity = self.activity_entries() if report == "members" else None
            made[name] = view.table(self.credits, report, period, activity, user=user_id)
        return made

    def alert_tables(self) -> dict[str, Table]:
        period = self.period()
        return {
            name: view.table(
                self.credits,
                report,
                period,
                days=view.EXPIRING_DAYS if report == "expiring" else None,
            )
            for name, report in ALERT_TABLES.items()
        }

    def choices(self) -> dict[str, list[str]]:
        """Segments and credit types for the page's filter menus."""
        segments = sorted({user.segment for user in self.credits.users.values() if user.segment})
        wallets = index(self.credits).wallets
        types = sorted({currency for _account, currency in wallets})
        return {"segments": segments, "credit_types": types}

    # --- endpoints --------------------------------------------------------------------

    def answer(self, make: Callable[[], Any]) -> Any:
        """Run ``make``; a bad request becomes a 4xx with a message, never a 500."""
        try:
            return make()
        except BadRequest as exc:
            return error_response(str(exc), exc.status)
        except (ReportError, LedgerError) as exc:
            return error_response(str(exc), 400)
        except OverflowError:  # a date computed from the request fell off the calendar
            return error_response("a date of this request is out of range", 400)

    @extension_endpoint
    def users(self) -> Any:
        def make() -> Any:
            period = self.period()
            return jsonify(
                {
                    "period": period.describe(),
                    "as_of": period.as_of.isoformat(),
                    # One line when the day is past what the text records.
                    "notice": self.credits.as_of(period.as_of).notice(),
                    **self.choices(),
                    "table": table_json(self.users_table()),
                }
            )

        return self.answer(make)

    @extension_endpoint
    def user(self) -> Any:
        def make() -> Any:
            tables = self.user_tables()
            user = self.credits.user(self.user_id())
            return jsonify(
                {
                    "user_id": user.user_id,
                    "segment": user.segment,
                    "email": None
                    if user.open.meta.get("email") is None
                    else str(user.open.meta["email"]),
                    "credit_limit": None if user.credit_limit is None else str(user.credit_limit),
                    "period": self.period().describe(),
                    "notice": self.credits.as_of(self.period().as_of).notice(),
                    **{name: table_json(table) for name, table in tables.items()},
                }
            )

        return self.answer(make)

    @extension_endpoint
    def settings(self) -> Any:
        return jsonify({"journal_show": journal_show(self.config)})

    def export_table(self, name: str) -> Table:
        if name == "users":
            return self.users_table()
        if name in USER_TABLES:
            return self.user_tables(only=name)[name]
        if name in ALERT_TABLES:
            return self.alert_tables()[name]
        known = ", ".join(["users", *USER_TABLES, *ALERT_TABLES])
        raise BadRequest(f"unknown table {name!r}; tables: {known}")

    @extension_endpoint
    def export(self) -> Any:
        def make() -> Any:
            fmt = request.args.get("format", "")
            try:
                exports.check_format(fmt)
            except exports.ExportError as exc:
                raise BadRequest(str(exc)) from None
            name = request.args.get("table", "users")
            table = self.export_table(name)
            out = io.BytesIO()
            ledger_name = exports.ledger_name(self.credits.path, self.credits.options)
            exports.export(table, fmt, out, ledger_name=ledger_name)
            out.seek(0)
            parts = [name, request.args.get("user_id", ""), str(self.period().as_of)]
            filename = secure_filename("-".join(part for part in parts if part))
            return send_file(
                out,
                mimetype=exports.media_type(fmt),
                as_attachment=True,
                download_name=filename + exports.suffix(fmt),
            )

        return self.answer(make)

    @extension_endpoint
    def trace(self) -> Any:
        """``bean-credits trace`` for a grant (``grant=``) or a transaction (``txn=``)."""

        def make() -> Any:
            asked = [(mode, request.args.get(mode, "").strip()) for mode in ("grant", "txn")]
            given = [(mode, value) for mode, value in asked if value]
            if len(given) != 1:
                raise BadRequest("give one of the parameters grant or txn")
            found = tracing.trace(self.credits, *given[0])
            return jsonify(
                {"found": found.found, "tables": [table_json(table) for table in found.tables]}
            )

        return self.answer(make)

    @extension_endpoint
    def alerts(self) -> Any:
        def make() -> Any:
            return jsonify({name: table_json(table) for name, table in self.alert_tables().items()})

        return self.answer(make)
