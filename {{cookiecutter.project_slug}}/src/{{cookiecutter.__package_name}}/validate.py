"""Gate a registered model version before deployment (job task ``validate``).

The candidate is scored on the whole holdout split of the input table, on Spark's executors (the model as a
Spark UDF, the metrics as one aggregate: nothing of the holdout reaches the driver), and must
1. meet absolute thresholds (``--max_rmse``, ``--min_r2``), and
2. be no worse than the current ``champion`` on the same rows, within ``--max_regression``
   (relative RMSE increase; 0.05 = at most 5 % worse).
On success the version gets the ``challenger`` alias; on failure the task fails and no alias moves.
Either way the version is tagged with the outcome and the metrics.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import mlflow

from . import data, features
from .cli import add_input_arguments, add_version_arguments, start_task, task_parser
from .handoff import resolve_version
from .metrics import spark_metrics
from .registry import (
    CHALLENGER,
    CHAMPION,
    METRIC_TAG_PREFIX,
    STATUS_TAG,
    AliasReader,
    UdfFactory,
    full_name,
    get_alias_version,
    model_udf,
    model_uri,
    predicted,
)
from .runtime import get_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)


class ValidationClient(AliasReader, Protocol):
    """The part of ``mlflow.MlflowClient`` that validation uses."""

    def get_model_version(self, name: str, version: str) -> Any: ...

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None: ...

    def set_model_version_tag(self, name: str, version: str, key: str, value: Any) -> None: ...


Evaluator = Callable[[str], dict[str, float]]
"""A model URI's metrics on the holdout (:func:`holdout_evaluator` in the job, a stand-in in the tests)."""


class ModelValidationError(RuntimeError):
    """The candidate failed validation; raised so the job task fails."""


@dataclass(frozen=True)
class ValidationThresholds:
    """The gates a candidate version must pass (monitoring's limits are MonitoringThresholds)."""

    max_rmse: float = 10.0
    min_r2: float = 0.5
    max_regression: float = 0.05

    def __post_init__(self) -> None:
        if self.max_rmse <= 0:
            raise ValueError(f"max_rmse must be positive, got {self.max_rmse}")
        if self.max_regression < 0:
            raise ValueError(f"max_regression must not be negative, got {self.max_regression}")


@dataclass
class ValidationReport:
    model_name: str
    candidate_version: str
    candidate_metrics: dict[str, float]
    champion_version: str | None = None
    champion_metrics: dict[str, float] | None = None
    failures: list[str] = field(default_factory=list)
    evaluated_on: str | None = None
    """Which rows the metrics come from, as the version's ``validation_evaluated_on`` tag says."""

    @property
    def passed(self) -> bool:
        return not self.failures


def check_thresholds(metrics: dict[str, float], thresholds: ValidationThresholds) -> list[str]:
    """Failure messages for the absolute thresholds (empty when they pass)."""
    failures = []
    if not metrics["rmse"] <= thresholds.max_rmse:
        failures.append(f"RMSE {metrics['rmse']:.4f} is above the maximum {thresholds.max_rmse}")
    if not metrics["r2"] >= thresholds.min_r2:
        failures.append(f"R2 {metrics['r2']:.4f} is below the minimum {thresholds.min_r2}")
    return failures


def check_against_champion(
    candidate: dict[str, float], champion: dict[str, float], max_regression: float
) -> list[str]:
    """Failure messages when the candidate's RMSE exceeds the champion's by more than the tolerance."""
    allowed = champion["rmse"] * (1.0 + max_regression)
    if math.isnan(candidate["rmse"]) or candidate["rmse"] > allowed:
        return [
            f"RMSE {candidate['rmse']:.4f} is worse than the champion's {champion['rmse']:.4f} "
            f"by more than {max_regression:.1%} (allowed up to {allowed:.4f})"
        ]
    return []


def validate_version(
    client: ValidationClient,
    *,
    model_name: str,
    candidate_version: str,
    evaluate: Evaluator,
    thresholds: ValidationThresholds,
) -> ValidationReport:
    """Evaluate the candidate (and the champion, if another version holds it) on the same holdout."""
    client.get_model_version(model_name, candidate_version)  # fails early with a clear error if absent
    candidate_metrics = evaluate(model_uri(model_name, candidate_version))
    report = ValidationReport(model_name, candidate_version, candidate_metrics)
    report.failures += check_thresholds(candidate_metrics, thresholds)

    champion_version = get_alias_version(client, model_name, CHAMPION)
    if champion_version is None:
        logger.info("%s has no %s yet; only the thresholds apply.", model_name, CHAMPION)
    elif champion_version == candidate_version:
        logger.info("Version %s already is the %s; nothing to compare.", candidate_version, CHAMPION)
    else:
        report.champion_version = champion_version
        report.champion_metrics = evaluate(model_uri(model_name, champion_version))
        report.failures += check_against_champion(
            candidate_metrics, report.champion_metrics, thresholds.max_regression
        )
    logger.info(
        "Candidate %s: %s; champion %s: %s.",
        candidate_version,
        candidate_metrics,
        champion_version,
        report.champion_metrics,
    )
    return report


