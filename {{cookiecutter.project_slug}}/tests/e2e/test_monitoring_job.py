"""The model_monitoring job as the bundle defines it, on real MLflow and Spark: the verdict on the monitor's
metric tables, then the decision to retrain or not, task by task under Databricks' ``run_if`` rules.

Databricks computes the metric tables (data profiling) in the workspace; here :func:`profile_locally` stands
in for the ``refresh`` task and writes them with Spark from the predictions table, in the columns and types of
Databricks' documented schema ("Data profiling metric tables", "Column schemas for generated tables": the URL
is profiling.DOCS). The Jobs API that the retraining gate asks is a fake (:class:`Jobs`); the ``retrain`` task
(a ``run_job_task``) runs the bundle's model_training job, as Databricks would.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import import_module
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from e2e_support import (
    PROJECT,
    aliases,
    entry_points,
    job_definition,
    model_name,
    references_for,
    resolve,
    run_job,
)

from {{ cookiecutter.__package_name }} import monitoring, profiling
from {{ cookiecutter.__package_name }}.monitoring import ModelMonitoringError

CATALOG = TARGET = "prod"
MODEL = model_name(CATALOG)
TABLES = {name: f"spark_catalog.e2e_{CATALOG}.{name}" for name in ("predictions", "monitoring_verdicts")}
PREDICTIONS, VERDICTS = TABLES["predictions"], TABLES["monitoring_verdicts"]
PROFILE, DRIFT = profiling.metric_tables(PREDICTIONS)

# Databricks' documented columns of the two metric tables (profiling.DOCS), for an inference log whose model
# id column is model_version; the model quality columns are those of a regression.
PROFILE_SCHEMA = (
    "`window` STRUCT<start: TIMESTAMP, end: TIMESTAMP>, log_type STRING, logging_table_commit_version INT, "
    "monitor_version BIGINT, granularity STRING, model_version STRING, slice_key STRING, slice_value STRING, "
    "column_name STRING, data_type STRING, `count` BIGINT, num_nulls BIGINT, avg DOUBLE, "
    "quantiles ARRAY<DOUBLE>, min DOUBLE, max DOUBLE, stddev DOUBLE, num_zeros BIGINT, num_nan BIGINT, "
    "min_length DOUBLE, max_length DOUBLE, avg_length DOUBLE, non_null_columns ARRAY<STRING>, "
    "frequent_items ARRAY<STRUCT<item: STRING, count: BIGINT>>, median DOUBLE, distinct_count BIGINT, "
    "percent_nan DOUBLE, percent_null DOUBLE, percent_zeros DOUBLE, percent_distinct DOUBLE, "
    "mean_squared_error DOUBLE, root_mean_squared_error DOUBLE, mean_average_error DOUBLE, "
    "mean_absolute_percentage_error DOUBLE, r2_score DOUBLE"
)
DRIFT_SCHEMA = (
    "`window` STRUCT<start: TIMESTAMP, end: TIMESTAMP>, window_cmp STRUCT<start: TIMESTAMP, end: TIMESTAMP>, "
    "drift_type STRING, granularity STRING, monitor_version BIGINT, model_version STRING, slice_key STRING, "
    "slice_value STRING, column_name STRING, data_type STRING, count_delta DOUBLE, avg_delta DOUBLE, "
    "percent_null_delta DOUBLE, percent_zeros_delta DOUBLE, percent_distinct_delta DOUBLE, "
    "non_null_columns_delta STRUCT<added: INT, missing: INT>, js_distance DOUBLE, "
    "ks_test STRUCT<statistic: DOUBLE, pvalue: DOUBLE>, wasserstein_distance DOUBLE, "
    "population_stability_index DOUBLE, chi_squared_test STRUCT<statistic: DOUBLE, pvalue: DOUBLE>, "
    "tv_distance DOUBLE, l_infinity_distance DOUBLE"
)


def _documented(frame: Any, schema: str) -> Any:
    """The frame in the documented columns and types, in their order; columns it lacks are null."""
    from pyspark.sql import functions as sf

    fields = frame.sparkSession.createDataFrame([], schema).schema.fields
    present = set(frame.columns)
    return frame.select(
        *[
            (sf.col(f"`{item.name}`") if item.name in present else sf.lit(None))
            .cast(item.dataType)
            .alias(item.name)
            for item in fields
        ]
    )


def profile_locally(spark: Any, table_name: str) -> None:
    """What a refresh of the monitor leaves behind, computed with Spark: daily windows per model id and for
    all models (``*``), whole-table rows (model quality on labelled rows), rows for the prediction and label
    columns, rows of a slice that the verdict must not read (their MAE is wrong on purpose), and consecutive
    drift."""
    from pyspark.sql import functions as sf

    if not spark.catalog.tableExists(table_name):
        return  # like the real task: no predictions table, nothing to profile
    predictions = spark.read.table(table_name)
    error = sf.col("prediction") - sf.col("fare_amount")
    parts = []
    for model in (sf.col("model_version").cast("string"), sf.lit("*")):
        grouped = predictions.groupBy(
            sf.window("scored_at", "1 day").alias("window"), model.alias("model_version")
        )
        parts.append(
            grouped.agg(
                sf.count(sf.lit(1)).alias("count"),
                sf.avg(sf.abs(error)).alias("mean_average_error"),
                sf.avg(error * error).alias("mean_squared_error"),
                sf.sqrt(sf.avg(error * error)).alias("root_mean_squared_error"),
            ).withColumn("column_name", sf.lit(profiling.TABLE_LEVEL))
        )
        for column in ("prediction", "fare_amount"):
            parts.append(
                grouped.agg(
                    sf.count(sf.lit(1)).alias("count"),
                    sf.sum(sf.col(column).isNull().cast("long")).alias("num_nulls"),
                    sf.avg(column).alias("avg"),
                    sf.min(column).alias("min"),
                    sf.max(column).alias("max"),
                ).withColumn("column_name", sf.lit(column))
            )
    whole = functools.reduce(lambda left, right: left.unionByName(right, allowMissingColumns=True), parts)
    sliced = whole.withColumns(
        {
            "slice_key": sf.lit(profiling.SLICING_EXPRS[0]),
            "slice_value": sf.lit("true"),
            "mean_average_error": sf.lit(1e6),
        }
    )
    profile = whole.unionByName(sliced, allowMissingColumns=True).withColumns(
        {"log_type": sf.lit("INPUT"), "granularity": sf.lit("1 day"), "monitor_version": sf.lit(0)}
    )
    _documented(profile, PROFILE_SCHEMA).write.mode("overwrite").saveAsTable(f"{table_name}_profile_metrics")

    means = profile.where((sf.col("column_name") == "prediction") & sf.col("slice_key").isNull())
    current, previous = means.alias("current"), means.alias("previous")
    drift = current.join(
        previous,
        (sf.col("current.model_version") == sf.col("previous.model_version"))
        & (sf.col("current.window.start") == sf.col("previous.window.end")),
    ).select(
        sf.col("current.window").alias("window"),
        sf.col("previous.window").alias("window_cmp"),
        sf.col("current.model_version").alias("model_version"),
        (sf.col("current.avg") - sf.col("previous.avg")).alias("avg_delta"),
        (sf.col("current.count") - sf.col("previous.count")).alias("count_delta"),
        sf.lit("prediction").alias("column_name"),
        sf.lit(profiling.CONSECUTIVE).alias("drift_type"),
        sf.lit("1 day").alias("granularity"),
        sf.lit(0).alias("monitor_version"),
    )
    _documented(drift, DRIFT_SCHEMA).write.mode("overwrite").saveAsTable(f"{table_name}_drift_metrics")


# --- Running the monitoring job as Databricks would -------------------------------------------------------


def merged_job(path: str, target: str, job_key: str) -> dict[str, Any]:
    """The job as a target deploys it: the top-level definition, then the target's override (tasks added)."""
    content = yaml.safe_load((PROJECT / "resources" / path).read_text())
    job = copy.deepcopy(content["resources"]["jobs"][job_key])
    override = (
        content.get("targets", {}).get(target, {}).get("resources", {}).get("jobs", {}).get(job_key, {})
    )
    for key, value in override.items():
        job[key] = [*job.get(key, []), *value] if key == "tasks" else value
    return job


