"""Living projects: switch the deployment pattern (and other answers) on an existing repo with cruft, keep the
team's work, and end byte-identical to a fresh bake; team presets reach the generated project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import REPO, commit_all, run

pytestmark = pytest.mark.slow

CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ")
# Template-owned files that must equal a fresh bake after a switch.
OWNED = (".github/workflows/", "resources/", "targets/", "databricks.yml")
TEAM_WORKFLOW = ".github/workflows/team-nightly-report.yml"


def cruft(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run(str(Path(sys.executable).with_name("cruft")), *args, cwd=cwd)


def merge_problems(project: Path) -> list[str]:
    """What a human must resolve after `cruft update` (which exits 0 even when it leaves conflicts)."""
    problems = [f"{p.relative_to(project)}: rejected hunk file" for p in project.rglob("*.rej")]
    for path in project.rglob("*"):
        if ".git" in path.parts or not path.is_file():
            continue
        try:
            lines = path.read_text().splitlines()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(lines, start=1):
            if line.startswith(CONFLICT_MARKERS):
                problems.append(f"{path.relative_to(project)}:{number}: conflict marker {line[:20]!r}")
    status = run("git", "status", "--porcelain", cwd=project).stdout.splitlines()
    problems += [f"{line[3:]}: unmerged in git" for line in status if line[:2] in ("UU", "AA", "DU", "UD")]
    return problems


def assert_clean_merge(project: Path) -> None:
    problems = merge_problems(project)
    assert not problems, "cruft left conflicts for a human to resolve:\n  " + "\n  ".join(problems)


def owned_files(project: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project).as_posix()
        if path.is_file() and relative.startswith(OWNED) and relative != TEAM_WORKFLOW:
            files[relative] = path.read_bytes()
    return files


def tree(project: Path) -> dict[str, str]:
    """Every file of a project but git's and cruft's own bookkeeping."""
    return {
        path.relative_to(project).as_posix(): path.read_text()
        for path in sorted(project.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(project).parts and path.name != ".cruft.json"
    }


def assert_equals_fresh_bake_plus_team_work(project: Path, reference: Path, team: TeamWork) -> None:
    """The whole tree is a fresh bake of the new answers, plus the team's files and appended lines."""
    actual, expected = tree(project), tree(reference)
    for relative in team.added:
        assert relative in actual, f"team file {relative} was lost"
        del actual[relative]
    for relative, suffix in team.appended.items():
        assert actual[relative].endswith(suffix), f"team edit in {relative} was lost"
        actual[relative] = actual[relative][: -len(suffix)]
    assert sorted(set(actual) - set(expected)) == [], "files of the old answers linger"
    assert sorted(set(expected) - set(actual)) == [], "files of the new answers are missing"
    different = [relative for relative in expected if actual[relative] != expected[relative]]
    assert different == [], "files that differ from a fresh bake"


def create(template: Path, out: Path, answers: dict[str, Any]) -> Path:
    extra = json.dumps(answers)
    cruft("create", "--no-input", "--output-dir", str(out), "--extra-context", extra, str(template), cwd=out)
    (project,) = [p for p in out.iterdir() if p.is_dir()]
    return project


def fresh(template: Path, tmp: Path, answers: dict[str, Any]) -> Path:
    out = tmp / f"fresh-{len(list(tmp.iterdir()))}"
    out.mkdir()
    return create(template, out, answers)


@dataclass
class TeamWork:
    added: dict[str, str]  # path -> content of files the team created
    appended: dict[str, str]  # path -> text the team appended to a generated file


def add_team_work(project: Path, package: str) -> TeamWork:
    """The kinds of edits a team makes after the first bake."""
    added = {
        f"src/{package}/holidays.py": '"""Our own feature: public holidays."""\n\nHOLIDAYS = ("2026-12-25",)\n',
        "notebooks/exploration.ipynb": json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
        + "\n",
        TEAM_WORKFLOW: "name: Team nightly report\non:\n  schedule:\n    - cron: '0 3 * * *'\npermissions: {}\n",
        "docs/team-notes.md": "# Notes\n\nOur on-call rota lives here.\n",
    }
    appended = {
        f"src/{package}/features.py": "\n\n# TEAM: fares above 500 are data errors in our city.\n",
        "README.md": "\n## Team notes\n\nAsk #ml-platform before changing the schedule.\n",
    }
    for relative, content in added.items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(content)
    for relative, suffix in appended.items():
        (project / relative).write_text((project / relative).read_text() + suffix)
    return TeamWork(added=added, appended=appended)


def switch(project: Path, **answers: Any) -> float:
    started = time.perf_counter()
    cruft("update", "-y", "--variables-to-update", json.dumps(answers), cwd=project)
    elapsed = time.perf_counter() - started
    assert_clean_merge(project)
    commit_all(project, f"switch {answers}")
    return elapsed


