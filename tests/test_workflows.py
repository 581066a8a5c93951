"""Generated GitHub Actions: linters (zizmor, the vendored workflow schema) and the pattern's test/deploy topology."""

from __future__ import annotations

import json
import os
import re
import shutil
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
# What a GitHub job needs beyond the Databricks jobs it waits for: checkout, CLI, wheel build, deploy, teardown.
DEPLOY_MARGIN_MINUTES = 15
ENVIRONMENTS = ("test", "dev", "staging", "prod")
# Workflows whose runs must all run, waiting ones included: no concurrency group (GitHub cancels a pending run of
# a group when another arrives, whatever cancel-in-progress says).
NEVER_DROPPED = {"promote.yml", "release.yml"}
LOCK = "requirements/ci.txt"
SWITCH_LOCK = "requirements/template-update.txt"
SWITCH_PINNED = ("cruft", "typer", "cookiecutter")
DEPENDABOT = "github.actor != 'dependabot[bot]'"
TEMPLATE_UPDATE = "template-update.yml"


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


def needs(job: dict[str, Any]) -> set[str]:
    value = job.get("needs", [])
    return {value} if isinstance(value, str) else set(value)


def run_jobs(job: dict[str, Any]) -> list[tuple[str, str]]:
    """(Databricks job key, target) for every `databricks bundle run <key> -t <target>` a GitHub job runs."""
    found = []
    for verb, rest in BUNDLE_COMMAND.findall(steps_text(job)):
        if verb != "run":
            continue
        key = rest.split()[0] if rest.split() else ""
        assert re.fullmatch(r"[A-Za-z_]\w*", key), f"`bundle run` names its job first: {rest!r}"
        target = TARGET_FLAG.search(rest)
        found.append((key, target.group(1) if target else ""))
    return found


def step_running(job: dict[str, Any], text: str) -> dict[str, Any]:
    matches = [step for step in job.get("steps", []) if text in step.get("run", "")]
    assert len(matches) == 1, f"expected one step running {text!r}"
    return matches[0]


