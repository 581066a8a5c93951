from __future__ import annotations

import sys
from types import SimpleNamespace

import mlflow
import pytest

from {{ cookiecutter.__package_name }} import runtime


@pytest.mark.parametrize(
    ("variable", "value"), [("DATABRICKS_RUNTIME_VERSION", "16.4"), ("DATABRICKS_ENV_VERSION", "4")]
)
def test_runtime_detection(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    assert not runtime.is_databricks_runtime()
    monkeypatch.setenv(variable, value)  # classic runtime / serverless environment
    assert runtime.is_databricks_runtime()


def test_get_spark_without_spark_explains_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    monkeypatch.setitem(sys.modules, "databricks.connect", None)
    with pytest.raises(RuntimeError, match="databricks-connect"):
        runtime.get_spark()


def test_get_spark_prefers_the_active_session(monkeypatch: pytest.MonkeyPatch) -> None:
    session = object()
    fake_sql = SimpleNamespace(SparkSession=SimpleNamespace(getActiveSession=lambda: session))
    monkeypatch.setitem(sys.modules, "pyspark", SimpleNamespace(sql=fake_sql))
    monkeypatch.setitem(sys.modules, "pyspark.sql", fake_sql)
    assert runtime.get_spark() is session


def test_configure_mlflow_targets_unity_catalog_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    previous_tracking, previous_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
        runtime.configure_mlflow()
        assert mlflow.get_registry_uri() == "databricks-uc"
        assert mlflow.get_tracking_uri() == "databricks"

        local = (tmp_path / "mlruns").as_uri()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", local)
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", local)
        runtime.configure_mlflow()
        assert mlflow.get_registry_uri() == local
    finally:
        mlflow.set_tracking_uri(previous_tracking)
        mlflow.set_registry_uri(previous_registry)
