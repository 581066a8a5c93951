"""Would Databricks accept the bundle? Resources through databricks-bundles, variables, targets, tasks, grants."""

from __future__ import annotations

import ast
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from databricks.bundles.catalogs import Catalog
from databricks.bundles.experiments import MlflowExperiment
from databricks.bundles.jobs import Job
from databricks.bundles.registered_models import RegisteredModel
from databricks.bundles.schemas import Schema
from databricks.bundles.volumes import Volume
from support import (
    COOKIECUTTER_JSON,
    PATTERNS,
    REPO,
    TEMPLATE_DIR,
    VAR_REFERENCE,
    Baked,
    grants_of,
    partial,
    render,
    walk_strings,
)

RESOURCE_CLASSES = {
    "jobs": Job,
    "schemas": Schema,
    "registered_models": RegisteredModel,
    "experiments": MlflowExperiment,
    "catalogs": Catalog,
    "volumes": Volume,
}
ENVIRONMENTS = ("dev", "staging", "prod")
# The runtimes and node types, read from the one partial every job file takes them from.
RUNTIME = partial("bundle.j2").runtime


def targets_of(baked: Baked) -> set[str]:
    extra = {"dev-shared"} if baked.pattern == "deploy_models" else set()
    return {"dev", "test", "staging", "prod", *extra}


def test_targets_are_the_pattern_s(baked: Baked) -> None:
    assert set(baked.bundle.targets) == targets_of(baked)
    assert [t for t, c in baked.bundle.targets.items() if c.get("default")] == ["dev"]


def test_databricks_yml_is_the_same_for_both_patterns(baked: Baked) -> None:
    """Teams edit databricks.yml: pattern-specific content lives in whole files so a switch merges cleanly."""
    text = baked.text("databricks.yml")
    for pattern_specific in ("deploy_models", "dev-shared", "source_catalog", "source_schema", "promotion_principal"):
        assert pattern_specific not in text, pattern_specific
    template = (TEMPLATE_DIR / "databricks.yml").read_text()
    for other in PATTERNS:
        assert render(template, {**baked.context, "deployment_pattern": other}) == text, (
            "byte-identical for all patterns"
        )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_states_its_host_and_catalog(baked: Baked, env: str) -> None:
    target = baked.bundle.targets[env]
    assert target["workspace"]["host"] == baked.context[f"{env}_workspace_host"]
    assert target["variables"]["catalog"] == baked.context[f"{env}_catalog"]


def test_modes_identity_and_root_paths(baked: Baked) -> None:
    targets = baked.bundle.targets
    assert targets["dev"]["mode"] == "development"
    for env in ("staging", "prod"):
        assert targets[env]["mode"] == "production"
        assert targets[env]["run_as"] == {"service_principal_name": "${var.service_principal}"}
        assert targets[env]["workspace"]["root_path"].startswith("/")
        lookup = targets[env]["variables"]["service_principal"]["lookup"]["service_principal"]
        assert lookup == f"{baked.context['project_slug']}-{env}"
    for name, target in targets.items():
        assert target.get("mode") in (None, "development", "production"), name


def test_test_target_runs_where_the_pattern_says(baked: Baked) -> None:
    """deploy code: final tests in staging; deploy models: final tests in dev. Isolated per pull request."""
    env = baked.facts.test_environment
    test = baked.bundle.targets["test"]
    assert test["workspace"]["host"] == baked.context[f"{env}_workspace_host"]
    assert test["variables"]["catalog"] == baked.context[f"{env}_catalog"]
    assert "${var.test_id}" in test["workspace"]["root_path"]
    # The name prefix isolates jobs and experiments and, as test_<id>_, the schema and model of each PR.
    assert "${var.test_id}" in test["presets"]["name_prefix"]
    assert test["presets"]["trigger_pause_status"] == "PAUSED"
    assert int(test["variables"]["row_limit"]) > 0


def test_dev_shared_target_only_for_deploy_models(baked: Baked) -> None:
    if baked.pattern != "deploy_models":
        assert "dev-shared" not in baked.bundle.targets
        return
    shared = baked.bundle.targets["dev-shared"]
    assert shared["workspace"]["host"] == baked.context["dev_workspace_host"]
    assert shared["variables"]["catalog"] == baked.context["dev_catalog"]
    assert shared.get("mode") != "development"


