"""The columnar export on Apache Spark: the reports' queries run by Spark SQL.

:class:`SparkSource` opens an export (a local folder, or a URI Spark's file
systems read: ``s3a://bucket/export``, ``hdfs://namenode/credits/export``)
and runs the queries of :mod:`.columnar_sql` on it, exactly as DuckDB does. It
reads the datasets with the export's own schema (no inference, so ``month``
stays the folder name's text and an empty dataset is an empty table) and
registers them as temporary views of a session of its own (two exports open at
once do not see each other's views).

The session is Spark's active one, or a new one (``appName`` bean-credits)
that takes its master and settings from ``spark-submit`` or
``spark-defaults.conf``; run alone, that is local mode on every core. Nothing
runs as Python on the executors (no Python data or functions are shipped to
them): they need Spark only, not this package.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from beancount_credits import columnar
from beancount_credits.columnar.reports import not_an_export, used
from beancount_credits.reports.table import ReportError

Row = tuple[Any, ...]
# Exact sums: without this a sum of two decimal(38, 9) is rounded to 8 places.
SESSION_CONF = {"spark.sql.decimalOperations.allowPrecisionLoss": "false"}


SPARK_TYPES = {
    "date": "DATE",
    "string": "STRING",
    "strings": "ARRAY<STRING>",
    "number": "DECIMAL(38,9)",
    "int8": "TINYINT",
    "int32": "INT",
    "int64": "BIGINT",
    "bool": "BOOLEAN",
}


def schema_ddl(name: str, partitioned: bool) -> str:
    """A dataset's schema as Spark DDL (``month``, from the folder name, for a partitioned one)."""
    columns = [f"`{column}` {SPARK_TYPES[kind]}" for column, kind in columnar.COLUMNS[name]]
    if partitioned:
        columns.append("`month` STRING")
    return ", ".join(columns)


def session() -> Any:
    """Spark's active session, or a new one configured by spark-submit / spark-defaults."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ReportError(
            "--engine spark needs pyspark (and Java 17 or later): "
            "pip install 'beancount-credits[spark]'"
        ) from None
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    try:
        spark = (
            SparkSession.builder.appName("bean-credits")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate()
        )
    except Exception as exc:  # pyspark's errors when Java is missing or fails to start
        raise ReportError(f"Spark did not start: {str(exc).splitlines()[0]}") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def location_uri(location: str | Path) -> str:
    """A URI for Spark: local folders as file:// (whatever the cluster's default file system)."""
    text = str(location)
    if "://" in text:
        return text.rstrip("/")
    return Path(text).resolve().as_uri()


class SparkSource:
    """An export opened with Spark: its datasets as temporary views of a session of its own."""

    def __init__(self, location: str | Path, spark: Any = None) -> None:
        from pyspark.errors import AnalysisException

        self.location = str(location)
        base = location_uri(location)
        self.spark = (spark or session()).newSession()
        for key, value in SESSION_CONF.items():
            self.spark.conf.set(key, value)
        try:
            text = self.spark.read.text(f"{base}/{columnar.MANIFEST}", wholetext=True).first()
            manifest = json.loads(text[0]) if text is not None else {}
        except (AnalysisException, ValueError):
            manifest = {}
        if not columnar.check_manifest(manifest):
            raise not_an_export(location)
        self.manifest: dict[str, Any] = manifest
        files = manifest.get("partitions", {})
        for name in columnar.PARTITIONED:
            if any(relative.startswith(f"{name}/") for relative in files):
                frame = self.spark.read.schema(schema_ddl(name, True)).parquet(f"{base}/{name}")
            else:  # an empty dataset: the schema alone
                frame = self.empty(name)
            frame.createOrReplaceTempView(name)
        users = self.spark.read.schema(schema_ddl("users", False))
        users.parquet(f"{base}/users/users.parquet").createOrReplaceTempView("users")

    def rows(self, query: str, params: dict[str, Any] | None = None) -> list[Row]:
        return [
            tuple(row) for row in self.spark.sql(query, args=used(query, params or {})).collect()
        ]

    def stream(self, query: str, params: dict[str, Any]) -> Iterator[Row]:
        for row in self.spark.sql(query, args=used(query, params)).toLocalIterator():
            yield tuple(row)

    def empty(self, name: str) -> Any:
        """A dataset with no rows, made in the JVM (no Python data shipped to executors)."""
        from pyspark.sql import functions

        columns = [
            functions.lit(None).cast(SPARK_TYPES[kind]).alias(column)
            for column, kind in columnar.COLUMNS[name]
        ]
        return self.spark.range(0).select(
            *columns, functions.lit(None).cast("STRING").alias("month")
        )

    def register_days(self, first: datetime.date, last: datetime.date) -> None:
        days = self.spark.sql(
            "SELECT explode(sequence(:first, :last, INTERVAL 1 DAY)) AS day",
            args={"first": first, "last": last},
        )
        days.createOrReplaceTempView("days")
