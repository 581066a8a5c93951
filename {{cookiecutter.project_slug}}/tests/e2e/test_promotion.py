"""The promotion chain as the bundle defines it: the first source environment trains, then each
promotion target's model_promotion job copies the previous environment's champion into its own catalog's
model, validates the copy there and deploys it; the last one (prod) scores with it and monitors it. Real
copy_model_version, real tags and aliases, real Spark.

The chain is read from the bundle, never written here: resources/model-promotion.job.yml names each promotion
target and its source catalog, databricks.yml each environment's catalog. Deploy models: dev trains, staging
copies from dev, prod from staging. Hybrid: staging trains, prod copies from staging.
"""

from __future__ import annotations

from typing import Any

import pytest
import test_monitoring_job as monitoring_job
import yaml
from e2e_support import PROJECT, SCHEMA, aliases, job_definition, model_name, references_for, run_job


def promotion_chain() -> list[tuple[str, str]]:
    """(promotion target, source environment), in the order the file lists them (the order models move in)."""
    targets = yaml.safe_load((PROJECT / "resources" / "model-promotion.job.yml").read_text())["targets"]
    bundle = yaml.safe_load((PROJECT / "databricks.yml").read_text())["targets"]
    environment_of = {bundle[env]["variables"]["catalog"]: env for env in ("prod", "staging", "dev")}
    return [(target, environment_of[spec["variables"]["source_catalog"]]) for target, spec in targets.items()]


def trains_in(target: str) -> bool:
    targets = yaml.safe_load((PROJECT / "resources" / "model-training.job.yml").read_text())["targets"]
    return "model_training" in (targets.get(target) or {}).get("resources", {}).get("jobs", {})


CHAIN = promotion_chain()
TRAINED_IN = CHAIN[0][1]
LAST = CHAIN[-1][0]


def test_the_chain_starts_where_the_model_is_trained_and_no_promotion_target_trains() -> None:
    assert [target for target, _ in CHAIN][-1] == "prod", "every chain ends in prod"
    assert all(source == previous for (_, source), (previous, _) in zip(CHAIN[1:], CHAIN, strict=False))
    assert trains_in(TRAINED_IN), f"{TRAINED_IN} trains the model the chain promotes"
    assert not any(trains_in(target) for target, _ in CHAIN), "a promotion target never trains"


@pytest.fixture(scope="module")
def source_champion(spark, registry) -> str:
    job = job_definition("model-training.job.yml", TRAINED_IN, "model_training")
    run_job(job, "model_training", "401", references_for(TRAINED_IN))
    return aliases(registry, model_name(TRAINED_IN))["champion"]


@pytest.fixture(scope="module")
def promoted(registry, source_champion: str) -> dict[str, Any]:
    """Each promotion of the chain as Databricks runs it: the copy task, then validate and deploy (a repair
    run of the same job run), with what each step left in the registry."""
    champions, steps = {TRAINED_IN: source_champion}, []
    for n, (target, source) in enumerate(CHAIN):
        run_id = str(501 + n)
        job = job_definition("model-promotion.job.yml", target, "model_promotion")
        references = references_for(target, **{"var.source_catalog": source, "var.source_schema": SCHEMA})
        copy_task, later_tasks = {**job, "tasks": job["tasks"][:1]}, {**job, "tasks": job["tasks"][1:]}
        run_job(copy_task, "model_promotion", run_id, references)  # source_version: the parameter's default
        (copy,) = registry.search_model_versions(f"name='{model_name(target)}'")
        tags_after_copy = dict(registry.get_model_version(model_name(target), copy.version).tags)
        run = run_job(later_tasks, "model_promotion", run_id, references, completed=frozenset({"copy"}))
        champions[target] = str(copy.version)
        steps.append(
            {
                "target": target,
                "source": source,
                "run_id": run_id,
                "tasks": [task["task_key"] for task in job["tasks"]],
                "later": run.tasks,
                "copy": str(copy.version),
                "tags_after_copy": tags_after_copy,
            }
        )
    return {"champions": champions, "steps": steps}


def test_promotion_copies_resets_validation_validates_and_deploys(registry, promoted: dict[str, Any]) -> None:
    champions = promoted["champions"]
    trained = registry.get_model_version(model_name(TRAINED_IN), champions[TRAINED_IN])
    assert trained.tags["model_validation_status"] == "PASSED"
    for step in promoted["steps"]:
        name, source = model_name(step["target"]), model_name(step["source"])
        tags = step["tags_after_copy"]
        assert tags["promoted_from"] == f"{source}/{champions[step['source']]}", "the source's champion"
        assert tags["job_run_id"] == step["run_id"]
        assert not any(key == "model_validation_status" or key.startswith("validation_") for key in tags)
        assert step["tasks"] == ["copy", "validate", "deploy"]
        assert step["later"] == ["validate", "deploy"]
        assert aliases(registry, name) == {"champion": step["copy"]}
        assert registry.get_model_version(name, step["copy"]).tags["model_validation_status"] == "PASSED"
        assert len(registry.search_model_versions(f"name='{name}'")) == 1, "a copy, never a training"


@pytest.fixture(scope="module")
def last_environment(spark) -> Any:
    """A clean Spark database for the last target's tables (test_monitoring_job's, which ran before)."""
    assert monitoring_job.CATALOG == LAST
    database = f"spark_catalog.e2e_{LAST}"
    spark.sql(f"DROP DATABASE IF EXISTS {database} CASCADE")
    spark.sql(f"CREATE DATABASE {database}")
    yield spark
    spark.sql(f"DROP DATABASE IF EXISTS {database} CASCADE")


def test_the_last_environment_scores_with_the_copy_and_monitors_it(
    last_environment, registry, promoted: dict[str, Any], monkeypatch
) -> None:
    """Batch inference and the model_monitoring job of the last target (prod), as that target deploys them:
    the champion they load and judge is the copy, and a prod that never trains never retrains on a verdict."""
    champion = promoted["champions"][LAST]
    monitoring_job.score("701")
    predictions = last_environment.read.table(monitoring_job.PREDICTIONS).toPandas()
    assert len(predictions) > 0
    assert set(predictions["model_version"]) == {int(champion)}
    run = monitoring_job.run_monitoring_job("702", monkeypatch)
    assert run.result == "SUCCEEDED", run.errors
    verdict = monitoring_job.last_verdict(last_environment)
    assert (verdict["status"], verdict["model_version"]) == ("HEALTHY", champion)
    tasks = monitoring_job.MONITORING_JOB["tasks"]
    assert not any("run_job_task" in task for task in tasks), "prod never retrains"