def test_every_resource_loads_through_databricks_bundles(baked: Baked) -> None:
    loaded = 0
    for target in baked.bundle.targets:
        for kind, resources in baked.bundle.view(target).get("resources", {}).items():
            assert kind in RESOURCE_CLASSES, f"unexpected resource type {kind}"
            for resource in resources.values():
                RESOURCE_CLASSES[kind].from_dict(resource)  # raises on unknown keys and wrong types
                loaded += 1
    assert loaded >= 5 * len(baked.bundle.targets)


def test_every_variable_used_is_declared_and_resolved(baked: Baked) -> None:
    declared = baked.bundle.merged["variables"]
    for relative, content in baked.bundle.files.items():
        for text in walk_strings(content):
            for name in VAR_REFERENCE.findall(text):
                assert name in declared, f"{relative} uses undeclared ${{var.{name}}}"
    for name, spec in declared.items():
        assert spec.get("description"), f"variable {name} has no description"
        if "default" in spec or "lookup" in spec:
            continue
        for target, config in baked.bundle.targets.items():
            assert name in config.get("variables", {}), f"target {target} gives no value to {name}"


def console_scripts(baked: Baked) -> dict[str, str]:
    pyproject = tomllib.loads(baked.text("pyproject.toml"))
    return pyproject["project"]["scripts"]


def function_exists(project: Path, package: str, reference: str) -> bool:
    module, _, function = reference.partition(":")
    path = project / "src" / Path(*module.split(".")).with_suffix(".py")
    if not path.is_file():
        return False
    tree = ast.parse(path.read_text())
    return any(isinstance(node, ast.FunctionDef) and node.name == function for node in tree.body)


def test_tasks_name_existing_entry_points_and_tasks(baked: Baked) -> None:
    scripts = console_scripts(baked)
    for target in baked.bundle.targets:
        jobs = baked.bundle.jobs(target)
        for job_key, job in jobs.items():
            keys = [task["task_key"] for task in job["tasks"]]
            assert len(keys) == len(set(keys)), f"{job_key}: duplicate task keys"
            for task in job["tasks"]:
                for dependency in task.get("depends_on", []):
                    assert dependency["task_key"] in keys, f"{job_key}.{task['task_key']} depends on a missing task"
                if "run_job_task" in task:  # a job of this target, by its bundle reference
                    (other,) = re.fullmatch(
                        r"\$\{resources\.jobs\.(\w+)\.id\}", task["run_job_task"]["job_id"]
                    ).groups()
                    assert other in jobs and other != job_key, (target, job_key, task["task_key"])
                    continue
                wheel = task["python_wheel_task"]
                assert wheel["package_name"] == baked.package
                assert wheel["entry_point"] in scripts, f"{job_key}.{task['task_key']}: no console script"
                assert function_exists(baked.path, baked.package, scripts[wheel["entry_point"]])


def test_pattern_facts_say_what_each_pattern_means() -> None:
    """templates/pattern.j2 is read by targets, jobs, workflows and these tests; here it meets the spec itself.
    Deploy code: pull requests test in staging, every environment trains. Deploy models: pull requests test in
    dev, only dev trains, and each environment's model is the source of the next one's copy."""
    code = partial("pattern.j2", {"deployment_pattern": "deploy_code"})
    models = partial("pattern.j2", {"deployment_pattern": "deploy_models"})
    assert (code.test_environment, models.test_environment) == ("staging", "dev")
    assert (code.test_catalog_target, models.test_catalog_target) == ("staging", "dev-shared")
    assert set(code.job_targets["model_training"]) == {"dev", "test", "staging", "prod"}
    assert set(models.job_targets["model_training"]) == {"dev", "test", "dev-shared"}
    assert (list(code.job_targets["model_promotion"]), set(models.job_targets["model_promotion"])) == (
        [],
        {"staging", "prod"},
    )
    assert list(models.promotion_sources) == ["dev-shared", "staging"] and not code.promotion_sources
    assert set(code.catalog_targets) == {"staging", "prod"}
    assert set(models.catalog_targets) == {"dev-shared", "staging", "prod"}


