"""Where each deployment pattern tests and deploys: which Environment and bundle target every job uses, the
required check, the pattern's flows (deploy code: deploy; deploy models: train, promote, release)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from support import Baked
from workflows import (
    PR_TRIGGERS,
    TEMPLATE_UPDATE,
    bundle_commands,
    environment,
    integration_gate,
    jobs,
    needs,
    pr_flows,
    run_jobs,
    run_step,
    step_running,
    steps_text,
    triggers,
)


def test_unit_tests_run_on_the_runner_without_credentials(baked: Baked) -> None:
    ci = baked.workflows["ci.yml"]
    assert ci["name"] == "CI"
    assert {"pull_request", "push"} <= triggers(ci)
    unit = [job for job in jobs(ci).values() if "pytest tests/unit" in steps_text(job)]
    assert unit, "CI runs the unit tests"
    for job in jobs(ci).values():
        assert environment(job) is None and not bundle_commands(job)
        assert "id-token" not in job["permissions"]


def test_integration_tests_run_in_their_own_environment_on_the_pattern_s_workspace(baked: Baked) -> None:
    flow = baked.workflows["integration-tests.yml"]
    assert triggers(flow) == {"pull_request"}
    deploying = [job for job in jobs(flow).values() if bundle_commands(job)]
    assert len(deploying) == 1
    job = deploying[0]
    assert environment(job) == "test", "pull requests get the `test` Environment (its own principal), never dev/staging"
    verbs = [verb for verb, _ in bundle_commands(job)]
    assert {target for _, target in bundle_commands(job)} == {"test"}
    assert verbs.index("deploy") < verbs.index("run") and verbs[-1] == "destroy"
    runs = steps_text(job)
    assert [key for key, _ in run_jobs(job)] == ["integration_test"], "one Databricks job: one compute start"
    assert "pytest tests/integration" in runs
    assert "test_id=pr_" in runs
    destroy = next(step for step in job["steps"] if "bundle destroy" in step.get("run", ""))
    assert destroy.get("if") == "always()", "tear down also when a step failed"
    concurrency = flow.get("concurrency") or job.get("concurrency")
    assert concurrency["cancel-in-progress"] is True
    # The `test` target is where the pattern runs its final tests (tests/test_bundle.py checks the rest).
    env = baked.facts.test_environment
    test_target = baked.bundle.targets["test"]
    assert test_target["workspace"]["host"] == baked.context[f"{env}_workspace_host"]
    assert test_target["variables"]["catalog"] == baked.context[f"{env}_catalog"]


def test_the_required_check_fails_unless_the_integration_tests_passed(baked: Baked, tmp_path: Path) -> None:
    """GitHub counts a skipped required job as passed: fork pull requests skip the integration job, so the
    required check is a gate that always runs, holds no credentials, and passes only on `success`."""
    integration, gate, _ = integration_gate(baked)
    assert needs(gate) == {integration}
    assert gate.get("if") == "always()"
    assert environment(gate) is None and gate.get("permissions") == {}
    assert not bundle_commands(gate)
    text = json.dumps(gate)
    assert "vars." not in text and "secrets." not in text and "DATABRICKS" not in text
    assert [step for step in gate["steps"] if "uses" in step] == [], "no checkout, no actions"
    step = step_running(gate, "exit 1")
    expression = f"${{{{ needs.{integration}.result }}}}"
    variable = next(key for key, value in step.get("env", {}).items() if value == expression)
    for result, passes in (("success", True), ("skipped", False), ("failure", False), ("cancelled", False)):
        outcome, _ = run_step(step, {"PATH": os.environ["PATH"], variable: result}, tmp_path)
        assert (outcome.returncode == 0) is passes, (result, outcome.stdout, outcome.stderr)


def test_pull_request_environments_are_never_used_by_other_jobs(baked: Baked) -> None:
    """An Environment that admits pull requests cannot restrict branches; sharing it with a deploy or a training
    would hand that job's principal to every pull request."""
    on_pull_requests: set[str] = set()
    elsewhere: set[str] = set()
    for name, flow in baked.workflows.items():
        for job_name, job in jobs(flow).items():
            env = environment(job)
            if triggers(flow) & PR_TRIGGERS:
                assert "uses" not in job, f"{name}:{job_name}: no reusable workflow runs for a pull request"
                if env:
                    on_pull_requests.add(env)
            if triggers(flow) - PR_TRIGGERS and env:
                elsewhere.add(env)
    assert on_pull_requests == {"test"}
    assert not on_pull_requests & elsewhere, on_pull_requests & elsewhere
    expected = {
        "deploy_code": {"staging", "prod"},
        "deploy_models": {"dev", "staging", "prod"},
        "hybrid": {"staging", "prod"},
    }
    assert elsewhere == expected[baked.pattern]


