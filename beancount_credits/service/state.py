"""The warm ledger of ``bean-credits service``: loaded once, kept in step with the files.

:class:`WarmLedger` loads the ledger with Beancount's loader (what
``bean-check`` sees), then keeps, in memory:

- the grant engine's pass over the written entries, kept open
  (:class:`beancount_credits.engine.live.LivePass`): an event is booked on it
  without loading the ledger again;
- the importer's :class:`~beancount_credits.importers.index.LedgerIndex` (ids,
  wallets, transactions), so events are planned as ``bean-credits import``
  plans them (:func:`beancount_credits.importers.plan.plan_batch`);
- a fingerprint of the ledger's files (size, mtime, inode of each, the
  ``.beancount`` names of their folders): when another writer (close-day,
  import, an edit by hand) changed them, the next request loads the ledger
  again before it answers.

:meth:`WarmLedger.post` takes a batch of events, all or nothing, under the
ledger's writer lock: plan, check (the engine on the live state, the policy
plugin's rules and Beancount's account and balance checks on the new entries),
write the day's file through the write path (fsync and rename; a journal when
several files change), and only then answer. Events the fast path does not
take (an edit of an entry already written: settle, cancel, expiry change; a
day already logged by close-day or sealed) go through ``bean-credits
import``'s own path (full check, amendments), after which the ledger is loaded
again. :meth:`WarmLedger.verify` loads the ledger from scratch and compares.
"""

from __future__ import annotations

import dataclasses
import datetime
import gc
import glob
import os
import threading
import time
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from beancount.core import data
from beancount.ops import validation

from beancount_credits import engine
from beancount_credits.engine import asof, live
from beancount_credits.engine.includes import include_patterns
from beancount_credits.engine.users import index_users
from beancount_credits.importers import ingest, sealing
from beancount_credits.importers.events import Problem, Row, rows_of
from beancount_credits.importers.index import LedgerIndex
from beancount_credits.importers.plan import Plan, plan_batch
from beancount_credits.ledger import Ledger, LedgerError, find_config, incremental, load, write
from beancount_credits.ledger.render import render
from beancount_credits.ledger.text import read_text
from beancount_credits.plugins import policy
from beancount_credits.reports import Filters
from beancount_credits.reports import run as run_report

LIVE_PREFIX = "live-"  # imports/live-YYYY-MM-DD.beancount: the service's file of a day
SOURCE = "request"  # how messages name the posted batch (request:<n> is its n-th event)