def test_hybrid_facts_say_what_the_pattern_means() -> None:
    """Hybrid: pull requests test in staging (as deploy code), staging trains and prod never does, prod's model is
    a copy of staging's (as deploy models), and the release is what promotes it."""
    hybrid = partial("pattern.j2", {"deployment_pattern": "hybrid"})
    assert (hybrid.test_environment, hybrid.test_catalog_target) == ("staging", "staging")
    assert list(hybrid.job_targets["model_training"]) == ["dev", "test", "staging"]
    assert list(hybrid.job_targets["model_promotion"]) == ["prod"]
    assert list(hybrid.promotions) == [("prod", "staging")]
    assert (list(hybrid.training_environments), list(hybrid.promoted_environments)) == (["staging"], ["prod"])
    assert hybrid.prod_promoted_by == "release"
    assert hybrid.environments == {"test": [], "staging": ["default_branch"], "prod": ["release_branch"]}
    assert "prod" not in hybrid.retrain_on_verdict and hybrid.retraining_target == "staging"
    assert hybrid.copies_model_versions and hybrid.page == "hybrid.md"


def test_jobs_per_target_follow_the_pattern(baked: Baked) -> None:
    jobs = {target: set(baked.bundle.jobs(target)) for target in baked.bundle.targets}
    supporting = {"batch_inference", "model_monitoring"}  # every target scores and monitors its champion
    assert jobs["test"] == {"model_training", "integration_test", *supporting}, "pull requests run one chain job"
    # With serving_endpoint, the targets that serve also have the job that serves again or rolls back.
    serving = set(baked.facts.serving_targets) if baked.context["serving_endpoint"] else set()
    for target in baked.facts.job_targets["model_training"]:
        if target != "test":
            assert jobs[target] - {"serving_endpoint"} == {"model_training", *supporting}, target
    promoted = {"deploy_code": set(), "deploy_models": {"staging", "prod"}, "hybrid": {"prod"}}[baked.pattern]
    assert {target for target, keys in jobs.items() if "model_promotion" in keys} == promoted
    for target in promoted:
        assert "model_training" not in jobs[target], f"{baked.pattern} never trains in {target}"
        assert jobs[target] - {"serving_endpoint"} == {"model_promotion", *supporting}, target
    assert {target for target, keys in jobs.items() if "serving_endpoint" in keys} == serving


JOB_RUN_ID = "{{job.run_id}}"
VERSION_STEPS = ("validate-model", "deploy-model")


def test_the_model_version_travels_through_mlflow_never_task_values(baked: Baked) -> None:
    """Task values cannot be set from Python wheel tasks (Databricks docs: notebooks only; the SDK's stand-in
    dbutils keeps the value locally, silently). The producing task tags MLflow with the job run id, every later
    task gets the same id (handoff.py): train and its successors name the experiment to search, copy's do not."""
    checked = 0
    for target in baked.bundle.targets:
        for job_key, job in baked.bundle.jobs(target).items():
            tasks = {
                task["task_key"]: task["python_wheel_task"] for task in job["tasks"] if "python_wheel_task" in task
            }
            producer = "train" if "train" in tasks else "copy" if "copy" in tasks else None
            for key, wheel in tasks.items():
                parameters = wheel["named_parameters"]
                assert not any(".values." in str(value) for value in parameters.values()), (target, job_key, key)
                if wheel["entry_point"] not in VERSION_STEPS and key != producer:
                    continue
                assert "model_version" not in parameters, (target, job_key, key)
                assert parameters["job_run_id"] == JOB_RUN_ID, (target, job_key, key)
                if producer == "train":
                    experiment = tasks["train"]["named_parameters"]["experiment_name"]
                    assert parameters["experiment_name"] == experiment, (target, job_key, key)
                else:
                    assert "experiment_name" not in parameters, "without it, the copy's tag is what is searched"
                checked += 1
    assert checked >= 9
    source = "\n".join(p.read_text() for p in (baked.path / "src" / baked.package).glob("*.py"))
    assert "taskValues.set" not in source.replace("``dbutils.jobs.taskValues.set()``", ""), "no task values"
    handoff = (baked.path / "src" / baked.package / "handoff.py").read_text()
    assert "https://docs.databricks.com/aws/en/jobs/task-values" in handoff, "the documented reason"