def test_no_pull_request_job_reaches_prod(baked: Baked) -> None:
    prod_host, prod_catalog = baked.context["prod_workspace_host"], baked.context["prod_catalog"]
    for name, flow in pr_flows(baked).items():
        for job_name, job in jobs(flow).items():
            assert environment(job) in (None, "test"), f"{name}:{job_name}"
            assert {target for _, target in bundle_commands(job)} <= {"test"}, f"{name}:{job_name}"
            assert "prod" not in json.dumps(job.get("env", {})).lower()
            assert prod_host not in json.dumps(job)
    test_target = baked.bundle.targets["test"]
    assert test_target["workspace"]["host"] != prod_host
    assert test_target["variables"]["catalog"] != prod_catalog
    assert "run_as" not in test_target, "the test target runs as the pull request's own principal"
    if baked.pattern == "deploy_models":
        assert test_target["workspace"]["host"] == baked.context["dev_workspace_host"], "nothing reaches staging"
    else:  # deploy code and hybrid: the code is what is tested, in staging
        assert test_target["workspace"]["host"] == baked.context["staging_workspace_host"]
        assert test_target["variables"]["catalog"] == baked.context["staging_catalog"]


def test_every_prod_deploy_or_promotion_is_bound_to_the_prod_environment(baked: Baked) -> None:
    touched = 0
    for name, flow in baked.workflows.items():
        for job_name, job in jobs(flow).items():
            if any(target == "prod" for _, target in bundle_commands(job)):
                assert environment(job) == "prod", f"{name}:{job_name}"
                touched += 1
            if environment(job) == "prod":
                assert not triggers(flow) & PR_TRIGGERS
    assert touched >= 1


def test_deploy_code_flow(baked: Baked) -> None:
    if baked.pattern == "deploy_models":
        assert "deploy.yml" not in baked.workflows
        return
    if baked.pattern == "hybrid":
        return  # test_hybrid_flow
    flow = baked.workflows["deploy.yml"]
    assert flow["name"] == "Deploy"
    branches = set(flow["on"]["push"]["branches"])
    assert branches == {baked.context["default_branch"], baked.context["release_branch"]}
    by_env = {environment(job): job for job in jobs(flow).values() if environment(job)}
    assert set(by_env) == {"staging", "prod"}
    # With serving_endpoint, a job without credentials gates the release (tests/test_serving.py).
    gates = {key for key, job in jobs(flow).items() if not environment(job)}
    assert gates == ({"staging-passed"} if baked.context["serving_endpoint"] else set())
    for env in ("staging", "prod"):
        commands = bundle_commands(by_env[env])
        assert ("deploy", env) in commands
        assert any(verb == "run" and target == env for verb, target in commands)
        assert "model_training" in steps_text(by_env[env]), "every environment retrains from the released code"
    assert baked.context["release_branch"] in json.dumps(by_env["prod"].get("if", ""))
    assert baked.context["default_branch"] in json.dumps(by_env["staging"].get("if", ""))


def test_deploy_models_flow(baked: Baked) -> None:
    if baked.pattern != "deploy_models":
        assert not {"train.yml", "promote.yml"} & set(baked.workflows)
        assert ("release.yml" in baked.workflows) is (baked.pattern == "hybrid")
        return
    train = baked.workflows["train.yml"]
    assert train["on"]["push"]["branches"] == [baked.context["default_branch"]]
    assert "workflow_dispatch" in triggers(train)
    train_jobs = jobs(train)
    trainer = next(job for job in train_jobs.values() if bundle_commands(job))
    assert environment(trainer) == "dev"
    assert {target for _, target in bundle_commands(trainer)} == {"dev-shared"}
    assert "model_training" in steps_text(trainer)
    callers = [job for job in train_jobs.values() if job.get("uses") == "./.github/workflows/promote.yml"]
    assert len(callers) == 1, "training chains into promotion"

    promote = baked.workflows["promote.yml"]
    assert {"workflow_call", "workflow_dispatch"} <= triggers(promote)
    assert "model_version" in promote["on"]["workflow_dispatch"]["inputs"]
    by_env = {environment(job): job for job in jobs(promote).values()}
    assert set(by_env) == {"staging", "prod"}
    assert any(v == "run" and t == "staging" for v, t in bundle_commands(by_env["staging"]))
    assert any(v == "run" and t == "prod" for v, t in bundle_commands(by_env["prod"]))
    assert "model_promotion" in steps_text(by_env["staging"]) and "model_promotion" in steps_text(by_env["prod"])
    needs = by_env["prod"].get("needs")
    assert needs and set([needs] if isinstance(needs, str) else needs) == {
        name for name, job in jobs(promote).items() if environment(job) == "staging"
    }
    assert ("deploy", "prod") not in bundle_commands(by_env["prod"]), "prod code comes from the release branch"
    assert_prod_copies_the_version_staging_validated(promote)

    release = baked.workflows["release.yml"]
    assert release["on"]["push"]["branches"] == [baked.context["release_branch"]]
    deployer = next(job for job in jobs(release).values() if bundle_commands(job))
    assert environment(deployer) == "prod"
    assert ("deploy", "prod") in bundle_commands(deployer)
    assert "model_training" not in steps_text(deployer), "deploy models never retrains in prod"


