"""Helpers for the tests of the generated GitHub Actions workflows: parse jobs, steps, bundle commands and
Environments; run a step's script as GitHub would."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from repo_tools.project import job_bundle_commands
from support import Baked

SHA_PIN = re.compile(r"^\s*(?:-\s*)?uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s*v\d+(\.\d+)*\s*$")

UNTRUSTED = re.compile(r"\$\{\{\s*(github\.event\.|github\.head_ref|inputs\.)")

PR_TRIGGERS = {"pull_request", "pull_request_target"}

# What a GitHub job needs beyond the Databricks jobs it waits for: checkout, CLI, wheel build, deploy, teardown.
DEPLOY_MARGIN_MINUTES = 15

ENVIRONMENTS = ("test", "dev", "staging", "prod")

# Workflows whose runs must all run, waiting ones included: their groups keep every waiting run (`queue: max`; a plain
# group cancels its pending run when another arrives, whatever cancel-in-progress says).
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


def bundle_commands(job: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(verb, target) for every `databricks bundle` command a job runs, read by the generated tools' own reader
    (repo_tools.project: each step as bash reads it); target "" when none is named, None when set elsewhere."""
    return [(command.verb, command.target) for command in job_bundle_commands(job)]


def environment(job: dict[str, Any]) -> str | None:
    env = job.get("environment")
    return env["name"] if isinstance(env, dict) else env


def triggers(flow: dict[str, Any]) -> set[str]:
    on = flow["on"]
    return {on} if isinstance(on, str) else set(on)


def needs(job: dict[str, Any]) -> set[str]:
    value = job.get("needs", [])
    return {value} if isinstance(value, str) else set(value)


def run_jobs(job: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(Databricks job key, target) for every `databricks bundle run <key> -t <target>` a GitHub job runs."""
    found = []
    for command in job_bundle_commands(job):
        if command.verb == "run":
            assert command.key and re.fullmatch(r"[A-Za-z_]\w*", command.key), f"`bundle run` names its job: {command}"
            found.append((command.key, command.target))
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


def pr_flows(baked: Baked) -> dict[str, dict[str, Any]]:
    return {name: flow for name, flow in baked.workflows.items() if triggers(flow) & PR_TRIGGERS}


def integration_gate(baked: Baked) -> tuple[str, dict[str, Any], str]:
    """(integration job key, gate job, gate key) of the Integration tests workflow."""
    flow = baked.workflows["integration-tests.yml"]
    integration = next(key for key, job in jobs(flow).items() if bundle_commands(job))
    gates = [key for key, job in jobs(flow).items() if key != integration]
    assert len(gates) == 1, "one gate job besides the integration job"
    return integration, jobs(flow)[gates[0]], gates[0]


def concurrency_groups(flow: dict[str, Any]) -> list[str]:
    found = [flow.get("concurrency")] + [job.get("concurrency") for job in jobs(flow).values()]
    return [g["group"] if isinstance(g, dict) else g for g in found if g]


def credentialed(job: dict[str, Any]) -> bool:
    return job.get("permissions", {}).get("id-token") == "write" or "secrets." in json.dumps(job)
