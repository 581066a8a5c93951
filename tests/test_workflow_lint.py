"""Generated workflows pass the real linters offline: zizmor, the vendored GitHub workflow schema (in-process and
through check-jsonschema), yamllint; the lint workflow and pre-commit run the same versions."""

from __future__ import annotations

import json
import re
import subprocess
from importlib import resources
from typing import Any

import jsonschema
import pytest
from support import Baked
from workflows import jobs, steps_text, tool


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


def test_lint_workflow_runs_zizmor_and_the_schema(baked: Baked) -> None:
    lint = baked.workflows["lint-workflows.yml"]
    text = "\n".join(steps_text(job) for job in jobs(lint).values())
    assert "zizmor" in text and "check-jsonschema" in text and "vendor.github-workflows" in text
    precommit = baked.yaml(".pre-commit-config.yaml")
    hooks = {hook["id"] for repo in precommit["repos"] for hook in repo["hooks"]}
    assert {"zizmor", "check-github-workflows", "check-merge-conflict"} <= hooks


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
