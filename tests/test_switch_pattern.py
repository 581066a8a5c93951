"""scripts/switch-pattern: a pattern switch on a repository a team has edited either finishes (exit 0, a consistent
tree that keeps the edit) or stops with a report naming every file; `--check` proves it offline.

The fast tier runs `--check` over the whole matrix and on planted problems; the slow tier runs real switches
through cruft, with a team edit to every file a switch deletes or rewrites, one at a time."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from repo_tools import dependencies  # the generated tools: plain Python, identical in every project
from repo_tools.switch import update
from support import REPO, Baked, commit_all, git_copy_of_template, run

from template_rules import files

SCRIPT = "scripts/switch-pattern"
PINS = "scripts/switch-pattern.requirements.txt"
# The pattern each one is switched to in the one-direction tests: hybrid to the pattern it shares least with.
OTHER = {"deploy_code": "deploy_models", "deploy_models": "deploy_code", "hybrid": "deploy_models"}
# Where each pattern's pull requests run their integration tests (written apart from _patterns, which it checks).
TEST_ENVIRONMENT = {"deploy_code": "staging", "deploy_models": "dev", "hybrid": "staging"}
MARKER = re.compile(r"^(<{7}|>{7})( |$)", re.MULTILINE)


def check(project: Path) -> subprocess.CompletedProcess[str]:
    return run(str(project / SCRIPT), "--check", cwd=project, check=False)


def manifest(project: Path) -> dict[str, Any]:
    return json.loads((project / "scripts" / "patterns.json").read_text())["patterns"]


def foreign_files(project: Path, pattern: str) -> list[str]:
    """The pattern-dependent files of the other patterns that this one does not have."""
    patterns = manifest(project)
    others = {path for name, facts in patterns.items() if name != pattern for path in facts["files"]}
    return sorted(others - set(patterns[pattern]["files"]))


def committed_copy(baked: Baked, tmp_path: Path) -> Path:
    """A baked project as a git repository with the .cruft.json that `cruft create` would have written."""
    project = tmp_path / "project"
    shutil.copytree(baked.path, project)
    (project / ".cruft.json").write_text(json.dumps({"context": {"cookiecutter": dict(baked.context)}}))
    run("git", "init", "-q", "-b", "main", cwd=project)
    commit_all(project, "bake")
    return project


# --- an independent view of what a finished switch must look like ---------------------------------


def unfinished(project: Path, pattern: str) -> dict[str, str]:
    """Path -> why the switch to `pattern` is not finished; written apart from the script it checks."""
    found = {}
    for path in foreign_files(project, pattern):
        if (project / path).exists():
            found[path] = "file of the other pattern"
    for path in project.rglob("*"):
        if ".git" in path.relative_to(project).parts or not path.is_file():
            continue
        relative = path.relative_to(project).as_posix()
        if path.suffix in (".rej", ".orig"):
            found[relative] = "merge leftover"
            continue
        try:
            if MARKER.search(path.read_text()):
                found[relative] = "conflict markers"
        except UnicodeDecodeError:
            continue
    try:
        bundle = yaml.safe_load((project / "databricks.yml").read_text())
        test = yaml.safe_load((project / "targets" / "test.yml").read_text())["targets"]["test"]
    except yaml.YAMLError:
        found.setdefault("targets/test.yml", "does not parse")
        return found
    environment = bundle["targets"][TEST_ENVIRONMENT[pattern]]
    if (test["workspace"]["host"], test["variables"]["catalog"]) != (
        environment["workspace"]["host"],
        environment["variables"]["catalog"],
    ):
        found["targets/test.yml"] = "test target outside the pattern's environment"
    return found


# --- fast: the manifest, the checker, the pins, the wiring ---------------------------------------


def test_manifest_is_keep_when_and_the_same_for_both_patterns(baked: Baked) -> None:
    written = json.loads(baked.text(files.MANIFEST))
    assert written == files.manifest(baked.context)
    for other in baked.context["_patterns"]:
        assert written == files.manifest({**baked.context, "deployment_pattern": other})
    patterns = written["patterns"]
    assert set(patterns) == set(baked.context["_patterns"]) == {"deploy_code", "deploy_models", "hybrid"}
    for pattern, facts in baked.context["_patterns"].items():  # each fact under its one name
        assert {key: patterns[pattern][key] for key in facts} == files.facts_of(facts, baked.context)
    for path in patterns[baked.pattern]["files"]:
        assert (baked.path / path).is_file(), path
    for path in foreign_files(baked.path, baked.pattern):
        assert not (baked.path / path).exists(), path
    having = {path: {p for p, facts in patterns.items() if path in facts["files"]} for path in files.KEEP_WHEN}
    assert having[".github/workflows/deploy.yml"] == {"deploy_code", "hybrid"}
    assert having[".github/workflows/train.yml"] == {"deploy_models"}
    assert having[".github/workflows/release.yml"] == {"deploy_models", "hybrid"}
    assert having["docs/hybrid.md"] == {"hybrid"}
    promote = f"src/{baked.package}/promote.py"
    assert {p for p, facts in patterns.items() if promote in facts["files"]} == {"deploy_models", "hybrid"}
    # The fact agrees with the test target the template renders.
    test = baked.bundle.targets["test"]
    environment = baked.bundle.targets[patterns[baked.pattern]["test_environment"]]
    assert test["workspace"]["host"] == environment["workspace"]["host"]
    assert test["variables"]["catalog"] == environment["variables"]["catalog"]


def test_check_passes_on_every_fresh_combination(baked: Baked) -> None:
    assert os.access(baked.path / SCRIPT, os.X_OK), "scripts/switch-pattern must be executable"
    result = check(baked.path)
    assert result.returncode == 0, result.stderr
    assert f"consistently {baked.pattern.replace('_', ' ')}" in result.stdout
    assert unfinished(baked.path, baked.pattern) == {}


def _mix_test_target(project: Path, pattern: str) -> str:
    bundle = yaml.safe_load((project / "databricks.yml").read_text())
    other = bundle["targets"]["dev" if TEST_ENVIRONMENT[pattern] == "staging" else "staging"]["variables"]["catalog"]
    path = project / "targets" / "test.yml"
    path.write_text(re.sub(r"(?m)^(      catalog: ).*$", rf"\g<1>{other}", path.read_text()))
    return "targets/test.yml"


def _plant_ignored_rej(project: Path, pattern: str) -> str:
    (project / ".git" / "info" / "exclude").write_text("*.rej\n")
    (project / "targets" / "test.yml.rej").write_text("@@ -1 +1 @@\n-a\n+b\n")
    return "targets/test.yml.rej"


def _plant_orig(project: Path, pattern: str) -> str:
    (project / "README.md.orig").write_text("old\n")
    return "README.md.orig"


def _plant_marker(project: Path, pattern: str) -> str:
    path = project / "resources" / "model-training.job.yml"
    path.write_text(path.read_text() + "<<<<<<< ours\n# a\n=======\n# b\n>>>>>>> theirs\n")
    return "resources/model-training.job.yml"


def _plant_marker_in_latin1(project: Path, pattern: str) -> str:
    """Not UTF-8: a reader that decodes as UTF-8 gives up on the file and misses its markers."""
    path = project / "docs" / "notes-latin1.md"
    path.write_bytes("Caf\u00e9 notes\n<<<<<<< ours\na\n=======\nb\n>>>>>>> theirs\n".encode("latin-1"))
    return "docs/notes-latin1.md"


def _plant_unmerged_long_markers(project: Path, pattern: str) -> str:
    """A conflict git recorded with conflict-marker-size=12: no 7-character marker line; git's index knows."""
    (project / ".gitattributes").write_text("README.md conflict-marker-size=12\n")
    commit_all(project, "attributes")
    readme = project / "README.md"
    base = readme.read_text()
    run("git", "switch", "-q", "-c", "theirs", cwd=project)
    readme.write_text("# Theirs\n" + base)
    commit_all(project, "theirs")
    run("git", "switch", "-q", "main", cwd=project)
    readme.write_text("# Ours\n" + base)
    commit_all(project, "ours")
    merged = run("git", "merge", "-q", "theirs", cwd=project, check=False)
    assert merged.returncode != 0 and "<" * 12 in readme.read_text()
    return "README.md"


