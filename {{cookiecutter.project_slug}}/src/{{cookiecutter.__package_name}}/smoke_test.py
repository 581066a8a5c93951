"""Query the endpoint with the champion's input example; compare with batch scoring (task ``smoke_test``).

Runs right after ``serve``: the endpoint must serve the ``champion`` version, answer the model's own input
example (the ``dataframe_split`` request MLflow saved with the model, which is what Databricks clients send)
and return, row for row, what batch scoring of the same rows with the same version predicts (the version
loaded with MLflow, as batch inference does). Anything else fails the task, and with it the job run: in
staging, before a prod promotion or release may go on.

An endpoint that scales to zero takes minutes to answer its first request after idling; the query is
retried while Databricks says it is not ready yet (``--warmup_minutes``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import (
    DatabricksError,
    DeadlineExceeded,
    NotFound,
    TemporarilyUnavailable,
    TooManyRequests,
)
from databricks.sdk.service.serving import DataframeSplitInput
from mlflow.models import Model

from .cli import start_task, task_parser
from .metrics import predict_fares
from .registry import CHAMPION, AliasReader, full_name, get_alias_version, model_uri

logger = logging.getLogger(__name__)

# A fraction of a cent: the endpoint and the job may run other builds of numpy and scikit-learn.
TOLERANCE = 1e-6
_NOT_READY_YET = (TemporarilyUnavailable, DeadlineExceeded, TooManyRequests)


class SmokeTestError(RuntimeError):
    """The endpoint does not serve what batch scoring of the champion predicts."""


@dataclass(frozen=True)
class Example:
    """The model's input example: the request body the endpoint gets, and the same rows as a table."""

    request: dict[str, Any]  # {"dataframe_split": {"columns": [...], "data": [...]}}
    rows: pd.DataFrame


def load_example(uri: str) -> tuple[Example, Any]:
    """The input example MLflow saved with the model at ``uri``, and the model itself (loaded as batch
    inference loads it)."""
    local = mlflow.artifacts.download_artifacts(artifact_uri=uri)
    metadata = Model.load(local)
    serving_input = metadata.get_serving_input(local)
    rows = metadata.load_input_example(local)
    if serving_input is None or not isinstance(rows, pd.DataFrame):
        raise SmokeTestError(f"{uri} has no input example to query the endpoint with (train.py logs one)")
    return Example(request=json.loads(serving_input), rows=rows), mlflow.pyfunc.load_model(local)


def compare(served: Sequence[Any], expected: np.ndarray) -> float:
    """The largest difference between served and batch predictions; raises when they disagree."""
    served_array = np.asarray(served, dtype=float).reshape(-1)
    if served_array.shape != expected.shape:
        raise SmokeTestError(f"Got {served_array.size} predictions for {expected.size} rows")
    difference = float(np.max(np.abs(served_array - expected))) if expected.size else 0.0
    if not np.allclose(served_array, expected, rtol=TOLERANCE, atol=TOLERANCE):
        raise SmokeTestError(
            f"Served predictions differ from batch scoring of the same rows by up to {difference:.6g}: "
            f"served {served_array.tolist()}, batch {expected.tolist()}"
        )
    return difference


def query_until_ready(
    query: Callable[[], Any],
    *,
    warmup_seconds: float,
    poll_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Call ``query`` until it answers; retry only while Databricks says the endpoint is not ready yet."""
    deadline = time.monotonic() + warmup_seconds
    while True:
        try:
            return query()
        except _NOT_READY_YET as error:
            if time.monotonic() >= deadline:
                minutes = warmup_seconds / 60
                raise SmokeTestError(
                    f"The endpoint did not answer within {minutes:.0f} min: {error}"
                ) from error
            logger.info(
                "The endpoint does not answer yet (%s); again in %.0f s.", type(error).__name__, poll_seconds
            )
            sleep(poll_seconds)


def smoke_test(
    workspace: WorkspaceClient,
    registry: AliasReader,
    *,
    endpoint_name: str,
    model_name: str,
    warmup_seconds: float = 900,
    poll_seconds: float = 20,
) -> str | None:
    """Check the endpoint against batch scoring of the champion; returns the version checked, or None when
    the model has no champion yet (then nothing serves, and there is nothing to check)."""
    version = get_alias_version(registry, model_name, CHAMPION)
    if version is None:
        logger.info("%s has no %s yet: nothing is served, nothing to check.", model_name, CHAMPION)
        return None
    try:
        endpoint = workspace.serving_endpoints.get(endpoint_name)
    except NotFound as error:
        raise SmokeTestError(f"No endpoint {endpoint_name}, while {model_name} has a {CHAMPION}") from error
    entities = (endpoint.config.served_entities if endpoint.config else None) or []
    served = {entity.name: str(entity.entity_version) for entity in entities}
    if served != {CHAMPION: version}:
        raise SmokeTestError(
            f"Endpoint {endpoint_name} serves {served or 'nothing'}, not {CHAMPION} version {version} of "
            f"{model_name}: run the serve task first"
        )
    example, model = load_example(model_uri(model_name, version))
    expected = predict_fares(model, example.rows)
    split = DataframeSplitInput.from_dict(example.request["dataframe_split"])
    try:
        response = query_until_ready(
            lambda: workspace.serving_endpoints.query(endpoint_name, dataframe_split=split),
            warmup_seconds=warmup_seconds,
            poll_seconds=poll_seconds,
        )
    except DatabricksError as error:
        raise SmokeTestError(
            f"Endpoint {endpoint_name} refused the model's input example: {error}"
        ) from error
    if response.served_model_name not in (None, CHAMPION):
        raise SmokeTestError(f"{endpoint_name} answered from {response.served_model_name}, not {CHAMPION}")
    difference = compare(response.predictions or [], expected)
    logger.info(
        "Endpoint %s, %s version %s: %d predictions equal batch scoring (largest difference %.3g).",
        endpoint_name,
        model_name,
        version,
        expected.size,
        difference,
    )
    return version


def build_parser() -> argparse.ArgumentParser:
    parser = task_parser("smoke-test-endpoint", __doc__.splitlines()[0])
    parser.add_argument("--endpoint_name", required=True, help="The serving endpoint to query")
    parser.add_argument("--warmup_minutes", type=float, default=15, help="How long a cold endpoint may take")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point ``smoke-test-endpoint``."""
    args = start_task(build_parser(), argv)
    smoke_test(
        WorkspaceClient(),
        mlflow.MlflowClient(),
        endpoint_name=args.endpoint_name,
        model_name=full_name(args.catalog, args.schema, args.model_name),
        warmup_seconds=args.warmup_minutes * 60,
    )


if __name__ == "__main__":
    main()