def trains_in(target: str) -> bool:
    content = yaml.safe_load((PROJECT / "resources" / "model-training.job.yml").read_text())
    return "model_training" in content["targets"].get(target, {}).get("resources", {}).get("jobs", {})


# Where the training job for the prod catalog comes from: prod's own (deploy code), or dev's definition
# standing in where prod never trains (how the champion got there does not matter to monitoring).
TRAINING_TARGET = TARGET if trains_in(TARGET) else "dev"
MONITORING_JOB = merged_job("model-monitoring.job.yml", TARGET, "model_monitoring")
RETRAINS = any("run_job_task" in task for task in MONITORING_JOB["tasks"])
TRAINING_JOB_ID = "4242"


def references(**variables: str) -> dict[str, str]:
    """The bundle references of the monitoring job, its variables at their defaults unless given."""
    content = yaml.safe_load((PROJECT / "resources" / "model-monitoring.job.yml").read_text())
    defaults = {name: str(spec["default"]) for name, spec in content["variables"].items()}
    return {
        **references_for(CATALOG),
        **{f"var.{name}": value for name, value in {**defaults, **variables}.items()},
        "var.read_group": "data-scientists",
        "workspace.root_path": "/Workspace/Users/sp/.bundle/e2e/prod",
        "resources.jobs.model_training.id": TRAINING_JOB_ID,
    }