def _plant_target_without_workspace(project: Path, pattern: str) -> str:
    """A team file that still defines the old pattern's target: the bundle keeps it, with no host and no mode."""
    target = "dev-shared" if pattern == "deploy_code" else "qa"
    (project / "resources" / "team-targets.yml").write_text(
        f"targets:\n  {target}:\n    variables:\n      catalog: team_dev\n"
    )
    return "resources/team-targets.yml"


def _plant_undeclared_variable(project: Path, pattern: str) -> str:
    """What deploy models' resources/unity-catalog.yml leaves once model-promotion.job.yml (which declares
    promotion_principal) is gone: a grant to a variable no file declares (deploy models declares that one)."""
    name = "promotion_principal" if pattern == "deploy_code" else "retired_principal"
    (project / "resources" / "team-grants.yml").write_text(
        f"targets:\n  staging:\n    variables:\n      {name}:\n        lookup:\n"
        "          service_principal: taxi-fare-model-prod\n    resources:\n      schemas:\n        ml:\n"
        f"          grants:\n            - principal: ${{var.{name}}}\n"
        "              privileges: [USE_SCHEMA]\n"
    )
    return "resources/team-grants.yml"


def _plant_copied_package(project: Path, pattern: str) -> str:
    """A copy of the template's package under another name, as a `--set project_slug=…` leaves an edited one."""
    (project / "src" / "old_model").mkdir()
    (project / "src" / "old_model" / "train.py").write_text("# the team's training, under the old name\n")
    return "src/old_model/"


def _plant_former_package(project: Path, pattern: str) -> str:
    """A team module left under the package's former name (its history in .cruft.json), no template module."""
    cruft = project / ".cruft.json"
    now = cruft.read_text()
    cruft.write_text(now.replace('"__package_name": "taxi_fare_model"', '"__package_name": "fare_model"'))
    commit_all(project, "as it was")
    cruft.write_text(now)
    commit_all(project, "--set project_slug=taxi-fare-model")
    (project / "src" / "fare_model").mkdir()
    (project / "src" / "fare_model" / "helpers.py").write_text("def f() -> int:\n    return 1\n")
    return "src/fare_model/"


def _plant_test_catalog_override(project: Path, pattern: str) -> str:
    """A pull request deploy whose --var sends the test target's schemas to the prod catalog."""
    path = project / ".github" / "workflows" / "team-pr.yml"
    path.write_text(
        "on: pull_request\njobs:\n  d:\n    steps:\n"
        '      - run: databricks bundle deploy -t test --var "catalog=prod" --auto-approve\n'
    )
    return ".github/workflows/team-pr.yml:5"


def _plant_test_catalog_env_override(project: Path, pattern: str) -> str:
    """The same through the CLI's BUNDLE_VAR_<name> environment variable."""
    path = project / ".github" / "workflows" / "team-pr.yml"
    path.write_text(
        "on: pull_request\njobs:\n  d:\n    env:\n      BUNDLE_VAR_catalog: prod\n    steps:\n"
        "      - run: databricks bundle deploy --target test\n"
    )
    return ".github/workflows/team-pr.yml:7"


def _plant_leftover(project: Path, pattern: str) -> str:
    leftover = foreign_files(project, pattern)[0]
    (project / leftover).parent.mkdir(parents=True, exist_ok=True)
    (project / leftover).write_text("# kept by a switch\n")
    return leftover


def _plant_stale_workflow(project: Path, pattern: str) -> str:
    """A team copy of the other pattern's deploy step: runs model_training where this pattern has none."""
    target = {"deploy_models": "staging", "deploy_code": "dev-shared", "hybrid": "prod"}[pattern]
    path = project / ".github" / "workflows" / "team-deploy.yml"
    path.write_text(f"jobs:\n  d:\n    steps:\n      - run: databricks bundle run model_training -t {target}\n")
    return ".github/workflows/team-deploy.yml"


def _plant_training_in_another_target(project: Path, pattern: str) -> str:
    """A conflict resolved on the wrong side: the training job in a target the other pattern trains in."""
    target = {"deploy_models": "staging", "deploy_code": "dev-shared", "hybrid": "prod"}[pattern]
    path = project / "resources" / "model-training.job.yml"
    text = path.read_text()
    path.write_text(text + f"  {target}:\n    resources:\n      jobs:\n        model_training: *model_training\n")
    return "resources/model-training.job.yml"


def _plant_dangling_script(project: Path, pattern: str) -> str:
    path = project / "pyproject.toml"
    path.write_text(path.read_text().replace("[project.scripts]\n", '[project.scripts]\ngone = "nowhere.x:main"\n'))
    return "pyproject.toml"


PLANTS = {
    "mixed test target": _mix_test_target,
    "ignored .rej": _plant_ignored_rej,
    ".orig": _plant_orig,
    "conflict marker": _plant_marker,
    "conflict marker in a Latin-1 file": _plant_marker_in_latin1,
    "unmerged entry with long markers": _plant_unmerged_long_markers,
    "target without a workspace": _plant_target_without_workspace,
    "variable declared nowhere": _plant_undeclared_variable,
    "copy of the template's package": _plant_copied_package,
    "a module under the package's former name": _plant_former_package,
    "--var catalog on the test target": _plant_test_catalog_override,
    "BUNDLE_VAR_catalog on the test target": _plant_test_catalog_env_override,
    "other pattern's file": _plant_leftover,
    "workflow runs a job the target lacks": _plant_stale_workflow,
    "console script without module": _plant_dangling_script,
    "training job in the other pattern's target": _plant_training_in_another_target,
}


@pytest.mark.parametrize("plant", PLANTS)
def test_check_fails_and_names_the_file(baked_default: Baked, plant: str, tmp_path: Path) -> None:
    project = committed_copy(baked_default, tmp_path)
    named = PLANTS[plant](project, baked_default.pattern)
    result = check(project)
    assert result.returncode == 1, f"--check passed with a {plant}"
    assert f"  {named}" in result.stderr, result.stderr
    assert "->" in result.stderr  # says what to do


# A team's workflow, as teams write steps: each way of naming a target or a job, each one wrong. Its steps start on
# line 8 of the file.
TEAM_WORKFLOW = "name: team\non: push\nenv: {workflow_env}\njobs:\n  d:\n    env: {job_env}\n    steps:\n{steps}"
GONE = "`bundle {}` uses target gone, which the bundle does not define"
WORKFLOW_FORMS: dict[str, tuple[dict[str, str], list[tuple[int, str]]]] = {
    "continued on the next line (the issue's case)": (
        {
            "steps": "      - run: |\n          databricks bundle deploy \\\n            -t gone\n"
            "          databricks bundle run \\\n            no_such_job -t dev\n"
        },
        [(9, GONE.format("deploy")), (11, "runs job no_such_job in target dev, which does not deploy it")],
    ),
    "--target=x": (
        {"steps": "      - run: databricks bundle deploy --target=gone --auto-approve\n"},
        [(8, GONE.format("deploy"))],
    ),
    "-t x, quoted": ({"steps": '      - run: databricks bundle deploy -t "gone"\n'}, [(8, GONE.format("deploy"))]),
    "--target x, single-quoted": (
        {"steps": "      - run: databricks bundle deploy --target 'gone'\n"},
        [(8, GONE.format("deploy"))],
    ),
    "inside $( )": (
        {"steps": '      - run: |\n          s="$(databricks bundle summary -t gone -o json)"\n'},
        [(9, GONE.format("summary"))],
    ),
    "DATABRICKS_BUNDLE_TARGET in the step's env": (
        {"steps": "      - env:\n          DATABRICKS_BUNDLE_TARGET: gone\n        run: databricks bundle deploy\n"},
        [(10, GONE.format("deploy"))],
    ),
    "DATABRICKS_BUNDLE_TARGET in the job's env": (
        {"job_env": "{DATABRICKS_BUNDLE_TARGET: gone}", "steps": "      - run: databricks bundle deploy\n"},
        [(8, GONE.format("deploy"))],
    ),
    "DATABRICKS_BUNDLE_TARGET in the workflow's env": (
        {"workflow_env": "{DATABRICKS_BUNDLE_TARGET: gone}", "steps": "      - run: databricks bundle deploy\n"},
        [(8, GONE.format("deploy"))],
    ),
    "a global flag before the subcommand (-p ci bundle deploy)": (
        {"steps": "      - run: databricks -p ci bundle deploy -t gone\n"},
        [(8, GONE.format("deploy"))],
    ),
    "a flag between `bundle run` and the job": (
        {"steps": "      - run: databricks bundle run -t dev --no-wait no_such_job\n"},
        [(8, "runs job no_such_job in target dev, which does not deploy it")],
    ),
    '-t "$TARGET" with TARGET in the job\'s env': (
        {"job_env": "{TARGET: gone}", "steps": '      - run: databricks bundle deploy -t "$TARGET"\n'},
        [(8, GONE.format("deploy"))],
    ),
    "exported earlier in the script": (
        {
            "steps": "      - run: |\n          export DATABRICKS_BUNDLE_TARGET=gone\n"
            "          databricks bundle deploy\n"
        },
        [(10, GONE.format("deploy"))],
    ),
}