def run_step(step: dict[str, Any], env: dict[str, str], tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run a step's script as GitHub's default shell does (bash -e); also returns what it wrote to $GITHUB_OUTPUT."""
    output = tmp_path / "github_output"
    output.write_text("")
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", "-c", step["run"]],
        env={**env, "GITHUB_OUTPUT": str(output)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, output.read_text()


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
    # The actions and the credentialed jobs' lock are pinned; pyproject.toml's dependencies are lower bounds.
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
        [
            tool("yamllint"),
            "-s",
            "-d",
            config,
            *(str(baked.path / p) for p in (".github", "resources", "targets", "databricks.yml")),
        ],
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
            if name == TEMPLATE_UPDATE:
                # The one job that pushes a branch and opens a pull request; it holds no Databricks credential.
                assert writes == {"contents", "pull-requests"}, f"{name}:{job_name} writes {writes}"
                assert set(permissions) == writes, f"{name}:{job_name} asks for more than it writes"
                assert not environment(job) and "DATABRICKS" not in json.dumps(job), f"{name}:{job_name}"
                continue
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
        assert groups or name in NEVER_DROPPED, f"{name} has no concurrency group"
        deploys = any(verb in ("deploy", "run") for job in jobs(flow).values() for verb, _ in bundle_commands(job))
        for group in groups:
            cancel = group.get("cancel-in-progress") if isinstance(group, dict) else False
            if deploys and not triggers(flow) & PR_TRIGGERS:
                assert cancel is False, f"{name}: a running deploy must never be cancelled"
        if triggers(flow) & PR_TRIGGERS:
            # One group per pull request, and a new push cancels the superseded run (on pushes to a branch, a
            # workflow that also runs there may keep `cancel-in-progress` to pull requests only).
            top = flow.get("concurrency")
            assert isinstance(top, dict), f"{name}: a pull-request workflow needs a workflow-level group"
            assert "github.event.pull_request.number" in top["group"], name
            cancel = top.get("cancel-in-progress")
            if triggers(flow) <= PR_TRIGGERS:
                assert cancel is True, f"{name}: a superseded pull-request run must be cancelled"
            else:
                assert re.fullmatch(r"\$\{\{\s*github\.event_name == 'pull_request'\s*\}\}", str(cancel)), name


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
                assert env.get("DATABRICKS_AUTH_TYPE") == "oauth-m2m", f"{name}:{job_name}"
                assert env.get("DATABRICKS_CLIENT_SECRET") == "${{ secrets.DATABRICKS_CLIENT_SECRET }}"
                assert "id-token" not in job["permissions"]
            assert environment(job) in ENVIRONMENTS, f"{name}:{job_name} has no GitHub Environment"


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
    env = baked.facts.test_env
    test_target = baked.bundle.targets["test"]
    assert test_target["workspace"]["host"] == baked.context[f"{env}_workspace_host"]
    assert test_target["variables"]["catalog"] == baked.context[f"{env}_catalog"]


def integration_gate(baked: Baked) -> tuple[str, dict[str, Any], str]:
    """(integration job key, gate job, gate key) of the Integration tests workflow."""
    flow = baked.workflows["integration-tests.yml"]
    integration = next(key for key, job in jobs(flow).items() if bundle_commands(job))
    gates = [key for key, job in jobs(flow).items() if key != integration]
    assert len(gates) == 1, "one gate job besides the integration job"
    return integration, jobs(flow)[gates[0]], gates[0]


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
    expected = {"staging", "prod"} if baked.pattern == "deploy_code" else {"dev", "staging", "prod"}
    assert elsewhere == expected


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


def test_workflow_names_are_stable(baked: Baked) -> None:
    names = {file: flow["name"] for file, flow in baked.workflows.items()}
    common = {
        "ci.yml": "CI",
        "integration-tests.yml": "Integration tests",
        "lint-workflows.yml": "Lint workflows",
        TEMPLATE_UPDATE: "Template update",
    }
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


def test_github_timeouts_outlast_the_databricks_jobs(baked: Baked) -> None:
    """GitHub kills `bundle run` at timeout-minutes while the Databricks run goes on: each GitHub job must allow the
    `timeout_seconds` of every Databricks job it runs (one after the other), plus a margin for deploy and teardown."""
    checked = 0
    for name, flow in baked.workflows.items():
        for job_name, job in jobs(flow).items():
            if "uses" in job:
                continue
            assert isinstance(job.get("timeout-minutes"), int), f"{name}:{job_name} needs timeout-minutes"
            waits = 0
            for key, target in run_jobs(job):
                databricks_job = baked.bundle.jobs(target).get(key)
                assert databricks_job, f"{name}:{job_name} runs {key}, which target {target} lacks"
                seconds = databricks_job.get("timeout_seconds", 0)
                assert seconds > 0, f"{key} in {target} has no timeout: GitHub's would always cut it short"
                waits += seconds
                checked += 1
            minutes, needed = job["timeout-minutes"], waits / 60 + DEPLOY_MARGIN_MINUTES
            if waits:
                assert minutes >= needed, f"{name}:{job_name}: timeout-minutes {minutes} < {needed:.0f}"
    assert checked >= 3


def test_lint_workflow_installs_the_pre_commit_versions(baked_default: Baked) -> None:
    """Dependabot bumps .pre-commit-config.yaml's revs but not a version pinned in a `run:` line."""
    lint = baked_default.workflows["lint-workflows.yml"]
    text = "\n".join(steps_text(job) for job in jobs(lint).values())
    pinned = dict(re.findall(r"([\w-]+)==([\w.]+)", text))
    revs = {}
    for repo in baked_default.yaml(".pre-commit-config.yaml")["repos"]:
        url = repo["repo"]
        if url.endswith("/zizmor-pre-commit"):
            revs["zizmor"] = repo["rev"].removeprefix("v")
        elif url.endswith("/check-jsonschema"):
            revs["check-jsonschema"] = repo["rev"].removeprefix("v")
    assert set(revs) == {"zizmor", "check-jsonschema"}
    assert pinned == revs
    assert "Dependabot" in baked_default.text(".github/workflows/lint-workflows.yml"), "say why the pin is manual"


def test_setup_docs_cover_every_environment_the_workflows_use(baked: Baked) -> None:
    used = {environment(job) for flow in baked.workflows.values() for job in jobs(flow).values()} - {None}
    setup = baked.text("docs/setup.md")
    section = setup.split("## 4. GitHub Environments", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| (.*)$", section, flags=re.MULTILINE))
    assert set(rows) == used, "one row per Environment a workflow uses, no other"
    test_host = baked.bundle.targets["test"]["workspace"]["host"]
    assert rows["test"].startswith(f"`DATABRICKS_HOST` = `{test_host}`")
    assert f"application ID of `{baked.context['project_slug']}-test`" in rows["test"]
    assert "No restriction" in rows["test"]
    for env in used - {"test"}:
        assert "Selected branches" in rows[env], f"{env} admits only its branches"
    assert "scripts/setup-environments apply" in setup, "the Environments are created by the set-up tool"
    assert "**yes**" in rows["prod"]
    if baked.context["ci_auth"] == "github_oidc":
        for env in used:
            assert f"repo:{baked.context['github_repository']}:environment:{env}`" in setup
    _, gate, _ = integration_gate(baked)
    assert f"**Integration tests / {gate['name']}**" in setup, "the gate is the required check"
    assert "git push origin" not in setup.split("## 6.", 1)[1], "releases are pull requests"


# --- runs are never dropped, credentialed jobs install only locked input, Dependabot is tested ---------------


def concurrency_groups(flow: dict[str, Any]) -> list[str]:
    found = [flow.get("concurrency")] + [job.get("concurrency") for job in jobs(flow).values()]
    return [g["group"] if isinstance(g, dict) else g for g in found if g]


def test_no_pending_promotion_or_release_can_be_cancelled(baked: Baked) -> None:
    """A concurrency group holds one running and one pending run, and cancels the pending one when a third arrives.
    Promotions (one per model version) and releases must never wait in one; no prod group is shared between
    workflows either. Databricks queues the promotion job instead (tests/test_bundle.py)."""
    for name in NEVER_DROPPED & set(baked.workflows):
        assert concurrency_groups(baked.workflows[name]) == [], f"{name}: a waiting run could be cancelled"
    owners: dict[str, str] = {}
    for name, flow in baked.workflows.items():
        for group in concurrency_groups(flow):
            group = re.sub(r"\$\{\{\s*github\.workflow\s*\}\}", flow["name"], group)  # one group per workflow
            assert owners.setdefault(group, name) == name, f"{name} and {owners[group]} share the group {group!r}"
    if baked.pattern == "deploy_models":
        assert {"promote.yml", "release.yml"} <= set(baked.workflows)


def credentialed(job: dict[str, Any]) -> bool:
    return job.get("permissions", {}).get("id-token") == "write" or "secrets." in json.dumps(job)


def assert_hash_locked(lock: str, wanted: tuple[str, ...]) -> None:
    """Every requirement pinned with == and followed by its sha256 hashes (pip-compile --generate-hashes)."""
    requirements = [line for line in lock.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    assert len(requirements) >= 5
    for requirement in requirements:
        name = requirement.split("==")[0]
        assert re.fullmatch(r"[A-Za-z0-9._-]+==[^ ]+ \\", requirement), requirement
        block = lock.split(requirement, 1)[1].split("\n\n", 1)[0]
        assert "--hash=sha256:" in block.split("# via", 1)[0], f"{name} has no hash"
    for name in wanted:
        assert any(r.lower().startswith(f"{name}==") for r in requirements), name


def test_jobs_holding_credentials_install_only_hash_pinned_input(baked: Baked) -> None:
    """Every job with id-token: write or a secret installs with --require-hashes from the lock and nothing else; the
    bundle's wheel build (in every deploy) fetches nothing (tests/test_bundle.py)."""
    checked = 0
    for name, flow in baked.workflows.items():
        for job_name, job in jobs(flow).items():
            if "steps" not in job or not credentialed(job):
                continue
            installs = re.findall(r"pip install[^\n]*", steps_text(job))
            expected = LOCK if name != TEMPLATE_UPDATE else SWITCH_LOCK
            assert installs == [f"pip install --require-hashes --no-deps -r {expected}"], (
                f"{name}:{job_name}: {installs}"
            )
            assert not re.search(r"\b(uv|pipx|conda|poetry)\b", steps_text(job)), f"{name}:{job_name}"
            install = next(i for i, step in enumerate(job["steps"]) if "pip install" in step.get("run", ""))
            first_use = next(
                i
                for i, step in enumerate(job["steps"])
                if re.search(r"databricks bundle|scripts/", step.get("run", ""))
            )
            assert install < first_use, f"{name}:{job_name}: the lock is installed before anything runs"
            checked += 1
    assert checked >= 4
    for lock_path, wanted in ((LOCK, ("databricks-sdk", "pytest", "setuptools")), (SWITCH_LOCK, SWITCH_PINNED)):
        assert_hash_locked(baked.text(lock_path), wanted)
    # The Template update lock is the switch tool's pins, resolved: the same versions the script checks for.
    pins = baked.text("scripts/switch-pattern.requirements.txt")
    for pin in re.findall(r"^[A-Za-z0-9._-]+==\S+", pins, flags=re.MULTILINE):
        assert f"{pin.lower()} \\" in baked.text(SWITCH_LOCK).lower(), pin
    updates = {update["package-ecosystem"]: update for update in baked.yaml(".github/dependabot.yml")["updates"]}
    assert updates["pip"]["directory"] == "/requirements", "Dependabot keeps the lock current"
    assert "pip-compile --generate-hashes" in baked.text("requirements/ci.in")


def test_dependabot_pull_requests_are_neither_blocked_nor_passed_untested(baked: Baked, tmp_path: Path) -> None:
    """Dependabot's runs get no secrets: the integration job is skipped for them and the gate stays red with the way
    out (a maintainer's commit, whose run has credentials). No run passes the gate without the integration tests."""
    integration, gate, _ = integration_gate(baked)
    flow = baked.workflows["integration-tests.yml"]
    assert DEPENDABOT in jobs(flow)[integration]["if"]
    step = step_running(gate, "exit 1")
    env = step["env"]
    assert env["ACTOR"] == "${{ github.actor }}"
    result_var = next(key for key, value in env.items() if "needs." in value)
    for actor, result, passes in (
        ("dependabot[bot]", "skipped", False),
        ("dependabot[bot]", "success", True),  # never happens today; if it did, the tests ran
        ("a-maintainer", "success", True),
        ("a-maintainer", "skipped", False),
    ):
        outcome, _ = run_step(step, {"PATH": os.environ["PATH"], "ACTOR": actor, result_var: result}, tmp_path)
        assert (outcome.returncode == 0) is passes, (actor, result)
        if actor.startswith("dependabot") and not passes:
            assert "pushes a commit" in outcome.stdout + outcome.stderr
    ci = baked.workflows["ci.yml"]
    assert all("if" not in job for job in jobs(ci).values()), "CI (unit and e2e) runs for Dependabot too"
    assert "pytest tests/e2e" in "\n".join(steps_text(job) for job in jobs(ci).values())
    assert "Dependabot pull requests" in baked.text("docs/setup.md")
