from __future__ import annotations

from datetime import UTC, datetime

import mlflow
import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.__package_name }} import batch_inference, deploy, features, train, validate

NAME = "prod.taxi.fare"
SCORED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_score_adds_prediction_version_and_timestamp(trips: pd.DataFrame, linear_model) -> None:
    model = linear_model(slope=2.0, intercept=3.0)
    scored = batch_inference.score(
        model, trips.drop(columns="fare_amount"), model_version="4", scored_at=SCORED_AT
    )

    assert list(scored.columns) == [*features.INPUT_COLUMNS, "prediction", "model_version", "scored_at"]
    assert len(scored) == len(trips)
    np.testing.assert_allclose(scored["prediction"], 3.0 + 2.0 * trips["trip_distance"])
    assert (scored["model_version"] == 4).all()
    assert (scored["scored_at"] == pd.Timestamp(SCORED_AT)).all()
    assert model.seen_columns == list(features.INPUT_COLUMNS)  # the model sees exactly its signature


def test_score_skips_invalid_trips_and_keeps_the_label(trips: pd.DataFrame, linear_model) -> None:
    broken = trips.head(3).assign(trip_distance=[-1.0, 0.0, np.nan])
    scored = batch_inference.score(linear_model(), pd.concat([broken, trips]), model_version="1")

    assert len(scored) == len(trips)
    assert "fare_amount" in scored.columns
    assert scored["scored_at"].notna().all()
    with pytest.raises(ValueError, match="None of the 3 input rows"):
        batch_inference.score(linear_model(), broken, model_version="1")


def test_batch_job_scores_with_the_champion_and_appends(
    fake_spark, fake_client, model_loader, linear_model, trips: pd.DataFrame
) -> None:
    fake_client.add_version(NAME)
    champion = fake_client.add_version(NAME)
    fake_client.aliases[NAME]["champion"] = champion
    load = model_loader({f"models:/{NAME}/{champion}": linear_model()})
    kwargs = {
        "model_name": NAME,
        "input_table": "samples.nyctaxi.trips",
        "row_limit": 100,
        "output_table": "prod.taxi.predictions",
        "load_model": load,
    }

    batch_inference.run_batch_inference(fake_spark, fake_client, **kwargs)
    batch_inference.run_batch_inference(fake_spark, fake_client, **kwargs)

    assert load.requested == [f"models:/{NAME}/2", f"models:/{NAME}/2"]
    written = fake_spark.tables["prod.taxi.predictions"]
    assert len(written) == 200
    assert set(written["model_version"]) == {2}


def test_no_champion_is_a_clear_error(fake_spark, fake_client, model_loader) -> None:
    fake_client.add_version(NAME)
    with pytest.raises(LookupError, match="no 'champion' alias"):
        batch_inference.run_batch_inference(
            fake_spark,
            fake_client,
            model_name=NAME,
            input_table="samples.nyctaxi.trips",
            row_limit=0,
            output_table="prod.taxi.predictions",
            load_model=model_loader({}),
        )
    assert "prod.taxi.predictions" not in fake_spark.tables


def test_score_cli_defaults_to_a_predictions_table_in_the_schema() -> None:
    args = batch_inference.build_parser().parse_args(["--catalog=c", "--schema=s", "--model_name=m"])
    assert (args.input_table, args.row_limit, args.output_table) == (
        "samples.nyctaxi.trips",
        0,
        "predictions",
    )


def test_train_validate_deploy_score_end_to_end(
    use_fake_spark, mlflow_store: str, trips: pd.DataFrame, job_parameters: list[str]
) -> None:
    """The job tasks in order, through their entry points, on a local MLflow registry; the version travels
    from train to validate and deploy through the job run id (handoff.py); each task also gets the job
    parameters that Databricks pushes down to every task, and ignores them."""
    common = ["--catalog=dev", "--schema=taxi", "--model_name=fare", *job_parameters]
    data_args = ["--input_table=samples.nyctaxi.trips", "--row_limit=400"]
    job_run = ["--job_run_id=4711", "--experiment_name=/unit/e2e"]
    train.main([*common, *data_args, *job_run])
    validate.main([*common, *data_args, *job_run])
    deploy.main([*common, *job_run])
    version = "1"
    batch_inference.main([*common, *data_args, "--output_table=scored_trips"])

    aliases = mlflow.MlflowClient().get_registered_model("dev.taxi.fare").aliases
    assert aliases == {"champion": version}
    predictions = use_fake_spark.tables["dev.taxi.scored_trips"]
    assert len(predictions) == 400
    assert set(predictions["model_version"]) == {int(version)}
    errors = (predictions["prediction"] - predictions["fare_amount"]).abs()
    assert errors.median() < 1.5
