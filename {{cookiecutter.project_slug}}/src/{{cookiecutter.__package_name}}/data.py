"""The tables: the trips the steps read, the predictions table, and the deterministic train/holdout split."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from . import features

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

DEFAULT_INPUT_TABLE = "samples.nyctaxi.trips"
# The predictions table: batch inference appends to it, monitoring reads it.
DEFAULT_OUTPUT_TABLE = "predictions"
PREDICTION_COLUMN = "prediction"
VERSION_COLUMN = "model_version"
TIMESTAMP_COLUMN = "scored_at"

HOLDOUT_FRACTION = 0.2
_HASH_BUCKETS = 10_000


def load_table(
    spark: SparkSession,
    table_name: str,
    *,
    columns: Sequence[str] | None = None,
    row_limit: int = 0,
) -> pd.DataFrame:
    """Read a table through Spark into pandas.

    ``row_limit`` > 0 reads at most that many rows (CI and the ``test`` target use a small subset);
    0 reads the whole table. The data is collected to the driver, so keep tables driver-sized.
    """
    if row_limit < 0:
        raise ValueError(f"row_limit must be 0 (all rows) or positive, got {row_limit}")
    frame = spark.read.table(table_name)
    if columns:
        frame = frame.select(*columns)
    if row_limit:
        frame = frame.limit(row_limit)
    result = frame.toPandas()
    logger.info("Read %d rows from %s (row_limit=%d).", len(result), table_name, row_limit)
    return result


def _canonical_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """Key columns in a form whose hash does not depend on dtype details (datetime unit, int vs float)."""
    canonical = {}
    for name, column in frame.items():
        if pd.api.types.is_datetime64_any_dtype(column):
            seconds = (column - pd.Timestamp(0, tz=column.dt.tz)) // pd.Timedelta(seconds=1)
            canonical[name] = seconds.astype("float64")
        elif pd.api.types.is_numeric_dtype(column):
            canonical[name] = column.astype("float64")
        else:
            canonical[name] = column.astype("string")
    return pd.DataFrame(canonical, index=frame.index)


def holdout_mask(
    frame: pd.DataFrame, key_columns: Sequence[str], fraction: float = HOLDOUT_FRACTION
) -> pd.Series:
    """Boolean mask of the holdout rows, decided by a hash of each row's key columns.

    A row lands in the same split whatever else was read with it, so the training task and the
    validation task (which reads the table again, maybe another subset) agree on the holdout.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    missing = [name for name in key_columns if name not in frame.columns]
    if missing:
        raise KeyError(f"Key columns missing from the frame: {missing}")
    hashes = pd.util.hash_pandas_object(_canonical_keys(frame[list(key_columns)]), index=False)
    return (hashes % _HASH_BUCKETS) < round(fraction * _HASH_BUCKETS)


def split_train_holdout(
    frame: pd.DataFrame, key_columns: Sequence[str], fraction: float = HOLDOUT_FRACTION
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic (train, holdout) split; see :func:`holdout_mask`."""
    mask = holdout_mask(frame, key_columns, fraction)
    train = frame.loc[~mask].reset_index(drop=True)
    holdout = frame.loc[mask].reset_index(drop=True)
    logger.info("Split %d rows into %d train and %d holdout rows.", len(frame), len(train), len(holdout))
    return train, holdout


def load_training_data(
    spark: SparkSession, input_table: str, row_limit: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean (train, holdout) frames; training and validation both read them, so both see the same holdout."""
    raw = load_table(spark, input_table, columns=features.SOURCE_COLUMNS, row_limit=row_limit)
    clean = features.clean_trips(raw, require_target=True)
    return split_train_holdout(clean, features.SPLIT_KEY_COLUMNS)
