from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.__package_name }} import monitoring

NAME = "prod.taxi.fare"
TABLE = "prod.taxi.predictions"
NOW = datetime(2026, 3, 15, 7, 0, tzinfo=UTC)


def scored(
    trips: pd.DataFrame,
    *,
    days_ago: float,
    version: int = 3,
    noise: float = 0.5,
    scale: float = 1.0,
    seed: int = 0,
    now: datetime = NOW,
) -> pd.DataFrame:
    """One batch of the predictions table: the trips, a prediction near their fare, version and scored_at."""
    rng = np.random.default_rng(seed)
    batch = trips.copy()
    batch["prediction"] = batch["fare_amount"] * scale + rng.normal(0.0, noise, len(batch))
    batch["model_version"] = version
    batch["scored_at"] = pd.Timestamp(now) - pd.Timedelta(days=days_ago)
    return batch


def report_for(predictions: pd.DataFrame, **thresholds: float) -> monitoring.MonitoringReport:
    return monitoring.monitor_predictions(
        predictions,
        model_name=NAME,
        model_version="3",
        now=NOW,
        lookback_days=7,
        thresholds=monitoring.MonitoringThresholds(**thresholds),
    )


def test_healthy_window_passes(trips: pd.DataFrame) -> None:
    history = pd.concat([scored(trips, days_ago=days, seed=days) for days in (9, 2, 1)])
    report = report_for(history)

    assert report.passed, report.failures
    assert (report.recent.rows, report.recent.labelled_rows, report.previous.rows) == (
        2 * len(trips),
        2 * len(trips),
        len(trips),
    )
    assert report.recent.mae == pytest.approx(0.4, abs=0.05)  # E|N(0, 0.5)| = 0.5 * sqrt(2 / pi)
    assert report.recent.rmse == pytest.approx(0.5, abs=0.05)
    assert report.mean_shift == pytest.approx(0.0, abs=0.01)


def test_degraded_mae_fails_even_when_the_mean_holds(trips: pd.DataFrame) -> None:
    recent = scored(trips, days_ago=1)
    recent["prediction"] = recent["fare_amount"] + np.where(np.arange(len(recent)) % 2, 7.0, -7.0)
    report = report_for(pd.concat([scored(trips, days_ago=8), recent]))

    assert report.recent.mae == pytest.approx(7.0)
    assert report.mean_shift == pytest.approx(0.0, abs=0.01)
    assert report.failures == [f"MAE 7.0000 on {len(trips)} labelled rows is above the maximum 5.0"]
    assert report_for(pd.concat([scored(trips, days_ago=8), recent]), max_mae=8.0).passed


def test_drifted_mean_fails_without_labels(trips: pd.DataFrame) -> None:
    """Labels often arrive later: without them the error is not checked, the shift of the mean still is."""
    recent = scored(trips, days_ago=1, scale=1.5).assign(fare_amount=np.nan)
    report = report_for(pd.concat([scored(trips, days_ago=10), recent]))

    assert (report.recent.labelled_rows, report.recent.mae, report.recent.rmse) == (0, None, None)
    assert report.mean_shift == pytest.approx(0.5, abs=0.01)
    (failure,) = report.failures
    assert failure.startswith("The mean prediction moved by 50.")
    assert report_for(pd.concat([scored(trips, days_ago=10), recent]), max_mean_shift=0.6).passed


def test_empty_window_fails(trips: pd.DataFrame) -> None:
    """Only old rows, and recent rows of another version: nothing the champion scored lately."""
    history = pd.concat([scored(trips, days_ago=9), scored(trips, days_ago=1, version=2)])
    report = report_for(history)

    assert report.recent.rows == 0
    assert report.failures == [
        f"No predictions of version 3 in the last 7 days (since {report.since}): did batch inference run?"
    ]
    assert not report_for(history.iloc[0:0]).passed


def test_first_window_of_a_new_champion_has_no_shift_to_check(trips: pd.DataFrame) -> None:
    report = report_for(scored(trips, days_ago=1))
    assert report.passed
    assert (report.previous.rows, report.mean_shift) == (0, None)


def test_labels_outside_the_quality_rules_do_not_count(trips: pd.DataFrame) -> None:
    recent = scored(trips, days_ago=1, noise=0.0)
    recent.loc[:9, "fare_amount"] = [0.0, -5.0, 1000.0, *[np.nan] * 7]  # refunds, a typo, missing labels
    report = report_for(recent)
    assert report.recent.rows == len(trips)
    assert report.recent.labelled_rows == len(trips) - 10
    assert report.recent.mae == pytest.approx(0.0)


