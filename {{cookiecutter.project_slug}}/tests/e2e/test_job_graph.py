"""The training and batch inference jobs as the bundle defines them, on real MLflow and Spark (monitoring:
test_monitoring_job.py)."""

from __future__ import annotations

from typing import Any

import mlflow
import pytest
from e2e_support import (
    INPUT_TABLE,
    NOISY_TABLE,
    JobRunError,
    aliases,
    job_definition,
    model_name,
    references_for,
    run_job,
    tables_for,
)

from {{ cookiecutter.__package_name }}.deploy import DeploymentError
from {{ cookiecutter.__package_name }}.validate import ModelValidationError

DEV = model_name("dev")


def run_training(run_id: str, *, input_table: str = INPUT_TABLE, target: str = "dev") -> Any:
    job = job_definition("model-training.job.yml", target, "model_training")
    return run_job(job, "model_training", run_id, references_for("dev", input_table=input_table))


@pytest.fixture(scope="module")
def first_champion(spark, registry) -> str:
    """The training job's first run: train -> validate -> deploy; its version becomes champion."""
    run = run_training("101")
    assert run.tasks == ["train", "validate", "deploy"]
    return aliases(registry, DEV)["champion"]


def test_training_job_registers_a_signed_version_and_deploys_it(registry, first_champion: str) -> None:
    assert first_champion == "1"
    assert aliases(registry, DEV) == {"champion": "1"}, "deploy moves champion and drops challenger"
    version = registry.get_model_version(DEV, "1")
    assert version.tags["model_validation_status"] == "PASSED"
    assert float(version.tags["validation_rmse"]) < 2.0
    assert version.tags["validation_evaluated_on"] == (
        "the whole holdout split of spark_catalog.e2e_input.trips (every row), on the executors"
    ), "validation says which rows it judged"
    run = registry.get_run(version.run_id)
    assert run.data.tags["job_run_id"] == "101", "the hand-off tag the later tasks searched for"
    signature = mlflow.models.get_model_info(f"models:/{DEV}/1").signature
    assert signature.inputs is not None, "Unity Catalog requires inputs"
    assert signature.outputs is not None, "and outputs"


def test_batch_inference_scores_with_the_champion(spark, registry, first_champion: str) -> None:
    champion = aliases(registry, DEV)["champion"]
    spark.sql("CREATE DATABASE IF NOT EXISTS spark_catalog.e2e_dev")
    job = job_definition("batch-inference.job.yml", "dev", "batch_inference")
    run_job(job, "batch_inference", "201", references_for("dev"), tables=tables_for("dev"))

    predictions = spark.read.table(tables_for("dev")["predictions"]).toPandas()
    assert len(predictions) == spark.read.table(INPUT_TABLE).count()
    assert set(predictions["model_version"]) == {int(champion)}
    assert (predictions["prediction"] - predictions["fare_amount"]).abs().median() < 1.5


def test_champion_moves_to_an_equal_model_and_never_to_a_worse_one(registry, first_champion: str) -> None:
    before = aliases(registry, DEV)["champion"]
    run_training("301")  # same data, same quality: within max_regression, so it is deployed
    equal = aliases(registry, DEV)["champion"]
    assert int(equal) == int(before) + 1

    with pytest.raises(JobRunError) as failed:
        run_training("302", input_table=NOISY_TABLE)  # fares shuffled: it learns nothing
    assert failed.value.task_key == "validate"
    assert isinstance(failed.value.error, ModelValidationError)
    worse = str(int(equal) + 1)
    assert registry.get_model_version(DEV, worse).tags["model_validation_status"] == "FAILED"
    assert aliases(registry, DEV) == {"champion": equal}, "a worse model is neither challenger nor champion"

    deploy = job_definition("model-training.job.yml", "dev", "model_training")
    deploy["tasks"] = [task for task in deploy["tasks"] if task["task_key"] == "deploy"]
    with pytest.raises(JobRunError) as refused:
        run_job(deploy, "model_training", "302", references_for("dev"), completed=frozenset({"validate"}))
    assert isinstance(refused.value.error, DeploymentError), "deploy refuses what validation failed"


def test_the_hand_off_fails_loudly_when_the_job_run_trained_nothing(registry, first_champion: str) -> None:
    job = job_definition("model-training.job.yml", "dev", "model_training")
    job["tasks"] = [task for task in job["tasks"] if task["task_key"] != "train"]
    with pytest.raises(JobRunError) as failed:
        run_job(job, "model_training", "999", references_for("dev"), completed=frozenset({"train"}))
    assert failed.value.task_key == "validate"
    assert "job_run_id=999" in str(failed.value.error)