@pytest.mark.parametrize("form", WORKFLOW_FORMS)
def test_check_reads_workflow_steps_as_bash_does(baked_default: Baked, form: str, tmp_path: Path) -> None:
    """Issue 22: a wrong target or job fails --check with the file and line, whichever way the step names it; the
    same step with the bundle's own names passes (a target or job set outside the workflow is not guessed)."""
    project = committed_copy(baked_default, tmp_path)
    parts, expected = WORKFLOW_FORMS[form]
    fields = {"workflow_env": "{}", "job_env": "{}", **parts}
    path = project / ".github" / "workflows" / "team.yml"
    path.write_text(TEAM_WORKFLOW.format(**fields))
    result = check(project)
    assert result.returncode == 1, f"--check passed a workflow whose step is {form}"
    found = [line.strip() for line in result.stderr.splitlines() if line.startswith("  .github/workflows/team.yml:")]
    assert found == [f".github/workflows/team.yml:{line}: {what}" for line, what in expected], result.stderr
    path.write_text(TEAM_WORKFLOW.format(**fields).replace("gone", "dev").replace("no_such_job", "batch_inference"))
    assert check(project).returncode == 0, check(project).stderr


MATRIX_WORKFLOW = """on: push
jobs:
  d:
    strategy:
      matrix:
        target: [dev, gone]
        include:
          - target: staging
            job: no_such_job
    steps:
      - run: databricks bundle deploy -t "${{ matrix.target }}"
      - env:
          TARGET: ${{ matrix.target }}
        run: databricks bundle run -t "$TARGET" ${{ matrix.job }}
"""
COMPOSITE_ACTION = """name: deploy
description: the team's deploy steps
runs:
  using: composite
  steps:
    - shell: bash
      run: |
        databricks bundle validate
        databricks -p ci bundle run -t gone model_training
"""


def test_check_reads_matrix_targets_and_composite_actions(baked_default: Baked, tmp_path: Path) -> None:
    """Issue 25 item 6: a matrix job is read once per run of its matrix (`include` adding a run), a composite action
    under .github/actions/ as the steps it is; the same files with the bundle's own names pass."""
    project = committed_copy(baked_default, tmp_path)
    workflow = project / ".github" / "workflows" / "team-matrix.yml"
    workflow.write_text(MATRIX_WORKFLOW)
    action = project / ".github" / "actions" / "deploy" / "action.yml"
    action.parent.mkdir(parents=True)
    action.write_text(COMPOSITE_ACTION)
    result = check(project)
    assert result.returncode == 1, result.stderr
    found = sorted(line.strip() for line in result.stderr.splitlines() if line.startswith("  .github/"))
    assert found == [
        f".github/actions/deploy/action.yml:9: {GONE.format('run')}",
        f".github/workflows/team-matrix.yml:11: {GONE.format('deploy')}",
        f".github/workflows/team-matrix.yml:14: {GONE.format('run')}",
        ".github/workflows/team-matrix.yml:14: runs job no_such_job in target staging, which does not deploy it",
    ], result.stderr
    workflow.write_text(MATRIX_WORKFLOW.replace("gone", "dev").replace("no_such_job", "batch_inference"))
    action.write_text(COMPOSITE_ACTION.replace("gone", "dev"))
    assert check(project).returncode == 0, check(project).stderr


def test_check_takes_a_host_with_a_trailing_slash_for_the_same_workspace(baked_default: Baked, tmp_path: Path) -> None:
    """Issue 25 (noisy): `host: https://…/` in targets/test.yml is the workspace of the environment without the
    slash, not a test target in another environment."""
    project = committed_copy(baked_default, tmp_path)
    path = project / "targets" / "test.yml"
    text = path.read_text()
    host = yaml.safe_load(text)["targets"]["test"]["workspace"]["host"]
    path.write_text(text.replace(f"host: {host}\n", f"host: {host}/\n", 1))
    assert yaml.safe_load(path.read_text())["targets"]["test"]["workspace"]["host"] == host + "/"
    result = check(project)
    assert result.returncode == 0, result.stderr


def _team_target_by_alias(project: Path) -> None:
    path = project / "resources" / "model-training.job.yml"
    path.write_text(
        path.read_text() + "  qa:\n    mode: production\n    workspace:\n      host: https://qa.cloud.databricks.com\n"
        "    resources:\n      jobs:\n        model_training: *model_training\n"
    )


def _job_defined_in_python(project: Path) -> None:
    path = project / "databricks.yml"
    path.write_text(
        path.read_text() + "\npython:\n  venv_path: .venv\n  resources:\n    - 'resources:load_resources'\n"
    )
    workflow = project / ".github" / "workflows" / "team-python.yml"
    workflow.write_text(
        "on: push\njobs:\n  d:\n    steps:\n      - run: databricks bundle run team_python_job -t dev\n"
    )


OWN_WAYS = {
    "a team's extra target, made by YAML alias": _team_target_by_alias,
    "a job defined in Python": _job_defined_in_python,
}


@pytest.mark.parametrize("case", OWN_WAYS)
def test_check_leaves_a_teams_own_setup_alone(baked_default: Baked, tmp_path: Path, case: str) -> None:
    """Issue 25 (noisy): false alarms with no opt-out. A target the template has in no pattern is the team's (its
    jobs are not the pattern's business); a bundle that loads resources from Python may run jobs the YAML lacks."""
    project = committed_copy(baked_default, tmp_path)
    OWN_WAYS[case](project)
    result = check(project)
    assert result.returncode == 0, result.stderr


def test_check_accepts_an_optional_doc_deleted_in_a_commit(baked_default: Baked, tmp_path: Path) -> None:
    """Issue 25 (noisy): deleting the pattern's page or a test failed --check forever. Deleted in a commit, it is
    the team's choice; deleted and not committed (or a file outside docs/ and tests/), still a problem."""
    project = committed_copy(baked_default, tmp_path)
    page = f"docs/{baked_default.pattern.replace('_', '-')}.md"
    assert page in manifest(project)[baked_default.pattern]["files"]
    (project / page).unlink()
    result = check(project)
    assert result.returncode == 1
    assert f"if you do not want it, delete it in a commit: git rm {page} && git commit" in result.stderr
    commit_all(project, "we keep our own notes")
    assert check(project).returncode == 0, check(project).stderr
    workflow = next(f for f in manifest(project)[baked_default.pattern]["files"] if f.startswith(".github/"))
    run("git", "rm", "-q", workflow, cwd=project)
    commit_all(project, "no workflow")
    result = check(project)
    assert result.returncode == 1 and f"  {workflow}: missing" in result.stderr, result.stderr


