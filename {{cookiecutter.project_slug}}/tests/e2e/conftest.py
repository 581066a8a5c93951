"""The local end-to-end tier: the bundle's jobs, task by task, on a real MLflow registry and Spark session.

Each test runs a job as Databricks would: the tasks of its definition in ``resources/`` in order, each
through its console script with the job's named parameters (the job run id reference and bundle references
resolved to local values), against a real MLflow tracking server and model registry (sqlite and an artifact
folder: aliases, tags and ``copy_model_version`` are MLflow's own) and a real local Spark session on a small
trips table the tests write. Nothing of MLflow or Spark is faked here.

Differences from a workspace, on purpose: Spark has only its session catalog, so tables are named
``spark_catalog.<schema>.<table>`` while model names keep the job's catalog (``dev.<schema>.<model>``).

Java 17 or newer is the one system requirement (pyspark); without it every test here is skipped, saying so.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Spark's Python workers (the model's UDF runs there) use this interpreter, the one with the packages.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

import numpy as np
import pytest
from e2e_support import EXPERIMENT, INPUT_TABLE, NOISY_TABLE, java_problem, trips

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test in this folder ``e2e``; skip them all, with the reason, where Java is missing."""
    mine = [item for item in items if _HERE in item.path.resolve().parents]
    problem = java_problem() if mine else None
    for item in mine:
        item.add_marker(pytest.mark.e2e)
        if problem:
            item.add_marker(pytest.mark.skip(reason=problem))


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local Spark session for the test session: one core, no UI, loopback only, nothing downloaded."""
    from pyspark.sql import SparkSession

    root = tmp_path_factory.mktemp("spark")
    session = (
        SparkSession.builder.master("local[1]")
        .appName("e2e")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.catalogImplementation", "in-memory")
        .config("spark.sql.warehouse.dir", str(root / "warehouse"))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.jars.ivy", str(root / "ivy"))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    session.sql("CREATE DATABASE IF NOT EXISTS spark_catalog.e2e_input")
    good = trips()
    session.createDataFrame(good).write.mode("overwrite").saveAsTable(INPUT_TABLE)
    noisy = good.assign(fare_amount=np.random.default_rng(1).permutation(good["fare_amount"].to_numpy()))
    session.createDataFrame(noisy).write.mode("overwrite").saveAsTable(NOISY_TABLE)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real MLflow tracking server and model registry: sqlite, artifacts in a folder. Returns a client."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        # configure_mlflow() in every entry point keeps these instead of the workspace.
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_REGISTRY_URI", uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        mlflow.create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())
        yield mlflow.MlflowClient()
        while mlflow.active_run():
            mlflow.end_run()
