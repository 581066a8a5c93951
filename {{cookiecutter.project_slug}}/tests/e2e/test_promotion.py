"""The promotion job as the bundle defines it: copy the dev champion into the staging catalog's model,
validate the copy there, deploy it. Real copy_model_version, real tags and aliases."""

from __future__ import annotations

import pytest
from e2e_support import aliases, job_definition, model_name, references_for, run_job

DEV, STAGING = model_name("dev"), model_name("staging")


@pytest.fixture(scope="module")
def dev_champion(spark, registry) -> str:
    job = job_definition("model-training.job.yml", "dev", "model_training")
    run_job(job, "model_training", "401", references_for("dev"))
    return aliases(registry, DEV)["champion"]


def test_promotion_copies_resets_validation_validates_and_deploys(registry, dev_champion: str) -> None:
    assert registry.get_model_version(DEV, dev_champion).tags["model_validation_status"] == "PASSED"
    job = job_definition("model-promotion.job.yml", "staging", "model_promotion")
    references = references_for("staging", **{"var.source_catalog": "dev", "var.source_schema": "taxi"})
    copy_task, later_tasks = {**job, "tasks": job["tasks"][:1]}, {**job, "tasks": job["tasks"][1:]}

    run_job(copy_task, "model_promotion", "501", references)  # source_version: the job parameter's default
    (copy,) = registry.search_model_versions(f"name='{STAGING}'")
    tags = registry.get_model_version(STAGING, copy.version).tags
    assert tags["promoted_from"] == f"{DEV}/{dev_champion}"
    assert tags["job_run_id"] == "501"
    assert not any(key == "model_validation_status" or key.startswith("validation_") for key in tags), tags

    run = run_job(later_tasks, "model_promotion", "501", references, completed=frozenset({"copy"}))
    assert [task["task_key"] for task in job["tasks"]] == ["copy", "validate", "deploy"]
    assert run.tasks == ["validate", "deploy"]
    assert aliases(registry, STAGING) == {"champion": str(copy.version)}
    assert registry.get_model_version(STAGING, copy.version).tags["model_validation_status"] == "PASSED"
    assert len(registry.search_model_versions(f"name='{STAGING}'")) == 1