def test_pull_requests_run_the_whole_chain_as_one_job_on_one_compute(baked: Baked) -> None:
    """One cluster start (job_cluster) or one serverless environment instead of three jobs one after another."""
    job = baked.bundle.jobs("test")["integration_test"]
    steps = [task["python_wheel_task"]["entry_point"] for task in job["tasks"]]
    assert steps == ["train-model", "validate-model", "deploy-model", "score-batch", "refresh-monitor", "monitor-model"]
    for before, task in zip(job["tasks"], job["tasks"][1:], strict=False):
        assert task["depends_on"] == [{"task_key": before["task_key"]}], task["task_key"]
    if baked.context["compute"] == "job_cluster":
        assert len(job["job_clusters"]) == 1
        assert {task["job_cluster_key"] for task in job["tasks"]} == {job["job_clusters"][0]["job_cluster_key"]}
    else:
        assert len(job["environments"]) == 1
        assert {task["environment_key"] for task in job["tasks"]} == {job["environments"][0]["environment_key"]}
    assert sum(task["timeout_seconds"] for task in job["tasks"]) <= job["timeout_seconds"]
    # The same parameters as the jobs it stands for, so the pull request tests what the other targets run.
    singles = {
        task["python_wheel_task"]["entry_point"]: task["python_wheel_task"]["named_parameters"]
        for key in ("model_training", "batch_inference", "model_monitoring")
        for task in baked.bundle.jobs("test")[key]["tasks"]
        if "python_wheel_task" in task
    }
    for task in job["tasks"]:
        wheel = task["python_wheel_task"]
        assert wheel["named_parameters"] == singles[wheel["entry_point"]], wheel["entry_point"]
    for target in set(baked.bundle.targets) - {"test"}:
        assert "integration_test" not in baked.bundle.jobs(target), target


def test_promotions_queue_on_databricks_instead_of_being_skipped(baked: Baked) -> None:
    """Databricks queues a second promotion behind the first instead of skipping it (and the Promote model
    workflow's groups keep every waiting run: tests/test_workflow_hardening.py)."""
    for env in baked.facts.job_targets["model_promotion"]:
        job = baked.bundle.jobs(env)["model_promotion"]
        assert job["max_concurrent_runs"] == 1
        assert job["queue"] == {"enabled": True}, env


def test_every_object_a_later_environment_depends_on_is_protected(baked: Baked) -> None:
    """prevent_destroy on the schema and model of prod and, in deploy models, of every promotion source."""
    protected = {
        "deploy_code": {"prod"},
        "deploy_models": {"prod", "dev-shared", "staging"},
        "hybrid": {"prod", "staging"},
    }[baked.pattern]
    for target in baked.bundle.targets:
        resources = baked.bundle.view(target)["resources"]
        for kind, key in (("schemas", "ml"), ("registered_models", "model")):
            lifecycle = resources[kind][key].get("lifecycle", {})
            assert lifecycle.get("prevent_destroy", False) is (target in protected), (target, kind)
        for catalog in resources.get("catalogs", {}).values():
            assert catalog["lifecycle"]["prevent_destroy"] is True, target
    sources = {"deploy_code": {}, "deploy_models": {"staging": "dev", "prod": "staging"}, "hybrid": {"prod": "staging"}}
    for env, source in sources[baked.pattern].items():
        assert baked.bundle.variable(env, "source_catalog") == baked.context[f"{source}_catalog"]


def test_the_wheel_build_fetches_nothing(baked: Baked) -> None:
    """Jobs holding staging or prod credentials build the wheel: no build isolation (which installs setuptools from
    the index), no dependencies, no index; setuptools comes from the hash-pinned lock (CI) or the dev extra."""
    build = baked.bundle.files["databricks.yml"]["artifacts"]["default"]["build"].split()
    assert build[:4] == ["python", "-m", "pip", "wheel"]
    assert {"--no-deps", "--no-build-isolation", "--no-index"} <= set(build)
    dev = tomllib.loads(baked.text("pyproject.toml"))["project"]["optional-dependencies"]["dev"]
    assert any(requirement.startswith("setuptools") for requirement in dev)
    assert "setuptools==" in baked.text("requirements/ci.txt")