def test_merge_leftovers_are_not_hidden_by_gitignore(baked_default: Baked, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(baked_default.path, project)
    run("git", "init", "-q", "-b", "main", cwd=project)
    for name in ("targets/test.yml.rej", "README.md.orig"):
        ignored = run("git", "check-ignore", "-q", name, cwd=project, check=False)
        assert ignored.returncode == 1, f"{name} is git-ignored"


def _pins(text: str) -> dict[str, str]:
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return dict(line.lower().split("==", 1) for line in lines if line)


def test_switch_tools_are_pinned_once_and_the_template_tests_run_with_them(baked_default: Baked) -> None:
    pins = _pins(baked_default.text(PINS))
    assert set(pins) == {"cruft", "typer", "click", "cookiecutter", "pyyaml"}
    assert pins["cruft"] == "2.16.0" and pins["typer"].startswith("0.28.")  # typer 0.29 crashes cruft's prompt
    template = _pins((REPO / "requirements.txt").read_text())
    assert {name: template.get(name) for name in pins} == pins
    hooks = {h["id"]: h for repo in baked_default.yaml(".pre-commit-config.yaml")["repos"] for h in repo["hooks"]}
    hook = hooks["switch-pattern-check"]
    assert hook["entry"] == f"{SCRIPT} --check" and hook["pass_filenames"] is False
    assert hook["additional_dependencies"] == [f"PyYAML=={pins['pyyaml']}"]


def test_version_check(baked_default: Baked, tmp_path: Path) -> None:
    pins = dependencies.read_pins(baked_default.path / PINS)
    assert dependencies.mismatches(pins, {name: version for name, version in pins.items()}) == []
    wrong = dependencies.mismatches(pins, {**pins, "typer": "0.29.2", "cruft": None})
    assert wrong == ["cruft==2.16.0 (found none)", f"typer=={pins['typer']} (found 0.29.2)"]
    # This suite's interpreter has exactly the pins (requirements.txt), so a switch runs in-process here.
    assert dependencies.mismatches(pins, dependencies.installed_versions(list(pins))) == []
    # An interpreter named by SWITCH_PATTERN_PYTHON without the pins is refused, nothing is installed.
    project = committed_copy(baked_default, tmp_path)
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=60)
    result = run(
        SCRIPT,
        OTHER[baked_default.pattern],
        cwd=project,
        check=False,
        env={"PYTHON": str(bare / "bin" / "python"), "SWITCH_PATTERN_PYTHON": str(bare / "bin" / "python")},
    )
    assert result.returncode != 0
    assert "lacks the pinned tools" in result.stderr and "cruft==2.16.0 (found none)" in result.stderr
    assert not (project / ".git" / "switch-pattern").exists()
    assert run("git", "status", "--porcelain", cwd=project).stdout == ""
    # `--check` from an interpreter without PyYAML re-runs itself under the named one, which has the pins.
    result = run(
        SCRIPT,
        "--check",
        cwd=project,
        check=False,
        env={"PYTHON": str(bare / "bin" / "python"), "SWITCH_PATTERN_PYTHON": sys.executable},
    )
    assert result.returncode == 0 and "OK: this repository is consistently" in result.stdout, result.stderr


@pytest.mark.slow
def test_private_tool_environment_lives_under_git_and_is_made_once(baselines: dict[str, Path], tmp_path: Path) -> None:
    """Without matching pins and without SWITCH_PATTERN_PYTHON, the tools go into a venv under .git/ (never
    committed), one per version of the pins file. Offline here: a pins file that installs nothing."""
    project = copy_of(baselines, "deploy_code", tmp_path)
    empty = tmp_path / "pins.txt"
    empty.write_text("# nothing to install\n")
    python = update.private_python(empty, root=project)
    assert python.is_file() and (project / ".git" / "switch-pattern") in python.parents
    made = python.stat().st_mtime_ns
    assert update.private_python(empty, root=project) == python and python.stat().st_mtime_ns == made
    assert run("git", "status", "--porcelain", "--ignored", cwd=project).stdout == ""


def test_switch_refuses_a_dirty_tree(baked_default: Baked, tmp_path: Path) -> None:
    project = committed_copy(baked_default, tmp_path)
    (project / "notes.md").write_text("wip\n")
    result = run(str(project / SCRIPT), OTHER[baked_default.pattern], cwd=project, check=False)
    assert result.returncode == 2 and "Refusing to switch" in result.stderr and "notes.md" in result.stderr


def test_switch_refuses_an_unknown_answer_with_the_closest_key(baked_default: Baked, tmp_path: Path) -> None:
    project = committed_copy(baked_default, tmp_path)
    result = run(str(project / SCRIPT), baked_default.pattern, "--set", "dev_catalg=ml_dev", cwd=project, check=False)
    assert result.returncode == 2, result.stderr
    assert "unknown answer dev_catalg" in result.stderr and "did you mean dev_catalog?" in result.stderr
    assert "Traceback" not in result.stderr
    # A private value of the template is no answer either.
    private = run(str(project / SCRIPT), baked_default.pattern, "--set", "__package_name=x", cwd=project, check=False)
    assert private.returncode == 2 and "__package_name" in private.stderr, private.stderr
    assert run("git", "status", "--porcelain", cwd=project).stdout == ""


def test_ci_and_the_drift_workflow_run_the_check(baked: Baked) -> None:
    ci = baked.workflows["ci.yml"]["jobs"]["pattern-check"]
    assert ci["permissions"] == {"contents": "read"}
    runs = [step.get("run", "") for step in ci["steps"]]
    assert f"python -m pip install -r {PINS}" in runs and f"{SCRIPT} --check" in runs
    drift = baked.workflows["template-update.yml"]
    assert set(drift["on"]) == {"schedule", "workflow_dispatch"}
    # The job that runs the template's code (render) has no token and may not write; only the step before it
    # gets TEMPLATE_REPO_TOKEN (for git's clone); the job that may push runs none of the template's code.
    update, publish = drift["jobs"]["update"], drift["jobs"]["publish"]
    assert update["permissions"] == {"contents": "read"} and "env" not in update and "env" not in publish
    runs = {step.get("run", ""): step.get("env", {}) for step in update["steps"] + publish["steps"]}
    tool = "python -m repo_tools.template_update"
    secrets = {run: sorted(v for v in env.values() if "${{" in v) for run, env in runs.items() if run.startswith(tool)}
    assert secrets == {
        f"{tool} fetch": ["${{ secrets.TEMPLATE_REPO_TOKEN }}"],
        f"{tool} render": [],
        f"{tool} publish": ["${{ github.token }}", "${{ secrets.TEMPLATE_UPDATE_TOKEN }}"],
    }
    assert publish["needs"] == "update"
    never = ("pip install", "cruft", "switch-pattern")
    assert not any(word in step.get("run", "") for step in publish["steps"] for word in never)
    assert not any("DATABRICKS" in key for env in runs.values() for key in env)
    assert drift["concurrency"]["cancel-in-progress"] is False
    docs = baked.text("docs/switching-patterns.md")
    assert "TEMPLATE_REPO_TOKEN" in docs and "template-update.yml" in docs


def test_docs_show_the_switch_to_the_other_pattern_and_never_a_bare_cruft_update(baked: Baked) -> None:
    other = OTHER[baked.pattern]
    for name in ("README.md", "docs/switching-patterns.md"):
        text = baked.text(name)
        assert f"scripts/switch-pattern {other}" in text, name
        assert re.search(rf"scripts/switch-pattern {baked.pattern} +# take", text) or name != "README.md"
        assert "--check" in text, name
        assert_no_prompting_cruft_update(text, name)
    assert_no_prompting_cruft_update((REPO / "README.md").read_text(), "the template's README")


def assert_no_prompting_cruft_update(text: str, name: str) -> None:
    """A documented `cruft update` command always has -y: cruft 2.16.0's prompt crashes with typer 0.29."""
    for command in re.findall(r"cruft update +-[^\n`]*", text):
        assert " -y" in command, f"{name}: {command!r} prompts"
    assert not re.search(r"(?m)^\s*cruft update\s*(#|$)", text), f"{name}: a bare `cruft update` prompts"


# --- slow: real switches through cruft ------------------------------------------------------------