class ServiceError(Exception):
    """A request the service refuses: HTTP status, one line, and the problems by event."""

    def __init__(self, status: int, message: str, problems: Sequence[dict[str, Any]] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = list(problems)


@dataclasses.dataclass
class Accepted:
    """One event of an accepted batch: what it booked (or had booked already)."""

    event_id: str
    created: bool
    entry: data.Directive | None
    user: str | None
    commodity: str | None


def _fingerprint(main: Path, options: Mapping[str, Any]) -> tuple[Any, ...]:
    """Size, mtime and inode of every ledger file, and of every file the main file's
    include globs match now (a new import batch, a new month's log is a change).

    Paths stay strings (Beancount's include list is absolute already): this runs
    before every answer, and resolving each path would cost more than the stats.
    """
    main_file = os.path.abspath(main)
    files = {str(name) for name in options.get("include", [])}
    files.add(main_file)
    try:
        text = Path(main_file).read_bytes()
    except OSError:
        text = b""
    # Beancount's include rule (engine.includes): patterns relative to the file, globbed
    # as its loader globs them.
    for pattern in include_patterns(main_file, text):
        files.update(os.path.normpath(name) for name in glob.glob(pattern, recursive=True))
    stats: list[tuple[str, int | None, int | None, int | None]] = []
    for path in sorted(files):
        try:
            stat = os.stat(path)
            stats.append((path, stat.st_size, stat.st_mtime_ns, stat.st_ino))
        except OSError:
            stats.append((path, None, None, None))
    return tuple(stats)


def _written(entries: Sequence[data.Directive]) -> list[data.Directive]:
    """The entries of the text: without what this package's plugins generate."""
    return [entry for entry in entries if engine.generated_by(entry) is None]


class WarmLedger:
    """One ledger, loaded once and kept warm; thread-safe (one lock for reads and writes)."""

    def __init__(
        self,
        path: str | Path,
        today: Callable[[], datetime.date] = datetime.date.today,
        timezone: str | None = None,
    ) -> None:
        self.main = Path(path)
        if not self.main.is_file():
            raise LedgerError(f"no ledger file at {self.main}")
        self.today = today
        self.zone = zoneinfo.ZoneInfo(timezone) if timezone else None
        self.lock = threading.RLock()
        self.version = 0
        self.loads = 0
        self.verified: dict[str, Any] | None = None
        # Under the writer lock: a write a crash left half-done is completed first.
        with self.lock, write.ledger_lock(self.main):
            self.load()

    # -- loading

    def load(self) -> None:
        """Load the ledger from its files (Beancount's loader, plugins on) and warm up.

        Without Beancount's pickle cache: the cache is keyed on the files its own
        load included, so a new file that an include glob matches (an import
        batch) would not make it stale, and a cache copied with the ledger names
        the other copy's files.
        """
        started = time.monotonic()
        ledger = load(self.main, cache=False)
        self._warm(ledger.entries, ledger.errors, ledger.options)
        # Millions of long-lived objects: out of the collector's reach, or each of its
        # full passes over them would pause an answer for seconds.
        gc.freeze()
        self.loads += 1
        self.load_seconds = time.monotonic() - started

    def _warm(self, entries: list[data.Directive], errors: list[Any], options: dict) -> None:
        self.errors = [e for e in errors]
        self.options = options
        self.config = find_config(options)
        written = _written(entries)
        self.live = live.LivePass(written, self.config)
        self.index = LedgerIndex.from_entries(written, self.config)
        self.by_id: dict[str, data.Directive] = {}
        for entry in written:
            txn_id = entry.meta.get("txn_id") if entry.meta else None
            if txn_id is not None and not isinstance(entry, data.Balance):
                self.by_id.setdefault(str(txn_id), entry)
        self.sealed = sealing.sealed_day(written)
        logged = [entry.date for entry in written if isinstance(entry, data.Balance)]
        # A balance assertion dated D+1 records day D: events of D or before change a
        # recorded day, which bean-credits import's full check (and amendment) handles.
        self.logged_through = max(logged) - asof.ONE_DAY if logged else None
        self.policy_config = None
        for name, config_str in options.get("plugin", []):
            if name == policy.PLUGIN:
                self.policy_config = policy.parse_policy_config(config_str)
        self.accounts: dict[str, list[data.Directive]] = {}
        for entry in written:
            if isinstance(entry, data.Open | data.Close):
                self.accounts.setdefault(entry.account, []).append(entry)
        self.commodities = {
            entry.currency: entry for entry in written if isinstance(entry, data.Commodity)
        }
        self.fingerprint = _fingerprint(self.main, options)
        self.version += 1
        self._timeline: tuple[int, Ledger] | None = None

    def stale(self) -> bool:
        """Whether the files changed since the state was made (another writer, an edit)."""
        return _fingerprint(self.main, self.options) != self.fingerprint

    def fresh(self) -> None:
        """Load again if another writer changed the files (call holding ``self.lock``)."""
        pending = write.pending_write(self.main)
        if pending is not None:
            with write.ledger_lock(self.main):  # completes the interrupted write first
                self.load()
        elif self.stale():
            with write.ledger_lock(self.main):  # a whole write, never half of one
                self.load()

    # -- writing

    def post(self, records: Sequence[Mapping[str, Any]]) -> list[Accepted]:
        """Book a batch of events, all or nothing; raises ServiceError (nothing written)."""
        with self.lock, write.ledger_lock(self.main) as finished:
            if finished is not None or self.stale():
                self.load()
            if self.errors:
                raise ServiceError(
                    503,
                    f"the ledger has {len(self.errors)} error(s) (run bean-check); "
                    "no event is taken until they are fixed",
                )
            rows: list[Row | tuple[int, Problem]] = list(rows_of(records))
            plan = plan_batch(self.index, rows, self.zone)
            # New: an id the ledger does not hold yet, or an edit (a settled redemption).
            created = {e.id for e in plan.events.values() if e.id not in self.index.ids}
            created |= {edit.event_id for edit in plan.edits}
            try:
                if plan.problems:
                    raise self._refusal(plan, plan.problems)
                if plan.edits or self._touches_recorded_days(plan):
                    self._post_slow(rows)
                elif plan.entries:
                    self._post_fast(plan)
                return self._accepted(plan, created)
            except BaseException:
                if any(row.fields.get("type") == "user" for row in rows if isinstance(row, Row)):
                    # The planner updates a known user's fields in the index as it goes.
                    self.index = LedgerIndex.from_entries(self.live.entries, self.config)
                raise

    def _refusal(
        self, plan: Plan, problems: Mapping[int, list[Problem]], status: int = 422
    ) -> ServiceError:
        listed = []
        conflict = False
        for line, found in sorted(problems.items()):
            for problem in found:
                reused = problem.field == "id" and "names one event" in problem.reason
                conflict = conflict or reused
                listed.append(
                    {
                        "index": line - 1,
                        "id": plan.ids.get(line),
                        "field": problem.field,
                        "reason": problem.reason,
                        "message": ingest.describe(SOURCE, line, problem, plan),
                    }
                )
        if conflict:
            return ServiceError(
                409, "an event id already names a different event; nothing was written", listed
            )
        return ServiceError(status, f"{len(listed)} problem(s); nothing was written", listed)

    def _touches_recorded_days(self, plan: Plan) -> bool:
        days = [day for day in (self.sealed, self.logged_through) if day is not None]
        return bool(days) and any(entry.date <= max(days) for entry in plan.entries)

    def _accepted(self, plan: Plan, created: set[str]) -> list[Accepted]:
        found = []
        for _line, event in sorted(plan.events.items()):
            entry = self.by_id.get(event.id)
            found.append(
                Accepted(event.id, event.id in created, entry, event.user, event.commodity)
            )
        return found

    def _post_slow(self, rows: list[Row | tuple[int, Problem]]) -> None:
        """What the live state does not take: bean-credits import's own path, then a new load.

        Called holding the writer lock (the import's locked part runs inside it).
        """
        records = [row.fields for row in rows if isinstance(row, Row)]
        source = ingest.Source(SOURCE, "jsonl", records=records)
        try:
            with incremental.paused_gc():
                ingest.import_locked(self.main, source, rows, False, False, None, self.zone)
        except (ingest.ImportFailed, write.WriteError) as exc:
            # Nothing was written: the warm state still holds.
            lines = getattr(exc, "lines", None) or getattr(exc, "details", [])
            problems = [{"index": None, "message": line} for line in lines]
            raise ServiceError(422, str(exc.args[0]), problems) from None
        except BaseException:
            self.load()  # whatever it left, the files say
            raise
        self.load()

    # -- the fast path: the live state, the day's file

    def _post_fast(self, plan: Plan) -> None:
        placed, rows, changes = self._place(plan.entries)
        problems = self._check(placed, rows)
        if problems:
            raise self._refusal(plan, problems)
        errors = self.live.add(placed)
        if errors:
            self.live.remove(placed)
            raise self._refusal(plan, self._traced(errors, rows))
        try:
            self._write(changes)
        except BaseException:
            self.live.remove(placed)
            self.load()
            raise
        added = LedgerIndex.from_entries(placed, self.config)
        self.index.accounts |= added.accounts
        self.index.ids |= added.ids
        self.index.transactions.update(added.transactions)
        self.index.recorded.update(added.recorded)
        for user_id, user in added.users.items():
            self.index.users.setdefault(user_id, user)
        for entry in placed:
            txn_id = entry.meta.get("txn_id")
            if txn_id is not None:
                self.by_id.setdefault(str(txn_id), entry)
            if isinstance(entry, data.Open | data.Close):
                self.accounts.setdefault(entry.account, []).append(entry)
        self.fingerprint = _fingerprint(self.main, self.options)
        self.version += 1

    def _place(
        self, entries: Sequence[data.Directive]
    ) -> tuple[list[data.Directive], dict[tuple[str, int], int], list[write.FileChange]]:
        """The entries as the day files will hold them (file and line), their rows, the files."""
        root = self.main.resolve().parent
        texts: dict[Path, str] = {}
        placed: list[data.Directive] = []
        rows: dict[tuple[str, int], int] = {}
        for entry in sorted(entries, key=lambda entry: entry.date):  # stable: the plan's order
            path = root / ingest.IMPORT_DIR / f"{LIVE_PREFIX}{entry.date.isoformat()}.beancount"
            text = texts.get(path)
            if text is None:
                text = (
                    read_text(path)
                    if path.exists()
                    else (
                        f"; Events posted to bean-credits service, dated {entry.date}; "
                        "edit through bean-credits.\n"
                    )
                )
                if not text.endswith("\n"):
                    text += "\n"
            meta = {k: v for k, v in entry.meta.items() if k not in ("filename", "lineno")}
            lineno = text.count("\n") + 2  # after the blank line
            text += "\n" + render(entry._replace(meta=meta))
            texts[path] = text
            placed.append(entry._replace(meta={**meta, "filename": str(path), "lineno": lineno}))
            rows[(str(path), lineno)] = entry.meta["lineno"]
        changes = [write.FileChange(path, text) for path, text in sorted(texts.items())]
        main_text = read_text(self.main)
        include = f'include "{ingest.IMPORT_GLOB}"'
        if include not in main_text:
            separator = "" if main_text.endswith("\n") else "\n"
            main_text += f"{separator}\n; Imported events (bean-credits import, service).\n"
            changes.append(write.FileChange(self.main, main_text + include + "\n"))
        return placed, rows, changes

    def _traced(
        self, errors: Sequence[Any], rows: Mapping[tuple[str, int], int]
    ) -> dict[int, list[Problem]]:
        """Errors by the row they point at (one not in the batch: on the batch's first row)."""
        found: dict[int, list[Problem]] = {}
        first = min(rows.values(), default=1)
        for error in errors:
            source = error.source or {}
            row = rows.get((str(source.get("filename")), int(source.get("lineno") or 0)))
            message = error.message
            field = "amount" if "exceeds the" in message else "ledger check"
            if row is None:
                where = f"{source.get('filename')}:{source.get('lineno')}"
                message = f"the batch would break the entry at {where}: {message}"
                row = first
            found.setdefault(row, []).append(Problem(field, message))
        return found

    def _check(
        self, placed: Sequence[data.Directive], rows: Mapping[tuple[str, int], int]
    ) -> dict[int, list[Problem]]:
        """Beancount's checks of accounts and balancing, and the policy's rules, on the batch."""
        accounts = {
            posting.account
            for entry in placed
            if isinstance(entry, data.Transaction)
            for posting in entry.postings
        }
        context: list[data.Directive] = list(self.commodities.values())
        for account in accounts:
            context += self.accounts.get(account, [])
        subset = sorted([*context, *placed], key=data.entry_sortkey)
        errors: list[Any] = []
        for check in (
            validation.validate_open_close,
            validation.validate_active_accounts,
            validation.validate_currency_constraints,
            validation.validate_check_transaction_balances,
        ):
            errors += check(subset, self.options)
        if self.policy_config is not None:
            errors += policy.check(subset, self.policy_config, unique_txn_id=False)
        errors += self._overdraws(placed)
        mine = [
            error
            for error in errors
            if (str((error.source or {}).get("filename")), (error.source or {}).get("lineno"))
            in rows
        ]
        return self._traced(mine, rows)

    def _overdraws(self, placed: Sequence[data.Directive]) -> list[engine.CreditsError]:
        """Draw-downs beyond what a wallet holds, found before the engine books them.

        The engine would say the same (and the batch be taken out again, a new
        pass over the ledger); this reads each wallet as the live pass holds it.
        """
        if not self.live.extends(placed):
            return []
        spent: dict[tuple[str, str], Decimal] = {}
        found = []
        transactions = [entry for entry in placed if isinstance(entry, data.Transaction)]
        # A reversal gives credits back as the engine books it: its wallet is left to the engine.
        reversed_wallets = {
            (posting.account, posting.units.currency)
            for entry in transactions
            if entry.meta.get("reverses")
            for posting in entry.postings
        }
        for entry in sorted(transactions, key=data.entry_sortkey):
            for posting in entry.postings:
                key = (posting.account, posting.units.currency)
                if not self.config.is_user_account(posting.account) or key in reversed_wallets:
                    continue
                number = posting.units.number
                if number > 0:
                    spent[key] = spent.get(key, Decimal(0)) - number
                    continue
                wallet = self.live.wallet(*key)
                if wallet is None:
                    continue  # a wallet the batch opens: the engine's own check
                balance, available = live.wallet_at(wallet, entry.date)
                balance -= spent.get(key, Decimal(0))
                left = available - spent.get(key, Decimal(0)) + wallet.limit - wallet.debt
                if -number > left:
                    label = self.live.state.user_label(posting.account)
                    found.append(
                        engine.CreditsError(
                            entry.meta,
                            f"Draw-down of {-number} {key[1]} by user {label!r} on "
                            f"{entry.date} exceeds the {max(left, Decimal(0))} {key[1]} "
                            f"available (balance {balance}, credit limit {wallet.limit})",
                            entry,
                        )
                    )
                spent[key] = spent.get(key, Decimal(0)) - number
        return found

    def _write(self, changes: Sequence[write.FileChange]) -> None:
        """Through the write path: one file by fsync and rename, several through the journal."""
        if len(changes) == 1:
            write.write_atomic(changes[0].path, changes[0].text or "")
            return
        main = self.main.resolve()
        ordered = sorted(changes, key=lambda change: change.path.resolve() == main)
        write.write_files(self.main, ordered, "bean-credits service: events")

    # -- reading

    def user_account(self, user_id: str) -> str:
        user = self.index.users.get(user_id)
        if user is None:
            raise ServiceError(404, f"unknown user id {user_id!r}")
        return user.account

    def day(self, day: datetime.date | None) -> datetime.date:
        return day if day is not None else self.today()

    def ledger(self) -> Ledger:
        """The warm entries as a Ledger for the reports (one per version; call holding the lock)."""
        if self._timeline is None or self._timeline[0] != self.version:
            entries = list(self.live.entries)
            timeline = None
            horizon, last = self.live.horizon, self.live.last
            if horizon is not None and (last is None or horizon >= last):
                # The live pass finished through the horizon stands for the expire
                # plugin's own result: days from the horizon on cost no new pass.
                result, final = self.live.finish(horizon)
                entries = sorted([*entries, *self.live.booked, *final], key=data.entry_sortkey)
                timeline = asof.Timeline(entries, self.config, base=result)
            ledger = Ledger(
                path=self.main,
                entries=entries,
                errors=[],
                options=self.options,
                config=self.config,
                users=index_users(entries, self.config),
                timeline=timeline,  # type: ignore[arg-type]
            )
            self._timeline = (self.version, ledger)
        return self._timeline[1]

    def balances(
        self, user_id: str, day: datetime.date | None = None, fresh: bool = True
    ) -> dict[str, Decimal]:
        """The user's balance per credit type at the end of ``day`` (the ledger as of it).

        ``fresh=False``: the caller holds the lock and checked the files already.
        """
        with self.lock:
            if fresh:
                self.fresh()
            account = self.user_account(user_id)
            day = self.day(day)
            last = self.live.last
            if (last is None or day >= last) and not self.live.allowance_due(day):
                return {
                    wallet.currency: live.wallet_at(wallet, day)[0]
                    for wallet in self.live.wallets_of(account)
                }
            result = self.ledger().as_of(day).result
            return {
                currency: wallet.balance
                for (name, currency), wallet in result.wallets.items()
                if name == account
            }

    def open_grants(self, user_id: str, day: datetime.date | None = None) -> list[engine.Grant]:
        with self.lock:
            self.fresh()
            account = self.user_account(user_id)
            day = self.day(day)
            last = self.live.last
            if (last is None or day >= last) and not self.live.allowance_due(day):
                grants = [
                    grant
                    for wallet in self.live.wallets_of(account)
                    for grant in live.open_grants_at(wallet, day)
                ]
                return sorted(grants, key=lambda grant: (grant.currency, grant.sort_key))
            result = self.ledger().as_of(day).result
            return sorted(
                (g for g in engine.open_grants(result, account)),
                key=lambda grant: (grant.currency, grant.sort_key),
            )

    def statement(
        self, user_id: str, date_from: datetime.date | None, date_to: datetime.date | None
    ) -> Any:
        with self.lock:
            self.fresh()
            self.user_account(user_id)
            filters = Filters(user=user_id, date_from=date_from, date_to=self.day(date_to))
            return run_report("statement", self.ledger(), filters, strict_range=False)

    def health(self) -> dict[str, Any]:
        with self.lock:
            return {
                "status": "ok" if not self.errors else "ledger has errors",
                "ledger": self.main.name,
                "errors": len(self.errors),
                "version": self.version,
                "loads": self.loads,
                "entries": len(self.live.entries),
                "recorded_through": self.live.horizon,
                "restarts": self.live.restarts,
                "verified": self.verified,
            }

    # -- verification

    def verify(self) -> dict[str, Any]:
        """Load the files from scratch and compare with the warm state; reload if they differ."""
        for _attempt in range(3):
            with self.lock:
                self.fresh()
                fingerprint = self.fingerprint
            full = load(self.main, cache=False)  # outside the lock: posts go on meanwhile
            with self.lock:
                if self.fingerprint != fingerprint or self.stale():
                    continue  # a write in between: compare again with both up to date
                differences = self._differences(full)
                outcome = {
                    "equal": not differences,
                    "differences": differences[:20],
                    "entries": len(self.live.entries),
                    "errors": len(full.errors),
                    "version": self.version,
                    "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                }
                if differences or len(full.errors) != len(self.errors):
                    self._warm(full.entries, full.errors, full.options)
                    self.loads += 1
                self.verified = {k: v for k, v in outcome.items() if k != "differences"}
                return outcome
        raise ServiceError(409, "the ledger kept changing during the verification; try again")

    def _differences(self, full: Ledger) -> list[str]:
        written = _written(full.entries)
        warm_day = self.live.last
        horizon = engine.horizon(written)
        days = [day for day in (warm_day, horizon, self.live.horizon) if day is not None]
        found: list[str] = []
        if horizon != self.live.horizon:
            found.append(f"recorded through: files {horizon}, warm {self.live.horizon}")
        if not days:
            return found
        day = max(days)
        expected = asof.run_through(written, self.config, day)
        got = self.live.result(day)
        found += _compare(_grant_state(expected), _grant_state(got), "grant")
        found += _compare(_wallet_state(expected), _wallet_state(got), "wallet")
        index = LedgerIndex.from_entries(written, self.config)
        if index.ids != self.index.ids:
            missing = sorted(index.ids - self.index.ids)[:5]
            extra = sorted(self.index.ids - index.ids)[:5]
            found.append(f"event ids: in the files only {missing}, in the warm state only {extra}")
        return found


def _grant_state(result: engine.EngineResult) -> dict[str, tuple[Any, ...]]:
    return {
        grant_id: (
            grant.account,
            grant.currency,
            grant.date,
            grant.amount,
            grant.expires,
            grant.priority,
            grant.remaining,
            grant.consumed,
            grant.expired,
        )
        for grant_id, grant in result.grants.items()
    }


def _wallet_state(result: engine.EngineResult) -> dict[str, tuple[Any, ...]]:
    return {
        f"{account} {currency}": (wallet.available, wallet.debt)
        for (account, currency), wallet in result.wallets.items()
        if wallet.available or wallet.debt
    }


def _compare(files: Mapping[str, Any], warm: Mapping[str, Any], what: str) -> list[str]:
    found = []
    for key in sorted(set(files) | set(warm)):
        if files.get(key) != warm.get(key):
            found.append(f"{what} {key}: files {files.get(key)}, warm {warm.get(key)}")
    return found
