"""Small adapters to the Databricks runtime: task arguments, Spark session, MLflow and naming.

Everything here works off Databricks too: the Spark session is the active local one, or comes from
Databricks Connect when it is installed. Nothing imports pyspark at import time. How a model version
travels from one task to the next: handoff.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import mlflow

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
UC_REGISTRY_URI = "databricks-uc"

_IDENTIFIER = re.compile(r"^[^.\s`]+$")


class RegisteredModelReader(Protocol):
    """The part of ``mlflow.MlflowClient`` that alias look-ups need."""

    def get_registered_model(self, name: str) -> Any: ...


def task_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """The parser of a job step, with the options every step takes: where the model lives.

    Step-specific options are added by the caller; parse with ``parse_task_args``.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--catalog", required=True, help="Unity Catalog catalog of this environment")
    parser.add_argument("--schema", required=True, help="Schema of the model (and of its tables)")
    parser.add_argument("--model_name", required=True, help="Registered model name inside the schema")
    return parser


def parse_task_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse a job task's arguments, ignoring (and logging) the ones this entry point does not take.

    Databricks pushes every job-level parameter down to each Python wheel task that takes named
    parameters, as ``--name=value``: a job parameter meant for one task (``source_version`` of
    model_promotion, for the ``copy`` task) also reaches the others. Every entry point parses through
    here, so such a parameter never fails a task. Prefix matching is off, so a pushed-down ``--model``
    is never taken for ``--model_name``. Missing or malformed options of the task itself still fail;
    a misspelt named parameter in a job definition is caught by the bundle tests instead.
    """
    parser.allow_abbrev = False
    args, ignored = parser.parse_known_args(argv)
    if ignored:
        logger.warning(
            "%s ignores arguments it does not take (job parameters reach every task): %s",
            parser.prog,
            " ".join(ignored),
        )
    return args


def start_task(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """What every job step does first: parse its arguments, then set up logging and MLflow."""
    args = parse_task_args(parser, argv)
    configure_logging()
    configure_mlflow()
    return args


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


def _check_identifier(part: str, what: str) -> str:
    if not part or not _IDENTIFIER.match(part):
        raise ValueError(
            f"Invalid {what} {part!r}: expected a non-empty name without dots, spaces or backticks."
        )
    return part


def full_name(catalog: str, schema: str, name: str) -> str:
    """``<catalog>.<schema>.<name>``, the Unity Catalog name of a model or table."""
    parts = {"catalog": catalog, "schema": schema, "name": name}
    return ".".join(_check_identifier(value, what) for what, value in parts.items())


def qualify_table(table: str, catalog: str, schema: str) -> str:
    """A bare table name lives in ``catalog.schema``; a dotted one is taken as given."""
    return table if "." in table else full_name(catalog, schema, table)


def get_alias_version(client: RegisteredModelReader, model_name: str, alias: str) -> str | None:
    """The version an alias points to, or None when the model has no such alias."""
    aliases = client.get_registered_model(model_name).aliases or {}
    return {key.lower(): str(value) for key, value in aliases.items()}.get(alias.lower())
