"""Unity Catalog names and the model registry: three-part names, aliases, the tags validation writes.

The steps talk to ``mlflow.MlflowClient`` through small protocols of the methods they call, so the tests
can pass a fake; :class:`AliasReader` is the part they all share.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from . import features
from .metrics import Predictor

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession

CHAMPION = "champion"
CHALLENGER = "challenger"
STATUS_TAG = "model_validation_status"
METRIC_TAG_PREFIX = "validation_"

ModelLoader = Callable[[str], Predictor]
"""Loads a model URI (``mlflow.pyfunc.load_model`` in the jobs, a stand-in in the tests)."""

PredictUdf = Callable[..., "Column"]
"""A Spark UDF: the model's INPUT_COLUMNS (one struct column) in, the predicted fare (double) out."""
UdfFactory = Callable[["SparkSession", str], PredictUdf]
"""Makes the UDF of a model URI (:func:`model_udf` in the jobs, a stand-in in the tests)."""


def predicted(predict: PredictUdf) -> Column:
    """The model's prediction per row of typed trips: the INPUT_COLUMNS as one struct in, a double out."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's convention

    return predict(F.struct(*(F.col(name) for name in features.INPUT_COLUMNS))).cast("double")


def model_udf(spark: SparkSession, uri: str) -> PredictUdf:
    """The model as a Spark UDF, run in the job's own Python environment (``env_manager="local"``): the
    environment that installed this wheel, whose versions training pinned in the model's requirements."""
    import mlflow.pyfunc

    return mlflow.pyfunc.spark_udf(spark, uri, result_type="double", env_manager="local")


_IDENTIFIER = re.compile(r"^[^.\s`]+$")


class AliasReader(Protocol):
    """The part of ``mlflow.MlflowClient`` that alias look-ups need."""

    def get_registered_model(self, name: str) -> Any: ...


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


def model_uri(model_name: str, version: str) -> str:
    return f"models:/{model_name}/{version}"


def get_alias_version(client: AliasReader, model_name: str, alias: str) -> str | None:
    """The version an alias points to, or None when the model has no such alias."""
    aliases = client.get_registered_model(model_name).aliases or {}
    return {key.lower(): str(value) for key, value in aliases.items()}.get(alias.lower())


def is_validation_tag(key: str) -> bool:
    """A tag validation writes (outcome, metrics): valid only in the registry that validated."""
    return key == STATUS_TAG or key.startswith(METRIC_TAG_PREFIX)
