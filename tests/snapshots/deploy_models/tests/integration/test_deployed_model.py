"""What the ``test`` target's jobs must have left behind: a champion model and a predictions table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.integration


def synthetic_trips() -> pd.DataFrame:
    """A few plausible Manhattan and airport trips, in the model's input schema."""
    pickup = pd.to_datetime(["2016-02-03 08:15:00", "2016-02-06 23:40:00", "2016-02-10 17:05:00"])
    return pd.DataFrame(
        {
            "tpep_pickup_datetime": pickup,
            "tpep_dropoff_datetime": pickup + pd.to_timedelta([12, 35, 20], unit="min"),
            "trip_distance": [1.8, 17.2, 3.1],
            "pickup_zip": [10001.0, 10019.0, 10128.0],
            "dropoff_zip": [10011.0, 11430.0, 10023.0],
        }
    )


def test_model_is_registered_with_a_champion(deployment, mlflow_client) -> None:
    model = mlflow_client.get_registered_model(deployment.full_model_name)
    aliases = {alias.lower(): str(version) for alias, version in model.aliases.items()}
    assert "champion" in aliases, f"{deployment.full_model_name} has no champion alias: {aliases}"
    assert "challenger" not in aliases, "deploy-model should have removed the challenger alias"
    champion = mlflow_client.get_model_version(deployment.full_model_name, aliases["champion"])
    assert champion.tags.get("model_validation_status") == "PASSED"


def test_champion_loads_and_predicts_plausible_fares(deployment, mlflow_client) -> None:
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{deployment.full_model_name}@champion")
    predictions = np.asarray(model.predict(synthetic_trips()), dtype=float).reshape(-1)
    assert predictions.shape == (3,)
    assert np.isfinite(predictions).all()
    assert (predictions > 0).all(), predictions
    assert (predictions < 250).all(), predictions
    assert predictions[1] > predictions[0], "a 17-mile airport trip should cost more than a 2-mile one"


def test_predictions_table_exists_with_lineage_columns(deployment, workspace) -> None:
    table = workspace.tables.get(deployment.full_predictions_table)
    columns = {column.name for column in table.columns or []}
    assert {"prediction", "model_version", "scored_at"} <= columns, columns
