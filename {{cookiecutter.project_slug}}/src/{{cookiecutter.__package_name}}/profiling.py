"""Databricks data quality monitoring (data profiling) of the predictions table: what the monitor computes,
where its metrics land, and the verdict table.

``monitor_refresh.py`` (task ``refresh``) keeps an *inference log* monitor on the predictions table that batch
inference appends to; ``monitoring.py`` (task ``verdict``) judges the champion from the monitor's two metric
tables, which Databricks writes next to the monitored table (the same catalog and schema: this environment's):
``<table>_profile_metrics`` and ``<table>_drift_metrics``. Their columns are Databricks' documented schema,
"Data profiling metric tables", section "Column schemas for generated tables" (``DOCS`` below).

The rows the verdict reads:
- profile metrics, whole table: ``column_name = ':table'`` (model quality: ``mean_average_error``,
  ``root_mean_squared_error``), ``slice_key IS NULL`` (no slice), ``log_type = 'INPUT'`` (the monitored
  table, not a baseline), one model id (the column named like the monitor's model id column,
  ``model_version`` here; ``*`` is all models together), one ``granularity``, one ``window`` (a struct of
  ``start`` and ``end``);
- profile metrics of one column (``column_name = 'prediction'``: ``avg``; the label: ``count``,
  ``num_nulls``);
- drift metrics, ``drift_type = 'CONSECUTIVE'``: a window against the one before it (``window_cmp``), e.g.
  ``avg_delta``, ``population_stability_index``, ``js_distance`` of the prediction column.

Everything read here is filtered and aggregated in Spark; at most a handful of rows reach the driver
(:func:`bounded_rows`), whatever the size of the predictions table.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import features
from .cli import job_run_id_arg
from .data import DEFAULT_OUTPUT_TABLE, VERSION_COLUMN

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row, SparkSession

DOCS = (
    "https://docs.databricks.com/aws/en/data-governance/unity-catalog/data-quality-monitoring/data-profiling/"
    "monitor-output"
)

# --- What the monitor is told about the predictions table ---------------------------------------------------

LABEL_COLUMN = features.TARGET
MODEL_ID_COLUMN = VERSION_COLUMN
GRANULARITIES: tuple[str, ...] = ("1 day", "1 week")
"""The monitor's windows: a day (one batch of the daily batch inference each), a week (the trend)."""
# Model quality for trips to and from the airports, whose fares follow rules of their own (flat fares,
# surcharges), next to the whole table: one slice expression, so each of its two values gets its own rows.
_AIRPORTS = ", ".join(str(zip_code) for zip_code in sorted(features.AIRPORT_ZIPS))
SLICING_EXPRS: tuple[str, ...] = (
    f"{features.PICKUP_ZIP} IN ({_AIRPORTS}) OR {features.DROPOFF_ZIP} IN ({_AIRPORTS})",
)

# --- The metric tables --------------------------------------------------------------------------------------

TABLE_LEVEL = ":table"
INPUT_LOG = "INPUT"
CONSECUTIVE = "CONSECUTIVE"
MAE_COLUMN = "mean_average_error"  # Databricks' name for the mean absolute error (see DOCS)
RMSE_COLUMN = "root_mean_squared_error"
# The documented spelling of a window length is "1 day"; a monitor made through the data-quality API may
# record the API's name for it instead. Either is the same window.
_GRANULARITY_SPELLINGS = {
    "1 day": "AGGREGATION_GRANULARITY_1_DAY",
    "1 week": "AGGREGATION_GRANULARITY_1_WEEK",
}


def metric_tables(table_name: str) -> tuple[str, str]:
    """(profile metrics, drift metrics) of a monitored ``catalog.schema.table``: in the same schema."""
    return f"{table_name}_profile_metrics", f"{table_name}_drift_metrics"


def granularity_spellings(granularity: str) -> list[str]:
    if granularity not in _GRANULARITY_SPELLINGS:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    return [granularity, _GRANULARITY_SPELLINGS[granularity]]


def bounded_rows(frame: DataFrame, limit: int) -> list[Row]:
    """The rows of a frame expected to be small (one per window or per column), collected; more than ``limit``
    is an error, not a bigger collect. The only place in monitoring that brings rows to the driver."""
    rows = frame.limit(limit + 1).collect()
    if len(rows) > limit:
        raise RuntimeError(f"Expected at most {limit} rows, the query returned more: {frame}")
    return rows


def first_row(frame: DataFrame) -> Row | None:
    """The first row of an ordered frame, or None."""
    rows = bounded_rows(frame.limit(1), 1)
    return rows[0] if rows else None


def table_exists(spark: SparkSession, table_name: str) -> bool:
    return bool(spark.catalog.tableExists(table_name))


# --- The verdict table: one row per verdict, the hand-over from the verdict task to the retraining gate -----

DEFAULT_VERDICT_TABLE = "monitoring_verdicts"
VERDICT_SCHEMA = (
    "job_run_id STRING, checked_at TIMESTAMP, model_name STRING, model_version STRING, status STRING, "
    "retrain BOOLEAN, failures ARRAY<STRING>, report STRING"
)


@dataclass(frozen=True)
class VerdictRecord:
    job_run_id: str
    checked_at: datetime
    model_name: str
    model_version: str | None
    status: str
    retrain: bool
    failures: tuple[str, ...]
    report: Mapping[str, Any]


def add_table_arguments(parser: argparse.ArgumentParser, *, job_run_help: str) -> None:
    """``--predictions_table``, ``--verdict_table``, ``--job_run_id``: the tables and run of monitoring."""
    parser.add_argument(
        "--predictions_table",
        default=DEFAULT_OUTPUT_TABLE,
        help="Table name in --catalog.--schema, or a fully qualified catalog.schema.table",
    )
    parser.add_argument(
        "--verdict_table",
        default=DEFAULT_VERDICT_TABLE,
        help="Where the verdicts are recorded (a bare name lives in --catalog.--schema)",
    )
    parser.add_argument("--job_run_id", type=job_run_id_arg, required=True, help=job_run_help)


def write_verdict(spark: SparkSession, table_name: str, record: VerdictRecord) -> None:
    """Append one verdict (the table is created by the first one), in one Delta transaction."""
    row = (
        record.job_run_id,
        record.checked_at,
        record.model_name,
        record.model_version,
        record.status,
        record.retrain,
        list(record.failures),
        json.dumps(record.report),
    )
    spark.createDataFrame([row], schema=VERDICT_SCHEMA).write.mode("append").saveAsTable(table_name)


def read_verdict(spark: SparkSession, table_name: str, job_run_id: str) -> VerdictRecord | None:
    """The verdict a job run recorded (its last, after a repair), or None."""
    from pyspark.sql import functions as sf

    if not table_exists(spark, table_name):
        return None
    frame = spark.read.table(table_name).where(sf.col("job_run_id") == job_run_id)
    row = first_row(frame.orderBy(sf.col("checked_at").desc()))
    if row is None:
        return None
    return VerdictRecord(
        job_run_id=row["job_run_id"],
        checked_at=row["checked_at"],
        model_name=row["model_name"],
        model_version=row["model_version"],
        status=row["status"],
        retrain=bool(row["retrain"]),
        failures=tuple(row["failures"] or ()),
        report=json.loads(row["report"] or "{}"),
    )
