"""The retraining gate: which failed verdicts start model_training, and at most once per period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from {{ cookiecutter.__package_name }} import retraining
from {{ cookiecutter.__package_name }}.profiling import VerdictRecord
from {{ cookiecutter.__package_name }}.retraining import RetrainingRefusedError, TrainingRun

NOW = datetime(2026, 3, 15, 7, 30, tzinfo=UTC)


def record(status: str = "BREACH", *, retrain: bool = True) -> VerdictRecord:
    failures = ("MAE 7.0000 on 800 labelled rows is above the maximum 5.0",) if status != "HEALTHY" else ()
    return VerdictRecord("42", NOW, "prod.taxi.fare", "3", status, retrain, failures, {})


def test_a_breach_retrains_when_training_has_not_run_lately() -> None:
    reason = retraining.decide(record(), [], job_run_id="42", min_hours=72)
    assert (
        reason
        == "Retraining version 3 of prod.taxi.fare: MAE 7.0000 on 800 labelled rows is above the maximum 5.0"
    )


def test_no_second_training_within_the_period() -> None:
    recent = [TrainingRun(11, NOW - timedelta(hours=30)), TrainingRun(12, NOW - timedelta(hours=5))]
    with pytest.raises(RetrainingRefusedError, match=r"started run 12 at .* within the last 72 hours"):
        retraining.decide(record(), recent, job_run_id="42", min_hours=72)


@pytest.mark.parametrize("status", ["NO_RECENT_PREDICTIONS", "METRICS_MISSING"])
def test_alarms_a_new_model_does_not_answer_do_not_retrain(status: str) -> None:
    with pytest.raises(RetrainingRefusedError, match=f"The verdict is {status}"):
        retraining.decide(record(status, retrain=False), [], job_run_id="42", min_hours=72)


def test_a_verdict_task_that_failed_before_deciding_does_not_retrain() -> None:
    with pytest.raises(RetrainingRefusedError, match="Job run 42 recorded no verdict"):
        retraining.decide(None, [], job_run_id="42", min_hours=72)


class Jobs:
    def __init__(self, *starts: datetime | None) -> None:
        self.starts = starts
        self.asked: list[tuple[int, int]] = []

    def list_runs(self, job_id: int, start_time_from: int) -> list[SimpleNamespace]:
        self.asked.append((job_id, start_time_from))
        return [
            SimpleNamespace(run_id=index, start_time=None if start is None else int(start.timestamp() * 1000))
            for index, start in enumerate(self.starts)
        ]


def test_recent_runs_come_from_the_jobs_api_since_the_start_of_the_period() -> None:
    since = NOW - timedelta(hours=72)
    jobs = Jobs(NOW - timedelta(hours=1), since - timedelta(hours=1), None)
    runs = retraining.recent_training_runs(jobs, 9, since)
    assert runs == [TrainingRun(0, NOW - timedelta(hours=1))], (
        "a pending run without a start time is not counted"
    )
    assert jobs.asked == [(9, int(since.timestamp() * 1000))]


def test_the_command_line_takes_the_job_s_parameters(job_parameters: list[str]) -> None:
    common = ["--catalog=c", "--schema=s", "--model_name=m", "--job_run_id=42", "--training_job_id=9"]
    args = retraining.build_parser().parse_known_args([*common, *job_parameters])[0]
    assert (args.verdict_table, args.training_job_id, args.min_hours_between_retrains) == (
        "monitoring_verdicts",
        9,
        72,
    )
    with pytest.raises(SystemExit):
        retraining.build_parser().parse_args([*common, "--min_hours_between_retrains=0"])
