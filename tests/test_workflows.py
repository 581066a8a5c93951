"""Generated GitHub Actions: linters (zizmor, the vendored workflow schema) and the pattern's test/deploy topology."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from support import Baked

SHA_PIN = re.compile(r"^\s*(?:-\s*)?uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s*v\d+(\.\d+)*\s*$")
BUNDLE_COMMAND = re.compile(r"databricks\s+bundle\s+(\w+)([^\n]*)")
TARGET_FLAG = re.compile(r"(?:-t|--target)[ =]([\w$-]+)")
UNTRUSTED = re.compile(r"\$\{\{\s*(github\.event\.|github\.head_ref|inputs\.)")
PR_TRIGGERS = {"pull_request", "pull_request_target"}


def tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def jobs(flow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return flow["jobs"]


def steps_text(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job.get("steps", []))


def bundle_commands(job: dict[str, Any]) -> list[tuple[str, str]]:
    """(verb, target) for every `databricks bundle` command a job runs."""
    found = []
    for verb, rest in BUNDLE_COMMAND.findall(steps_text(job)):
        match = TARGET_FLAG.search(rest)
        found.append((verb, match.group(1) if match else ""))
    return found


def environment(job: dict[str, Any]) -> str | None:
    env = job.get("environment")
    return env["name"] if isinstance(env, dict) else env


def triggers(flow: dict[str, Any]) -> set[str]:
    on = flow["on"]
    return {on} if isinstance(on, str) else set(on)


# --- linters ------------------------------------------------------------------------------------


def test_zizmor_finds_nothing(baked: Baked) -> None:
    """All audits, workflows and dependabot.yml, with zizmor's defaults (no config file to weaken them)."""
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--no-config", "--no-progress", "--format", "json", str(baked.path / ".github")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [] and result.returncode == 0, [(f["ident"], f["desc"]) for f in findings] or result.stderr


@pytest.fixture(scope="session")
def workflow_schema() -> Any:
    vendored = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "github-workflows.json"
    schema = json.loads(vendored.read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def test_workflows_match_the_vendored_github_schema(baked: Baked, workflow_schema: Any) -> None:
    for name, flow in baked.workflows.items():
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in workflow_schema.iter_errors(flow)]
        assert errors == [], name


