from __future__ import annotations

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from {{ cookiecutter.__package_name }} import metrics, validate

NAME = "staging.taxi.fare"
THRESHOLDS = validate.ValidationThresholds(max_rmse=5.0, min_r2=0.5, max_regression=0.05)


@pytest.fixture
def holdout(train_and_holdout) -> pd.DataFrame:
    return train_and_holdout[1]


def on(holdout: pd.DataFrame, load) -> validate.Evaluator:
    """The job's evaluator in pandas: the loaded model's metrics on ``holdout`` (the job's: tests/e2e)."""
    return lambda uri: metrics.evaluate(load(uri), holdout)


def linear_fit(holdout: pd.DataFrame) -> tuple[float, float]:
    """Least-squares fare ~ distance on the holdout: a decent model, but not a perfect one."""
    x, y = holdout["trip_distance"], holdout["fare_amount"]
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    return slope, float(y.mean() - slope * x.mean())


def test_thresholds() -> None:
    assert validate.check_thresholds({"rmse": 2.0, "r2": 0.9}, THRESHOLDS) == []
    failures = validate.check_thresholds({"rmse": 7.5, "r2": 0.2}, THRESHOLDS)
    assert len(failures) == 2
    assert "RMSE 7.5000 is above the maximum 5.0" in failures[0]
    assert "R2 0.2000 is below the minimum 0.5" in failures[1]
    assert validate.check_thresholds({"rmse": float("nan"), "r2": float("nan")}, THRESHOLDS) != []
    with pytest.raises(ValueError, match="max_regression"):
        validate.ValidationThresholds(max_regression=-0.1)


def test_champion_comparison_allows_only_the_tolerance() -> None:
    champion = {"rmse": 2.0}
    assert validate.check_against_champion({"rmse": 1.5}, champion, 0.05) == []
    assert validate.check_against_champion({"rmse": 2.09}, champion, 0.05) == []
    assert validate.check_against_champion({"rmse": 2.11}, champion, 0.05) != []
    assert validate.check_against_champion({"rmse": 2.01}, champion, 0.0) != []


def test_first_version_passes_on_thresholds_and_becomes_challenger(
    fake_client, model_loader, linear_model, holdout: pd.DataFrame
) -> None:
    version = fake_client.add_version(NAME)
    load = model_loader({f"models:/{NAME}/{version}": linear_model(*linear_fit(holdout))})

    report = validate.validate_version(
        fake_client,
        model_name=NAME,
        candidate_version=version,
        evaluate=on(holdout, load),
        thresholds=THRESHOLDS,
    )
    validate.record_outcome(fake_client, report)

    assert report.passed, report.failures
    assert report.champion_version is None
    assert load.requested == [f"models:/{NAME}/1"]
    assert fake_client.aliases[NAME] == {"challenger": "1"}
    tags = fake_client.versions[NAME]["1"].tags
    assert tags["model_validation_status"] == "PASSED"
    assert float(tags["validation_rmse"]) == pytest.approx(report.candidate_metrics["rmse"], rel=1e-5)


def test_candidate_worse_than_champion_fails_the_task_and_moves_no_alias(
    fake_client,
    model_loader,
    linear_model,
    holdout: pd.DataFrame,
) -> None:
    champion = fake_client.add_version(NAME)
    fake_client.aliases[NAME]["champion"] = champion
    candidate = fake_client.add_version(NAME)
    slope, intercept = linear_fit(holdout)
    good = linear_model(slope, intercept)
    worse = linear_model(slope * 1.3, intercept)
    load = model_loader({f"models:/{NAME}/{champion}": good, f"models:/{NAME}/{candidate}": worse})

    with pytest.raises(validate.ModelValidationError, match="worse than the champion"):
        validate.run_validation(
            None,  # the evaluator replaces the Spark session
            fake_client,
            model_name=NAME,
            model_version=candidate,
            input_table="samples.nyctaxi.trips",
            row_limit=0,
            thresholds=validate.ValidationThresholds(max_rmse=100.0, min_r2=-10.0, max_regression=0.05),
            evaluate=on(holdout, load),
        )

    assert fake_client.aliases[NAME] == {"champion": champion}
    assert fake_client.versions[NAME][candidate].tags["model_validation_status"] == "FAILED"
    assert sorted(load.requested) == [f"models:/{NAME}/1", f"models:/{NAME}/2"]


def test_better_candidate_passes_against_the_champion(
    fake_client, model_loader, linear_model, holdout: pd.DataFrame
) -> None:
    champion = fake_client.add_version(NAME)
    fake_client.aliases[NAME]["champion"] = champion
    candidate = fake_client.add_version(NAME)
    slope, intercept = linear_fit(holdout)
    good = linear_model(slope, intercept)
    load = model_loader(
        {
            f"models:/{NAME}/{champion}": linear_model(slope * 0.8, intercept),
            f"models:/{NAME}/{candidate}": good,
        }
    )
    report = validate.validate_version(
        fake_client,
        model_name=NAME,
        candidate_version=candidate,
        evaluate=on(holdout, load),
        thresholds=THRESHOLDS,
    )
    assert report.passed, report.failures
    assert report.champion_version == champion
    assert report.candidate_metrics["rmse"] < report.champion_metrics["rmse"]


def test_revalidating_the_champion_skips_the_comparison(
    fake_client, model_loader, linear_model, holdout: pd.DataFrame
) -> None:
    version = fake_client.add_version(NAME)
    fake_client.aliases[NAME]["champion"] = version
    load = model_loader({f"models:/{NAME}/{version}": linear_model(*linear_fit(holdout))})
    report = validate.validate_version(
        fake_client,
        model_name=NAME,
        candidate_version=version,
        evaluate=on(holdout, load),
        thresholds=THRESHOLDS,
    )
    assert report.passed
    assert report.champion_metrics is None
    assert load.requested == [f"models:/{NAME}/{version}"]


def test_unknown_version_is_a_clear_error(fake_client, model_loader, holdout: pd.DataFrame) -> None:
    fake_client.add_version(NAME)
    with pytest.raises(MlflowException, match=r"Version 7 of staging\.taxi\.fare not found"):
        validate.validate_version(
            fake_client,
            model_name=NAME,
            candidate_version="7",
            evaluate=on(holdout, model_loader({})),
            thresholds=THRESHOLDS,
        )


def test_validate_cli_options() -> None:
    parser = validate.build_parser()
    args = parser.parse_args(
        [
            "--catalog=c",
            "--schema=s",
            "--model_name=m",
            "--model_version=3",
            "--max_rmse=4",
            "--min_r2=0.7",
            "--max_regression=0",
        ]
    )
    assert (args.model_version, args.max_rmse, args.min_r2, args.max_regression) == ("3", 4.0, 0.7, 0.0)
    assert (args.input_table, args.row_limit) == ("samples.nyctaxi.trips", 0)
    for bad in ("", "latest", "0", "-1"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--catalog=c", "--schema=s", "--model_name=m", f"--model_version={bad}"])
