"""Train the fare model, track it in MLflow and register it in Unity Catalog (job task ``train``)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline

from . import data, features
from .cli import add_input_arguments, job_run_id_arg, positive_int, start_task, task_parser
from .handoff import JOB_RUN_TAG
from .metrics import evaluate, predict_fares
from .registry import full_name
from .runtime import get_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

MODEL_ARTIFACT_NAME = "model"
_MIN_TRAINING_ROWS = 50
_PINNED_REQUIREMENTS = ("scikit-learn", "pandas", "numpy", "cloudpickle")


@dataclass(frozen=True)
class TrainingConfig:
    """Hyperparameters; logged as MLflow params."""

    max_iter: int = 200
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 0.0
    random_state: int = 42


def build_pipeline(config: TrainingConfig) -> Pipeline:
    """Raw trips in, fare out: feature derivation followed by gradient-boosted trees."""
    regressor = HistGradientBoostingRegressor(
        max_iter=config.max_iter,
        learning_rate=config.learning_rate,
        max_leaf_nodes=config.max_leaf_nodes,
        min_samples_leaf=config.min_samples_leaf,
        l2_regularization=config.l2_regularization,
        random_state=config.random_state,
    )
    return Pipeline([("features", features.TripFeatures()), ("regressor", regressor)])


def train_model(train_df: pd.DataFrame, config: TrainingConfig | None = None) -> Pipeline:
    """Fit the pipeline on clean trips (see :func:`features.clean_trips`)."""
    if len(train_df) < _MIN_TRAINING_ROWS:
        raise ValueError(f"Need at least {_MIN_TRAINING_ROWS} clean training rows, got {len(train_df)}")
    pipeline = build_pipeline(config or TrainingConfig())
    pipeline.fit(train_df.loc[:, list(features.INPUT_COLUMNS)], train_df[features.TARGET])
    return pipeline


def _pip_requirements() -> list[str]:
    requirements = []
    for distribution in _PINNED_REQUIREMENTS:
        try:
            requirements.append(f"{distribution}=={version(distribution)}")
        except PackageNotFoundError:
            requirements.append(distribution)
    return requirements


def log_and_register(
    model: Pipeline,
    train_df: pd.DataFrame,
    *,
    registered_model_name: str,
    metrics: dict[str, float],
    params: dict[str, object],
) -> str:
    """Log params, metrics and the model to the active MLflow run; return the new registered version.

    The package itself is logged as code (``code_paths``) because the pipeline's first step lives
    in it; the model then loads wherever MLflow does, not only where this wheel is installed.
    """
    sample = train_df.loc[:, list(features.INPUT_COLUMNS)].head(5)
    signature = infer_signature(sample, predict_fares(model, sample))
    mlflow.log_params(params)
    mlflow.log_metrics(metrics)
    info = mlflow.sklearn.log_model(
        model,
        name=MODEL_ARTIFACT_NAME,
        signature=signature,
        input_example=sample,
        registered_model_name=registered_model_name,
        code_paths=[str(Path(__file__).resolve().parent)],
        # The Databricks default; the pipeline holds a class of this package, which skops refuses.
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        pip_requirements=_pip_requirements(),
    )
    if info.registered_model_version is None:
        raise RuntimeError(f"MLflow did not register a version of {registered_model_name}")
    model_version = str(info.registered_model_version)
    logger.info("Registered %s version %s.", registered_model_name, model_version)
    return model_version


def load_training_sample(
    spark: SparkSession,
    input_table: str,
    *,
    row_limit: int = 0,
    max_rows: int = data.DEFAULT_MAX_TRAINING_ROWS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) in pandas, for scikit-learn on the driver: random, reproducible samples of the
    clean trips' two splits (data.sample), at most ``max_rows`` training rows and a quarter of that of
    holdout rows for the holdout metrics logged here. Validation scores the whole holdout on the
    executors (validate.py); both take the holdout from the same split."""
    train, holdout = data.split_train_holdout(
        data.read_trips(spark, input_table, row_limit=row_limit, require_target=True)
    )
    holdout_rows = max(1, max_rows // 4)
    train_rows = data.to_pandas_bounded(data.sample(train, max_rows), max_rows, "training sample")
    held_out = data.to_pandas_bounded(data.sample(holdout, holdout_rows), holdout_rows, "holdout sample")
    # The dtypes the model's signature records, timezone-naive: the pandas code's own typing.
    return features.prepare_inputs(train_rows), features.prepare_inputs(held_out)


def run_training(
    spark: SparkSession,
    *,
    model_name: str,
    input_table: str,
    row_limit: int,
    experiment_name: str,
    max_rows: int = data.DEFAULT_MAX_TRAINING_ROWS,
    config: TrainingConfig | None = None,
    job_run_id: str | None = None,
) -> str:
    """Sample, fit, evaluate on a holdout sample, log and register. Returns the model version.

    ``job_run_id`` tags the MLflow run, which is how the later tasks of the job find the version
    (handoff.py). The params say how many rows were used (``train_rows``, at most ``max_training_rows``).
    """
    config = config or TrainingConfig()
    train_df, holdout_df = load_training_sample(spark, input_table, row_limit=row_limit, max_rows=max_rows)
    if holdout_df.empty:
        raise ValueError(f"No holdout rows in {input_table} (row_limit={row_limit}); read more rows")
    logger.info(
        "Training on %d sampled rows (at most %d), holdout metrics on %d.",
        len(train_df),
        max_rows,
        len(holdout_df),
    )
    mlflow.set_experiment(experiment_name)
    tags = {JOB_RUN_TAG: job_run_id} if job_run_id else None
    with mlflow.start_run(run_name="train", tags=tags) as run:
        logger.info("MLflow run %s in experiment %s.", run.info.run_id, experiment_name)
        model = train_model(train_df, config)
        holdout_metrics = {f"holdout_{key}": value for key, value in evaluate(model, holdout_df).items()}
        train_metrics = {f"train_{key}": value for key, value in evaluate(model, train_df).items()}
        logger.info("Holdout metrics: %s", holdout_metrics)
        params = {
            **asdict(config),
            "input_table": input_table,
            "row_limit": row_limit,
            "max_training_rows": max_rows,
            "train_rows": len(train_df),
            "holdout_sample_rows": len(holdout_df),
            "sample_seed": data.SAMPLE_SEED,
        }
        return log_and_register(
            model,
            train_df,
            registered_model_name=model_name,
            metrics={**holdout_metrics, **train_metrics},
            params=params,
        )


def build_parser() -> argparse.ArgumentParser:
    parser = task_parser("train-model", __doc__)
    add_input_arguments(parser)
    parser.add_argument("--experiment_name", required=True, help="MLflow experiment path")
    parser.add_argument(
        "--max_training_rows",
        type=positive_int,
        default=data.DEFAULT_MAX_TRAINING_ROWS,
        help="Rows of the training split sampled to the driver to fit on (a random, reproducible sample)",
    )
    parser.add_argument(
        "--job_run_id", type=job_run_id_arg, help="Id of the job run: tags the MLflow run (handoff.py)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point ``train-model``; the MLflow run is tagged with ``--job_run_id`` for the next tasks."""
    args = start_task(build_parser(), argv)
    # This task logs explicitly; Databricks autologging would add a second, unregistered model.
    mlflow.sklearn.autolog(disable=True)
    model_version = run_training(
        get_spark(),
        model_name=full_name(args.catalog, args.schema, args.model_name),
        input_table=args.input_table,
        row_limit=args.row_limit,
        experiment_name=args.experiment_name,
        max_rows=args.max_training_rows,
        job_run_id=args.job_run_id,
    )
    logger.info("Job run %s registered version %s.", args.job_run_id or "(none)", model_version)


if __name__ == "__main__":
    main()
