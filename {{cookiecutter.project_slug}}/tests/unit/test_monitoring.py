"""The verdict's decisions, without Spark: what each state of an environment and each metric leads to.

Reading the monitor's metric tables is tested on real Spark, with tables of Databricks' documented schema, in
tests/e2e/test_monitoring_job.py.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

from {{ cookiecutter.__package_name }} import monitoring, profiling
from {{ cookiecutter.__package_name }}.monitoring import Champion, Drift, MonitoringReport, ProfileWindow, Status

NAME = "prod.taxi.fare"
NOW = datetime(2026, 3, 15, 7, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=2)
OLD_CHAMPION = Champion("3", NOW - timedelta(days=30))
DAY = datetime(2026, 3, 15, tzinfo=UTC)


def window(mae: float | None = 0.4, *, labelled: int = 800, mean: float = 12.0) -> ProfileWindow:
    return ProfileWindow(
        DAY, DAY + timedelta(days=1), "1 day", 800, labelled, mean, mae, None if mae is None else 0.5
    )


def verdict(
    champion: Champion | None = OLD_CHAMPION,
    *,
    rows: int = 800,
    profile: ProfileWindow | None = None,
    drift: Drift | None = None,
    **thresholds: float,
) -> MonitoringReport:
    report = MonitoringReport(
        NAME, champion.version if champion else None, Status.NO_CHAMPION, SINCE.isoformat()
    )
    report.recent_rows, report.window, report.drift = rows, profile, drift
    return monitoring.judge(
        report, champion, thresholds=monitoring.MonitoringThresholds(**thresholds), since=SINCE
    )


def shift(previous: float, delta: float) -> Drift:
    return Drift(DAY - timedelta(days=1), previous, monitoring.relative_shift(delta, previous))


def test_a_healthy_window_passes_and_a_first_window_has_no_shift_to_check() -> None:
    report = verdict(profile=window(), drift=shift(12.0, 0.3))
    assert (report.status, report.failures, report.retrain) == (Status.HEALTHY, [], False)
    first = verdict(profile=window())
    assert first.passed
    assert first.drift is None


def test_an_mae_above_the_maximum_is_a_breach_that_retraining_may_answer() -> None:
    report = verdict(profile=window(mae=7.0))
    assert (report.status, report.retrain) == (Status.BREACH, True)
    assert report.failures == [
        f"MAE 7.0000 on 800 labelled rows of the window from {DAY} is above the maximum 5.0"
    ]
    assert verdict(profile=window(mae=7.0), max_mae=8.0).passed


def test_a_moved_mean_is_a_breach_even_without_labels() -> None:
    """Labels often arrive later: without them the error is not checked, the shift of the mean still is."""
    report = verdict(profile=window(mae=None, labelled=0, mean=18.0), drift=shift(12.0, 6.0))
    assert report.status == Status.BREACH
    (failure,) = report.failures
    assert failure.startswith("The mean prediction moved by 50.0% (12.0000 -> 18.0000)")
    assert verdict(profile=window(mean=18.0), drift=shift(12.0, -6.0), max_mean_shift=0.6).passed


def test_the_first_days_of_an_environment_are_not_alarms() -> None:
    """No champion yet (nothing deployed), or a champion younger than the look-back not scored yet."""
    nothing = verdict(None, rows=0)
    assert (nothing.status, nothing.failures, nothing.retrain) == (Status.NO_CHAMPION, [], False)
    new = verdict(Champion("1", NOW - timedelta(hours=3)), rows=0)
    assert (new.status, new.failures) == (Status.AWAITING_FIRST_SCORING, [])


def test_missing_predictions_and_missing_metrics_are_alarms_that_retraining_does_not_answer() -> None:
    stale = verdict(rows=0)
    assert (stale.status, stale.retrain) == (Status.NO_RECENT_PREDICTIONS, False)
    assert stale.failures == [
        f"No predictions of version 3 since {SINCE.isoformat()}: did batch inference run?"
    ]
    unprofiled = verdict(rows=800, profile=None)
    assert (unprofiled.status, unprofiled.retrain) == (Status.METRICS_MISSING, False)
    assert "did the refresh task run and succeed?" in unprofiled.failures[0]


def test_relative_shift_and_thresholds_edge_cases() -> None:
    assert monitoring.relative_shift(2.0, 10.0) == pytest.approx(0.2)
    assert monitoring.relative_shift(-2.0, 10.0) == pytest.approx(0.2)
    assert monitoring.relative_shift(1.0, 0.0) == float("inf")
    assert monitoring.relative_shift(0.0, 0.0) == 0.0
    assert monitoring.relative_shift(None, 10.0) is None
    for bad in ({"max_mae": 0.0}, {"max_mean_shift": -0.1}, {"max_mae": float("nan")}):
        with pytest.raises(ValueError, match="max_"):
            monitoring.MonitoringThresholds(**bad)


def test_the_report_is_json_as_logged_and_recorded() -> None:
    report = verdict(profile=window(mae=7.0), drift=shift(12.0, 0.1)).as_dict()
    assert (report["status"], report["retrain"]) == ("BREACH", True)
    assert report["window"]["start"] == DAY.isoformat()
    assert report["drift"]["previous_start"] == (DAY - timedelta(days=1)).isoformat()


def test_metrics_the_filters_cannot_tell_apart_are_a_broken_state() -> None:
    older, newer = ({"column_name": ":table", "monitor_version": v, "count": v + 1} for v in (0, 1))
    assert monitoring._newest_per_column([newer, older], "t")[":table"] == newer, "the newest configuration's"
    with pytest.raises(monitoring.ModelMonitoringError, match="cannot tell which is the whole table's"):
        monitoring._newest_per_column([older, newer, {**newer, "count": 9}], "t")


class Registry:
    def __init__(self, aliases: dict[str, str] | None, versions: dict[str, int]) -> None:
        self.aliases, self.versions = aliases, versions

    def get_registered_model(self, name: str) -> SimpleNamespace:
        if self.aliases is None:
            raise MlflowException(f"{name} not found", error_code=RESOURCE_DOES_NOT_EXIST)
        return SimpleNamespace(aliases=self.aliases)

    def get_model_version(self, name: str, version: str) -> SimpleNamespace:
        if version not in self.versions:
            raise MlflowException(f"version {version} not found", error_code=RESOURCE_DOES_NOT_EXIST)
        return SimpleNamespace(creation_timestamp=self.versions[version])


def test_the_champion_and_its_age_come_from_the_registry_and_a_broken_alias_fails_loudly() -> None:
    created = int(NOW.timestamp() * 1000)
    assert monitoring.find_champion(Registry({"champion": "2"}, {"2": created}), NAME) == Champion("2", NOW)
    assert monitoring.find_champion(Registry({}, {}), NAME) is None, "a model without a champion yet"
    assert monitoring.find_champion(Registry(None, {}), NAME) is None, "no model registered yet"
    with pytest.raises(MlflowException, match="version 7 not found"):
        monitoring.find_champion(Registry({"champion": "7"}, {}), NAME)


def test_the_command_line_takes_the_job_s_parameters() -> None:
    arguments = ["--catalog=c", "--schema=s", "--model_name=m", "--job_run_id=42"]
    args = monitoring.build_parser().parse_args(arguments)
    assert (args.predictions_table, args.verdict_table, args.granularity, args.lookback_days) == (
        "predictions",
        "monitoring_verdicts",
        "1 day",
        2,
    )
    assert monitoring.build_parser().parse_args([*arguments, "--granularity=1 week"]).granularity == "1 week"
    for bad in ("--granularity=1 hour", "--lookback_days=0", "--job_run_id=abc"):
        with pytest.raises(SystemExit):
            monitoring.build_parser().parse_args([*arguments, bad])
    assert profiling.granularity_spellings("1 week") == ["1 week", "AGGREGATION_GRANULARITY_1_WEEK"]
    assert profiling.metric_tables("c.s.predictions") == (
        "c.s.predictions_profile_metrics",
        "c.s.predictions_drift_metrics",
    )


MONITORING_MODULES = ("monitoring", "monitor_refresh", "profiling", "retraining")


@pytest.mark.parametrize("name", MONITORING_MODULES)
def test_nothing_proportional_to_a_table_reaches_the_driver(name: str) -> None:
    """Monitoring reads tables through Spark aggregates and filters; rows come to the driver only through
    profiling.bounded_rows, which takes a limit and refuses more: no collect, toPandas or take elsewhere."""
    path = Path(profiling.__file__).with_name(f"{name}.py")
    if not path.is_file():
        pytest.skip(f"{name}.py is not part of this pattern")
    tree = ast.parse(path.read_text())
    allowed = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef) and function.name == "bounded_rows"
        for node in ast.walk(function)
    }
    calls = [
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and id(node) not in allowed
        and node.func.attr in {"collect", "toPandas", "take", "toLocalIterator", "head", "tail"}
    ]
    assert calls == [], f"{name}.py brings rows to the driver outside bounded_rows: {calls}"
