"""Generated workflows are secure by default: pinned actions, least privilege, no untrusted expressions, no dropped
prod runs, hash-locked installs in every credentialed job, credentials per the ci_auth answer, timeouts."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from support import Baked
from workflows import (
    DEPENDABOT,
    DEPLOY_MARGIN_MINUTES,
    ENVIRONMENTS,
    LOCK,
    NEVER_DROPPED,
    PR_TRIGGERS,
    SHA_PIN,
    SWITCH_LOCK,
    SWITCH_PINNED,
    TEMPLATE_UPDATE,
    UNTRUSTED,
    bundle_commands,
    concurrency_groups,
    credentialed,
    environment,
    integration_gate,
    jobs,
    run_jobs,
    run_step,
    step_running,
    steps_text,
    triggers,
)


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
                # The job that runs the template's code only reads; the one that pushes a branch and opens a pull
                # request runs none of it. Neither holds a Databricks credential.
                wanted = {"update": set(), "publish": {"contents", "pull-requests"}}[job_name]
                assert writes == wanted, f"{name}:{job_name} writes {writes}"
                assert set(permissions) == (writes or {"contents"}), f"{name}:{job_name} asks for more than it writes"
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
        assert groups, f"{name} has no concurrency group"
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


def test_no_pending_promotion_or_release_can_be_cancelled(baked: Baked) -> None:
    """A plain concurrency group holds one running and one pending run, and cancels the pending one when a third
    arrives. Promotions (one per model version) and releases must never be dropped: every group they wait in keeps
    all waiting runs (`queue: max`, never cancel-in-progress), and a group shared between workflows is allowed
    only on those terms. Databricks queues the promotion job too (tests/test_bundle.py)."""
    owners: dict[str, set[str]] = {}
    queued: dict[str, bool] = {}
    for name, flow in baked.workflows.items():
        for group in [flow.get("concurrency")] + [job.get("concurrency") for job in jobs(flow).values()]:
            if not group:
                continue
            key = group["group"] if isinstance(group, dict) else group
            key = re.sub(r"\$\{\{\s*github\.workflow\s*\}\}", flow["name"], key)  # one group per workflow
            settings = (group.get("queue"), group.get("cancel-in-progress")) if isinstance(group, dict) else None
            keeps_all = settings == ("max", False)
            if name in NEVER_DROPPED:
                assert keeps_all, f"{name}: a waiting run in {key!r} could be cancelled"
            owners.setdefault(key, set()).add(name)
            queued[key] = queued.get(key, True) and keeps_all
    for key, names in owners.items():
        assert len(names) == 1 or queued[key], f"{sorted(names)} share {key!r} without queue: max"
    if baked.pattern == "deploy_models":
        assert {"promote.yml", "release.yml"} <= set(baked.workflows)
        prod = {
            name for name, flow in baked.workflows.items() for job in jobs(flow).values() if environment(job) == "prod"
        }
        assert prod == {"promote.yml", "release.yml"}
        groups = {concurrency_groups(baked.workflows[name])[-1] for name in prod}
        assert len(groups) == 1, "prod promotions and releases take turns in one group"
    if baked.pattern == "hybrid":
        prod = {
            name for name, flow in baked.workflows.items() for job in jobs(flow).values() if environment(job) == "prod"
        }
        assert prod == {"release.yml"}, "a release is what promotes to prod"
        concurrency = jobs(baked.workflows["release.yml"])["prod"]["concurrency"]
        assert (concurrency["queue"], concurrency["cancel-in-progress"]) == ("max", False), "no release is dropped"


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
            if name == TEMPLATE_UPDATE and job_name == "publish":
                # It installs and runs nothing but the repository's own stdlib script, from main's checkout.
                assert installs == [] and not re.search(r"cruft|scripts/", steps_text(job)), f"{name}:{job_name}"
                continue
            expected = LOCK if name != TEMPLATE_UPDATE else SWITCH_LOCK
            assert installs == [f"pip install --require-hashes --no-deps -r {expected}"], (
                f"{name}:{job_name}: {installs}"
            )
            assert not re.search(r"\b(uv|pipx|conda|poetry)\b", steps_text(job)), f"{name}:{job_name}"
            install = next(i for i, step in enumerate(job["steps"]) if "pip install" in step.get("run", ""))
            first_use = next(
                i
                for i, step in enumerate(job["steps"])
                if re.search(r"databricks bundle|scripts/|repo_tools", step.get("run", ""))
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