def record_outcome(client: ValidationClient, report: ValidationReport) -> None:
    """Tag the candidate with the outcome; alias it ``challenger`` when it passed."""
    name, candidate = report.model_name, report.candidate_version
    client.set_model_version_tag(name, candidate, STATUS_TAG, "PASSED" if report.passed else "FAILED")
    for key, value in report.candidate_metrics.items():
        client.set_model_version_tag(name, candidate, f"{METRIC_TAG_PREFIX}{key}", f"{value:.6g}")
    if report.evaluated_on:
        client.set_model_version_tag(name, candidate, f"{METRIC_TAG_PREFIX}evaluated_on", report.evaluated_on)
    if report.passed:
        client.set_registered_model_alias(name, CHALLENGER, candidate)
        logger.info("Version %s of %s passed validation and is now the %s.", candidate, name, CHALLENGER)


def holdout_evaluator(
    spark: SparkSession, input_table: str, *, row_limit: int = 0, make_udf: UdfFactory = model_udf
) -> Evaluator:
    """Metrics of a model on the holdout split of ``input_table`` (the split training held out), computed on
    the executors: the model as a Spark UDF, the metrics as one aggregate (``metrics.spark_metrics``)."""
    _, holdout = data.split_train_holdout(
        data.read_trips(spark, input_table, row_limit=row_limit, require_target=True)
    )
    if holdout.isEmpty():
        raise ValueError(
            f"The holdout split of {input_table} is empty (row_limit={row_limit}); read more rows"
        )

    def evaluate(uri: str) -> dict[str, float]:
        scored = holdout.select(features.TARGET, predicted(make_udf(spark, uri)).alias("predicted"))
        return spark_metrics(scored, features.TARGET, "predicted")

    return evaluate


def run_validation(
    spark: SparkSession,
    client: ValidationClient,
    *,
    model_name: str,
    model_version: str,
    input_table: str,
    row_limit: int,
    thresholds: ValidationThresholds,
    evaluate: Evaluator | None = None,
) -> ValidationReport:
    """Validate, record the outcome, and raise ModelValidationError when the candidate failed."""
    report = validate_version(
        client,
        model_name=model_name,
        candidate_version=model_version,
        evaluate=evaluate or holdout_evaluator(spark, input_table, row_limit=row_limit),
        thresholds=thresholds,
    )
    if evaluate is None:
        limit = f"the first {row_limit} rows" if row_limit else "every row"
        report.evaluated_on = f"the whole holdout split of {input_table} ({limit}), on the executors"
    record_outcome(client, report)
    if not report.passed:
        raise ModelValidationError(
            f"Version {model_version} of {model_name} failed validation: " + "; ".join(report.failures)
        )
    return report


def build_parser() -> argparse.ArgumentParser:
    defaults = ValidationThresholds()
    parser = task_parser("validate-model", __doc__.splitlines()[0])
    add_version_arguments(parser)
    add_input_arguments(parser)
    parser.add_argument("--max_rmse", type=float, default=defaults.max_rmse, help="Highest holdout RMSE")
    parser.add_argument("--min_r2", type=float, default=defaults.min_r2, help="Lowest holdout R2")
    parser.add_argument(
        "--max_regression",
        type=float,
        default=defaults.max_regression,
        help="Allowed relative RMSE increase over the champion (0.05 = 5 %%)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point ``validate-model``."""
    args = start_task(build_parser(), argv)
    client = mlflow.MlflowClient()
    model_name = full_name(args.catalog, args.schema, args.model_name)
    run_validation(
        get_spark(),
        client,
        model_name=model_name,
        model_version=resolve_version(client, args, model_name),
        input_table=args.input_table,
        row_limit=args.row_limit,
        thresholds=ValidationThresholds(args.max_rmse, args.min_r2, args.max_regression),
    )


if __name__ == "__main__":
    main()
