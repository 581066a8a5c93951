"""Hand a model version from the task that creates it to the tasks after it, through MLflow.

Databricks task values are not an option for these tasks: ``dbutils.jobs.taskValues.set()`` is available
in Python notebooks only (Databricks docs, "Use task values to pass information between tasks",
https://docs.databricks.com/aws/en/jobs/task-values), and outside a notebook the SDK's stand-in ``dbutils``
keeps the value locally without an error, so a Python wheel task that "sets" one publishes nothing.

Instead every task of the job receives the id of the job run (the dynamic value reference ``job.run_id``
in double braces, passed as ``--job_run_id``; the same for all tasks of one run, repairs included):
- ``train-model`` tags its MLflow run with ``job_run_id``; ``validate-model`` and ``deploy-model`` find that
  run in the experiment (``search_runs``) and the version it registered
  (``search_model_versions("run_id='…'")``);
- ``promote-model`` tags the version it copied with ``job_run_id``; the tasks after it find the version of
  the target model that carries the tag.
Nothing found is an error that fails the task, with what was searched and where.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any, Protocol

from .cli import job_run_id_arg

logger = logging.getLogger(__name__)

JOB_RUN_TAG = "job_run_id"


class HandOffError(LookupError):
    """The version a previous task of this job run created cannot be found."""


class HandOffClient(Protocol):
    """The part of ``mlflow.MlflowClient`` that the look-ups use."""

    def get_experiment_by_name(self, name: str) -> Any: ...

    def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str = "",
        *,
        max_results: int = ...,
        order_by: list[str] | None = None,
    ) -> Any: ...

    def search_model_versions(self, filter_string: str | None = None) -> Any: ...

    def get_model_version(self, name: str, version: str) -> Any: ...


def _quoted(value: str) -> str:
    if "'" in value:
        raise ValueError(f"Unexpected quote in {value!r}")
    return f"'{value}'"


def training_run_of_job(client: HandOffClient, experiment_name: str, job_run_id: str) -> str:
    """The MLflow run that ``train-model`` started in this job run; the newest one after a repair."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise HandOffError(f"No MLflow experiment {experiment_name!r}: did the train task of this job run?")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.{JOB_RUN_TAG} = {_quoted(job_run_id_arg(job_run_id))}",
        order_by=["attributes.start_time DESC"],
        max_results=10,
    )
    if not runs:
        raise HandOffError(
            f"No MLflow run tagged {JOB_RUN_TAG}={job_run_id} in {experiment_name!r}: the train task of "
            "this job run registered nothing (or ran with another experiment_name)"
        )
    if len(runs) > 1:
        logger.warning("%d training runs of job run %s; taking the newest.", len(runs), job_run_id)
    return runs[0].info.run_id


def version_of_run(client: HandOffClient, model_name: str, run_id: str) -> str:
    """The version of ``model_name`` that the MLflow run ``run_id`` registered."""
    found = client.search_model_versions(f"run_id={_quoted(run_id)}")
    versions = sorted((int(v.version) for v in found if v.name == model_name), reverse=True)
    if not versions:
        raise HandOffError(f"The MLflow run {run_id} registered no version of {model_name}")
    return str(versions[0])


def copy_of_job(client: HandOffClient, model_name: str, job_run_id: str) -> str:
    """The version of ``model_name`` tagged with this job run's id by ``promote-model``."""
    job_run_id = job_run_id_arg(job_run_id)
    found = client.search_model_versions(f"name={_quoted(model_name)}")
    for version in sorted((str(v.version) for v in found), key=int, reverse=True):
        tags = client.get_model_version(model_name, version).tags or {}
        if tags.get(JOB_RUN_TAG) == job_run_id:
            return version
    raise HandOffError(
        f"No version of {model_name} is tagged {JOB_RUN_TAG}={job_run_id}: the copy task of this job run "
        "copied nothing"
    )


def version_of_job(
    client: HandOffClient, *, model_name: str, job_run_id: str, experiment_name: str | None
) -> str:
    """The version this job run created: trained (with ``experiment_name``) or copied (without)."""
    if experiment_name:
        version = version_of_run(client, model_name, training_run_of_job(client, experiment_name, job_run_id))
    else:
        version = copy_of_job(client, model_name, job_run_id)
    logger.info("Job run %s created version %s of %s.", job_run_id, version, model_name)
    return version


def resolve_version(client: HandOffClient, args: argparse.Namespace, model_name: str) -> str:
    """The version the task works on: the one given, or the one this job run created.

    ``args`` holds the options of ``cli.add_version_arguments``.
    """
    if args.model_version:
        return args.model_version
    return version_of_job(
        client, model_name=model_name, job_run_id=args.job_run_id, experiment_name=args.experiment_name
    )
