"""The model version travels between job tasks through MLflow, keyed by the job run id (handoff.py)."""

from __future__ import annotations

import mlflow
import pytest

from {{ cookiecutter.__package_name }} import handoff, train

NAME = "dev.taxi.fare"


def test_the_version_a_training_run_of_the_job_registered(train_and_holdout, mlflow_store: str) -> None:
    """What the train task does after fitting: a run tagged with the job run id registers the version."""
    train_df, _ = train_and_holdout
    model = train.train_model(train_df, train.TrainingConfig(max_iter=20))
    mlflow.set_experiment("/unit/handoff")
    for job_run_id in ("100", "200"):
        with mlflow.start_run(tags={handoff.JOB_RUN_TAG: job_run_id}):
            train.log_and_register(model, train_df, registered_model_name=NAME, metrics={}, params={})
    client = mlflow.MlflowClient()
    found = {
        run_id: handoff.version_of_job(
            client, model_name=NAME, job_run_id=run_id, experiment_name="/unit/handoff"
        )
        for run_id in ("100", "200")
    }
    assert found == {"100": "1", "200": "2"}


def test_nothing_trained_in_this_job_run_fails_loudly(mlflow_store: str) -> None:
    client = mlflow.MlflowClient()
    with pytest.raises(handoff.HandOffError, match="No MLflow experiment"):
        handoff.version_of_job(client, model_name=NAME, job_run_id="1", experiment_name="/unit/none")
    mlflow.set_experiment("/unit/empty")
    with pytest.raises(handoff.HandOffError, match="job_run_id=7"):
        handoff.version_of_job(client, model_name=NAME, job_run_id="7", experiment_name="/unit/empty")


def test_the_version_a_copy_task_of_the_job_tagged(fake_client) -> None:
    fake_client.add_version(NAME, tags={"job_run_id": "5"})
    fake_client.add_version(NAME, tags={"job_run_id": "6"})
    fake_client.add_version(NAME)
    assert handoff.version_of_job(fake_client, model_name=NAME, job_run_id="6", experiment_name=None) == "2"
    with pytest.raises(handoff.HandOffError, match="copied nothing"):
        handoff.version_of_job(fake_client, model_name=NAME, job_run_id="8", experiment_name=None)