class Jobs:
    """The Jobs API's ``list_runs`` of the training job: the runs the test says started."""

    def __init__(self, *started: datetime) -> None:
        self.started = started

    def list_runs(self, job_id: int, start_time_from: int) -> list[SimpleNamespace]:
        assert str(job_id) == TRAINING_JOB_ID
        return [
            SimpleNamespace(run_id=i, start_time=int(s.timestamp() * 1000))
            for i, s in enumerate(self.started)
        ]


@dataclass
class JobRun:
    states: dict[str, str] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    result: str = "SUCCEEDED"


def run_monitoring_job(
    run_id: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    jobs: Jobs | None = None,
    refresh: bool = True,
    **variables: str,
) -> JobRun:
    """The tasks in order, each run or not by Databricks' rules: ``run_if`` (default ALL_SUCCESS) over the
    states of its dependencies; AT_LEAST_ONE_FAILED not met marks a task EXCLUDED, which counts as a success,
    and a task whose dependencies are all excluded is excluded too. The run failed if a leaf task did not
    succeed, and "succeeded with failures" if only tasks upstream of succeeding leaves failed."""
    refs, run = references(**variables), JobRun()
    monkeypatch.setattr("databricks.sdk.WorkspaceClient", lambda: SimpleNamespace(jobs=jobs or Jobs()))
    for task in MONITORING_JOB["tasks"]:
        before = [run.states[dependency["task_key"]] for dependency in task.get("depends_on", [])]
        failed = any(state in ("FAILED", "UPSTREAM_FAILED") for state in before)
        if before and all(state == "EXCLUDED" for state in before):
            state = "EXCLUDED"
        elif task.get("run_if", "ALL_SUCCESS") == "AT_LEAST_ONE_FAILED":
            state = "RUN" if failed else "EXCLUDED"
        else:
            state = "UPSTREAM_FAILED" if failed else "RUN"
        if state == "RUN":
            try:
                run_task(task, run_id, refs, refresh=refresh)
                state = "SUCCESS"
            except Exception as error:
                state, run.errors[task["task_key"]] = "FAILED", error
        run.states[task["task_key"]] = state
    upstream = {
        dependency["task_key"]
        for task in MONITORING_JOB["tasks"]
        for dependency in task.get("depends_on", [])
    }
    leaves = [state for key, state in run.states.items() if key not in upstream]
    if any(state in ("FAILED", "UPSTREAM_FAILED") for state in leaves):
        run.result = "FAILED"
    elif "FAILED" in run.states.values():
        run.result = "SUCCEEDED_WITH_FAILURES"
    return run


