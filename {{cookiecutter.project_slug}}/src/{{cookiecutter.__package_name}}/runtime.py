"""The process a job step runs in: logging, the MLflow tracking and registry URIs, the Spark session.

Everything here works off Databricks too: the Spark session is the active local one, or comes from
Databricks Connect when it is installed. Nothing imports pyspark at import time.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import mlflow

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

UC_REGISTRY_URI = "databricks-uc"


def is_databricks_runtime() -> bool:
    """True inside a Databricks job, notebook or serverless environment."""
    return any(os.environ.get(name) for name in ("DATABRICKS_RUNTIME_VERSION", "DATABRICKS_ENV_VERSION"))


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr with timestamps; the job run page shows it."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("py4j", "urllib3", "databricks.sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def configure_mlflow() -> None:
    """Track to the Databricks workspace and register to Unity Catalog.

    ``MLFLOW_TRACKING_URI`` and ``MLFLOW_REGISTRY_URI`` win when set, so a developer (or a test)
    can point the same entry points at another store.
    """
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri("databricks")
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI") or UC_REGISTRY_URI)


def get_spark() -> SparkSession:
    """The active Spark session: the runtime's on Databricks, Databricks Connect on a laptop."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:  # a laptop without pyspark: Databricks Connect below
        pass
    else:
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        if is_databricks_runtime():
            return SparkSession.builder.getOrCreate()

    try:
        from databricks.connect import DatabricksSession
    except ImportError as error:
        raise RuntimeError(
            "No Spark session: run this on Databricks, or install databricks-connect and "
            "configure a workspace (https://docs.databricks.com/dev-tools/databricks-connect/)."
        ) from error
    return DatabricksSession.builder.getOrCreate()
