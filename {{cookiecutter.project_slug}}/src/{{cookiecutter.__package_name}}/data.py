"""The tables: the trips the steps read, the predictions table, the train/holdout split and the samples.

Everything here is a Spark DataFrame, evaluated on the executors: reading, typing, the data-quality rules
(``features.quality_condition``, the same rules the pandas code applies), the split and the samples. Rows
reach the driver in one place, :func:`to_pandas_bounded`, which takes a limit and refuses more: the training
sample is its one caller. Batch inference and validation score on the executors, bringing back aggregates.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import features

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, DataFrame, SparkSession

logger = logging.getLogger(__name__)

DEFAULT_INPUT_TABLE = "samples.nyctaxi.trips"
# The predictions table: batch inference appends to it, monitoring reads it.
DEFAULT_OUTPUT_TABLE = "predictions"
PREDICTION_COLUMN = "prediction"
VERSION_COLUMN = "model_version"
TIMESTAMP_COLUMN = "scored_at"

HOLDOUT_FRACTION = 0.2
DEFAULT_MAX_TRAINING_ROWS = 500_000
"""How many rows training brings to the driver at most (the bundle variable training_max_rows)."""
SAMPLE_SEED = 42
_HASH_BUCKETS = 1_000_000
_TIMESTAMPS = (features.PICKUP_TIME, features.DROPOFF_TIME)


def read_trips(
    spark: SparkSession, table_name: str, *, row_limit: int = 0, require_target: bool
) -> DataFrame:
    """Typed trips of ``table_name`` that pass the data-quality rules, as a lazy DataFrame.

    The INPUT_COLUMNS, plus the target when the table has it (``require_target``: training and validation
    need it; scoring keeps it as a label when present). ``row_limit`` > 0 reads at most that many rows (the
    ``test`` target reads a small subset); 0 reads the whole table.
    """
    if row_limit < 0:
        raise ValueError(f"row_limit must be 0 (all rows) or positive, got {row_limit}")
    frame = spark.read.table(table_name)
    if row_limit:
        frame = frame.limit(row_limit)
    typed = typed_trips(frame, require_target=require_target)
    logger.info("Reading %s (row_limit=%d) on the executors.", table_name, row_limit)
    return quality_filter(typed, require_target=require_target)


def typed_trips(frame: DataFrame, *, require_target: bool) -> DataFrame:
    """The columns the model takes, with the types ``features.prepare_inputs`` gives them in pandas."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's convention

    missing = [name for name in features.INPUT_COLUMNS if name not in frame.columns]
    if require_target and features.TARGET not in frame.columns:
        missing.append(features.TARGET)
    if missing:
        raise ValueError(f"Missing input columns {missing}; expected {list(features.SOURCE_COLUMNS)}")
    names = [*features.INPUT_COLUMNS, *([features.TARGET] if features.TARGET in frame.columns else [])]
    return frame.select(
        *(
            F.col(name).try_cast("timestamp" if name in _TIMESTAMPS else "double").alias(name)
            for name in names
        )
    )


def quality_filter(
    frame: DataFrame, rules: features.QualityRules | None = None, *, require_target: bool
) -> DataFrame:
    """The rows of a typed frame that pass the data-quality rules: ``features.quality_condition`` in Spark."""
    from pyspark.sql import functions as F  # noqa: N812

    minutes = (
        F.unix_micros(F.col(features.DROPOFF_TIME)) - F.unix_micros(F.col(features.PICKUP_TIME))
    ) / 60_000_000.0
    fare = F.col(features.TARGET) if require_target else None
    condition = features.quality_condition(
        F.col(features.DISTANCE),
        minutes,
        fare,
        rules or features.QualityRules(),
        require_target=require_target,
    )
    return frame.where(condition)


def _key_hash(frame: DataFrame, key_columns: tuple[str, ...], salt: str) -> Column:
    """A bucket in [0, _HASH_BUCKETS) from the key columns' values: the same row, the same bucket, whatever
    else is read with it, however the table is partitioned. Timestamps hash as microseconds, numbers as
    doubles (an int and a float key of equal value agree)."""
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql.types import NumericType, TimestampNTZType, TimestampType

    types = {field.name: field.dataType for field in frame.schema.fields}
    missing = [name for name in key_columns if name not in types]
    if missing:
        raise KeyError(f"Key columns missing from the frame: {missing}")

    def canonical(name: str) -> Column:
        if isinstance(types[name], TimestampType | TimestampNTZType):
            return F.unix_micros(F.col(name).cast("timestamp"))
        if isinstance(types[name], NumericType):
            return F.col(name).cast("double")
        return F.col(name).cast("string")

    return F.pmod(F.xxhash64(F.lit(salt), *(canonical(name) for name in key_columns)), F.lit(_HASH_BUCKETS))


def split_train_holdout(
    frame: DataFrame,
    key_columns: tuple[str, ...] = features.SPLIT_KEY_COLUMNS,
    fraction: float = HOLDOUT_FRACTION,
) -> tuple[DataFrame, DataFrame]:
    """Deterministic (train, holdout) split, decided per row by a hash of its key columns.

    A row lands in the same split whatever else was read with it, so the training task and the validation
    task (which reads the table again, maybe another subset) agree on the holdout, at any size.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    in_holdout = _key_hash(frame, key_columns, "holdout") < round(fraction * _HASH_BUCKETS)
    return frame.where(~in_holdout), frame.where(in_holdout)


def sample(
    frame: DataFrame,
    max_rows: int,
    *,
    seed: int = SAMPLE_SEED,
    key_columns: tuple[str, ...] = features.SPLIT_KEY_COLUMNS,
) -> DataFrame:
    """A random, reproducible sample of at most ``max_rows`` rows: every row is kept with the same
    probability, decided by a seeded hash of its keys (not ``limit``, which takes whichever rows Spark finds
    first, nor ``DataFrame.sample``, whose rows change with the table's partitioning). Costs one count."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    total = frame.count()
    if total <= max_rows:
        return frame
    keep = _key_hash(frame, key_columns, f"sample-{seed}") < round(max_rows / total * _HASH_BUCKETS)
    return frame.where(keep).limit(max_rows)


def to_pandas_bounded(frame: DataFrame, max_rows: int, what: str) -> pd.DataFrame:
    """The rows of a frame expected to be at most ``max_rows``, in pandas; more is an error, not a bigger
    collect. The one place in the jobs that brings rows of a table to the driver."""
    result: pd.DataFrame = frame.limit(max_rows + 1).toPandas()
    if len(result) > max_rows:
        raise RuntimeError(f"{what}: expected at most {max_rows} rows on the driver, the query returned more")
    logger.info("%s: %d rows on the driver (at most %d).", what, len(result), max_rows)
    return result