def run_task(task: Mapping[str, Any], run_id: str, refs: Mapping[str, str], *, refresh: bool) -> None:
    if "run_job_task" in task:
        assert resolve(task["run_job_task"]["job_id"], refs, run_id) == TRAINING_JOB_ID, (
            "this target's training"
        )
        train(f"{run_id}1")
        return
    wheel = task["python_wheel_task"]
    named = {key: resolve(value, refs, run_id) for key, value in wheel["named_parameters"].items()}
    named = {key: TABLES.get(value, value) for key, value in named.items()}
    if wheel["entry_point"] == "refresh-monitor":
        if refresh:
            profile_locally(active_spark(), named["predictions_table"])
        return
    module, _, function = entry_points()[wheel["entry_point"]].partition(":")
    getattr(import_module(module), function)([f"--{key}={value}" for key, value in named.items()])


def active_spark() -> Any:
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def train(run_id: str) -> None:
    job = job_definition("model-training.job.yml", TRAINING_TARGET, "model_training")
    run_job(job, "model_training", run_id, references_for(CATALOG))


def score(run_id: str) -> None:
    job = job_definition("batch-inference.job.yml", TARGET, "batch_inference")
    run_job(job, "batch_inference", run_id, references_for(CATALOG), tables=TABLES)


def last_verdict(spark: Any) -> dict[str, Any]:
    row = spark.read.table(VERDICTS).orderBy("checked_at", ascending=False).first()
    return {**row.asDict(), "report": json.loads(row["report"])}


# --- The tests, in the order an environment lives them -----------------------------------------------------


@pytest.fixture(scope="module")
def environment(spark, registry) -> Any:
    spark.sql(f"CREATE DATABASE IF NOT EXISTS spark_catalog.e2e_{CATALOG}")
    return spark


def test_the_first_days_end_green_and_say_why(environment, monkeypatch) -> None:
    """No champion: nothing to monitor. A new champion not scored yet: expected, checked again tomorrow."""
    run = run_monitoring_job("601", monkeypatch)
    assert run.result == "SUCCEEDED", run.errors
    assert last_verdict(environment)["status"] == "NO_CHAMPION"

    train("602")
    run = run_monitoring_job("603", monkeypatch)
    assert run.result == "SUCCEEDED", run.errors
    verdict = last_verdict(environment)
    assert (verdict["status"], verdict["model_version"], verdict["job_run_id"]) == (
        "AWAITING_FIRST_SCORING",
        "1",
        "603",
    )
    assert not environment.catalog.tableExists(PROFILE), "no predictions yet: nothing was profiled"


def test_a_healthy_champion_is_judged_from_the_metric_tables(environment, monkeypatch) -> None:
    score("604")
    run = run_monitoring_job("605", monkeypatch)
    assert run.result == "SUCCEEDED", run.errors
    skipped = {"retrain_gate": "EXCLUDED", "retrain": "EXCLUDED"} if RETRAINS else {}
    assert run.states == {"refresh": "SUCCESS", "verdict": "SUCCESS", **skipped}
    verdict = last_verdict(environment)
    report, scored = verdict["report"], environment.read.table(PREDICTIONS).count()
    assert (verdict["status"], report["recent_rows"], report["window"]["rows"]) == ("HEALTHY", scored, scored)
    assert report["window"]["labelled_rows"] == scored
    assert 0 < report["window"]["mae"] < 1.5, "the whole table's MAE, not the slice's (1e6)"
    assert report["drift"] is None, "the champion's first window has no previous one"


