from __future__ import annotations

import argparse
import logging
import sys
from types import SimpleNamespace

import mlflow
import pytest

from {{ cookiecutter.__package_name }} import databricks_utils


@pytest.mark.parametrize(
    ("variable", "value"), [("DATABRICKS_RUNTIME_VERSION", "16.4"), ("DATABRICKS_ENV_VERSION", "4")]
)
def test_runtime_detection(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    assert not databricks_utils.is_databricks_runtime()
    monkeypatch.setenv(variable, value)  # classic runtime / serverless environment
    assert databricks_utils.is_databricks_runtime()


def test_get_spark_without_spark_explains_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    monkeypatch.setitem(sys.modules, "databricks.connect", None)
    with pytest.raises(RuntimeError, match="databricks-connect"):
        databricks_utils.get_spark()


def test_get_spark_prefers_the_active_session(monkeypatch: pytest.MonkeyPatch) -> None:
    session = object()
    fake_sql = SimpleNamespace(SparkSession=SimpleNamespace(getActiveSession=lambda: session))
    monkeypatch.setitem(sys.modules, "pyspark", SimpleNamespace(sql=fake_sql))
    monkeypatch.setitem(sys.modules, "pyspark.sql", fake_sql)
    assert databricks_utils.get_spark() is session


def test_full_name_and_table_qualification() -> None:
    assert databricks_utils.full_name("dev", "dev_jane_taxi", "fare") == "dev.dev_jane_taxi.fare"
    assert databricks_utils.qualify_table("predictions", "dev", "taxi") == "dev.taxi.predictions"
    assert databricks_utils.qualify_table("other.schema.table", "dev", "taxi") == "other.schema.table"
    for bad in ("", "a.b", "has space", "`quoted`"):
        with pytest.raises(ValueError, match="Invalid catalog"):
            databricks_utils.full_name(bad, "taxi", "fare")


def test_configure_mlflow_targets_unity_catalog_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    previous_tracking, previous_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
        databricks_utils.configure_mlflow()
        assert mlflow.get_registry_uri() == "databricks-uc"
        assert mlflow.get_tracking_uri() == "databricks"

        local = (tmp_path / "mlruns").as_uri()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", local)
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", local)
        databricks_utils.configure_mlflow()
        assert mlflow.get_registry_uri() == local
    finally:
        mlflow.set_tracking_uri(previous_tracking)
        mlflow.set_registry_uri(previous_registry)


def test_alias_lookup_is_case_insensitive(fake_client) -> None:
    fake_client.add_version("c.s.m")
    fake_client.aliases["c.s.m"]["Champion"] = "1"
    assert databricks_utils.get_alias_version(fake_client, "c.s.m", "champion") == "1"
    assert databricks_utils.get_alias_version(fake_client, "c.s.m", "challenger") is None


def task_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="some-task")
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--model_name", default="fare")
    parser.add_argument("--row_limit", type=int, default=0)
    return parser


def test_task_arguments_ignore_pushed_down_job_parameters(caplog: pytest.LogCaptureFixture) -> None:
    """Databricks passes every job parameter to every wheel task; a task that does not take one goes on."""
    with caplog.at_level(logging.WARNING, logger=databricks_utils.__name__):
        args = databricks_utils.parse_task_args(
            task_parser(), ["--catalog=dev", "--source_version=champion", "--model=other", "--row_limit=5"]
        )
    # --model is ignored too, not taken as an abbreviation of --model_name.
    assert vars(args) == {"catalog": "dev", "model_name": "fare", "row_limit": 5}
    assert "some-task ignores arguments it does not take" in caplog.text
    assert "--source_version=champion --model=other" in caplog.text


def test_task_arguments_of_the_task_itself_are_still_checked() -> None:
    with pytest.raises(SystemExit):
        databricks_utils.parse_task_args(task_parser(), ["--source_version=champion"])  # no --catalog
    with pytest.raises(SystemExit):
        databricks_utils.parse_task_args(task_parser(), ["--catalog=dev", "--row_limit=many"])
