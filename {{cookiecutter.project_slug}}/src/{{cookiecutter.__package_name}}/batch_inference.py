"""Score a table of trips with the ``champion`` model (job ``batch_inference``, task ``score``).

The champion alias is resolved to a version once, and that exact version is loaded, so the
``model_version`` column always names the model that made the predictions even if the alias moves
during the run. Rows that fail the data-quality rules are not scored. Predictions are appended
to the output table with ``model_version`` and ``scored_at`` (UTC) columns: one batch per run, so
the table is a log of what each model version predicted and when.

Scoring runs on Spark's executors: the data-quality rules are a Spark filter, the model a Spark UDF
(``mlflow.pyfunc.spark_udf``: loaded once per Python worker, fed Arrow batches), the append one Spark
write. Nothing proportional to the table reaches the driver, so the table's size is limited by the
cluster, not by the driver's memory (README, "Scale").

The append is one Delta transaction and the task's last step: a run that fails before it writes
nothing, which is what makes the job's retry safe (resources/batch-inference.job.yml).

Before the first deployment (no ``champion`` yet: a new environment, a deploy-models prod before its
first promotion) the task scores nothing, logs ``NO_CHAMPION`` and succeeds: the expected first days
are not an alarm. A champion that cannot be loaded or scored fails the task.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import mlflow

from . import data
from .cli import add_input_arguments, start_task, task_parser
from .data import DEFAULT_OUTPUT_TABLE, PREDICTION_COLUMN, TIMESTAMP_COLUMN, VERSION_COLUMN
from .registry import (
    CHAMPION,
    AliasReader,
    PredictUdf,
    UdfFactory,
    full_name,
    get_alias_version,
    model_udf,
    model_uri,
    predicted,
    qualify_table,
)
from .runtime import get_spark

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

NO_CHAMPION = "NO_CHAMPION"


def score(
    trips: DataFrame, predict: PredictUdf, *, model_version: str, scored_at: datetime | None = None
) -> DataFrame:
    """Clean trips with a ``prediction``, the ``model_version`` and a ``scored_at`` timestamp (lazy)."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's convention

    return trips.select(
        "*",
        predicted(predict).alias(PREDICTION_COLUMN),
        F.lit(int(model_version)).alias(VERSION_COLUMN),
        F.lit(scored_at or datetime.now(UTC)).cast("timestamp").alias(TIMESTAMP_COLUMN),
    )


def write_predictions(predictions: DataFrame, table_name: str) -> None:
    """Append to a Delta table (created on the first run) in one transaction: all rows or none."""
    predictions.write.mode("append").option("mergeSchema", "true").saveAsTable(table_name)
    logger.info("Appended the batch to %s.", table_name)


def run_batch_inference(
    spark: SparkSession,
    client: AliasReader,
    *,
    model_name: str,
    input_table: str,
    row_limit: int,
    output_table: str,
    make_udf: UdfFactory = model_udf,
    scored_at: datetime | None = None,
) -> dict[str, Any]:
    """Resolve the champion, score the input table on the executors and append the batch.

    Returns what the run did: ``status`` (``SCORED`` or ``NO_CHAMPION``), ``model_version``, ``scored_at``.
    """
    version = get_alias_version(client, model_name, CHAMPION)
    if version is None:
        logger.warning(
            "%s: %s has no '%s' alias yet, so nothing was scored. Expected until the first deployment "
            "(training, or the first promotion to this environment); the next run scores with it.",
            NO_CHAMPION,
            model_name,
            CHAMPION,
        )
        return {"status": NO_CHAMPION, "model_version": None, "scored_at": None}
    logger.info("Scoring %s with %s version %s (%s).", input_table, model_name, version, CHAMPION)
    predict = make_udf(spark, model_uri(model_name, version))  # a broken champion fails here
    trips = data.read_trips(spark, input_table, row_limit=row_limit, require_target=False)
    if trips.isEmpty():
        raise ValueError(
            f"None of the rows of {input_table} (row_limit={row_limit}) passes the data-quality rules"
        )
    when = scored_at or datetime.now(UTC)
    write_predictions(score(trips, predict, model_version=version, scored_at=when), output_table)
    return {"status": "SCORED", "model_version": version, "scored_at": when}


def build_parser() -> argparse.ArgumentParser:
    parser = task_parser("score-batch", __doc__.splitlines()[0])
    add_input_arguments(parser)
    parser.add_argument(
        "--output_table",
        default=DEFAULT_OUTPUT_TABLE,
        help="Table name in --catalog.--schema, or a fully qualified catalog.schema.table",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point ``score-batch``."""
    args = start_task(build_parser(), argv)
    run_batch_inference(
        get_spark(),
        mlflow.MlflowClient(),
        model_name=full_name(args.catalog, args.schema, args.model_name),
        input_table=args.input_table,
        row_limit=args.row_limit,
        output_table=qualify_table(args.output_table, args.catalog, args.schema),
    )


if __name__ == "__main__":
    main()
