"""Judge the champion from the data-profiling monitor's metrics (job ``model_monitoring``, task ``verdict``).

The refresh task before this one has refreshed the monitor of the predictions table (monitor_refresh.py); this
task reads its metric tables (profiling.py) for the rows of the current ``champion`` version:
- the latest window of ``--granularity`` ("1 day" or "1 week") that ends within the last ``--lookback_days``:
  its mean absolute error against ``fare_amount`` where labels exist (no labelled row means no error metric:
  labels may arrive later; logged, not a failure), checked against ``--max_mae``;
- the shift of that window's mean prediction from the previous window's, for the same version (the monitor's
  consecutive drift), checked against ``--max_mean_shift``; none in a champion's first window;
- how many rows of the champion were scored in the last ``--lookback_days``, counted here in Spark: a window
  without rows has no metrics, so an empty window shows up only in this count (did batch inference run?).

The first days of an environment end green, saying why, and are not alarms: no champion yet (nothing was
deployed), or a champion younger than the look-back that has not been scored yet. A breach fails the task,
as do missing predictions of an older champion and a monitor that has no window for rows it should have
profiled; a champion alias that names a version that is not there fails as well. Every verdict is appended to
the verdict table (``--verdict_table``), where the retraining gate of this job run (retraining.py) reads it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import mlflow

from . import profiling
from .cli import positive_int, start_task, task_parser
from .data import PREDICTION_COLUMN, TIMESTAMP_COLUMN, VERSION_COLUMN
from .registry import CHAMPION, full_name, get_alias_version, qualify_table
from .runtime import get_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

DEFAULT_LOOKBACK_DAYS = 2
"""Batch inference scores daily: two days without a batch of the champion is an alarm, one a late run."""
DEFAULT_GRANULARITY = profiling.GRANULARITIES[0]


class ModelMonitoringError(RuntimeError):
    """A monitoring check failed; raised so the job task fails."""


class Status(StrEnum):
    HEALTHY = "HEALTHY"
    BREACH = "BREACH"
    """A threshold is breached: the model may need retraining."""
    NO_RECENT_PREDICTIONS = "NO_RECENT_PREDICTIONS"
    """An alarm that retraining does not answer: batch inference did not score the champion."""
    METRICS_MISSING = "METRICS_MISSING"
    """An alarm that retraining does not answer: the monitor did not profile rows that were scored."""
    NO_CHAMPION = "NO_CHAMPION"
    """Not an alarm: nothing was deployed to this environment yet."""
    AWAITING_FIRST_SCORING = "AWAITING_FIRST_SCORING"
    """Not an alarm: the champion is younger than the look-back and has no predictions yet."""


@dataclass(frozen=True)
class MonitoringThresholds:
    """The limits of a healthy window (validation's gates are ValidationThresholds)."""

    max_mae: float = 5.0
    """Highest mean absolute error, in the fare's currency, of the labelled rows of the latest window."""
    max_mean_shift: float = 0.2
    """Highest relative change of the mean prediction from the previous window (0.2 = 20 %)."""

    def __post_init__(self) -> None:
        if not self.max_mae > 0:
            raise ValueError(f"max_mae must be positive, got {self.max_mae}")
        if not self.max_mean_shift >= 0:
            raise ValueError(f"max_mean_shift must not be negative, got {self.max_mean_shift}")


@dataclass(frozen=True)
class Champion:
    version: str
    created: datetime


@dataclass(frozen=True)
class ProfileWindow:
    """What the monitor computed for one window of the champion's rows (the whole table, no slice)."""

    start: datetime
    end: datetime
    granularity: str
    rows: int
    labelled_rows: int | None = None
    mean_prediction: float | None = None
    mae: float | None = None
    rmse: float | None = None


@dataclass(frozen=True)
class Drift:
    """The window against the previous one (the monitor's consecutive drift of the prediction column)."""

    previous_start: datetime
    previous_mean_prediction: float | None
    mean_shift: float | None
    population_stability_index: float | None = None
    js_distance: float | None = None


@dataclass
class MonitoringReport:
    model_name: str
    model_version: str | None
    status: Status
    since: str
    recent_rows: int = 0
    window: ProfileWindow | None = None
    drift: Drift | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def retrain(self) -> bool:
        """Whether retraining may answer this verdict (a breach, not missing data)."""
        return self.status == Status.BREACH

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON values (times as ISO 8601), as logged and recorded."""
        values = {**asdict(self), "status": self.status.value, "retrain": self.retrain}
        return json.loads(json.dumps(values, default=lambda value: value.isoformat()))


def relative_shift(delta: float | None, previous: float | None) -> float | None:
    """|delta| / |previous|, the change of a mean relative to its previous value; None without both."""
    if delta is None or previous is None:
        return None
    if previous == 0:
        return 0.0 if delta == 0 else math.inf
    return abs(delta) / abs(previous)


def judge(
    report: MonitoringReport,
    champion: Champion | None,
    *,
    thresholds: MonitoringThresholds,
    since: datetime,
) -> MonitoringReport:
    """Status and failures of a report whose counts and metrics are filled in."""
    if champion is None:
        report.status, report.failures = Status.NO_CHAMPION, []
        return report
    if report.recent_rows == 0:
        if champion.created > since:
            report.status, report.failures = Status.AWAITING_FIRST_SCORING, []
        else:
            report.status = Status.NO_RECENT_PREDICTIONS
            report.failures = [
                f"No predictions of version {champion.version} since {report.since}: did batch inference run?"
            ]
        return report
    window = report.window
    if window is None:
        report.status = Status.METRICS_MISSING
        report.failures = [
            f"{report.recent_rows} rows of version {champion.version} were scored since {report.since}, but "
            "the monitor has no window of them: did the refresh task run and succeed?"
        ]
        return report
    failures = []
    if window.mae is not None and not window.mae <= thresholds.max_mae:
        failures.append(
            f"MAE {window.mae:.4f} on {window.labelled_rows} labelled rows of the window from {window.start} "
            f"is above the maximum {thresholds.max_mae}"
        )
    drift = report.drift
    if (
        drift is not None
        and drift.mean_shift is not None
        and not drift.mean_shift <= thresholds.max_mean_shift
    ):
        failures.append(
            f"The mean prediction moved by {drift.mean_shift:.1%} "
            f"({_format(drift.previous_mean_prediction)} -> {_format(window.mean_prediction)}) "
            "from the previous window, more than the maximum "
            f"{thresholds.max_mean_shift:.1%}"
        )
    report.status = Status.BREACH if failures else Status.HEALTHY
    report.failures = failures
    return report


# --- Reading (Spark; a few rows reach the driver) ----------------------------------------------------------


def count_recent(spark: SparkSession, predictions_table: str, *, model_version: str, since: datetime) -> int:
    """Rows of the version scored after ``since``: an aggregate, computed by the executors."""
    from pyspark.sql import functions as sf

    if not profiling.table_exists(spark, predictions_table):
        return 0
    frame = spark.read.table(predictions_table)
    recent = (sf.col(VERSION_COLUMN) == int(model_version)) & (sf.col(TIMESTAMP_COLUMN) > sf.lit(since))
    row = profiling.first_row(frame.where(recent).agg(sf.count(sf.lit(1)).alias("rows")))
    return int(row["rows"]) if row else 0


def _whole_table(model_version: str, granularity: str) -> Any:
    """Rows of one model version, one granularity, no slice (in both metric tables)."""
    from pyspark.sql import functions as sf

    return (
        sf.col("slice_key").isNull()
        & sf.col("granularity").isin(profiling.granularity_spellings(granularity))
        & (sf.col(profiling.MODEL_ID_COLUMN).cast("string") == str(model_version))
    )


def _profile_rows(frame: Any, model_version: str, granularity: str) -> Any:
    """The profile metrics of the monitored table itself (``log_type`` INPUT; a baseline's are BASELINE)."""
    from pyspark.sql import functions as sf

    return frame.where(_whole_table(model_version, granularity) & (sf.col("log_type") == profiling.INPUT_LOG))


def _require_columns(frame: Any, table_name: str, columns: Sequence[str]) -> None:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise ModelMonitoringError(
            f"{table_name} has no column {', '.join(missing)} (its columns: {', '.join(frame.columns)}); the "
            f"documented schema is at {profiling.DOCS}"
        )


def _number(row: Any, name: str) -> float | None:
    value = row[name] if row is not None else None
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def read_window(
    spark: SparkSession, profile_table: str, *, model_version: str, granularity: str, since: datetime
) -> ProfileWindow | None:
    """The latest window of the version that ends after ``since``, from the profile metrics table."""
    from pyspark.sql import functions as sf

    frame = spark.read.table(profile_table)
    _require_columns(
        frame, profile_table, ["window", "column_name", profiling.MODEL_ID_COLUMN, profiling.MAE_COLUMN]
    )
    rows = _profile_rows(frame, model_version, granularity)
    latest = profiling.first_row(
        rows.where((sf.col("column_name") == profiling.TABLE_LEVEL) & (sf.col("window.end") > sf.lit(since)))
        .orderBy(sf.col("window.start").desc(), sf.col("monitor_version").desc())
        .select(sf.col("window.start").alias("start"), sf.col("window.end").alias("end"))
    )
    if latest is None:
        return None
    columns = [profiling.TABLE_LEVEL, PREDICTION_COLUMN, profiling.LABEL_COLUMN]
    metrics = rows.where(
        (sf.col("window.start") == sf.lit(latest["start"])) & sf.col("column_name").isin(columns)
    )
    selected = metrics.select(
        "column_name",
        "monitor_version",
        "count",
        "num_nulls",
        "avg",
        profiling.MAE_COLUMN,
        profiling.RMSE_COLUMN,
    )
    by_column = _newest_per_column(profiling.bounded_rows(selected, 3 * 10), profile_table)
    table, prediction, label = (by_column.get(name) for name in columns)
    labelled = None if label is None else int(label["count"] or 0) - int(label["num_nulls"] or 0)
    return ProfileWindow(
        start=latest["start"],
        end=latest["end"],
        granularity=granularity,
        rows=int(table["count"] or 0) if table is not None else 0,
        labelled_rows=labelled,
        mean_prediction=_number(prediction, "avg"),
        mae=_number(table, profiling.MAE_COLUMN),
        rmse=_number(table, profiling.RMSE_COLUMN),
    )


def _newest_per_column(rows: Sequence[Any], table_name: str) -> dict[str, Any]:
    """Per column, the row of the newest monitor version; two of them would be metrics the filters cannot tell
    apart (a slice or a baseline taken for the whole table), which is a broken state, not a verdict."""
    newest: dict[str, Any] = {}
    for row in sorted(rows, key=lambda row: row["monitor_version"] or 0):
        newest[row["column_name"]] = row
    for name, row in newest.items():
        same = [
            other
            for other in rows
            if other["column_name"] == name and other["monitor_version"] == row["monitor_version"]
        ]
        if len(same) > 1:
            raise ModelMonitoringError(
                f"{table_name} has {len(same)} rows for column {name!r} of one window and monitor version: "
                f"the verdict cannot tell which is the whole table's (documented schema: {profiling.DOCS})"
            )
    return newest


def read_drift(
    spark: SparkSession,
    profile_table: str,
    drift_table: str,
    *,
    model_version: str,
    granularity: str,
    window: ProfileWindow,
) -> Drift | None:
    """The window's consecutive drift of the prediction column, with the previous window's mean prediction."""
    from pyspark.sql import functions as sf

    if not profiling.table_exists(spark, drift_table):
        return None  # the first refresh of a monitor writes no drift
    frame = spark.read.table(drift_table)
    _require_columns(frame, drift_table, ["window", "window_cmp", "drift_type", "avg_delta"])
    drift = profiling.first_row(
        frame.where(
            _whole_table(model_version, granularity)
            & (sf.col("drift_type") == profiling.CONSECUTIVE)
            & (sf.col("column_name") == PREDICTION_COLUMN)
            & (sf.col("window.start") == sf.lit(window.start))
        )
        .orderBy(sf.col("monitor_version").desc())
        .select(
            sf.col("window_cmp.start").alias("previous_start"),
            "avg_delta",
            "population_stability_index",
            "js_distance",
        )
    )
    if drift is None:
        return None
    previous = profiling.first_row(
        _profile_rows(spark.read.table(profile_table), model_version, granularity)
        .where(
            (sf.col("column_name") == PREDICTION_COLUMN)
            & (sf.col("window.start") == sf.lit(drift["previous_start"]))
        )
        .orderBy(sf.col("monitor_version").desc())
        .select("avg")
    )
    previous_mean = _number(previous, "avg")
    return Drift(
        previous_start=drift["previous_start"],
        previous_mean_prediction=previous_mean,
        mean_shift=relative_shift(_number(drift, "avg_delta"), previous_mean),
        population_stability_index=_number(drift, "population_stability_index"),
        js_distance=_number(drift, "js_distance"),
    )


# --- The task -----------------------------------------------------------------------------------------------


class RegistryReader(Protocol):
    """The part of ``mlflow.MlflowClient`` the verdict needs."""

    def get_registered_model(self, name: str) -> Any: ...

    def get_model_version(self, name: str, version: str) -> Any: ...


def find_champion(client: RegistryReader, model_name: str) -> Champion | None:
    """The champion and when its version was created; None without a model or an alias. An alias that names a
    version that is not there raises (a broken champion is an alarm)."""
    from mlflow.exceptions import MlflowException

    try:
        version = get_alias_version(client, model_name, CHAMPION)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        version = None  # no registered model: nothing was trained or copied here yet
    if version is None:
        return None
    created_ms = client.get_model_version(model_name, version).creation_timestamp
    return Champion(version=version, created=datetime.fromtimestamp(created_ms / 1000, tz=UTC))


def log_report(report: MonitoringReport) -> None:
    window, drift = report.window, report.drift
    logger.info(
        "%s version %s: %s; %d rows since %s.",
        report.model_name,
        report.model_version or "-",
        report.status.value,
        report.recent_rows,
        report.since,
    )
    if report.status == Status.NO_CHAMPION:
        logger.info("No '%s' alias yet: nothing is deployed here, so nothing is monitored.", CHAMPION)
    if report.status == Status.AWAITING_FIRST_SCORING:
        logger.info("The champion is new and batch inference has not scored it yet: checked again tomorrow.")
    if window is not None:
        logger.info(
            "Window %s to %s (%s): %d rows, %s labelled, MAE %s, RMSE %s, mean prediction %s.",
            window.start,
            window.end,
            window.granularity,
            window.rows,
            window.labelled_rows,
            _format(window.mae),
            _format(window.rmse),
            _format(window.mean_prediction),
        )
        if not window.labelled_rows:
            logger.info("No labelled rows in the window: the MAE is not checked.")
        if drift is None:
            logger.info("No previous window of this version: the mean shift is not checked.")
    if drift is not None:
        logger.info(
            "Against the window from %s: mean %s, shift %s, PSI %s, JS distance %s.",
            drift.previous_start,
            _format(drift.previous_mean_prediction),
            "n/a" if drift.mean_shift is None else f"{drift.mean_shift:.2%}",
            _format(drift.population_stability_index),
            _format(drift.js_distance),
        )
    logger.info("Monitoring report: %s", json.dumps(report.as_dict()))


def _format(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def run_monitoring(
    spark: SparkSession,
    client: RegistryReader,
    *,
    model_name: str,
    predictions_table: str,
    verdict_table: str,
    job_run_id: str,
    granularity: str = DEFAULT_GRANULARITY,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    thresholds: MonitoringThresholds | None = None,
    now: datetime | None = None,
) -> MonitoringReport:
    """Judge the champion, record the verdict, and raise ModelMonitoringError when it is an alarm."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=lookback_days)
    champion = find_champion(client, model_name)
    report = MonitoringReport(
        model_name=model_name,
        model_version=champion.version if champion else None,
        status=Status.NO_CHAMPION,
        since=since.isoformat(),
    )
    if champion is not None:
        report.recent_rows = count_recent(
            spark, predictions_table, model_version=champion.version, since=since
        )
        profile_table, drift_table = profiling.metric_tables(predictions_table)
        if report.recent_rows and profiling.table_exists(spark, profile_table):
            report.window = read_window(
                spark, profile_table, model_version=champion.version, granularity=granularity, since=since
            )
            if report.window is not None:
                report.drift = read_drift(
                    spark,
                    profile_table,
                    drift_table,
                    model_version=champion.version,
                    granularity=granularity,
                    window=report.window,
                )
    judge(report, champion, thresholds=thresholds or MonitoringThresholds(), since=since)
    log_report(report)
    profiling.write_verdict(
        spark,
        verdict_table,
        profiling.VerdictRecord(
            job_run_id=job_run_id,
            checked_at=now,
            model_name=model_name,
            model_version=report.model_version,
            status=report.status.value,
            retrain=report.retrain,
            failures=tuple(report.failures),
            report=report.as_dict(),
        ),
    )
    if not report.passed:
        raise ModelMonitoringError(
            f"Monitoring of version {report.model_version} of {model_name} failed: "
            + "; ".join(report.failures)
        )
    return report


def build_parser() -> argparse.ArgumentParser:
    defaults = MonitoringThresholds()
    parser = task_parser("monitor-model", __doc__.splitlines()[0])
    profiling.add_table_arguments(parser, job_run_help="The job run, recorded with the verdict")
    parser.add_argument(
        "--granularity",
        choices=profiling.GRANULARITIES,
        default=DEFAULT_GRANULARITY,
        help="The monitor's window that is judged",
    )
    parser.add_argument(
        "--lookback_days",
        type=positive_int,
        default=DEFAULT_LOOKBACK_DAYS,
        help="Days in which the champion must have been scored; the judged window ends within them",
    )
    parser.add_argument("--max_mae", type=float, default=defaults.max_mae, help="Highest MAE of the window")
    parser.add_argument(
        "--max_mean_shift",
        type=float,
        default=defaults.max_mean_shift,
        help="Highest relative change of the mean prediction from the previous window (0.2 = 20 %%)",
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
        verdict_table=qualify_table(args.verdict_table, args.catalog, args.schema),
        job_run_id=args.job_run_id,
        granularity=args.granularity,
        lookback_days=args.lookback_days,
        thresholds=MonitoringThresholds(args.max_mae, args.max_mean_shift),
    )


if __name__ == "__main__":
    main()