def test_check_jsonschema_cli_accepts_every_workflow(baked_default: Baked) -> None:
    """The same check the generated lint workflow runs, through the real CLI."""
    files = sorted(str(p) for p in (baked_default.path / ".github" / "workflows").glob("*.yml"))
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependabot_keeps_pins_fresh(baked_default: Baked) -> None:
    config = baked_default.path / ".github" / "dependabot.yml"
    ecosystems = {update["package-ecosystem"] for update in baked_default.yaml(".github/dependabot.yml")["updates"]}
    assert ecosystems == {"github-actions", "pip"}
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_accepts_every_workflow(baked: Baked) -> None:
    config = (
        "{extends: default, rules: {document-start: disable, truthy: {check-keys: false}, line-length: {max: 140}}}"
    )
    result = subprocess.run(
        [tool("yamllint"), "-s", "-d", config, str(baked.path / ".github"), str(baked.path / "resources")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout


# --- hardening ----------------------------------------------------------------------------------


def test_every_action_is_pinned_to_a_sha_with_a_version_comment(baked: Baked) -> None:
    for path in sorted((baked.path / ".github" / "workflows").glob("*.yml")):
        for line in path.read_text().splitlines():
            if re.match(r"^\s*(-\s*)?uses:", line) and not re.search(r"uses:\s*\./", line):
                assert SHA_PIN.match(line), f"{path.name}: {line.strip()}"


def test_permissions_are_least_privilege(baked: Baked) -> None:
    for name, flow in baked.workflows.items():
        assert flow.get("permissions") == {}, f"{name}: workflow-level permissions must be {{}}"
        for job_name, job in jobs(flow).items():
            permissions = job.get("permissions")
            assert isinstance(permissions, dict), f"{name}:{job_name} states no permissions"
            assert set(permissions.values()) <= {"read", "write", "none"}
            writes = {scope for scope, level in permissions.items() if level == "write"}
            assert writes <= {"id-token"}, f"{name}:{job_name} writes {writes}"
            if "id-token" in writes:
                oidc = baked.context["ci_auth"] == "github_oidc"
                assert oidc and (environment(job) or "uses" in job), f"{name}:{job_name}: id-token without OIDC need"


def test_checkouts_do_not_persist_credentials(baked: Baked) -> None:
    for name, flow in baked.workflows.items():
        for job in jobs(flow).values():
            for step in job.get("steps", []):
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step.get("with", {}).get("persist-credentials") is False, name


def test_no_dangerous_triggers_or_untrusted_expressions_in_scripts(baked: Baked) -> None:
    for name, flow in baked.workflows.items():
        assert not triggers(flow) & {"pull_request_target", "workflow_run"}, name
        for job in jobs(flow).values():
            for step in job.get("steps", []):
                assert not UNTRUSTED.search(step.get("run", "")), f"{name}: untrusted expression in run:"
                assert "${{" not in step.get("run", ""), f"{name}: pass expressions to run: through env"


def test_concurrency_cancels_pull_requests_but_never_deploys(baked: Baked) -> None:
    for name, flow in baked.workflows.items():
        groups = [flow.get("concurrency")] + [job.get("concurrency") for job in jobs(flow).values()]
        groups = [g for g in groups if g]
        assert groups, f"{name} has no concurrency group"
        deploys = any(verb in ("deploy", "run") for job in jobs(flow).values() for verb, _ in bundle_commands(job))
        for group in groups:
            cancel = group.get("cancel-in-progress") if isinstance(group, dict) else False
            if deploys and not triggers(flow) & PR_TRIGGERS:
                assert cancel is False, f"{name}: a running deploy must never be cancelled"


def test_no_caches_in_jobs_that_deploy(baked: Baked) -> None:
    for name, flow in baked.workflows.items():
        for job_name, job in jobs(flow).items():
            if not bundle_commands(job):
                continue
            for step in job.get("steps", []):
                assert "cache" not in step.get("uses", ""), f"{name}:{job_name}"
                assert "cache" not in step.get("with", {}), f"{name}:{job_name}"


def test_the_cli_comes_from_setup_cli_and_every_bundle_command_names_its_target(baked: Baked) -> None:
    for name, flow in baked.workflows.items():
        for job_name, job in jobs(flow).items():
            commands = bundle_commands(job)
            if not commands:
                continue
            uses = [step.get("uses", "") for step in job["steps"]]
            assert any(u.startswith("databricks/setup-cli@") for u in uses), f"{name}:{job_name}"
            for verb, target in commands:
                assert target, f"{name}:{job_name}: `databricks bundle {verb}` without -t"
            assert "pip install databricks-cli" not in steps_text(job)


def test_auth_follows_the_answer(baked: Baked) -> None:
    oidc = baked.context["ci_auth"] == "github_oidc"
    for name, flow in baked.workflows.items():
        for job_name, job in jobs(flow).items():
            if not bundle_commands(job):
                continue
            env = {**flow.get("env", {}), **job.get("env", {})}
            for step in job["steps"]:
                env.update(step.get("env", {}))
            text = json.dumps(env)
            assert "DATABRICKS_TOKEN" not in text, "no personal access tokens"
            assert "vars.DATABRICKS_HOST" in text and "vars.DATABRICKS_CLIENT_ID" in text, f"{name}:{job_name}"
            if oidc:
                assert env.get("DATABRICKS_AUTH_TYPE") == "github-oidc"
                assert job["permissions"].get("id-token") == "write"
                assert "secrets." not in text
            else:
                assert "secrets.DATABRICKS_CLIENT_SECRET" in text
                assert "id-token" not in job["permissions"]
            assert environment(job) in ("dev", "staging", "prod"), f"{name}:{job_name} has no GitHub Environment"


# --- topology: where each pattern tests and deploys --------------------------------------------


def pr_flows(baked: Baked) -> dict[str, dict[str, Any]]:
    return {name: flow for name, flow in baked.workflows.items() if triggers(flow) & PR_TRIGGERS}


def test_unit_tests_run_on_the_runner_without_credentials(baked: Baked) -> None:
    ci = baked.workflows["ci.yml"]
    assert ci["name"] == "CI"
    assert {"pull_request", "push"} <= triggers(ci)
    unit = [job for job in jobs(ci).values() if "pytest tests/unit" in steps_text(job)]
    assert unit, "CI runs the unit tests"
    for job in jobs(ci).values():
        assert environment(job) is None and not bundle_commands(job)
        assert "id-token" not in job["permissions"]


def test_integration_tests_run_in_the_pattern_s_environment(baked: Baked) -> None:
    flow = baked.workflows["integration-tests.yml"]
    assert triggers(flow) == {"pull_request"} or triggers(flow) == {"pull_request", "workflow_dispatch"}
    expected_env = "staging" if baked.pattern == "deploy_code" else "dev"
    deploying = [job for job in jobs(flow).values() if bundle_commands(job)]
    assert len(deploying) == 1
    job = deploying[0]
    assert environment(job) == expected_env
    verbs = [verb for verb, _ in bundle_commands(job)]
    assert {target for _, target in bundle_commands(job)} == {"test"}
    assert verbs.index("deploy") < verbs.index("run") and verbs[-1] == "destroy"
    runs = steps_text(job)
    assert "model_training" in runs and "batch_inference" in runs
    assert "pytest tests/integration" in runs
    assert "test_id=pr_" in runs
    destroy = next(step for step in job["steps"] if "bundle destroy" in step.get("run", ""))
    assert destroy.get("if") == "always()", "tear down also when a step failed"
    concurrency = flow.get("concurrency") or job.get("concurrency")
    assert concurrency["cancel-in-progress"] is True


def test_no_pull_request_job_reaches_prod(baked: Baked) -> None:
    for name, flow in pr_flows(baked).items():
        for job_name, job in jobs(flow).items():
            assert environment(job) != "prod", f"{name}:{job_name}"
            assert all(target not in ("prod", "staging-prod") for _, target in bundle_commands(job))
            assert "prod" not in json.dumps(job.get("env", {})).lower()
            if baked.pattern == "deploy_models":
                assert environment(job) in (None, "dev"), "nothing on a pull request reaches staging or prod"


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
    if baked.pattern != "deploy_code":
        assert "deploy.yml" not in baked.workflows
        return
    flow = baked.workflows["deploy.yml"]
    assert flow["name"] == "Deploy"
    branches = set(flow["on"]["push"]["branches"])
    assert branches == {baked.context["default_branch"], baked.context["release_branch"]}
    by_env = {environment(job): job for job in jobs(flow).values()}
    assert set(by_env) == {"staging", "prod"}
    for env in ("staging", "prod"):
        commands = bundle_commands(by_env[env])
        assert ("deploy", env) in commands
        assert any(verb == "run" and target == env for verb, target in commands)
        assert "model_training" in steps_text(by_env[env]), "every environment retrains from the released code"
    assert baked.context["release_branch"] in json.dumps(by_env["prod"].get("if", ""))
    assert baked.context["default_branch"] in json.dumps(by_env["staging"].get("if", ""))


def test_deploy_models_flow(baked: Baked) -> None:
    if baked.pattern != "deploy_models":
        assert not {"train.yml", "promote.yml", "release.yml"} & set(baked.workflows)
        return
    train = baked.workflows["train.yml"]
    assert train["on"]["push"]["branches"] == [baked.context["default_branch"]]
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

    release = baked.workflows["release.yml"]
    assert release["on"]["push"]["branches"] == [baked.context["release_branch"]]
    deployer = next(job for job in jobs(release).values() if bundle_commands(job))
    assert environment(deployer) == "prod"
    assert ("deploy", "prod") in bundle_commands(deployer)
    assert "model_training" not in steps_text(deployer), "deploy models never retrains in prod"


def test_workflow_names_are_stable(baked: Baked) -> None:
    names = {file: flow["name"] for file, flow in baked.workflows.items()}
    common = {"ci.yml": "CI", "integration-tests.yml": "Integration tests", "lint-workflows.yml": "Lint workflows"}
    own = (
        {"deploy.yml": "Deploy"}
        if baked.pattern == "deploy_code"
        else {"train.yml": "Train", "promote.yml": "Promote model", "release.yml": "Release"}
    )
    assert names == {**common, **own}


def test_lint_workflow_runs_zizmor_and_the_schema(baked: Baked) -> None:
    lint = baked.workflows["lint-workflows.yml"]
    text = "\n".join(steps_text(job) for job in jobs(lint).values())
    assert "zizmor" in text and "check-jsonschema" in text and "vendor.github-workflows" in text
    precommit = baked.yaml(".pre-commit-config.yaml")
    hooks = {hook["id"] for repo in precommit["repos"] for hook in repo["hooks"]}
    assert {"zizmor", "check-github-workflows", "check-merge-conflict"} <= hooks