def test_switch_pattern_both_ways_keeps_team_work(template_repo: Path, tmp_path: Path) -> None:
    """With serving on: its files are rewritten for the other pattern, not deleted (tests/test_serving.py)."""
    answers = {"deployment_pattern": "deploy_models", "cloud": "azure", "serving_endpoint": True}
    out = tmp_path / "work"
    out.mkdir()
    project = create(template_repo, out, answers)
    package = json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]["__package_name"]
    run("git", "init", "-q", "-b", "main", cwd=project)
    commit_all(project, "bake")
    team = add_team_work(project, package)
    commit_all(project, "team work")
    baselines = tmp_path / "fresh"
    baselines.mkdir()

    for pattern in ("deploy_code", "deploy_models"):
        switch(project, deployment_pattern=pattern)
        reference = fresh(template_repo, baselines, {**answers, "deployment_pattern": pattern})
        assert owned_files(project) == owned_files(reference), f"after switching to {pattern}"
        assert_equals_fresh_bake_plus_team_work(project, reference, team)
        assert (project / TEAM_WORKFLOW).is_file(), "the team's own workflow stays"
        lingering = {"deploy_code": ["promote.yml", "train.yml", "release.yml"], "deploy_models": ["deploy.yml"]}
        for name in lingering[pattern]:
            assert not (project / ".github" / "workflows" / name).exists(), f"{name} lingers after the switch"
        has_promote = (project / "src" / package / "promote.py").exists()
        assert has_promote is (pattern == "deploy_models")
        assert (project / "src" / package / "serving.py").is_file(), "serving stays through a switch"
        state = json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]
        assert state["deployment_pattern"] == pattern


def test_switch_compute_and_auth_and_turn_serving_on(template_repo: Path, tmp_path: Path) -> None:
    """A team changes its compute and auth, and turns real-time serving on, in one update of a project."""
    answers = {"deployment_pattern": "deploy_code"}
    out = tmp_path / "work"
    out.mkdir()
    project = create(template_repo, out, answers)
    run("git", "init", "-q", "-b", "main", cwd=project)
    commit_all(project, "bake")
    changed = {"compute": "job_cluster", "ci_auth": "client_secret", "serving_endpoint": True}
    switch(project, **changed)
    reference = fresh(template_repo, tmp_path, {**answers, **changed})
    assert owned_files(project) == owned_files(reference)
    assert tree(project) == tree(reference), "every file, serving's new ones included, as a fresh bake"
    training = yaml.safe_load((project / "resources" / "model-training.job.yml").read_text())
    assert "job_clusters" in json.dumps(training)


def test_a_real_conflict_is_reported_not_hidden(template_repo: Path, tmp_path: Path) -> None:
    """A team edit on a line the switch rewrites: cruft exits 0, the detector must name the file."""
    out = tmp_path / "work"
    out.mkdir()
    project = create(template_repo, out, {"deployment_pattern": "deploy_code"})
    run("git", "init", "-q", "-b", "main", cwd=project)
    commit_all(project, "bake")
    # The switch moves the pull requests' test target between the staging and the dev workspace.
    target = project / "targets" / "test.yml"
    lines = target.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip().startswith("host:"))
    lines[index] = lines[index] + "  # team: pinned on purpose"
    target.write_text("\n".join(lines) + "\n")
    commit_all(project, "team edit on a template-owned line")
    cruft("update", "-y", "--variables-to-update", json.dumps({"deployment_pattern": "deploy_models"}), cwd=project)
    problems = merge_problems(project)
    assert any("targets/test.yml" in problem for problem in problems), problems


def test_team_preset_reaches_the_project(tmp_path: Path) -> None:
    preset = REPO / "presets" / "example-team.yaml"
    config = yaml.safe_load(preset.read_text())["default_context"]
    home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--config-file", str(preset), "-o", str(tmp_path), "."],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(home)},
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    (project,) = [p for p in tmp_path.iterdir() if p.is_dir() and p != home]
    bundle = yaml.safe_load((project / "databricks.yml").read_text())
    for env in ("dev", "staging", "prod"):
        assert bundle["targets"][env]["workspace"]["host"] == config[f"{env}_workspace_host"]
        assert bundle["targets"][env]["variables"]["catalog"] == config[f"{env}_catalog"]
    assert bundle["variables"]["read_group"]["default"] == config["read_group"]
    ci = (project / ".github" / "workflows" / "ci.yml").read_text()
    assert config["default_branch"] in ci
    training = (project / "resources" / "model-training.job.yml").read_text()
    assert ("environments:" in training) is (config.get("compute", "serverless") == "serverless")