def test_compute_follows_the_answer(baked: Baked) -> None:
    for target in baked.bundle.targets:
        for job_key, job in baked.bundle.jobs(target).items():
            wheel_tasks = [task for task in job["tasks"] if "python_wheel_task" in task]  # run_job_task: no compute
            if baked.context["compute"] == "serverless":
                assert job.get("environments") and "job_clusters" not in job, job_key
                assert all(task.get("environment_key") for task in wheel_tasks)
                spec = job["environments"][0]["spec"]
                assert spec["environment_version"] == RUNTIME["environment_version"], job_key
                assert any(d.endswith(".whl") for d in spec["dependencies"])
            else:
                clusters = job["job_clusters"]
                assert "environments" not in job
                node_types = {c["new_cluster"]["node_type_id"] for c in clusters}
                assert node_types == {RUNTIME["node_type_id"][baked.context["cloud"]]}
                assert {c["new_cluster"]["spark_version"] for c in clusters} == {RUNTIME["spark_version"]}
                assert all(task.get("job_cluster_key") and task.get("libraries") for task in wheel_tasks)


def test_read_group_is_really_applied(baked: Baked) -> None:
    assert baked.bundle.merged["variables"]["read_group"]["default"] == baked.context["read_group"]
    for target in baked.bundle.targets:
        view = baked.bundle.view(target)
        resources = view["resources"]
        schema = grants_of(resources["schemas"]["ml"])
        assert schema["${var.read_group}"] <= {"USE_SCHEMA", "SELECT", "EXECUTE", "READ_VOLUME", "BROWSE"}
        assert "USE_SCHEMA" in schema["${var.read_group}"]
        model = grants_of(resources["registered_models"]["model"])
        assert model["${var.read_group}"] == {"EXECUTE"}
        for job_key, job in resources["jobs"].items():
            levels = {p["level"] for p in job["permissions"] if p.get("group_name") == "${var.read_group}"}
            assert levels == {"CAN_VIEW"}, job_key


def principal_of(permission: dict[str, Any]) -> str:
    return permission.get("group_name") or permission.get("user_name") or permission.get("service_principal_name")


def test_no_principal_gets_a_permission_twice(baked: Baked) -> None:
    """A bundle- or target-level permission for a principal that a job or experiment already names makes
    `bundle validate` warn "'jobs' already has permissions set for ...": read_group is granted per resource only."""
    for target, config in baked.bundle.targets.items():
        top_level = [*baked.bundle.files["databricks.yml"].get("permissions", []), *config.get("permissions", [])]
        principals = {principal_of(permission) for permission in top_level}
        resources = baked.bundle.view(target)["resources"]
        for kind in ("jobs", "experiments"):
            for key, resource in resources.get(kind, {}).items():
                repeated = principals & {principal_of(p) for p in resource.get("permissions", [])}
                assert not repeated, f"{target}: {kind}.{key} and the target both give {repeated} a permission"
    for env in ("staging", "prod"):
        levels = {principal_of(p): p["level"] for p in baked.bundle.targets[env]["permissions"]}
        assert levels == {"${var.service_principal}": "CAN_MANAGE"}, env


def test_write_stays_with_the_environment_principal(baked: Baked) -> None:
    for target in baked.bundle.targets:
        schema = grants_of(baked.bundle.view(target)["resources"]["schemas"]["ml"])
        writers = {p for p, privileges in schema.items() if privileges & {"MODIFY", "CREATE_TABLE", "CREATE_MODEL"}}
        assert writers == {"${var.service_principal}"}, target


def test_model_lives_in_the_environment_schema(baked: Baked) -> None:
    for target in baked.bundle.targets:
        resources = baked.bundle.view(target)["resources"]
        model = resources["registered_models"]["model"]
        assert model["catalog_name"] == "${var.catalog}"
        assert model["schema_name"] == "${resources.schemas.ml.name}"
        assert model["name"] == "${var.model_name}"
        assert resources["schemas"]["ml"]["catalog_name"] == "${var.catalog}"
    assert baked.bundle.merged["variables"]["model_name"]["default"] == baked.context["model_name"]
    assert baked.bundle.merged["variables"]["schema"]["default"] == baked.context["schema_name"]


