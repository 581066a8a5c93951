"""What the ``test`` target's integration_test job left behind: a validated champion, predictions made in the
workspace, their data-profiling monitor and a monitoring verdict on its metrics."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPORT = re.compile(r"Monitoring report: (\{.*\})")


def version_tags(workspace, model_name: str, version: str) -> dict[str, str]:
    """Tags of a Unity Catalog model version, through the MLflow registry API the MLflow client uses."""
    answer = workspace.api_client.do(
        "GET",
        "/api/2.0/mlflow/unity-catalog/model-versions/get",
        query={"name": model_name, "version": version},
    )
    return {tag["key"]: tag["value"] for tag in answer["model_version"].get("tags", [])}


def last_run_task_logs(workspace, job_id: int) -> dict[str, str]:
    """Task key -> what the task wrote to stdout and stderr, for the job's most recent run."""
    runs = list(workspace.jobs.list_runs(job_id=job_id, limit=1))
    assert runs, f"job {job_id} never ran"
    run = workspace.jobs.get_run(runs[0].run_id)
    return {task.task_key: workspace.jobs.get_run_output(task.run_id).logs or "" for task in run.tasks or []}


def monitoring_report(logs: dict[str, str]) -> dict[str, Any]:
    reports = REPORT.findall(logs.get("monitor", ""))
    assert reports, "the monitor task logged no report"
    return json.loads(reports[-1])


def test_model_is_registered_with_a_validated_champion(deployment, workspace) -> None:
    model = workspace.registered_models.get(deployment.full_model_name, include_aliases=True)
    aliases = {alias.alias_name.lower(): str(alias.version_num) for alias in model.aliases or []}
    assert "champion" in aliases, f"{deployment.full_model_name} has no champion alias: {aliases}"
    assert "challenger" not in aliases, "deploy-model should have removed the challenger alias"
    tags = version_tags(workspace, deployment.full_model_name, aliases["champion"])
    assert tags.get("model_validation_status") == "PASSED", tags


def test_the_workspace_scored_plausible_fares_and_monitoring_passed(deployment, workspace) -> None:
    """Scored by the job's score task in the workspace (the model's own environment), profiled by the refresh
    task's data-profiling monitor, judged by the monitor task from its metric tables."""
    report = monitoring_report(last_run_task_logs(workspace, deployment.job_id))
    assert (report["status"], report["failures"]) == ("HEALTHY", [])
    window = report["window"]
    assert report["recent_rows"] > 0
    assert window is not None, "the monitor profiled the champion's rows"
    assert window["rows"] > 0
    assert 0 < window["mean_prediction"] < 250, window
    if window["labelled_rows"]:
        assert window["mae"] is not None, window
        assert window["mae"] < 10, window


def test_the_predictions_table_has_a_data_profiling_monitor_and_metrics(deployment, workspace) -> None:
    table = workspace.tables.get(deployment.full_predictions_table)
    monitor = workspace.data_quality.get_monitor(object_type="table", object_id=table.table_id)
    config = monitor.data_profiling_config
    assert config is not None
    log = config.inference_log
    assert (log.prediction_column, log.label_column, log.model_id_column, log.timestamp_column) == (
        "prediction",
        "fare_amount",
        "model_version",
        "scored_at",
    )
    # In the environment's own schema. (The drift metrics table needs two windows; one pull request has one.)
    metrics = workspace.tables.get(f"{deployment.full_predictions_table}_profile_metrics")
    assert (metrics.catalog_name, metrics.schema_name) == (deployment.catalog, deployment.schema)


def test_predictions_table_exists_with_lineage_columns(deployment, workspace) -> None:
    table = workspace.tables.get(deployment.full_predictions_table)
    columns = {column.name for column in table.columns or []}
    assert {"prediction", "model_version", "scored_at"} <= columns, columns
