"""Whole-history analytics: the ledger as Parquet, and reports over it on DuckDB or Spark.

- :mod:`.writer`: ``bean-credits export parquet`` (datasets, manifest, period by period);
- :mod:`.periods`: the closed and active periods, each loaded and exported alone;
- :mod:`.sql`, :mod:`.reports`, :mod:`.spark`: the reports' queries (one SQL
  text per report that DuckDB and Spark both run) and their engines.
"""

from beancount_credits.columnar.writer import (
    COLUMNS,
    DUCKDB_TYPES,
    FORMAT,
    MANIFEST,
    PART_GLOB,
    PARTITIONED,
    ColumnarError,
    check_manifest,
    empty_select,
    export,
    month_of,
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