def test_catalogs_declared_only_when_asked(baked: Baked) -> None:
    declared = {
        target: baked.bundle.view(target).get("resources", {}).get("catalogs", {}) for target in baked.bundle.targets
    }
    if not baked.context["create_catalogs"]:
        assert not any(declared.values())
        return
    assert baked.bundle.files["databricks.yml"]["bundle"]["engine"] == "direct"
    for env in ("staging", "prod"):
        names = {catalog["name"] for catalog in declared[env].values()}
        assert names == {"${var.catalog}"}, env
    assert not declared["dev"], "per-user dev deploys must not manage the shared dev catalog"
    assert not declared["test"], "pull-request deploys must not manage a catalog"


@pytest.mark.answers(create_catalogs=True)
def test_the_bundle_owns_only_catalogs_of_the_project(baked: Baked) -> None:
    """Grants on a declared catalog are authoritative: it must be the project's own (the pre-gen hook refuses a shared
    name), and the catalogs declared are exactly those of the pattern's `owned_catalog_envs`, which the hook checks."""
    declared = {
        str(baked.bundle.variable(target, "catalog"))
        for target in baked.bundle.targets
        if baked.bundle.view(target).get("resources", {}).get("catalogs")
    }
    owned = COOKIECUTTER_JSON["_patterns"][baked.pattern]["owned_catalog_envs"]
    assert declared == {baked.context[f"{env}_catalog"] for env in owned}
    for catalog in declared:
        assert f"_{baked.package}_" in f"_{catalog}_", catalog


def catalog_grants(baked: Baked) -> dict[str, dict[str, set[str]]]:
    """Target -> principal -> privileges on the catalog it manages."""
    found = {}
    for target in baked.bundle.targets:
        for catalog in baked.bundle.view(target).get("resources", {}).get("catalogs", {}).values():
            found[target] = grants_of(catalog)
    return found


@pytest.mark.answers(create_catalogs=True)
def test_catalog_grants_name_every_principal_that_needs_the_catalog(baked: Baked) -> None:
    """Grants are authoritative under the direct engine: a principal granted by hand is revoked on the next deploy.
    So the catalog where pull requests test lists the test principal, the dev catalog (deploy models) the
    developers, and a promotion source the next environment's principal."""
    grants = catalog_grants(baked)
    slug = baked.context["project_slug"]
    use, create = {"USE_CATALOG"}, {"USE_CATALOG", "CREATE_SCHEMA"}
    expected = {
        "staging": {"${var.read_group}": use, "${var.service_principal}": create},
        "prod": {"${var.read_group}": use, "${var.service_principal}": create},
    }
    if baked.pattern == "deploy_models":
        expected["dev-shared"] = {
            "${var.read_group}": use,
            "${var.service_principal}": create,
            "${var.test_principal}": create,
            "${var.developer_group}": create,
            "${var.promotion_principal}": use,
        }
        expected["staging"]["${var.promotion_principal}"] = use
    elif baked.pattern == "hybrid":
        # Prod's principal reads staging's model (USE CATALOG here; USE SCHEMA and EXECUTE in unity-catalog.yml).
        expected["staging"]["${var.test_principal}"] = create
        expected["staging"]["${var.promotion_principal}"] = use
    else:
        expected["staging"]["${var.test_principal}"] = create
    assert grants == expected
    test_catalog_target = baked.facts.test_catalog_target
    lookup = baked.bundle.targets[test_catalog_target]["variables"]["test_principal"]["lookup"]
    assert lookup == {"service_principal": f"{slug}-test"}
    test_catalog = baked.bundle.targets["test"]["variables"]["catalog"]
    assert baked.bundle.targets[test_catalog_target]["variables"]["catalog"] == test_catalog


