"""Score a table of trips with the ``champion`` model (job ``batch_inference``, task ``score``).

The champion alias is resolved to a version once, and that exact version is loaded, so the
``model_version`` column always names the model that made the predictions even if the alias moves
during the run. Rows that fail the data-quality rules are not scored. Predictions are appended
to the output table with ``model_version`` and ``scored_at`` (UTC) columns: one batch per run, so
the table is a log of what each model version predicted and when.

The append is one Delta transaction and the task's last step: a run that fails before it writes
nothing, which is what makes the job's retry safe (resources/batch-inference.job.yml).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import mlflow
import mlflow.pyfunc
import pandas as pd

from . import data, features
from .cli import add_input_arguments, start_task, task_parser
from .data import DEFAULT_OUTPUT_TABLE, PREDICTION_COLUMN, TIMESTAMP_COLUMN, VERSION_COLUMN
from .metrics import Predictor, predict_fares
from .registry import (
    CHAMPION,
    AliasReader,
    ModelLoader,
    full_name,
    model_uri,
    qualify_table,
    resolve_champion,
)
from .runtime import get_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)


def score(
    model: Predictor, trips: pd.DataFrame, *, model_version: str, scored_at: datetime | None = None
) -> pd.DataFrame:
    """Clean trips with a ``prediction``, the ``model_version`` and a ``scored_at`` timestamp."""
    clean = features.clean_trips(trips, require_target=False)
    if clean.empty:
        raise ValueError(f"None of the {len(trips)} input rows passes the data-quality rules")
    scored = clean.copy()
    scored[PREDICTION_COLUMN] = predict_fares(model, clean)
    scored[VERSION_COLUMN] = int(model_version)
    scored[TIMESTAMP_COLUMN] = pd.Timestamp(scored_at or datetime.now(UTC))
    return scored


def write_predictions(spark: SparkSession, predictions: pd.DataFrame, table_name: str) -> None:
    """Append to a Delta table (created on the first run) in one transaction: all rows or none."""
    writer = spark.createDataFrame(predictions).write.mode("append").option("mergeSchema", "true")
    writer.saveAsTable(table_name)
    logger.info("Appended %d predictions to %s.", len(predictions), table_name)


def run_batch_inference(
    spark: SparkSession,
    client: AliasReader,
    *,
    model_name: str,
    input_table: str,
    row_limit: int,
    output_table: str,
    load_model: ModelLoader = mlflow.pyfunc.load_model,
) -> pd.DataFrame:
    """Load the champion, score the input table, write and return the predictions."""
    version = resolve_champion(client, model_name)
    logger.info("Scoring %s with %s version %s (%s).", input_table, model_name, version, CHAMPION)
    model = load_model(model_uri(model_name, version))
    trips = data.load_table(spark, input_table, row_limit=row_limit)
    predictions = score(model, trips, model_version=version)
    write_predictions(spark, predictions, output_table)
    return predictions


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