def test_hybrid_flow(baked: Baked) -> None:
    """Hybrid: the default branch deploys the code to staging and trains there; the release branch deploys the code
    to prod and copies staging's champion there behind the `prod` Environment; nothing ever trains in prod."""
    if baked.pattern != "hybrid":
        return
    deploy = baked.workflows["deploy.yml"]
    assert deploy["on"]["push"]["branches"] == [baked.context["default_branch"]]
    (staging,) = jobs(deploy).values()
    assert environment(staging) == "staging"
    assert baked.context["default_branch"] in json.dumps(staging.get("if", ""))
    assert bundle_commands(staging) == [("validate", "staging"), ("deploy", "staging"), ("run", "staging")]
    assert run_jobs(staging) == [("model_training", "staging")]

    release = baked.workflows["release.yml"]
    assert release["on"]["push"]["branches"] == [baked.context["release_branch"]]
    (prod,) = jobs(release).values()
    assert environment(prod) == "prod", "the copy to prod waits for the prod Environment's reviewers"
    assert baked.context["release_branch"] in json.dumps(prod.get("if", ""))
    assert bundle_commands(prod) == [("validate", "prod"), ("deploy", "prod"), ("run", "prod")]
    assert run_jobs(prod) == [("model_promotion", "prod")], "the code first, then the copy that runs it"
    assert "source_version=champion" in step_running(prod, "model_promotion")["run"]

    for name, flow in baked.workflows.items():
        for job_name, job in jobs(flow).items():
            assert ("model_training", "prod") not in run_jobs(job), f"{name}:{job_name}: prod never trains"


def test_workflow_names_are_stable(baked: Baked) -> None:
    names = {file: flow["name"] for file, flow in baked.workflows.items()}
    common = {
        "ci.yml": "CI",
        "integration-tests.yml": "Integration tests",
        "lint-workflows.yml": "Lint workflows",
        TEMPLATE_UPDATE: "Template update",
    }
    own = {
        "deploy_code": {"deploy.yml": "Deploy"},
        "deploy_models": {"train.yml": "Train", "promote.yml": "Promote model", "release.yml": "Release"},
        "hybrid": {"deploy.yml": "Deploy", "release.yml": "Release"},
    }[baked.pattern]
    assert names == {**common, **own}


def github_glob(pattern: str) -> re.Pattern[str]:
    """GitHub's path filter globs, as far as the workflows use them: `**` any path, `*` one path segment."""
    parts = re.split(r"(\*\*|\*)", pattern)
    return re.compile("".join({"**": ".*", "*": "[^/]*"}.get(part, re.escape(part)) for part in parts))


@pytest.mark.answers(deployment_pattern="deploy_models")
def test_training_runs_only_for_changes_to_what_it_trains(baked: Baked) -> None:
    train = baked.workflows["train.yml"]
    push = train["on"]["push"]
    assert "paths-ignore" not in push
    globs = [github_glob(pattern) for pattern in push["paths"]]
    package = baked.package
    must_train = [
        f"src/{package}/train.py",
        "resources/model-training.job.yml",
        "targets/dev-shared.yml",
        "databricks.yml",
        "pyproject.toml",
        ".github/workflows/train.yml",
    ]
    for path in must_train:
        assert any(g.fullmatch(path) for g in globs), f"a change to {path} must retrain"
    for path in ("README.md", "docs/setup.md", "tests/unit/test_train.py", ".github/workflows/ci.yml", ".gitignore"):
        assert not any(g.fullmatch(path) for g in globs), f"a change to {path} must not retrain"
    for path in baked.files():
        if path.startswith(("src/", "resources/", "targets/")):
            assert any(g.fullmatch(path) for g in globs), path


