"""The grant engine: pure functions over Beancount entries (entries in, entries and errors out).

Nothing here reads files, the clock or the network, and nothing here imports
the rest of the package: the plugins are thin wrappers over it, and every tool
asks it (through :mod:`.asof`) what the ledger holds on a day.

- :mod:`.model`: grants, draw-downs, wallets, expiries, the pass's result, and
  :func:`consumption_order`, the one rule for which grant a draw-down uses;
- :mod:`.metadata`: the policy keys, Transaction IDs, the generated mark;
- :mod:`.booking`: the pass (:func:`run`); :mod:`.grants` is its grant
  part, :mod:`.expiries` its expiry part (and continues a finished pass past
  its horizon: :func:`book_through`), :mod:`.reversals` its reversal part,
  :mod:`.allowances` its recurring allowances (period grants and rollover);
- :mod:`.annotations`: the draw-down annotations, written and read back
  (:func:`rewind`);
- :mod:`.asof`: the ledger as of day D, the one answer every tool gives;
- :mod:`.seal`: the seal chain, checked and extended; :mod:`.canonical` is
  the canonical form its digests and fingerprints are computed over, and
  :mod:`.broken_seals` says what differs when a seal does not hold;
- :mod:`.config`, :mod:`.accounts`, :mod:`.users`, :mod:`.settings`,
  :mod:`.loadstamp`, :mod:`.collector`: the plugin configuration, user ids and
  wallet names, the user index, the dated settings, the stamp the plugins put
  on a load, and the collector paused over large walks.

The names below are the engine's public surface (``from beancount_credits
import engine``; ``engine.run(...)``).
"""

from beancount_credits.engine.annotations import drawdown_annotation, grant_annotation, rewind
from beancount_credits.engine.booking import Pass, Scan, horizon, open_grants, run, scan
from beancount_credits.engine.expiries import book_through, expiry_transaction
from beancount_credits.engine.metadata import (
    BEANCOUNT_GENERATED_FLAGS,
    EXPIRE_PLUGIN_NAME,
    GENERATED_FILENAME,
    GENERATED_KEY,
    SourcePolicy,
    add_period,
    expiry_txn_id,
    generated_by,
    generated_meta,
    is_expiry_record,
    is_generated,
    meta_amount,
    meta_date,
    meta_decimal,
    meta_int,
    parse_period,
    txn_id_of,
    written_entries,
)
from beancount_credits.engine.model import (
    CARRIED_TAG,
    DEFAULT_PRIORITY,
    EXPIRED_TAG,
    FIRST_LINE,
    LAST_LINE,
    NEVER,
    ZERO,
    ChangedRecord,
    Consumption,
    CreditsError,
    DrawDown,
    EngineResult,
    Expiry,
    Grant,
    Wallet,
    consumption_order,
)

__all__ = [
    "BEANCOUNT_GENERATED_FLAGS",
    "CARRIED_TAG",
    "DEFAULT_PRIORITY",
    "EXPIRED_TAG",
    "EXPIRE_PLUGIN_NAME",
    "FIRST_LINE",
    "GENERATED_FILENAME",
    "GENERATED_KEY",
    "LAST_LINE",
    "NEVER",
    "ZERO",
    "ChangedRecord",
    "Consumption",
    "CreditsError",
    "DrawDown",
    "EngineResult",
    "Expiry",
    "Grant",
    "Pass",
    "Scan",
    "SourcePolicy",
    "Wallet",
    "add_period",
    "book_through",
    "consumption_order",
    "drawdown_annotation",
    "expiry_transaction",
    "expiry_txn_id",
    "generated_by",
    "generated_meta",
    "grant_annotation",
    "horizon",
    "is_expiry_record",
    "is_generated",
    "meta_amount",
    "meta_date",
    "meta_decimal",
    "meta_int",
    "open_grants",
    "parse_period",
    "rewind",
    "run",
    "scan",
    "txn_id_of",
    "written_entries",
]
