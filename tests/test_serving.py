"""serving_endpoint: a model serving endpoint per serving target, following champion, managed by job tasks.

Each trap of real-time serving has a test here: nothing of serving without the answer; no endpoint declared in the
bundle (a deploy could revert it, the first deploy of an empty environment would fail, and the CLI's run_as rule
would refuse it); the endpoint created by the environment's principal only; serve and smoke-test right after every
move of champion; no endpoint in dev or the pull requests' test target; the release or promotion to prod waits for
the staging smoke test; the docs name what the code does. The generated code's own tests of the tasks (a real
scoring server, the real SDK against a fake serving API) run in the slow tier (tests/test_generated.py).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import test_bundle
import test_workflow_lint
from cookiecutter.utils import create_env_with_context
from jinja2 import FileSystemLoader
from support import REPO, TEMPLATE_DIR, Baked, partial, walk_strings
from test_bundle import bundle_schema_validator  # noqa: F401 (a fixture, used through request)
from test_switch_pattern import OTHER, check, committed_copy
from test_workflow_lint import workflow_schema  # noqa: F401 (a fixture, used through request)
from workflows import bundle_commands, environment, jobs, needs, run_jobs, run_step, step_running

from template_rules import files

SERVING_FILES = {
    "resources/serving-endpoint.job.yml",
    "src/{package}/serving.py",
    "src/{package}/smoke_test.py",
    "tests/unit/test_serving.py",
    "tests/e2e/test_real_time_serving.py",
    "tests/e2e/serving_fake.py",
    "docs/serving.md",
}
ENTRY_POINTS = {"serve-model", "smoke-test-endpoint"}
# Resource kinds the CLI refuses when a target's run_as is not the deploying identity (bundle/config/mutator/
# resourcemutator/run_as.go; dashboards only with embed_credentials).
RUN_AS_RESTRICTED = ("model_serving_endpoints", "quality_monitors", "apps")


def entry_point(task: dict[str, Any]) -> str | None:
    """A wheel task's entry point; None for the other tasks (the retraining run_job_task of deploy code)."""
    return task.get("python_wheel_task", {}).get("entry_point")


def serving_files(baked: Baked) -> set[str]:
    return {path.format(package=baked.package) for path in SERVING_FILES}