def test_naive_timestamps_are_utc(trips: pd.DataFrame) -> None:
    batch = scored(trips, days_ago=6.99)
    # What Spark's toPandas returns in a UTC session: naive timestamps.
    batch["scored_at"] = batch["scored_at"].dt.tz_localize(None)
    assert report_for(batch).recent.rows == len(trips)
    assert report_for(batch.assign(scored_at=batch["scored_at"] - timedelta(hours=1))).recent.rows == 0


def test_mean_shift_and_thresholds_edge_cases() -> None:
    def window(mean: float | None) -> monitoring.WindowMetrics:
        return monitoring.WindowMetrics(rows=0 if mean is None else 1, mean_prediction=mean)

    assert monitoring.mean_shift(window(12.0), window(10.0)) == pytest.approx(0.2)
    assert monitoring.mean_shift(window(8.0), window(10.0)) == pytest.approx(0.2)
    assert monitoring.mean_shift(window(1.0), window(0.0)) == float("inf")
    assert monitoring.mean_shift(window(1.0), window(None)) is None
    for bad in ({"max_mae": 0.0}, {"max_mean_shift": -0.1}, {"max_mae": float("nan")}):
        with pytest.raises(ValueError, match="max_"):
            monitoring.MonitoringThresholds(**bad)
    arguments = ["--catalog=c", "--schema=s", "--model_name=m"]
    assert monitoring.build_parser().parse_args(arguments).predictions_table == "predictions"
    with pytest.raises(SystemExit):
        monitoring.build_parser().parse_args([*arguments, "--lookback_days=0"])


def test_only_the_champion_s_two_windows_are_read(fake_spark, fake_client, trips: pd.DataFrame) -> None:
    fake_client.add_version(NAME)
    fake_client.add_version(NAME)
    fake_client.aliases[NAME]["champion"] = fake_client.add_version(NAME)
    fake_spark.tables[TABLE] = pd.concat(
        [
            scored(trips, days_ago=30),  # older than both windows
            scored(trips, days_ago=1, version=2),  # another version
            scored(trips, days_ago=10, seed=1),
            scored(trips, days_ago=1, seed=2),
        ]
    )
    report = monitoring.run_monitoring(
        fake_spark, fake_client, model_name=NAME, predictions_table=TABLE, now=NOW
    )

    assert (report.model_version, report.recent.rows, report.previous.rows) == ("3", len(trips), len(trips))
    loaded = monitoring.load_predictions(fake_spark, TABLE, model_version="3", since=NOW - timedelta(days=14))
    assert len(loaded) == 2 * len(trips)
    assert set(loaded.columns) == {"prediction", "model_version", "scored_at", "fare_amount"}


def test_a_failed_check_fails_the_task_and_a_missing_champion_too(
    fake_spark, fake_client, trips: pd.DataFrame
) -> None:
    fake_client.add_version(NAME)
    fake_spark.tables[TABLE] = scored(trips, days_ago=9, version=1)
    kwargs = {"model_name": NAME, "predictions_table": TABLE, "now": NOW}
    with pytest.raises(LookupError, match="no 'champion' alias"):
        monitoring.run_monitoring(fake_spark, fake_client, **kwargs)
    fake_client.aliases[NAME]["champion"] = "1"
    with pytest.raises(monitoring.ModelMonitoringError, match="No predictions of version 1"):
        monitoring.run_monitoring(fake_spark, fake_client, **kwargs)


def test_entry_point_reads_the_schema_s_predictions_table_and_ignores_job_parameters(
    use_fake_spark,
    fake_client,
    monkeypatch: pytest.MonkeyPatch,
    trips: pd.DataFrame,
    job_parameters: list[str],
) -> None:
    """Like --output_table of score-batch, a bare --predictions_table lives in --catalog.--schema. The job
    parameters that Databricks pushes down to every task reach this one too, and are ignored."""
    name = "dev.taxi.fare"
    fake_client.aliases.setdefault(name, {})["champion"] = fake_client.add_version(name)
    now = datetime.now(UTC)
    use_fake_spark.tables["dev.taxi.predictions"] = scored(trips, days_ago=1, version=1, now=now)
    monkeypatch.setattr(monitoring.mlflow, "MlflowClient", lambda: fake_client)
    common = ["--catalog=dev", "--schema=taxi", "--model_name=fare"]

    monitoring.main([*common, *job_parameters])

    use_fake_spark.tables["other.place.scores"] = scored(trips, days_ago=1, version=1, now=now, scale=3.0)
    with pytest.raises(monitoring.ModelMonitoringError, match="MAE"):
        monitoring.main([*common, "--predictions_table=other.place.scores", *job_parameters])
