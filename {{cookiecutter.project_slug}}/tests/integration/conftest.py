"""Integration tests run against a workspace after CI ran the jobs on the bundle's ``test`` target.

Environment (set by the Integration tests workflow):
- ``DATABRICKS_HOST`` plus any auth the Databricks SDK understands (OIDC, client secret, profile);
- ``IT_CATALOG``, ``IT_SCHEMA``, ``IT_MODEL_NAME``: where the test target put the model;
- ``IT_JOB_ID``: the test target's ``integration_test`` job, whose last run the tests read;
- ``IT_PREDICTIONS_TABLE`` (optional, default ``predictions``): the batch job's output table.
Without ``DATABRICKS_HOST`` or ``IT_CATALOG`` every test here is skipped with the reason.

Nothing here loads the model on this machine: unpickling it here would run it with whatever library
versions this runner has, not those it was logged with. The model was scored in the workspace, by the
job's score and monitor tasks, and these tests read what they left behind. Only pytest and the Databricks
SDK are needed (requirements/ci.txt).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
_REQUIRED = ("DATABRICKS_HOST", "IT_CATALOG")


@dataclass(frozen=True)
class Deployment:
    catalog: str
    schema: str
    model_name: str
    predictions_table: str
    job_id: int

    @property
    def full_model_name(self) -> str:
        """IT_MODEL_NAME may be the bare model name (the bundle summary's) or already catalog.schema.model."""
        if "." in self.model_name:
            return self.model_name
        return f"{self.catalog}.{self.schema}.{self.model_name}"

    @property
    def full_predictions_table(self) -> str:
        if "." in self.predictions_table:
            return self.predictions_table
        return f"{self.catalog}.{self.schema}.{self.predictions_table}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test in this folder ``integration`` and skip them all without a workspace."""
    missing = [name for name in _REQUIRED if not os.environ.get(name)]
    skip = pytest.mark.skip(
        reason=f"integration tests need a Databricks workspace: {', '.join(missing)} not set"
    )
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)
            if missing:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def deployment() -> Deployment:
    missing = [name for name in ("IT_SCHEMA", "IT_MODEL_NAME", "IT_JOB_ID") if not os.environ.get(name)]
    if missing:
        pytest.fail(f"Set {', '.join(missing)} (from `databricks bundle summary -t test -o json`)")
    return Deployment(
        catalog=os.environ["IT_CATALOG"],
        schema=os.environ["IT_SCHEMA"],
        model_name=os.environ["IT_MODEL_NAME"],
        predictions_table=os.environ.get("IT_PREDICTIONS_TABLE", "predictions"),
        job_id=int(os.environ["IT_JOB_ID"]),
    )


@pytest.fixture(scope="session")
def workspace():
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient()
