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
# One switch per edit: every file only the old pattern has, every shared file on the lines the switch rewrites.
EDITS = [(old, path, AT_END) for old in OTHER for path in ONLY[old]] + [
    (old, path, AT_REWRITE) for old in OTHER for path in rewritten(old)
]


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
    ("old", "path", "where"),
    EDITS,
    ids=[f"{old}->{OTHER[old]}:{path}:{where.split()[-1]}" for old, path, where in EDITS],
)
def test_switch_with_a_team_edit(baselines: dict[str, Path], tmp_path: Path, old: str, path: str, where: str) -> None:
    new = OTHER[old]
    project = copy_of(baselines, old, tmp_path)
    other_render = (baselines[new] / path).read_text() if (baselines[new] / path).exists() else None
    line = team_edit(project, path, other_render, where)
    commit_all(project, f"team edit of {path}")
    result, seconds = switch(project, new)
    assert_finished_or_reported(project, new, result)
    if result.returncode == 0:
        assert line in (project / path).read_text(), f"the team's edit of {path} was lost"
        outcome = "exit 0, edit kept"
    else:
        assert f"  {path}" in result.stderr, f"the report does not name {path}:\n{result.stderr}"
        outcome = "exit 1: " + "; ".join(sorted(set(unfinished(project, new).values())))
    print(f"OUTCOME | {old} -> {new} | {path} | {where} | {outcome} | {seconds:.2f} s")


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
    args = [arg for env, host in hosts.items() for arg in ("--set", f"{env}_workspace_host={host}")]
    result = run(str(project / SCRIPT), "deploy_code", *args, cwd=project, check=False)
    assert result.returncode == 0, result.stderr
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
        f"scripts/switch-pattern: {project} is not the top of a git repository of its own "
        f"(it is inside {clone}): a switch or --set updates only such a repository. Make it one first:"
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
    """The second line of defence: were the repository check missing, the update that changes .cruft.json and no
    file fails and puts .cruft.json back."""
    _, project = nested_bake
    before = files_of(project)
    code = (
        "import sys\nfrom repo_tools.switch import cli\n"
        "cli.repository_problem = lambda: None  # as if the repository check were missing\n"
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
