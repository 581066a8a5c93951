from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.__package_name }} import data, features, metrics, train

FAST = train.TrainingConfig(max_iter=60)
KEYS = features.SPLIT_KEY_COLUMNS


# --- data loading and splitting -------------------------------------------------------------


def test_load_table_selects_columns_and_limits_rows(fake_spark) -> None:
    frame = data.load_table(fake_spark, "samples.nyctaxi.trips", columns=["trip_distance"], row_limit=25)
    assert list(frame.columns) == ["trip_distance"]
    assert len(frame) == 25
    assert len(data.load_table(fake_spark, "samples.nyctaxi.trips")) == 600
    with pytest.raises(ValueError, match="row_limit"):
        data.load_table(fake_spark, "samples.nyctaxi.trips", row_limit=-1)


def test_split_is_deterministic_disjoint_and_about_the_right_size(trips: pd.DataFrame) -> None:
    train_df, holdout_df = data.split_train_holdout(trips, KEYS, fraction=0.2)
    again_train, again_holdout = data.split_train_holdout(trips, KEYS, fraction=0.2)
    pd.testing.assert_frame_equal(holdout_df, again_holdout)
    pd.testing.assert_frame_equal(train_df, again_train)
    assert len(train_df) + len(holdout_df) == len(trips)
    assert 0.12 < len(holdout_df) / len(trips) < 0.28
    merged = train_df.merge(holdout_df, on=list(KEYS))
    assert merged.empty


def test_a_row_stays_in_its_split_whatever_is_read_with_it(trips: pd.DataFrame) -> None:
    """Training and validation read the table separately; the holdout must not leak into training."""
    full_mask = data.holdout_mask(trips, KEYS)
    shuffled = trips.sample(frac=1.0, random_state=1)
    subset = shuffled.head(250)
    assert data.holdout_mask(subset, KEYS).tolist() == full_mask.loc[subset.index].tolist()
    # Same trips with other dtypes (as another runtime may deliver them): same split.
    retyped = trips.astype({"pickup_zip": "float64", "dropoff_zip": "int64"})
    retyped["tpep_pickup_datetime"] = retyped["tpep_pickup_datetime"].astype("datetime64[ns]")
    assert data.holdout_mask(retyped, KEYS).tolist() == full_mask.tolist()


def test_split_rejects_bad_arguments(trips: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="fraction"):
        data.holdout_mask(trips, KEYS, fraction=1.0)
    with pytest.raises(KeyError, match="no_such_column"):
        data.holdout_mask(trips, ["no_such_column"])


# --- model ----------------------------------------------------------------------------------


def test_model_learns_the_synthetic_fare(trips: pd.DataFrame) -> None:
    train_df, holdout_df = data.split_train_holdout(features.clean_trips(trips), KEYS)
    model = train.train_model(train_df, FAST)
    scores = metrics.evaluate(model, holdout_df)
    baseline = metrics.compute_metrics(
        holdout_df["fare_amount"], np.full(len(holdout_df), train_df["fare_amount"].mean())
    )
    assert scores["r2"] > 0.9
    assert scores["rmse"] < 0.3 * baseline["rmse"]
    assert scores["mae"] < scores["rmse"] * 1.01


def test_training_refuses_too_little_data(trips: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="at least"):
        train.train_model(features.clean_trips(trips).head(10), FAST)


def test_logged_model_round_trips_through_pyfunc(trips: pd.DataFrame, mlflow_store: str) -> None:
    train_df, holdout_df = data.split_train_holdout(features.clean_trips(trips), KEYS)
    model = train.train_model(train_df, FAST)
    mlflow.set_experiment("/unit/train")
    with mlflow.start_run() as run:
        version = train.log_and_register(
            model,
            train_df,
            registered_model_name="dev.taxi.fare",
            metrics={"holdout_rmse": 1.0},
            params={"a": 1},
        )
    assert version == "1"

    loaded = mlflow.pyfunc.load_model(f"models:/dev.taxi.fare/{version}")
    expected = model.predict(holdout_df.loc[:, list(features.INPUT_COLUMNS)])
    np.testing.assert_allclose(metrics.predict_fares(loaded, holdout_df), expected)

    signature_inputs = [spec.name for spec in loaded.metadata.get_input_schema().inputs]
    assert signature_inputs == list(features.INPUT_COLUMNS)
    assert loaded.metadata.get_output_schema() is not None  # Unity Catalog requires both
    code_dir = Path(mlflow.artifacts.download_artifacts(f"models:/dev.taxi.fare/{version}")) / "code"
    assert (code_dir / features.__name__.split(".")[0] / "features.py").is_file()
    finished = mlflow.get_run(run.info.run_id)
    assert finished.data.metrics["holdout_rmse"] == 1.0
    assert finished.data.params["a"] == "1"


def test_train_entry_point_registers_a_version_and_tags_its_run_with_the_job_run(
    use_fake_spark, mlflow_store: str, job_parameters: list[str]
) -> None:
    argv = [
        "--catalog=dev",
        "--schema=taxi",
        "--model_name=fare",
        "--input_table=samples.nyctaxi.trips",
        "--row_limit=500",
        "--experiment_name=/unit/train-cli",
        "--job_run_id=812",
        *job_parameters,  # pushed down by Databricks to every task: ignored
    ]
    train.main(argv)
    train.main(argv)

    client = mlflow.MlflowClient()
    version = client.get_model_version("dev.taxi.fare", "2")
    run = client.get_run(version.run_id)
    assert run.data.tags["job_run_id"] == "812"
    assert run.data.params["row_limit"] == "500"
    assert int(run.data.params["train_rows"]) + int(run.data.params["holdout_rows"]) == 500
    assert run.data.metrics["holdout_r2"] > 0.8


def test_train_cli_requires_the_contract_options() -> None:
    parser = train.build_parser()
    args = parser.parse_args(["--catalog=c", "--schema=s", "--model_name=m", "--experiment_name=/e"])
    assert (args.input_table, args.row_limit) == ("samples.nyctaxi.trips", 0)
    with pytest.raises(SystemExit):
        parser.parse_args(["--catalog=c", "--schema=s", "--model_name=m"])
    with pytest.raises(SystemExit):
        parser.parse_args(
            ["--catalog=c", "--schema=s", "--model_name=m", "--experiment_name=/e", "--row_limit=-5"]
        )
