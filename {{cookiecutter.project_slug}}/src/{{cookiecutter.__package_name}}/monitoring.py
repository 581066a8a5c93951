"""Monitor the champion's recent predictions (job ``model_monitoring``, task ``monitor``).

Reads the predictions table that batch inference appends to (one batch per run, each row with its
``model_version`` and ``scored_at``) and looks at the rows of the current ``champion`` version in two
windows: the last ``--lookback_days`` ("recent") and the ``--lookback_days`` before them ("previous").
For the recent window it computes
- the number of rows scored (none is a failure: batch inference did not run, or scored nothing);
- MAE and RMSE against ``fare_amount``, on the rows whose fare passes the data-quality rules that training
  and validation apply (labels may be missing or arrive later: no labelled row means no error metrics,
  which is logged, not a failure);
- the shift of the mean prediction relative to the previous window, for the same version, so that it
  measures a change of the data, not of the model (no previous rows, e.g. in the first days of a new
  champion, means no shift to check).
The metrics are logged; a breached threshold (``--max_mae``, ``--max_mean_shift``) or an empty recent window
fails the task, which fails the job run and sends its failure notifications.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import mlflow
import pandas as pd

from . import features
from .cli import positive_int, start_task, task_parser
from .data import DEFAULT_OUTPUT_TABLE, PREDICTION_COLUMN, TIMESTAMP_COLUMN, VERSION_COLUMN
from .metrics import compute_metrics
from .registry import AliasReader, full_name, qualify_table, resolve_champion
from .runtime import get_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

DEFAULT_LOOKBACK_DAYS = 7
MONITORED_COLUMNS: tuple[str, ...] = (PREDICTION_COLUMN, VERSION_COLUMN, TIMESTAMP_COLUMN, features.TARGET)


class ModelMonitoringError(RuntimeError):
    """A monitoring check failed; raised so the job task fails."""


@dataclass(frozen=True)
class MonitoringThresholds:
    """The limits of a healthy recent window (validation's gates are ValidationThresholds)."""

    max_mae: float = 5.0
    """Highest mean absolute error, in the fare's currency, on the recent labelled rows."""
    max_mean_shift: float = 0.2
    """Highest relative change of the mean prediction versus the previous window (0.2 = 20 %)."""

    def __post_init__(self) -> None:
        if not self.max_mae > 0:
            raise ValueError(f"max_mae must be positive, got {self.max_mae}")
        if not self.max_mean_shift >= 0:
            raise ValueError(f"max_mean_shift must not be negative, got {self.max_mean_shift}")


@dataclass(frozen=True)
class WindowMetrics:
    rows: int
    labelled_rows: int = 0
    mean_prediction: float | None = None
    mae: float | None = None
    rmse: float | None = None


@dataclass
class MonitoringReport:
    model_name: str
    model_version: str
    since: str
    recent: WindowMetrics
    previous: WindowMetrics
    mean_shift: float | None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def utc_timestamps(values: pd.Series) -> pd.Series:
    """Timestamps as UTC-aware values; naive ones are taken as UTC (the session time zone on Databricks)."""
    times = pd.to_datetime(values)
    return times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")


def utc(moment: datetime) -> pd.Timestamp:
    """A point in time as a UTC-aware timestamp; a naive one is taken as UTC."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")


def split_windows(
    predictions: pd.DataFrame, *, now: datetime, lookback_days: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(recent, previous): rows scored in the ``lookback_days`` up to ``now``, and in as many days before."""
    if lookback_days < 1:
        raise ValueError(f"lookback_days must be at least 1, got {lookback_days}")
    end = utc(now)
    recent_start = end - pd.Timedelta(days=lookback_days)
    previous_start = recent_start - pd.Timedelta(days=lookback_days)
    times = utc_timestamps(predictions[TIMESTAMP_COLUMN])
    recent = predictions.loc[(times > recent_start) & (times <= end)]
    previous = predictions.loc[(times > previous_start) & (times <= recent_start)]
    return recent.reset_index(drop=True), previous.reset_index(drop=True)


def labelled_rows(frame: pd.DataFrame, rules: features.QualityRules | None = None) -> pd.DataFrame:
    """Rows with a usable label: a fare within the bounds training and validation accept."""
    if features.TARGET not in frame.columns:
        return frame.iloc[0:0]
    rules = rules or features.QualityRules()
    fares = pd.to_numeric(frame[features.TARGET], errors="coerce")
    return frame.loc[fares.between(rules.min_fare, rules.max_fare)]


def window_metrics(frame: pd.DataFrame) -> WindowMetrics:
    """Row count, mean prediction and, where labels exist, MAE and RMSE of one window."""
    if frame.empty:
        return WindowMetrics(rows=0)
    predictions = pd.to_numeric(frame[PREDICTION_COLUMN], errors="coerce")
    labelled = labelled_rows(frame)
    error_metrics = (
        compute_metrics(labelled[features.TARGET], labelled[PREDICTION_COLUMN]) if len(labelled) else {}
    )
    return WindowMetrics(
        rows=len(frame),
        labelled_rows=len(labelled),
        mean_prediction=float(predictions.mean()),
        mae=error_metrics.get("mae"),
        rmse=error_metrics.get("rmse"),
    )


def mean_shift(recent: WindowMetrics, previous: WindowMetrics) -> float | None:
    """|recent mean - previous mean| / |previous mean|; None without predictions in both windows."""
    if recent.mean_prediction is None or previous.mean_prediction is None:
        return None
    change = abs(recent.mean_prediction - previous.mean_prediction)
    baseline = abs(previous.mean_prediction)
    if baseline == 0:
        return 0.0 if change == 0 else math.inf
    return change / baseline


def check_thresholds(
    report: MonitoringReport, thresholds: MonitoringThresholds, lookback_days: int
) -> list[str]:
    """Failure messages (empty when the window is healthy)."""
    recent = report.recent
    if recent.rows == 0:
        return [
            f"No predictions of version {report.model_version} in the last {lookback_days} days "
            f"(since {report.since}): did batch inference run?"
        ]
    failures = []
    if recent.mae is not None and not recent.mae <= thresholds.max_mae:
        failures.append(
            f"MAE {recent.mae:.4f} on {recent.labelled_rows} labelled rows "
            f"is above the maximum {thresholds.max_mae}"
        )
    if report.mean_shift is not None and not report.mean_shift <= thresholds.max_mean_shift:
        failures.append(
            f"The mean prediction moved by {report.mean_shift:.1%} ({report.previous.mean_prediction:.4f} -> "
            f"{recent.mean_prediction:.4f}), more than the maximum {thresholds.max_mean_shift:.1%}"
        )
    return failures


def monitor_predictions(
    predictions: pd.DataFrame,
    *,
    model_name: str,
    model_version: str,
    now: datetime,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    thresholds: MonitoringThresholds | None = None,
) -> MonitoringReport:
    """The report for one version's rows of ``predictions`` (other versions' rows are ignored)."""
    versions = pd.to_numeric(predictions[VERSION_COLUMN], errors="coerce")
    own = predictions.loc[versions == int(model_version)]
    recent, previous = split_windows(own, now=now, lookback_days=lookback_days)
    recent_metrics, previous_metrics = window_metrics(recent), window_metrics(previous)
    since = (utc(now) - pd.Timedelta(days=lookback_days)).isoformat()
    report = MonitoringReport(
        model_name=model_name,
        model_version=str(model_version),
        since=since,
        recent=recent_metrics,
        previous=previous_metrics,
        mean_shift=mean_shift(recent_metrics, previous_metrics),
    )
    report.failures = check_thresholds(report, thresholds or MonitoringThresholds(), lookback_days)
    return report


def load_predictions(
    spark: SparkSession, table_name: str, *, model_version: str, since: datetime
) -> pd.DataFrame:
    """The version's rows scored after ``since``, filtered in Spark: older rows never reach the driver."""
    frame = spark.read.table(table_name)
    recent_rows = (frame[VERSION_COLUMN] == int(model_version)) & (frame[TIMESTAMP_COLUMN] > since)
    columns = [name for name in MONITORED_COLUMNS if name in frame.columns]
    result = frame.where(recent_rows).select(*columns).toPandas()
    logger.info("Read %d rows of version %s since %s from %s.", len(result), model_version, since, table_name)
    return result


def log_report(report: MonitoringReport) -> None:
    recent, previous = report.recent, report.previous
    logger.info(
        "%s version %s since %s: %d rows (%d labelled), MAE %s, RMSE %s, mean prediction %s "
        "(previous window: %d rows, mean %s, shift %s).",
        report.model_name,
        report.model_version,
        report.since,
        recent.rows,
        recent.labelled_rows,
        _format(recent.mae),
        _format(recent.rmse),
        _format(recent.mean_prediction),
        previous.rows,
        _format(previous.mean_prediction),
        "n/a" if report.mean_shift is None else f"{report.mean_shift:.2%}",
    )
    if recent.rows and recent.labelled_rows == 0:
        logger.info("No labelled rows in the recent window: MAE and RMSE are not checked.")
    if recent.rows and report.mean_shift is None:
        logger.info("No predictions of this version in the previous window: the mean shift is not checked.")
    logger.info("Monitoring report: %s", json.dumps(report.as_dict()))


def _format(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def run_monitoring(
    spark: SparkSession,
    client: AliasReader,
    *,
    model_name: str,
    predictions_table: str,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    thresholds: MonitoringThresholds | None = None,
    now: datetime | None = None,
) -> MonitoringReport:
    """Check the champion's recent predictions; raise ModelMonitoringError when a check fails."""
    now = utc(now or datetime.now(UTC)).to_pydatetime()
    version = resolve_champion(client, model_name)
    since = now - timedelta(days=2 * lookback_days)  # the start of the previous window
    predictions = load_predictions(spark, predictions_table, model_version=version, since=since)
    report = monitor_predictions(
        predictions,
        model_name=model_name,
        model_version=version,
        now=now,
        lookback_days=lookback_days,
        thresholds=thresholds,
    )
    log_report(report)
    if not report.passed:
        raise ModelMonitoringError(
            f"Monitoring of version {version} of {model_name} failed: " + "; ".join(report.failures)
        )
    return report


def build_parser() -> argparse.ArgumentParser:
    defaults = MonitoringThresholds()
    parser = task_parser("monitor-model", __doc__.splitlines()[0])
    parser.add_argument(
        "--predictions_table",
        default=DEFAULT_OUTPUT_TABLE,
        help="Table name in --catalog.--schema, or a fully qualified catalog.schema.table",
    )
    parser.add_argument(
        "--lookback_days",
        type=positive_int,
        default=DEFAULT_LOOKBACK_DAYS,
        help="Days in the recent window (and in the previous window it is compared with)",
    )
    parser.add_argument("--max_mae", type=float, default=defaults.max_mae, help="Highest MAE on recent rows")
    parser.add_argument(
        "--max_mean_shift",
        type=float,
        default=defaults.max_mean_shift,
        help="Highest relative change of the mean prediction (0.2 = 20 %%)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point ``monitor-model``."""
    args = start_task(build_parser(), argv)
    run_monitoring(
        get_spark(),
        mlflow.MlflowClient(),
        model_name=full_name(args.catalog, args.schema, args.model_name),
        predictions_table=qualify_table(args.predictions_table, args.catalog, args.schema),
        lookback_days=args.lookback_days,
        thresholds=MonitoringThresholds(args.max_mae, args.max_mean_shift),
    )


if __name__ == "__main__":
    main()