@pytest.fixture(scope="module")
def baselines(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One cruft-created, committed project per pattern; each test works on a copy."""
    made = {}
    for pattern in OTHER:
        out = tmp_path_factory.mktemp(pattern)
        extra = json.dumps({"deployment_pattern": pattern})
        cruft = str(Path(sys.executable).with_name("cruft"))
        run(
            cruft,
            "create",
            "--no-input",
            "--output-dir",
            str(out),
            "--extra-context",
            extra,
            str(template_repo),
            cwd=out,
        )
        (project,) = out.iterdir()
        run("git", "init", "-q", "-b", "main", cwd=project)
        commit_all(project, "bake")
        made[pattern] = project
    return made


def copy_of(baselines: dict[str, Path], pattern: str, tmp_path: Path) -> Path:
    project = tmp_path / "taxi-fare-model"
    shutil.copytree(baselines[pattern], project, symlinks=True)
    return project


def team_line(path: str) -> str:
    return "<!-- team: our edit -->" if path.endswith(".md") else "# team: our edit"


def team_edit(project: Path, path: str, other_render: str | None, where: str) -> str:
    """Insert a team line just before the first line the switch rewrites, or at the end of the file."""
    lines = (project / path).read_text().splitlines(keepends=True)
    index = len(lines)
    if other_render is not None and where == AT_REWRITE:
        theirs = other_render.splitlines(keepends=True)
        differ = (i for i, (a, b) in enumerate(zip(lines, theirs, strict=False)) if a != b)
        index = next(differ, min(len(lines), len(theirs)))
    line = team_line(path)
    lines.insert(index, line + "\n")
    (project / path).write_text("".join(lines))
    return line


def switch(project: Path, pattern: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    result = run(str(project / SCRIPT), pattern, cwd=project, check=False)
    return result, time.perf_counter() - started


def assert_finished_or_reported(project: Path, pattern: str, result: subprocess.CompletedProcess[str]) -> None:
    problems = unfinished(project, pattern)
    if result.returncode == 0:
        assert problems == {}, f"exit 0 with an unfinished switch: {problems}\n{result.stderr}"
        assert check(project).returncode == 0
        assert (
            json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]["deployment_pattern"]
            == pattern
        )
    else:
        assert result.returncode == 1, result.stderr
        for path in problems:
            assert f"  {path}" in result.stderr, f"{path} ({problems[path]}) missing from the report:\n{result.stderr}"
        assert check(project).returncode == 1


# Every file a switch deletes (only the old pattern has it) or rewrites (shared, differs between the patterns),
# for the default answers; test_edit_list_is_complete keeps this list equal to what the template produces.
SHARED_REWRITTEN = (
    ".github/workflows/integration-tests.yml",
    "CONTRIBUTING.md",
    "README.md",
    "docs/environments.md",
    "docs/monitoring.md",
    "docs/setup.md",
    "docs/switching-patterns.md",
    "pyproject.toml",
    "resources/model-monitoring.job.yml",
    "resources/model-training.job.yml",
    "resources/unity-catalog.yml",
    "targets/test.yml",
    "tools/setup-environments.toml",
)
# Shared by a pattern and its OTHER, and rewritten between them, besides SHARED_REWRITTEN: hybrid and deploy models
# both release to prod and copy a version, from a different catalog and on a different trigger.
ALSO_REWRITTEN = {"hybrid": (".github/workflows/release.yml", "resources/model-promotion.job.yml")}


def rewritten(old: str) -> tuple[str, ...]:
    return tuple(sorted(SHARED_REWRITTEN + ALSO_REWRITTEN.get(old, ())))


ONLY = {
    "deploy_code": (
        ".github/workflows/deploy.yml",
        "docs/deploy-code.md",
        "src/taxi_fare_model/retraining.py",
        "tests/unit/test_retraining.py",
    ),
    "deploy_models": (
        ".github/workflows/promote.yml",
        ".github/workflows/release.yml",
        ".github/workflows/train.yml",
        "docs/deploy-models.md",
        "resources/model-promotion.job.yml",
        "src/taxi_fare_model/promote.py",
        "targets/dev-shared.yml",
        "tests/e2e/test_promotion.py",
        "tests/unit/test_promote.py",
    ),
    # against deploy models (OTHER)
    "hybrid": (
        ".github/workflows/deploy.yml",
        "docs/hybrid.md",
        "src/taxi_fare_model/retraining.py",
        "tests/unit/test_retraining.py",
    ),
}
AT_REWRITE, AT_END = "on the rewritten lines", "at the end"
# Every file only the old pattern has (edited at the end), every shared file on the lines the switch rewrites.
EDITS = {
    (old, where): ONLY[old] if where == AT_END else rewritten(old) for old in OTHER for where in (AT_END, AT_REWRITE)
}


def test_edit_list_is_complete(baked_default: Baked, cookies_session: Any) -> None:
    other = cookies_session.bake(extra_context={"deployment_pattern": OTHER[baked_default.pattern]}).project_path
    mine = {p.relative_to(baked_default.path).as_posix() for p in baked_default.path.rglob("*") if p.is_file()}
    theirs = {p.relative_to(other).as_posix() for p in other.rglob("*") if p.is_file()}
    changed = {p for p in mine & theirs if (baked_default.path / p).read_bytes() != (other / p).read_bytes()}
    assert sorted(changed) == sorted(rewritten(baked_default.pattern))
    assert sorted(mine - theirs) == sorted(ONLY[baked_default.pattern])
    patterns = manifest(baked_default.path)
    assert sorted(ONLY[baked_default.pattern]) == sorted(
        set(patterns[baked_default.pattern]["files"]) - set(patterns[OTHER[baked_default.pattern]]["files"])
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("old", "where"), EDITS, ids=[f"{old}->{OTHER[old]}:{where.split()[-1]}" for old, where in EDITS]
)
def test_switch_with_a_team_edit(baselines: dict[str, Path], tmp_path: Path, old: str, where: str) -> None:
    """A team edit in every file of EDITS, all in one switch: the script merges each file on its own (the per-file
    apply), so the files cannot interfere, and one switch per direction and kind of edit sees
    each file's outcome (it was one switch per file: 58 cruft updates). Each edit is kept, or its file is named."""
    new = OTHER[old]
    project = copy_of(baselines, old, tmp_path)
    lines = {}
    for path in EDITS[old, where]:
        other_render = (baselines[new] / path).read_text() if (baselines[new] / path).exists() else None
        lines[path] = team_edit(project, path, other_render, where)
    commit_all(project, f"team edits {where}")
    result, seconds = switch(project, new)
    assert_finished_or_reported(project, new, result)
    problems = unfinished(project, new)
    for path, line in lines.items():
        if path not in problems and (project / path).exists() and line in (project / path).read_text():
            outcome = "exit 0, edit kept" if result.returncode == 0 else "edit kept"
        else:
            assert result.returncode != 0, f"the team's edit of {path} was lost and the switch exited 0"
            assert f"  {path}" in result.stderr, f"the report does not name {path}:\n{result.stderr}"
            outcome = "exit 1: " + problems.get(path, "named in the report")
        print(f"OUTCOME | {old} -> {new} | {path} | {where} | {outcome} | {seconds:.2f} s (one switch)")


@pytest.mark.slow
@pytest.mark.parametrize("old", OTHER)
def test_switch_with_team_edits_at_the_end_of_every_shared_file(
    baselines: dict[str, Path], tmp_path: Path, old: str
) -> None:
    """The common case, all shared files at once (the script merges each file on its own, so they cannot
    interfere): each edit is kept, or its file is named."""
    new = OTHER[old]
    project = copy_of(baselines, old, tmp_path)
    lines = {path: team_edit(project, path, None, AT_END) for path in rewritten(old)}
    commit_all(project, "team edits at the end of every shared file")
    result, seconds = switch(project, new)
    assert_finished_or_reported(project, new, result)
    problems = unfinished(project, new)
    for path, line in lines.items():
        kept = path not in problems and line in (project / path).read_text()
        outcome = "edit kept" if kept else "exit 1: " + problems[path]
        assert kept or f"  {path}" in result.stderr, f"{path}: edit lost and not reported"
        print(f"OUTCOME | {old} -> {new} | {path} | {AT_END} | {outcome} | {seconds:.2f} s (one switch)")
    print(f"OUTCOME exit code {result.returncode}")


def tree(project: Path) -> dict[str, bytes]:
    """Every file of a project but git's and cruft's own record (which names the pattern and the commit)."""
    return {
        p.relative_to(project).as_posix(): p.read_bytes()
        for p in project.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(project).parts and p.name != ".cruft.json"
    }


@pytest.mark.slow
def test_every_direction_among_the_three_patterns_and_back_is_a_fresh_bake(
    baselines: dict[str, Path], tmp_path: Path
) -> None:
    """deploy code -> hybrid -> deploy models -> hybrid -> deploy code -> deploy models -> deploy code: each switch
    of an unedited repository exits 0 with exactly the tree a fresh bake of the new pattern has; back at the start,
    the tree is byte-identical to the first bake."""
    project = copy_of(baselines, "deploy_code", tmp_path)
    path = ["hybrid", "deploy_models", "hybrid", "deploy_code", "deploy_models", "deploy_code"]
    for pattern in path:
        result, _ = switch(project, pattern)
        assert result.returncode == 0, result.stderr
        assert_finished_or_reported(project, pattern, result)
        fresh, switched = tree(baselines[pattern]), tree(project)
        assert sorted(switched) == sorted(fresh), f"-> {pattern}: the file set of a fresh {pattern} bake"
        assert [name for name in fresh if fresh[name] != switched[name]] == [], f"-> {pattern}: changed files"
        commit_all(project, f"switch to {pattern}")
    assert tree(project) == tree(baselines["deploy_code"])


@pytest.mark.slow
def test_issue_repro_and_five_round_trips_converge(baselines: dict[str, Path], tmp_path: Path) -> None:
    """The issue's repro (an edited train.yml and an unrelated row_limit edit), then five round trips; each
    switch is finished by following the report (port the edit, delete the old file) and must converge."""
    project = copy_of(baselines, "deploy_models", tmp_path)
    train = project / ".github" / "workflows" / "train.yml"
    train.write_text(
        train.read_text().replace("      - pyproject.toml\n", "      - pyproject.toml\n      - notebooks/**\n")
    )
    test_yml = project / "targets" / "test.yml"
    test_yml.write_text(test_yml.read_text().replace('row_limit: "5000"', 'row_limit: "10000"'))
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\n## Team notes\n\nAsk #ml-platform first.\n")
    commit_all(project, "team edits")
    counterpart = {"deploy_code": ".github/workflows/deploy.yml", "deploy_models": ".github/workflows/train.yml"}
    pattern = "deploy_models"
    times = []
    for _ in range(5 * 2):
        old, pattern = pattern, OTHER[pattern]
        result, seconds = switch(project, pattern)
        times.append(seconds)
        if len(times) == 1:  # the docs' example report is this one, verbatim
            doc = (project / "docs" / "switching-patterns.md").read_text()
            example = [
                line for line in doc.splitlines() if re.match(r" +(\.github/workflows/train\.yml:|-> port)", line)
            ]
            assert len(example) == 2 and all(line in result.stderr.splitlines() for line in example), example
        assert_finished_or_reported(project, pattern, result)
        # The edited workflow of the old pattern stays, named; nothing else is left over.
        assert result.returncode == 1
        assert set(unfinished(project, pattern)) == {counterpart[old]}, result.stderr
        assert f"git rm {counterpart[old]}" in result.stderr, result.stderr
        assert re.search(rf"port your edit into [^\n]*{re.escape(counterpart[pattern])}", result.stderr)
        # Follow the report: port the edit into the new pattern's workflow, delete the old one.
        port = project / counterpart[pattern]
        port.write_text(port.read_text() + "# team: also run on notebooks/**\n")
        run("git", "rm", "-q", counterpart[old], cwd=project)
        assert check(project).returncode == 0, check(project).stderr
        commit_all(project, f"switch to {pattern}")
        assert 'row_limit: "10000"' in test_yml.read_text()
        assert readme.read_text().endswith("Ask #ml-platform first.\n")
        assert unfinished(project, pattern) == {}
    print(f"SWITCH TIMES {', '.join(f'{t:.2f}' for t in times)}")
    assert max(times) < 30


ADVERSE_GIT_CONFIG = """[diff]
\trenames = false
\tnoprefix = true
\tmnemonicPrefix = true
\talgorithm = patience
[merge]
\tconflictStyle = zdiff3
[color]
\tui = always
[apply]
\twhitespace = fix
"""


def outcome(project: Path, result: subprocess.CompletedProcess[str]) -> tuple[int, str, dict[str, bytes]]:
    status = run("git", "status", "--porcelain", "--untracked-files=all", cwd=project).stdout
    files = {
        p.relative_to(project).as_posix(): p.read_bytes()
        for p in project.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(project).parts
    }
    return result.returncode, status, files


@pytest.mark.slow
def test_a_users_git_config_does_not_change_the_update(
    baselines: dict[str, Path], template_repo: Path, tmp_path: Path
) -> None:
    """The template renames a file the team edited: the edit moves with it. With diff.renames=false (and other
    settings a person may have) in the global git config, the same tree and exit code: the switch pins the
    settings its diff and merge rely on."""
    template = tmp_path / "template"
    shutil.copytree(template_repo, template)
    docs = template / "{{cookiecutter.project_slug}}" / "docs"
    run("git", "mv", str(docs / "environments.md"), str(docs / "environments-and-targets.md"), cwd=template)
    commit_all(template, "template: rename docs/environments.md")
    results = []
    for name, config in (("plain", ""), ("adverse", ADVERSE_GIT_CONFIG)):
        project = copy_of(baselines, "deploy_code", tmp_path / name)
        state = json.loads((project / ".cruft.json").read_text())
        (project / ".cruft.json").write_text(json.dumps({**state, "template": str(template)}, indent=2) + "\n")
        edited = project / "docs" / "environments.md"
        edited.write_text(edited.read_text() + "\nA team note.\n")
        commit_all(project, "team edit")
        gitconfig = tmp_path / f"{name}.gitconfig"
        gitconfig.write_text(config)
        result = run(
            str(project / SCRIPT), "deploy_code", cwd=project, check=False, env={"GIT_CONFIG_GLOBAL": str(gitconfig)}
        )
        results.append(outcome(project, result))
        if name == "plain":
            assert result.returncode == 0, result.stderr
            assert not edited.exists()
            assert (project / "docs" / "environments-and-targets.md").read_text().endswith("A team note.\n")
    (plain_rc, plain_status, plain_files), (rc, status, files) = results
    assert (rc, status) == (plain_rc, plain_status)
    assert sorted(files) == sorted(plain_files)
    assert [p for p in files if files[p] != plain_files[p]] == []


@pytest.mark.slow
def test_set_replaces_placeholder_hosts_through_the_template(baselines: dict[str, Path], tmp_path: Path) -> None:
    """The generated README's placeholder note tells teams to run this: the hosts change everywhere they are
    used, the note goes away, and an answer the template refuses changes nothing."""
    project = copy_of(baselines, "deploy_code", tmp_path)
    assert "Placeholder workspace URLs" in (project / "README.md").read_text()
    refused = run(
        str(project / SCRIPT), "deploy_code", "--set", "prod_workspace_host=http://10.0.0.1", cwd=project, check=False
    )
    assert refused.returncode != 0
    assert "prod_workspace_host" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert run("git", "status", "--porcelain", cwd=project).stdout == "", "a refused answer leaves the tree as it was"

    hosts = {env: f"https://{env}-team.cloud.databricks.com" for env in ("dev", "staging", "prod")}
    # One host first: the warning is said once, of the hosts that are still placeholders after the update.
    result = run(str(project / SCRIPT), "deploy_code", "--set", f"dev_workspace_host={hosts['dev']}", cwd=project)
    warnings = [line for line in result.stderr.splitlines() if "placeholders" in line]
    assert warnings == [
        "WARNING: the staging, prod workspace URL(s) are the template's placeholders; set the real ones before "
        "deploying (see the note at the top of README.md)."
    ], result.stderr
    commit_all(project, "the dev host")
    args = [arg for env, host in hosts.items() for arg in ("--set", f"{env}_workspace_host={host}")]
    result = run(str(project / SCRIPT), "deploy_code", *args, cwd=project, check=False)
    assert result.returncode == 0, result.stderr
    assert "placeholders" not in result.stderr, "a warning about the very hosts this --set changes"
    targets = yaml.safe_load((project / "databricks.yml").read_text())["targets"]
    assert {env: targets[env]["workspace"]["host"] for env in hosts} == hosts
    assert (
        yaml.safe_load((project / "targets" / "test.yml").read_text())["targets"]["test"]["workspace"]["host"]
        == (hosts["staging"])
    )
    assert "Placeholder workspace URLs" not in (project / "README.md").read_text()
    answers = json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]
    assert {env: answers[f"{env}_workspace_host"] for env in hosts} == hosts