def test_a_breach_retrains_through_the_gate(environment, registry, monkeypatch) -> None:
    before = int(aliases(registry, MODEL)["champion"])
    run = run_monitoring_job("606", monkeypatch, max_mae="0.001")
    assert isinstance(run.errors["verdict"], ModelMonitoringError)
    assert last_verdict(environment)["status"] == "BREACH"
    if not RETRAINS:
        assert run.result == "FAILED", "prod never trains here: the failed run is what reaches the team"
        assert int(aliases(registry, MODEL)["champion"]) == before
        return
    assert run.states == {
        "refresh": "SUCCESS",
        "verdict": "FAILED",
        "retrain_gate": "SUCCESS",
        "retrain": "SUCCESS",
    }
    assert run.result == "SUCCEEDED_WITH_FAILURES", "the breach was answered; the verdict task still tells"
    assert int(aliases(registry, MODEL)["champion"]) == before + 1, "the retrained version passed validation"


def test_a_moved_mean_is_a_breach_and_no_second_training_within_the_period(
    environment, registry, monkeypatch
) -> None:
    """Yesterday's batch of the champion predicted 1.5 times higher: today's mean is a third lower. The
    training job ran two hours ago (the retraining above), so the gate lets no second one start."""
    from pyspark.sql import functions as sf

    champion = aliases(registry, MODEL)["champion"]
    score("607")
    today = environment.read.table(PREDICTIONS).where(sf.col("model_version") == int(champion))
    yesterday = today.withColumns(
        {
            "prediction": sf.col("prediction") * 1.5,
            "scored_at": sf.col("scored_at") - sf.expr("INTERVAL 1 DAY"),
        }
    )
    yesterday.write.mode("append").saveAsTable(PREDICTIONS)
    run = run_monitoring_job("608", monkeypatch, jobs=Jobs(datetime.now(UTC) - timedelta(hours=2)))
    assert isinstance(run.errors["verdict"], ModelMonitoringError)
    report = last_verdict(environment)["report"]
    assert report["drift"]["mean_shift"] == pytest.approx(1 / 3, abs=0.01)
    assert report["failures"] == [report["failures"][0]]
    assert report["failures"][0].startswith("The mean prediction moved by 33.3%")
    assert run.result == "FAILED"
    if RETRAINS:
        assert (run.states["retrain_gate"], run.states["retrain"]) == ("FAILED", "UPSTREAM_FAILED")
        assert "within the last 72 hours" in str(run.errors["retrain_gate"])
    assert aliases(registry, MODEL)["champion"] == champion, "no second training"


def test_alarms_that_retraining_does_not_answer_never_retrain(environment, registry, monkeypatch) -> None:
    """Scored rows the monitor did not profile, and a champion that nobody scored for days."""
    champion = aliases(registry, MODEL)["champion"]
    environment.sql(f"DROP TABLE {PROFILE}")
    run = run_monitoring_job("609", monkeypatch, refresh=False)
    assert last_verdict(environment)["status"] == "METRICS_MISSING"
    assert run.result == "FAILED"
    if RETRAINS:
        assert run.states["retrain"] == "UPSTREAM_FAILED"
        assert "a new model does not answer it" in str(run.errors["retrain_gate"])

    later = datetime.now(UTC) + timedelta(days=10)
    with pytest.raises(ModelMonitoringError, match=f"No predictions of version {champion} since"):
        monitoring.run_monitoring(
            environment,
            registry,
            model_name=MODEL,
            predictions_table=PREDICTIONS,
            verdict_table=VERDICTS,
            job_run_id="610",
            now=later,
        )
    assert (last_verdict(environment)["status"], aliases(registry, MODEL)["champion"]) == (
        "NO_RECENT_PREDICTIONS",
        champion,
    )
