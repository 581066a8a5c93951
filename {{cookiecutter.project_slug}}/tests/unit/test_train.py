from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.__package_name }} import features, metrics, train

FAST = train.TrainingConfig(max_iter=60)


# --- model ----------------------------------------------------------------------------------


def test_model_learns_the_synthetic_fare(train_and_holdout) -> None:
    train_df, holdout_df = train_and_holdout
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


def test_logged_model_round_trips_through_pyfunc(train_and_holdout, mlflow_store: str) -> None:
    train_df, holdout_df = train_and_holdout
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


def test_train_cli_requires_the_contract_options() -> None:
    parser = train.build_parser()
    args = parser.parse_args(["--catalog=c", "--schema=s", "--model_name=m", "--experiment_name=/e"])
    assert (args.input_table, args.row_limit) == ("samples.nyctaxi.trips", 0)
    assert args.max_training_rows == 500_000
    with pytest.raises(SystemExit):
        parser.parse_args(["--catalog=c", "--schema=s", "--model_name=m"])
    with pytest.raises(SystemExit):
        parser.parse_args(
            ["--catalog=c", "--schema=s", "--model_name=m", "--experiment_name=/e", "--row_limit=-5"]
        )
    with pytest.raises(SystemExit):
        parser.parse_args(
            ["--catalog=c", "--schema=s", "--model_name=m", "--experiment_name=/e", "--max_training_rows=0"]
        )