def wheel_tasks(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {task["task_key"]: task for task in job["tasks"]}


def champion_job(baked: Baked, target: str) -> str:
    """The job that moves champion in a serving target: model_training where it trains, else model_promotion."""
    return "model_training" if target in baked.facts.serving_training_targets else "model_promotion"


# --- without the answer, nothing ---------------------------------------------------------------------------


@pytest.mark.answers(serving_endpoint=False)
def test_without_the_answer_nothing_of_serving_is_generated(baked: Baked) -> None:
    files = baked.files()
    assert not serving_files(baked) & files
    assert not ENTRY_POINTS & set(test_bundle.console_scripts(baked))
    for target in baked.bundle.targets:
        assert "serving_endpoint" not in baked.bundle.jobs(target), target
    for path in baked.text_files():
        text = path.read_text()
        for token in ("serve-model", "smoke-test-endpoint", "serving_endpoint", "docs/serving.md", "serving_payload"):
            assert token not in text, (path.relative_to(baked.path), token)


def test_the_serving_files_are_kept_by_the_answer_alone() -> None:
    """Not pattern files: both patterns have them, so a pattern switch rewrites them instead of deleting them."""
    table = files.KEEP_WHEN
    assert {path for path, condition in table.items() if condition == {"serving_endpoint": True}} == SERVING_FILES


def test_a_pattern_s_serving_targets_are_where_it_validates_a_champion() -> None:
    """One row per pattern (cookiecutter.json's _patterns): the serving tasks follow whichever job moves champion
    there, so a pattern that trains in staging and promotes to prod needs no other change."""
    for pattern in ("deploy_code", "deploy_models", "hybrid"):
        facts = partial("pattern.j2", {"deployment_pattern": pattern})
        assert list(facts.serving_targets) == ["staging", "prod"]
        assert {*facts.serving_training_targets, *facts.serving_promotion_targets} == set(facts.serving_targets)
    assert list(partial("pattern.j2", {"deployment_pattern": "deploy_code"}).serving_training_targets) == [
        "staging",
        "prod",
    ]
    assert list(partial("pattern.j2", {"deployment_pattern": "deploy_models"}).serving_promotion_targets) == [
        "staging",
        "prod",
    ]
    hybrid = partial("pattern.j2", {"deployment_pattern": "hybrid"})  # staging trains, prod receives the copy
    assert (list(hybrid.serving_training_targets), list(hybrid.serving_promotion_targets)) == (["staging"], ["prod"])


# --- the bundle ----------------------------------------------------------------------------------------


def test_no_endpoint_is_declared_in_the_bundle(baked_serving: Baked) -> None:
    """A declared endpoint needs its version at deploy time (the first deploy of an empty environment has none),
    would be set back to the YAML's version by every later deploy, and blocks a deploy for up to 35 minutes."""
    for target in baked_serving.bundle.targets:
        assert "model_serving_endpoints" not in baked_serving.bundle.view(target).get("resources", {}), target
    for content in baked_serving.bundle.files.values():
        assert "model_serving_endpoints" not in json.dumps(content)


def run_as_errors(view: dict[str, Any], deployer: str) -> list[str]:
    """bundle/config/mutator/resourcemutator/run_as.go, restated: with a run_as other than the identity that
    deploys, resources whose API has no run_as are refused."""
    run_as = view.get("run_as")
    if not run_as:
        return []
    identity = run_as.get("service_principal_name") or run_as.get("user_name")
    if identity == deployer:
        return []
    return [
        f"{kind} do not support a run_as different from the owner"
        for kind in RUN_AS_RESTRICTED
        if view["resources"].get(kind)
    ]


def deployers(baked: Baked) -> dict[str, str]:
    """Who deploys each target: CI's Environment principal (a lookup of it is what run_as names) where a workflow
    deploys it, else whoever runs `bundle deploy` (a developer in dev, the test principal for pull requests)."""
    found = {target: "a developer" for target in baked.bundle.targets}
    for flow in baked.workflows.values():
        for job in jobs(flow).values():
            for verb, target in bundle_commands(job):
                if verb == "deploy":
                    found[target] = f"{baked.context['project_slug']}-{environment(job)}"
    return found


def resolved_run_as(baked: Baked, target: str) -> dict[str, Any]:
    view = baked.bundle.view(target)
    run_as = view.get("run_as")
    if run_as and run_as.get("service_principal_name") == "${var.service_principal}":
        lookup = baked.bundle.targets[target]["variables"]["service_principal"]["lookup"]["service_principal"]
        view = {**view, "run_as": {"service_principal_name": lookup}}
    return view


def test_every_target_validates_for_the_identity_that_deploys_it(baked_serving: Baked) -> None:
    who = deployers(baked_serving)
    for target in baked_serving.bundle.targets:
        assert run_as_errors(resolved_run_as(baked_serving, target), who[target]) == [], (target, who[target])
    # The rule has teeth: an endpoint declared in prod would pass for CI's principal and fail for a person.
    prod = resolved_run_as(baked_serving, "prod")
    declared = {**prod, "resources": {**prod["resources"], "model_serving_endpoints": {"e": {"name": "e"}}}}
    assert run_as_errors(declared, who["prod"]) == []
    assert run_as_errors(declared, "alice@example.com") != []


def test_the_job_that_moves_champion_serves_and_smoke_tests_right_after_deploy(baked_serving: Baked) -> None:
    bundle = baked_serving.bundle
    for target in baked_serving.facts.serving_targets:
        job = bundle.jobs(target)[champion_job(baked_serving, target)]
        keys = [task["task_key"] for task in job["tasks"]]
        assert keys[-3:] == ["deploy", "serve", "smoke_test"], (target, keys)
        tasks = wheel_tasks(job)
        assert tasks["serve"]["depends_on"] == [{"task_key": "deploy"}]
        assert tasks["smoke_test"]["depends_on"] == [{"task_key": "serve"}]
        standalone = wheel_tasks(bundle.jobs(target)["serving_endpoint"])
        assert list(standalone) == ["serve", "smoke_test"]
        assert "depends_on" not in standalone["serve"]
        for key in ("serve", "smoke_test"):  # one definition (YAML anchors): the two jobs cannot drift apart
            assert {k: v for k, v in tasks[key].items() if k != "depends_on"} == {
                k: v for k, v in standalone[key].items() if k != "depends_on"
            }, (target, key)
        assert tasks["serve"]["python_wheel_task"]["entry_point"] == "serve-model"
        assert tasks["smoke_test"]["python_wheel_task"]["entry_point"] == "smoke-test-endpoint"
        assert tasks["serve"]["max_retries"] == 0 and tasks["smoke_test"]["max_retries"] == 0


def test_the_serving_file_adds_tasks_to_that_job_and_nothing_else(baked_serving: Baked) -> None:
    """The job's own file stays the one definition of it; only the two tasks come from the serving file."""
    content = baked_serving.bundle.files["resources/serving-endpoint.job.yml"]
    for target, settings in content["targets"].items():
        added = settings["resources"]["jobs"]
        assert set(added) == {"serving_endpoint", champion_job(baked_serving, target)}
        assert set(added[champion_job(baked_serving, target)]) == {"tasks"}, target


def test_the_endpoint_is_created_and_managed_by_the_environment_principal(baked_serving: Baked) -> None:
    """An endpoint's identity is its creator's, for good: the serve task runs as the target's run_as service
    principal, names it as the only CAN_MANAGE, and exists in no target that runs as a person."""
    bundle = baked_serving.bundle
    for target in bundle.targets:
        serving = [
            (key, task)
            for key, job in bundle.jobs(target).items()
            for task in job["tasks"]
            if entry_point(task) == "serve-model"
        ]
        if target not in baked_serving.facts.serving_targets:
            assert serving == [], f"{target} runs as whoever deploys it: no endpoint may be created there"
            continue
        assert bundle.targets[target]["run_as"] == {"service_principal_name": "${var.service_principal}"}
        assert bundle.targets[target]["mode"] == "production"
        assert len(serving) == 2, target
        for key, task in serving:
            assert "run_as" not in bundle.jobs(target)[key], "the target's run_as, not a job's own"
            assert task["python_wheel_task"]["named_parameters"]["service_principal"] == "${var.service_principal}"


def test_the_pull_requests_test_target_and_dev_get_no_endpoint(baked_serving: Baked) -> None:
    for target in set(baked_serving.bundle.targets) - set(baked_serving.facts.serving_targets):
        assert "serving_endpoint" not in baked_serving.bundle.jobs(target), target
        for job in baked_serving.bundle.jobs(target).values():
            assert not {entry_point(t) for t in job["tasks"]} & ENTRY_POINTS, target


def test_staging_scales_to_zero_prod_is_sized_by_variables(baked_serving: Baked) -> None:
    bundle = baked_serving.bundle
    assert bundle.variable("staging", "serving_scale_to_zero") == "true"
    assert bundle.variable("prod", "serving_scale_to_zero") == "false"
    prod = bundle.targets["prod"]["variables"]
    assert {"serving_workload_size", "serving_workload_type"} <= set(prod), "prod states its size where it is changed"
    serve = wheel_tasks(bundle.jobs("prod")["serving_endpoint"])["serve"]["python_wheel_task"]["named_parameters"]
    for parameter in ("workload_size", "workload_type", "scale_to_zero", "query_group", "endpoint_name"):
        assert serve[parameter] == f"${{var.serving_{parameter}}}", parameter
    assert bundle.variable("prod", "serving_query_group") == "${var.read_group}", "a group the team names"
    # One endpoint per target, never shared (staging and prod may share a workspace); not a bundle resource, so
    # development mode's name prefix does not apply and the name is the same wherever it is read.
    assert bundle.merged["variables"]["serving_endpoint_name"]["default"] == "${bundle.name}-${bundle.target}"


def test_the_smoke_test_reads_the_endpoint_the_serve_task_writes(baked_serving: Baked) -> None:
    for target in baked_serving.facts.serving_targets:
        tasks = wheel_tasks(baked_serving.bundle.jobs(target)["serving_endpoint"])
        serve, smoke = (tasks[key]["python_wheel_task"]["named_parameters"] for key in ("serve", "smoke_test"))
        for key in ("catalog", "schema", "model_name", "endpoint_name"):
            assert serve[key] == smoke[key], (target, key)


def test_a_rollback_is_one_run_of_the_serving_job(baked_serving: Baked) -> None:
    for target in baked_serving.facts.serving_targets:
        job = baked_serving.bundle.jobs(target)["serving_endpoint"]
        assert job["parameters"] == [{"name": "champion_version", "default": ""}]
        assert job["queue"] == {"enabled": True} and job["max_concurrent_runs"] == 1
    doc = baked_serving.text("docs/serving.md")
    assert "databricks bundle run serving_endpoint -t prod --params champion_version=<version>" in doc


# --- workflows -----------------------------------------------------------------------------------------


@pytest.mark.answers(deployment_pattern="deploy_models")
def test_a_promotion_reaches_prod_only_after_the_staging_smoke_test(baked_serving: Baked) -> None:
    flow = baked_serving.workflows["promote.yml"]
    staging, prod = jobs(flow)["staging"], jobs(flow)["prod"]
    assert ("model_promotion", "staging") in run_jobs(staging)
    assert needs(prod) == {"staging"}
    assert "smoke_test" in wheel_tasks(baked_serving.bundle.jobs("staging")["model_promotion"])


GATE = "staging-passed"


@pytest.mark.answers(deployment_pattern="deploy_code")
def test_a_release_reaches_prod_only_after_the_staging_smoke_test(baked_serving: Baked) -> None:
    flow = baked_serving.workflows["deploy.yml"]
    gate, prod, staging = jobs(flow)[GATE], jobs(flow)["prod"], jobs(flow)["staging"]
    assert needs(prod) == {GATE}
    assert gate["if"] == prod["if"] == f"github.ref == 'refs/heads/{baked_serving.context['release_branch']}'"
    assert environment(gate) is None and gate["permissions"] == {"actions": "read"}, "no Databricks credentials"
    assert "vars." not in json.dumps(gate) and "secrets." not in json.dumps(gate)
    assert ("model_training", "staging") in run_jobs(staging)
    assert "smoke_test" in wheel_tasks(baked_serving.bundle.jobs("staging")["model_training"])
    assert gate["timeout-minutes"] >= staging["timeout-minutes"], "it may wait for a whole staging deployment"


@pytest.mark.answers(deployment_pattern="deploy_code")
@pytest.mark.parametrize(
    ("runs_of_released", "runs_of_parent", "passes", "says"),
    [
        ([], ["completed success u1"], True, "Staging passed: u1"),
        (["completed success u2"], [], True, "Staging passed: u2"),
        (["completed failure u3"], ["completed success u4"], False, "did not pass"),
        ([], ["completed cancelled u5"], False, "did not pass"),
        ([], [], False, "never deployed"),
        ([], ["in_progress null u6", "completed success u7"], True, "Staging passed: u7"),
    ],
)
def test_the_release_gate_passes_only_on_a_green_staging_run_of_the_released_commit(
    baked_serving: Baked,
    tmp_path: Path,
    runs_of_released: list[str],
    runs_of_parent: list[str],
    passes: bool,
    says: str,
) -> None:
    """The gate's script, run as GitHub runs it, against a stand-in `gh` answering for the released commit
    (`abc`, a merge) and its last parent (`def`, the commit main deployed to staging)."""
    outcome = run_gate(baked_serving, tmp_path, {"abc": runs_of_released, "def": runs_of_parent})
    assert (outcome.returncode == 0) is passes, outcome.stdout + outcome.stderr
    assert says in outcome.stdout


@pytest.mark.answers(deployment_pattern="deploy_code")
def test_the_release_gate_waits_while_staging_is_still_deploying(baked_serving: Baked, tmp_path: Path) -> None:
    outcome = run_gate(
        baked_serving, tmp_path, {"abc": [], "def": ["in_progress null u8"]}, then=["completed success u8"]
    )
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    assert "still deploying" in outcome.stdout and "Staging passed: u8" in outcome.stdout


def run_gate(
    baked: Baked, tmp_path: Path, runs: dict[str, list[str]], then: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    step = step_running(jobs(baked.workflows["deploy.yml"])[GATE], "gh api")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    (tmp_path / "then.json").write_text(json.dumps(then or []))
    gh = bin_dir / "gh"
    gh.write_text(
        "#!/usr/bin/env python3\n"
        "import json, pathlib, re, sys\n"
        f"root = pathlib.Path({str(tmp_path)!r})\n"
        "path = sys.argv[2]\n"
        "if '/commits/' in path:\n"
        "    print('def'); sys.exit(0)\n"
        "sha = re.search(r'head_sha=(\\w+)', path).group(1)\n"
        "calls = root / 'calls'; calls.write_text(calls.read_text() + 'x' if calls.exists() else 'x')\n"
        "runs = json.loads((root / 'runs.json').read_text())[sha]\n"
        "then = json.loads((root / 'then.json').read_text())\n"
        "if then and sha == 'def' and len(calls.read_text()) > 2:\n"
        "    runs = then\n"
        "print('\\n'.join(runs))\n"
    )
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    env = {**step["env"], "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "RELEASED": "abc", "POLL_SECONDS": "0"}
    env["REPOSITORY"] = "my-org/taxi-fare-model"
    outcome, _ = run_step(step, env, tmp_path)
    return outcome


# --- every serving combination is valid --------------------------------------------------------------------


def test_every_serving_combination_passes_the_linters_and_bundle_checks(baked_serving: Baked, request: Any) -> None:
    """The matrix bakes serving with some patterns and auth modes; here every one of them, through the same
    checks: zizmor, the GitHub workflow schema, yamllint, databricks-bundles' classes, the official bundle schema."""
    test_workflow_lint.test_zizmor_finds_nothing(baked_serving)
    test_workflow_lint.test_workflows_match_the_vendored_github_schema(
        baked_serving, request.getfixturevalue("workflow_schema")
    )
    test_workflow_lint.test_yamllint_accepts_every_workflow(baked_serving)
    test_bundle.test_every_resource_loads_through_databricks_bundles(baked_serving)
    test_bundle.test_every_variable_used_is_declared_and_resolved(baked_serving)
    test_bundle.test_tasks_name_existing_entry_points_and_tasks(baked_serving)
    if test_bundle.SCHEMA_FILE.is_file():
        test_bundle.test_every_bundle_file_validates_against_the_official_schema(
            baked_serving, request.getfixturevalue("bundle_schema_validator")
        )


def test_the_serving_file_is_byte_for_byte_what_the_bundle_loader_sees(baked_serving: Baked) -> None:
    """Its anchors and merge keys resolve the way the CLI resolves them: the serve task of the champion job is
    the standalone one plus its depends_on, in each target (PyYAML and the CLI's loader both expand `<<:`)."""
    raw = (baked_serving.path / "resources" / "serving-endpoint.job.yml").read_text()
    assert "<<: *serve" in raw and "&serve" in raw and "*smoke_test" in raw
    for string in walk_strings(baked_serving.bundle.files["resources/serving-endpoint.job.yml"]):
        assert "<<" not in string and "*serve" not in string


# --- docs ----------------------------------------------------------------------------------------------


def test_the_docs_name_what_the_code_does(baked_serving: Baked) -> None:
    doc = baked_serving.text("docs/serving.md")
    context = baked_serving.context
    for target in baked_serving.facts.serving_targets:
        catalog = context[f"{target}_catalog"]
        assert f"`{catalog}.{context['schema_name']}.serving_payload`" in doc, "the exact inference table"
        assert f"`{context['project_slug']}-{target}`" in doc, "the endpoint's name"
        assert f"| `{target}` | `{champion_job(baked_serving, target)}` |" in doc
    for phrase in ("dataframe_split", "curl -X POST", "serving_endpoints.query", "CAN_QUERY", "CAN_MANAGE", "35"):
        assert phrase in doc, phrase
    assert "docs/serving.md" in baked_serving.text("README.md")
    source = baked_serving.text(f"src/{baked_serving.package}/serving.py")
    assert 'INFERENCE_TABLE_PREFIX = "serving"' in source, "the table name the docs give"


def test_the_switch_check_names_a_serving_file_left_from_the_other_pattern(
    baked_serving: Baked, tmp_path: Path
) -> None:
    """A switch whose merge kept the old pattern's serving file (the job it adds tasks to is the other
    pattern's): `scripts/switch-pattern --check` names the file."""
    project = committed_copy(baked_serving, tmp_path)
    env = create_env_with_context({"cookiecutter": baked_serving.context})
    env.loader = FileSystemLoader([str(TEMPLATE_DIR), str(REPO / "templates")])  # as cookiecutter finds partials
    other = {**baked_serving.context, "deployment_pattern": OTHER[baked_serving.pattern]}
    stale = env.get_template("resources/serving-endpoint.job.yml").render(cookiecutter=other)
    (project / "resources" / "serving-endpoint.job.yml").write_text(stale)
    result = check(project)
    assert result.returncode == 1, result.stdout
    assert "resources/serving-endpoint.job.yml" in result.stderr, result.stderr
    fresh = check(committed_copy(baked_serving, tmp_path / "fresh"))
    assert fresh.returncode == 0, fresh.stderr
    manifest = json.loads(baked_serving.text("scripts/patterns.json"))["patterns"][baked_serving.pattern]
    assert manifest["job_targets"]["serving_endpoint"] == list(baked_serving.facts.serving_targets)


@pytest.mark.answers(ci_auth="github_oidc")
def test_serving_only_adds_to_the_project_without_it(baked_serving: Baked, cookies_session: Any) -> None:
    """What lets tests/test_generated.py type-check and probe the entry points once per pattern, on the bake with
    serving: the package's modules are the same files plus two, and each job of each target is the same job, plus
    the serving tasks and more time where champion moves."""
    from conftest import _bake

    without = _bake(cookies_session, {"deployment_pattern": baked_serving.pattern, "ci_auth": "github_oidc"})
    source = f"src/{baked_serving.package}"
    modules = {p.name: p.read_text() for p in (without.path / source).glob("*.py")}
    served = {p.name: p.read_text() for p in (baked_serving.path / source).glob("*.py")}
    assert set(served) - set(modules) == {"serving.py", "smoke_test.py"}
    assert all(served[name] == text for name, text in modules.items())
    for target in without.bundle.targets:
        bigger = baked_serving.bundle.jobs(target)
        for key, job in without.bundle.jobs(target).items():
            tasks = [t for t in bigger[key]["tasks"] if entry_point(t) not in ENTRY_POINTS]
            assert {**bigger[key], "tasks": tasks, "timeout_seconds": job["timeout_seconds"]} == job, (target, key)
            assert bigger[key]["timeout_seconds"] >= job["timeout_seconds"]