# --- the quick start's folder: a project inside the template clone's own git repository ------------------


def files_of(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


@pytest.fixture
def nested_bake(tmp_path: Path) -> tuple[Path, Path]:
    """What `scripts/bake` leaves: out/<slug>, git-ignored, in the template clone's repository, before `git init`."""
    clone = git_copy_of_template(tmp_path)
    env = {"HOME": str(tmp_path / "home"), "OUTPUT_DIR": ""}
    run(sys.executable, str(clone / "scripts" / "bake.py"), cwd=clone, env=env)
    project = clone / "out" / "taxi-fare-model"
    assert run("git", "check-ignore", "-q", "out/taxi-fare-model", cwd=clone, check=False).returncode == 0
    return clone, project


HOST = "dev_workspace_host=https://dbc-12345678-abcd.cloud.databricks.com"


@pytest.mark.slow
def test_set_refuses_in_a_folder_of_another_repository(nested_bake: tuple[Path, Path]) -> None:
    """The generated README's first note, run where the bake put the project: a clear refusal, nothing changed,
    nothing written into the outer repository's .git (where the private tool environment would go)."""
    clone, project = nested_bake
    before, outer_git = files_of(project), sorted(p.name for p in (clone / ".git").iterdir())
    result = run(str(project / SCRIPT), "deploy_code", "--set", HOST, cwd=project, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines()[0] == (
        f"scripts/switch-pattern: {project} is inside the git repository {clone}, which does not track it: "
        "a switch or --set updates only a project git tracks. Make it a repository of its own:"
    )
    assert "git init -b main && git add -A && git commit -m 'From the template'" in result.stderr
    assert "Traceback" not in result.stderr and "OK:" not in result.stdout
    assert files_of(project) == before
    assert sorted(p.name for p in (clone / ".git").iterdir()) == outer_git
    assert run("git", "status", "--porcelain", cwd=clone).stdout == ""

    # Once it is a repository of its own, the same command does the change for real.
    run("git", "init", "-q", "-b", "main", cwd=project)
    commit_all(project, "From the template")
    result = run(str(project / SCRIPT), "deploy_code", "--set", HOST, cwd=project, check=False)
    assert result.returncode == 0, result.stderr
    host = yaml.safe_load((project / "databricks.yml").read_text())["targets"]["dev"]["workspace"]["host"]
    assert host == HOST.split("=", 1)[1]


@pytest.mark.slow
def test_answers_changed_with_files_unchanged_is_never_success(nested_bake: tuple[Path, Path]) -> None:
    """The second line of defence: were the repository check missing and the apply to patch nothing (as cruft's
    own does in such a folder), the update that changes .cruft.json and no file fails and puts .cruft.json back."""
    _, project = nested_bake
    before = files_of(project)
    code = (
        "import sys\nfrom repo_tools.switch import cli, update\n"
        "cli.repository_problem = lambda: None  # as if the repository check were missing\n"
        "update.apply_per_file = lambda *args: None  # and the apply patched nothing\n"
        f"sys.exit(cli.main(['deploy_code', '--set', {HOST!r}]))\n"
    )
    result = run(sys.executable, "-c", code, cwd=project, env={"PYTHONPATH": str(project / "tools")}, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "OK:" not in result.stdout
    assert (
        "scripts/switch-pattern: the update changed the answers (dev_workspace_host) but no file: "
        "it was not applied; .cruft.json is restored, nothing changed." in result.stderr
    ), result.stderr
    assert files_of(project) == before


# --- a monorepo: the project tracked in a folder of a larger repository ------------------------------------


@pytest.mark.slow
def test_switch_in_a_folder_of_a_monorepo(baselines: dict[str, Path], tmp_path: Path) -> None:
    """Issue 25 item 3: the project committed in ml/taxi-fare-model of a larger repository. The per-file merge
    prefixes the folder as cruft does: the switch finishes as at the top of a repository of its own, with the
    team's edit kept, and the other folders are left alone."""
    mono = tmp_path / "mono"
    project = mono / "ml" / "taxi-fare-model"
    shutil.copytree(baselines["deploy_models"], project, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    (mono / "web").mkdir()
    (mono / "web" / "README.md").write_text("# Another team's app\n")
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\n## Team notes\n")
    run("git", "init", "-q", "-b", "main", cwd=mono)
    commit_all(mono, "monorepo")
    result, _ = switch(project, "deploy_code")
    assert result.returncode == 0, result.stderr
    assert "you edited it" not in result.stderr
    assert unfinished(project, "deploy_code") == {}
    assert readme.read_text().endswith("\n## Team notes\n")
    assert json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]["deployment_pattern"] == (
        "deploy_code"
    )
    assert (mono / "web" / "README.md").read_text() == "# Another team's app\n"
    status = run("git", "status", "--porcelain", "--untracked-files=all", cwd=mono).stdout.splitlines()
    assert status and all(line[3:].startswith("ml/taxi-fare-model/") for line in status), status
    assert not list(mono.rglob("*.rej"))


@pytest.mark.slow
def test_a_switch_edit_to_a_renamed_shared_file_is_never_dropped(baselines: dict[str, Path], tmp_path: Path) -> None:
    """Issue 25 item 8: the team renamed resources/unity-catalog.yml (cruft leaves a file the project lacks out of
    its diff). The switch's change lands in the file under its new name; a change to a file the team deleted is
    left out with a note."""
    project = copy_of(baselines, "deploy_models", tmp_path)
    run("git", "mv", "resources/unity-catalog.yml", "resources/uc.yml", cwd=project)
    run("git", "rm", "-q", "docs/monitoring.md", cwd=project)
    commit_all(project, "team: shorter name, no monitoring notes")
    result, _ = switch(project, "deploy_code")
    assert result.returncode == 0, result.stderr
    renamed = yaml.safe_load((project / "resources" / "uc.yml").read_text())
    assert "dev-shared" not in (renamed.get("targets") or {}), "the switch's change to the renamed file was dropped"
    assert not (project / "resources" / "unity-catalog.yml").exists()
    assert not list(project.rglob("*.rej"))
    assert not (project / "docs" / "monitoring.md").exists()
    assert "note: the template changed docs/monitoring.md, which this project deleted: left out" in result.stderr


def test_a_change_that_lands_nowhere_is_kept_as_a_rej(tmp_path: Path) -> None:
    """The last resort of the per-file merge: a patch that neither merges nor leaves a *.rej (a binary file the
    team changed) is written to <file>.rej, which the report names."""
    old, new, project = tmp_path / "old", tmp_path / "new", tmp_path / "project"
    for root, data in ((old, b"\0template v1"), (new, b"\0template v2"), (project, b"\0the team's own")):
        root.mkdir()
        (root / "logo.bin").write_bytes(data)
    run("git", "init", "-q", "-b", "main", cwd=project)
    commit_all(project, "the team's logo")
    prefixes = ["--src-prefix=upstream-template-old/", "--dst-prefix=upstream-template-new/"]
    diff = run(
        "git", "diff", "--no-index", "--binary", *prefixes, "old/logo.bin", "new/logo.bin", cwd=tmp_path, check=False
    )
    patch = diff.stdout.replace("upstream-template-old/old/", "upstream-template-old/").replace(
        "upstream-template-new/new/", "upstream-template-new/"
    )
    code = (
        "import subprocess, sys\nfrom pathlib import Path\nfrom repo_tools.switch import update\n"
        f"update.ROOT = Path({str(project)!r})\n"
        "update.git = lambda *a, stdin=None: subprocess.run(['git', *a], cwd=update.ROOT, input=stdin, "
        "capture_output=True, text=True)\n"
        f"update.apply_per_file(Path({str(tmp_path / 'patch')!r}).read_text(), update.ROOT, False)\n"
    )
    (tmp_path / "patch").write_text(patch)
    tools = REPO / "{{cookiecutter.project_slug}}" / "tools"
    run(sys.executable, "-c", code, cwd=project, env={"PYTHONPATH": str(tools)})
    assert (project / "logo.bin").read_bytes() == b"\0the team's own"
    assert (project / "logo.bin.rej").read_text() == patch


@pytest.mark.slow
def test_set_project_slug_names_what_stays_under_the_old_package(baselines: dict[str, Path], tmp_path: Path) -> None:
    """Issue 25 item 9: `--set project_slug=…` moves the template's modules to the new package; a module of the
    team's own stays under src/taxi_fare_model/ (the wheel would ship both packages): reported, exit 1."""
    project = copy_of(baselines, "deploy_code", tmp_path)
    (project / "src" / "taxi_fare_model" / "helpers.py").write_text("def f() -> int:\n    return 1\n")
    commit_all(project, "team module")
    result = run(str(project / SCRIPT), "deploy_code", "--set", "project_slug=fare-model", cwd=project, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (project / "src" / "fare_model" / "train.py").is_file(), result.stderr
    assert "\n  src/taxi_fare_model/: a former name of the package (helpers.py" in result.stderr, result.stderr
    assert "git rm -r src/taxi_fare_model" in result.stderr
    assert "OK:" not in result.stdout


@pytest.mark.slow
def test_a_template_deletion_of_a_file_the_team_edited_is_reported(
    baselines: dict[str, Path], template_repo: Path, tmp_path: Path
) -> None:
    """Issue 25 item 12: the template deletes docs/monitoring.md, which the team edited; the update keeps the file
    and says so (a .rej with what to do), never exit 0 with the deletion silently not done."""
    template = tmp_path / "template"
    shutil.copytree(template_repo, template)
    run("git", "rm", "-q", "{{cookiecutter.project_slug}}/docs/monitoring.md", cwd=template)
    commit_all(template, "template: no monitoring notes")
    project = copy_of(baselines, "deploy_code", tmp_path)
    state = json.loads((project / ".cruft.json").read_text())
    (project / ".cruft.json").write_text(json.dumps({**state, "template": str(template)}, indent=2) + "\n")
    edited = project / "docs" / "monitoring.md"
    edited.write_text(edited.read_text() + "\nA team note.\n")
    commit_all(project, "team edit")
    result, _ = switch(project, "deploy_code")
    assert result.returncode == 1, result.stderr
    assert edited.read_text().endswith("A team note.\n")
    assert "  docs/monitoring.md.rej: merge leftover\n" in result.stderr, result.stderr
    assert (
        "-> the template deletes docs/monitoring.md, which you edited: delete it (git rm docs/monitoring.md) or keep "
        "it as your own, then delete docs/monitoring.md.rej" in result.stderr
    )


def _gpu(project: Path) -> list[str]:
    return ["deploy_code", "--set", "compute=gpu"]


def _missing_template(project: Path) -> list[str]:
    state = json.loads((project / ".cruft.json").read_text())
    (project / ".cruft.json").write_text(json.dumps({**state, "template": str(project.parent / "gone")}, indent=2))
    commit_all(project, "the template moved")
    return ["deploy_code"]


def _dangling_symlink(project: Path) -> list[str]:
    (project / "docs" / "team-notes.md").symlink_to(project.parent / "nowhere.md")
    commit_all(project, "a link to the team's notes, elsewhere")
    return ["deploy_models"]


ENDINGS = {
    "--set compute=gpu": (
        _gpu,
        2,
        "scripts/switch-pattern: the template refused an answer: gpu provided for choice variable compute, but the "
        "choices are ['serverless', 'job_cluster']. Nothing was changed.",
    ),
    "a template path that is gone": (_missing_template, 1, "scripts/switch-pattern: cannot use the template "),
    "a dangling symlink": (_dangling_symlink, 0, "OK: this repository is consistently deploy models."),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", ENDINGS)
def test_switch_ends_in_one_line_never_a_traceback(baselines: dict[str, Path], tmp_path: Path, case: str) -> None:
    """Issue 25 (noisy): each of these ended in a traceback. Now: one line saying what is wrong, nothing changed;
    a dangling symbolic link is no error at all."""
    project = copy_of(baselines, "deploy_code", tmp_path)
    prepare, code, line = ENDINGS[case]
    args = prepare(project)
    result = run(str(project / SCRIPT), *args, cwd=project, check=False)
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    output = (result.stdout + result.stderr).splitlines()
    assert any(printed.startswith(line) for printed in output), result.stdout + result.stderr
    if code:
        assert run("git", "status", "--porcelain", cwd=project).stdout == ""
    else:
        assert os.readlink(project / "docs" / "team-notes.md") == str(project.parent / "nowhere.md")


def test_check_reads_no_large_or_binary_file_in_full(
    baked_default: Baked, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 25 (noisy): --check read a 396 MB tracked CSV on every pre-commit. A file over 5 MB, or binary (a NUL
    in its first 8 KiB), is not read beyond that; a text file still is (a conflict git records in a large file is
    in its unmerged list: the "unmerged entry" plant)."""
    from repo_tools.switch import check as checker

    project = committed_copy(baked_default, tmp_path)
    big, binary = project / "data" / "trips.csv", project / "model.bin"
    big.parent.mkdir()
    big.write_bytes(b"a,b\n" * (6 * 1024 * 1024 // 4) + b"<<<<<<< not a conflict, a value\n")
    binary.write_bytes(b"\0" + b"x" * 100_000 + b"\n>>>>>>> theirs\n")
    commit_all(project, "data")
    _plant_marker(project, baked_default.pattern)
    read: dict[str, int] = {}
    real_open = Path.open

    class Counting:
        def __init__(self, file: Any, name: str) -> None:
            self.file, self.name = file, name

        def read(self, size: int = -1) -> bytes:
            data = self.file.read(size)
            read[self.name] = read.get(self.name, 0) + len(data)
            return data

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

    def counting_open(path: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        file = real_open(path, mode, *args, **kwargs)
        return Counting(file, path.name) if "b" in mode else file

    def read_bytes(path: Path) -> bytes:
        data = real_open(path, "rb").read()
        read[path.name] = read.get(path.name, 0) + len(data)
        return data

    monkeypatch.setattr(Path, "open", counting_open)
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(checker, "ROOT", project)
    problems = checker.marker_problems()
    assert [p.path for p in problems] == ["resources/model-training.job.yml"]
    assert "trips.csv" not in read, "the large file was read"
    assert read.get("model.bin", 0) <= 8192, "the binary file was read in full"
    assert read["model-training.job.yml"] > 0


@pytest.mark.slow
def test_switch_refuses_a_template_clone_with_uncommitted_changes(
    baselines: dict[str, Path], template_repo: Path, tmp_path: Path
) -> None:
    """Issue 25 item 12: cruft renders a local template's commits, so its uncommitted changes were silently not
    used. The switch refuses, names the clone, changes nothing; committed, the same change is used."""
    template = tmp_path / "template"
    shutil.copytree(template_repo, template)
    readme = template / "{{cookiecutter.project_slug}}" / "README.md"
    readme.write_text(readme.read_text() + "\nA note from the template.\n")
    project = copy_of(baselines, "deploy_code", tmp_path)
    state = json.loads((project / ".cruft.json").read_text())
    (project / ".cruft.json").write_text(json.dumps({**state, "template": str(template)}, indent=2) + "\n")
    commit_all(project, "the template's clone")
    result, _ = switch(project, "deploy_code")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"scripts/switch-pattern: the template {template} has uncommitted changes, which the update would not use "
        "(cruft renders the template's commits): commit or stash them there first. Nothing was changed."
    )
    assert run("git", "status", "--porcelain", cwd=project).stdout == ""
    commit_all(template, "template: a note")
    result, _ = switch(project, "deploy_code")
    assert result.returncode == 0, result.stderr
    assert (project / "README.md").read_text().endswith("A note from the template.\n")


@pytest.mark.slow
def test_an_interrupted_switch_says_it_did_it_and_how_to_undo(baselines: dict[str, Path], tmp_path: Path) -> None:
    """Issue 25 (noisy): a switch stopped half-way (Ctrl-C) left a tree whose --check blamed the team ("you edited
    it"). It says the tree is its own half-done work, and the command it prints puts the tree back."""
    project = copy_of(baselines, "deploy_models", tmp_path)
    code = (
        "import subprocess, sys\nfrom pathlib import Path\nfrom repo_tools.switch import cli\n"
        "def half_done(pattern, answers=None):\n"
        "    Path('README.md').write_text('half\\n')\n"
        "    subprocess.run(['git', 'rm', '-q', 'docs/monitoring.md'], check=True)\n"
        "    Path('docs/deploy-code.md').write_text('new\\n')\n"
        "    subprocess.run(['git', 'add', 'docs/deploy-code.md'], check=True)\n"
        "    Path('src/new.py').write_text('')\n"
        "    raise KeyboardInterrupt\n"
        "cli.run_cruft_update = half_done\n"
        "sys.exit(cli.main(['deploy_code']))\n"
    )
    result = run(sys.executable, "-c", code, cwd=project, env={"PYTHONPATH": str(project / "tools")}, check=False)
    assert result.returncode == 130, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-2] == (
        "scripts/switch-pattern: interrupted; the tree is half-updated (by the switch, not by you: it starts on a "
        "clean tree only). Undo it, then run the same command again:"
    ), result.stderr
    assert lines[-1].startswith(f"  cd {project} && git ")
    run("bash", "-c", lines[-1].strip(), cwd=project)
    assert run("git", "status", "--porcelain", "--untracked-files=all", cwd=project).stdout == ""
    assert check(project).returncode == 0
