"""Whole-history analytics: the ledger as Parquet, and reports over it on DuckDB or Spark.

- :mod:`.datasets`: the datasets' columns and their rows from a loaded ledger;
- :mod:`.writer`: ``bean-credits export parquet`` (the Parquet files and the
  manifest, period by period);
- :mod:`.periods`: the closed and active periods, each loaded and exported alone;
- :mod:`.sql`, :mod:`.reports`, :mod:`.spark`: the reports' queries (one SQL
  text per report that DuckDB and Spark both run) and their engines.
"""

from beancount_credits.columnar.datasets import COLUMNS, PARTITIONED, month_of
from beancount_credits.columnar.writer import (
    DUCKDB_TYPES,
    FORMAT,
    MANIFEST,
    PART_GLOB,
    ColumnarError,
    check_manifest,
    empty_select,
    export,
    read_manifest,
    stale,
)

__all__ = [
    "COLUMNS",
    "DUCKDB_TYPES",
    "FORMAT",
    "MANIFEST",
    "PARTITIONED",
    "PART_GLOB",
    "ColumnarError",
    "check_manifest",
    "empty_select",
    "export",
    "month_of",
    "read_manifest",
    "stale",
]