def test_a_promotion_source_grants_the_next_principal_read_access_only(baked: Baked) -> None:
    """The principal that copies reads the source's schema and model and writes nothing there (deploy models:
    staging reads dev-shared, prod reads staging; hybrid: prod reads staging); no other target names a reader."""
    slug = baked.context["project_slug"]
    readers = {
        "deploy_code": {},
        "deploy_models": {"dev-shared": f"{slug}-staging", "staging": f"{slug}-prod"},
        "hybrid": {"staging": f"{slug}-prod"},
    }[baked.pattern]
    for target in baked.bundle.targets:
        lookup = baked.bundle.lookups(target).get("promotion_principal")
        assert lookup == readers.get(target), target
        resources = baked.bundle.view(target)["resources"]
        schema = grants_of(resources["schemas"]["ml"]).get("${var.promotion_principal}")
        model = grants_of(resources["registered_models"]["model"]).get("${var.promotion_principal}")
        if target in readers:
            assert (schema, model) == ({"USE_SCHEMA"}, {"EXECUTE"}), target
        else:
            assert (schema, model) == (None, None), target


def test_docs_never_ask_for_hand_grants_on_what_the_bundle_manages(baked: Baked) -> None:
    docs = {name: baked.text(f"docs/{name}") for name in ("environments.md", "setup.md")}
    assert "revokes" in docs["environments.md"], "say that the bundle owns the grants of what it manages"
    if not baked.context["create_catalogs"]:
        return
    for name, text in docs.items():
        for line in text.splitlines():
            assert not re.search(r"grants? `[^`]*-test` .*(USE CATALOG|CREATE SCHEMA)", line), (name, line)
            assert "its owner grants" not in line, (name, line)


def test_promotion_reads_from_the_previous_environment(baked: Baked) -> None:
    sources = {}
    for env in baked.facts.job_targets["model_promotion"]:
        job = baked.bundle.jobs(env)["model_promotion"]
        params = {p["name"]: p.get("default") for p in job.get("parameters", [])}
        assert "source_version" in params
        copy = job["tasks"][0]["python_wheel_task"]["named_parameters"]
        source = copy["source_catalog"]
        sources[env] = baked.bundle.variable(env, source[6:-1]) if source.startswith("${var.") else source
    expected = {
        "deploy_code": {},
        "deploy_models": {"staging": baked.context["dev_catalog"], "prod": baked.context["staging_catalog"]},
        "hybrid": {"prod": baked.context["staging_catalog"]},
    }
    assert sources == expected[baked.pattern]


# The Databricks CLI's JSON schema of bundle files, licensed for use with Databricks only: not in this repository.
# Dev machines and CI keep a copy beside the clone (../shared/schemas/); anyone can write one with the CLI.
SCHEMA_FILE = Path(
    os.environ.get("DATABRICKS_BUNDLE_SCHEMA") or REPO.parent / "shared" / "schemas" / "databricks-bundle.schema.json"
)
SCHEMA_MISSING = (
    f"no official Databricks bundle JSON schema at {SCHEMA_FILE}: write it with the Databricks CLI "
    f"(`databricks bundle schema > {SCHEMA_FILE}`), or set DATABRICKS_BUNDLE_SCHEMA to such a file"
)


def test_a_skipped_schema_check_says_what_is_missing_and_how_to_get_it() -> None:
    (mark,) = [m for m in test_every_bundle_file_validates_against_the_official_schema.pytestmark if m.name == "skipif"]
    reason = mark.kwargs["reason"]
    assert str(SCHEMA_FILE) in reason and "`databricks bundle schema > " in reason, reason
    assert "DATABRICKS_BUNDLE_SCHEMA" in reason


@pytest.mark.skipif(not SCHEMA_FILE.is_file(), reason=SCHEMA_MISSING)
def test_every_bundle_file_validates_against_the_official_schema(baked: Baked, bundle_schema_validator: Any) -> None:
    for relative, content in baked.bundle.files.items():
        errors = sorted(bundle_schema_validator.iter_errors(content), key=lambda e: list(e.absolute_path))
        assert not errors, f"{relative}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


@pytest.fixture(scope="session")
def bundle_schema_validator() -> Any:
    import json

    import jsonschema
    import regex
    from jsonschema import validators

    schema = json.loads(SCHEMA_FILE.read_text())

    def pattern(validator: Any, pat: str, instance: Any, _schema: Any) -> Any:
        if validator.is_type(instance, "string") and not regex.search(pat, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {pat!r}")

    validator_class = validators.extend(validators.validator_for(schema), {"pattern": pattern})
    return validator_class(schema)