def assert_prod_copies_the_version_staging_validated(promote: dict[str, Any]) -> None:
    """The prod job copies the version number the staging job validated, never the alias as it is at approval."""
    staging_key, staging = next((k, j) for k, j in jobs(promote).items() if environment(j) == "staging")
    prod = next(j for j in jobs(promote).values() if environment(j) == "prod")
    run_line = next(line for line in steps_text(prod).splitlines() if "bundle run model_promotion" in line)
    params = re.search(r'--params\s+"([^"]*)"', run_line)
    assert params, run_line
    assert "champion" not in params.group(1)
    variable = re.fullmatch(r"source_version=\$\{?(\w+)\}?", params.group(1))
    assert variable, params.group(1)
    source = prod.get("env", {})[variable.group(1)]
    output = re.fullmatch(r"\$\{\{\s*needs\." + re.escape(staging_key) + r"\.outputs\.(\w+)\s*\}\}", source)
    assert output, f"prod's source_version must come from the staging job's output, got {source!r}"
    step_id = re.fullmatch(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.(\w+)\s*\}\}", staging["outputs"][output.group(1)])
    assert step_id, staging["outputs"]
    ids = [step.get("id") for step in staging["steps"]]
    runs = [step.get("run", "") for step in staging["steps"]]
    reader = ids.index(step_id.group(1))
    promotion = next(i for i, run in enumerate(runs) if "bundle run model_promotion -t staging" in run)
    assert promotion < reader, "read the version after the staging promotion passed"
    assert "model-versions get-by-alias" in runs[reader] and "champion" in runs[reader]
    assert "bundle summary -t staging" in runs[reader]
    checks = [i for i, run in enumerate(steps_text(prod).split("\n")) if variable.group(1) in run and "[0-9]+" in run]
    assert checks, "prod checks the handed-over version is a number before using it"


FAKE_DATABRICKS = r"""#!/usr/bin/env bash
# Stands in for the Databricks CLI: `bundle summary` and `model-versions get-by-alias`, as JSON.
case "$1 $2" in
  "bundle summary")
    echo '{"resources": {"schemas": {"ml": {"catalog_name": "CATALOG", "name": "SCHEMA"}},
           "registered_models": {"model": {"name": "MODEL"}}}}' ;;
  "model-versions get-by-alias")
    [[ "$3" == "CATALOG.SCHEMA.MODEL" && "$4" == "champion" ]] || { echo "unexpected: $*" >&2; exit 2; }
    printf '%s\n' "$FAKE_VERSION_JSON" ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"""


@pytest.mark.skipif(not shutil.which("jq"), reason="the step uses jq, as GitHub's runners have it")
@pytest.mark.answers(deployment_pattern="deploy_models")
def test_the_staging_job_hands_over_the_validated_version_number(baked_default: Baked, tmp_path: Path) -> None:
    """Run the staging job's look-up step against a stand-in CLI: it outputs the champion's number, or fails."""
    promote = baked_default.workflows["promote.yml"]
    staging = next(j for j in jobs(promote).values() if environment(j) == "staging")
    step = step_running(staging, "get-by-alias")
    context = baked_default.context
    fake = FAKE_DATABRICKS
    for placeholder, answer in (("CATALOG", "staging_catalog"), ("SCHEMA", "schema_name"), ("MODEL", "model_name")):
        fake = fake.replace(placeholder, context[answer])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "databricks").write_text(fake)
    (bin_dir / "databricks").chmod(0o755)
    path = f"{bin_dir}:{os.environ['PATH']}"
    for answer, expected in (
        ('{"version": 7, "aliases": [{"alias_name": "champion", "version_num": 7}]}', "7"),
        ('{"version": "12"}', "12"),
        ("{}", None),
        ('{"version": "7; rm -rf /"}', None),
    ):
        result, output = run_step(step, {"PATH": path, "FAKE_VERSION_JSON": answer}, tmp_path)
        if expected is None:
            assert result.returncode != 0 and output == "", (answer, output)
        else:
            assert result.returncode == 0, result.stderr
            assert output.splitlines() == [f"version={expected}"], output


@pytest.mark.answers(deployment_pattern="deploy_models")
def test_the_prod_job_refuses_anything_but_a_version_number(baked_default: Baked, tmp_path: Path) -> None:
    prod = next(j for j in jobs(baked_default.workflows["promote.yml"]).values() if environment(j) == "prod")
    check = prod["steps"][0]
    assert "run" in check and "exit 1" in check["run"], "the check comes first, before any credentialed step"
    for value, passes in (("7", True), ("champion", False), ("", False), ("7 --x", False)):
        result, _ = run_step(check, {"PATH": os.environ["PATH"], "SOURCE_VERSION": value}, tmp_path)
        assert (result.returncode == 0) is passes, value
