"""Decide whether a failed verdict retrains (job ``model_monitoring``, task ``retrain_gate``).

The job's verdict task fails on an alarm; Python wheel tasks cannot set task values, so the job cannot branch
on what the verdict found. This task runs after a failed verdict (``run_if: AT_LEAST_ONE_FAILED``) and reads
the verdict that the same job run recorded (profiling.py's verdict table). It succeeds, so that the job's
``retrain`` task runs this environment's ``model_training`` job, only when
- the verdict is a breach (MAE or mean shift; ``retrain`` in the record): missing predictions, a monitor
  without metrics, or a verdict task that failed before deciding are not answered by a new model;
- and ``model_training`` has not started within ``--min_hours_between_retrains`` (any run: the schedule's, one
  started by hand or by an earlier breach, one still running), so a breach that retraining does not cure
  starts one training per period, not one a day.
Otherwise it fails and says why: the job run ends failed and its notifications go out.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import profiling
from .cli import positive_int, start_task, task_parser
from .registry import qualify_table
from .runtime import get_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

DEFAULT_MIN_HOURS_BETWEEN_RETRAINS = 72


class RetrainingRefusedError(RuntimeError):
    """The verdict does not call for retraining now; raised so the retrain task does not run."""


@dataclass(frozen=True)
class TrainingRun:
    run_id: int
    started: datetime


def recent_training_runs(jobs: Any, job_id: int, since: datetime) -> list[TrainingRun]:
    """Runs of the training job started after ``since``, finished or not (Jobs API ``list_runs``)."""
    start_ms = int(since.timestamp() * 1000)
    runs: Iterable[Any] = jobs.list_runs(job_id=job_id, start_time_from=start_ms)
    return [
        TrainingRun(run.run_id, datetime.fromtimestamp(run.start_time / 1000, tz=UTC))
        for run in runs
        if run.start_time is not None and run.start_time >= start_ms
    ]


def decide(
    verdict: profiling.VerdictRecord | None,
    recent_runs: Sequence[TrainingRun],
    *,
    job_run_id: str,
    min_hours: int,
) -> str:
    """Why to retrain; raises RetrainingRefusedError with the reason not to."""
    if verdict is None:
        raise RetrainingRefusedError(
            f"Job run {job_run_id} recorded no verdict: the verdict task failed before deciding (its log "
            "says why). A new model does not answer that; not retraining."
        )
    if not verdict.retrain:
        raise RetrainingRefusedError(
            f"The verdict is {verdict.status} ({'; '.join(verdict.failures) or 'no failure'}): a new model "
            "does not answer it; not retraining."
        )
    if recent_runs:
        latest = max(recent_runs, key=lambda run: run.started)
        raise RetrainingRefusedError(
            f"model_training started run {latest.run_id} at {latest.started.isoformat()}, within the last "
            f"{min_hours} hours (min_hours_between_retrains): not retraining again. The breach stands: "
            + "; ".join(verdict.failures)
        )
    return f"Retraining version {verdict.model_version} of {verdict.model_name}: " + "; ".join(
        verdict.failures
    )


def run_gate(
    spark: SparkSession,
    jobs: Any,
    *,
    verdict_table: str,
    job_run_id: str,
    training_job_id: int,
    min_hours: int = DEFAULT_MIN_HOURS_BETWEEN_RETRAINS,
    now: datetime | None = None,
) -> str:
    now = now or datetime.now(UTC)
    verdict = profiling.read_verdict(spark, verdict_table, job_run_id)
    runs = recent_training_runs(jobs, training_job_id, now - timedelta(hours=min_hours)) if verdict else []
    reason = decide(verdict, runs, job_run_id=job_run_id, min_hours=min_hours)
    logger.info(reason)
    return reason


def build_parser() -> argparse.ArgumentParser:
    parser = task_parser("retrain-gate", __doc__.splitlines()[0])
    profiling.add_table_arguments(parser, job_run_help="The job run whose verdict is read")
    parser.add_argument("--training_job_id", type=int, required=True, help="The model_training job's id")
    parser.add_argument(
        "--min_hours_between_retrains",
        type=positive_int,
        default=DEFAULT_MIN_HOURS_BETWEEN_RETRAINS,
        help="No retraining when model_training started within this many hours",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point ``retrain-gate``."""
    from databricks.sdk import WorkspaceClient

    args = start_task(build_parser(), argv)
    run_gate(
        get_spark(),
        WorkspaceClient().jobs,
        verdict_table=qualify_table(args.verdict_table, args.catalog, args.schema),
        job_run_id=args.job_run_id,
        training_job_id=args.training_job_id,
        min_hours=args.min_hours_between_retrains,
    )


if __name__ == "__main__":
    main()
