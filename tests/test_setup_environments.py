"""scripts/setup-environments of the generated project: its offline plan states, for every combination of answers,
exactly the principals, subjects, secrets, Environments, branches, catalogs, grants and checks the answers call for
(fast, in-process); and its own tests against local fakes pass for the combinations the default bakes do not cover
(slow tier; the defaults run them with the rest of the generated tests)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import _bake
from repo_tools.setup.cli import main as setup_main  # plain Python, identical in every project
from support import Baked

ACCOUNT_HOSTS = {
    "aws": "https://accounts.cloud.databricks.com",
    "azure": "https://accounts.azuredatabricks.net",
    "gcp": "https://accounts.gcp.databricks.com",
}
CHECKS = [
    "Deployment pattern consistent",
    "Integration tests passed",
    "Lint and unit tests",
    "zizmor and the workflow schema",
]
# Answers away from every default: a hard-coded default in the tool shows up here.
CUSTOM = {
    "project_name": "Fraud Scoring",
    "deployment_pattern": "deploy_models",
    "ci_auth": "client_secret",
    "github_repository": "contoso/fraud-scoring-repo",
    "dev_workspace_host": "https://adb-1234567890123456.7.azuredatabricks.net",
    "staging_workspace_host": "https://adb-1234567890123456.7.azuredatabricks.net",
    "prod_workspace_host": "https://adb-3456789012345678.9.azuredatabricks.net",
    "dev_catalog": "ml_fraud_scoring_dev",  # the project's own: valid with create_catalogs too
    "staging_catalog": "ml_fraud_scoring_staging",
    "prod_catalog": "ml_fraud_scoring_prod",
    "default_branch": "develop",
    "release_branch": "production",
    "read_group": "ml-readers",
    "cloud": "azure",
}


def offline_plan(project: Path) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = setup_main(["plan", "--offline", "--json"], root=project)
    assert code == 0, err.getvalue()
    return json.loads(out.getvalue())


def expected(a: dict[str, Any]) -> dict[str, Any]:
    """What the answers call for, written from the answers alone (docs/setup.md says the same in words)."""
    slug, models = a["project_slug"], a["deployment_pattern"] == "deploy_models"
    hybrid = a["deployment_pattern"] == "hybrid"  # deploy code's environments; prod copies staging's model
    host = {env: a[f"{env}_workspace_host"] for env in ("dev", "staging", "prod")}
    catalog = {env: a[f"{env}_catalog"] for env in ("dev", "staging", "prod")}
    test_env = "dev" if models else "staging"  # where pull requests run their integration tests
    host["test"], catalog["test"] = host[test_env], catalog[test_env]
    default, release = a["default_branch"], a["release_branch"]
    environments = ["test", "dev", "staging", "prod"] if models else ["test", "staging", "prod"]
    branches = {"test": [], "dev": [default], "staging": [default], "prod": [default, release] if models else [release]}

    workspaces = {f"{slug}-{env}": {host[env]} for env in environments}
    if models:  # promotion: each environment's principal reads the previous environment's model
        workspaces[f"{slug}-staging"].add(host["dev"])
        workspaces[f"{slug}-prod"].add(host["staging"])
    if hybrid:  # prod's principal reads staging's model, and nothing else of staging
        workspaces[f"{slug}-prod"].add(host["staging"])

    # Catalog grants nobody else makes: with create_catalogs the bundle grants on the catalogs it creates.
    bundle_catalogs = {}
    if a["create_catalogs"]:
        bundle_catalogs = {catalog["staging"]: "staging", catalog["prod"]: "prod"}
        if models:
            bundle_catalogs[catalog["dev"]] = "dev-shared"
    grants = {(a["read_group"], catalog[env], ("USE_CATALOG",)) for env in ("dev", "staging", "prod")}
    grants |= {(f"{slug}-{env}", catalog[env], ("CREATE_SCHEMA", "USE_CATALOG")) for env in environments}
    if models:
        grants |= {(f"{slug}-staging", catalog["dev"], ("USE_CATALOG",))}
        grants |= {(f"{slug}-prod", catalog["staging"], ("USE_CATALOG",))}
    if hybrid:
        grants |= {(f"{slug}-prod", catalog["staging"], ("USE_CATALOG",))}
    # ... the test principal's included (resources/catalogs.yml lists it: grants there are authoritative).
    grants = {g for g in grants if g[1] not in bundle_catalogs}
    return {
        "environments": environments,
        "host": host,
        "catalog": catalog,
        "branches": branches,
        "workspaces": workspaces,
        "bundle_catalogs": bundle_catalogs,
        "grants": grants,
    }


def assert_plan_matches_answers(baked: Baked) -> None:
    a, plan = baked.context, offline_plan(baked.path)
    want = expected(a)
    slug, repo, oidc = a["project_slug"], a["github_repository"], a["ci_auth"] == "github_oidc"
    objects: dict[str, list[dict[str, Any]]] = {}
    for item in plan["objects"]:
        objects.setdefault(item["kind"], []).append(item)

    assert plan["repository"] == repo
    assert plan["account_host"] == ACCOUNT_HOSTS[a["cloud"]]
    assert plan["ci_auth"] == a["ci_auth"]
    assert [env["name"] for env in plan["environments"]] == want["environments"]
    # The template's own fact (docs, _patterns) says the same as the tool reading the generated files.
    facts = baked.facts.environments
    assert list(facts) == want["environments"]
    assert {name: [a[key] for key in keys] for name, keys in facts.items()} == {
        name: want["branches"][name] for name in want["environments"]
    }
    for env in plan["environments"]:
        name = env["name"]
        assert env["principal"] == f"{slug}-{name}"
        assert (env["host"], env["catalog"]) == (want["host"][name], want["catalog"][name])
        assert env["branches"] == want["branches"][name]
        assert (env["reviewers"] is not None) == (name == "prod"), "only prod waits for an approval"
        assert env["variables"] == {"DATABRICKS_CLIENT_ID": None, "DATABRICKS_HOST": want["host"][name]}
        assert env["secrets"] == ([] if oidc else ["DATABRICKS_CLIENT_SECRET"])

    assert {o["name"] for o in objects["service principal"]} == {f"{slug}-{e}" for e in want["environments"]}
    subjects = {o["name"]: o["subject"] for o in objects.get("federation policy", [])}
    secrets = {o["name"]: o["environment"] for o in objects.get("oauth secret", [])}
    everyone = {f"{slug}-{e}": f"repo:{repo}:environment:{e}" for e in want["environments"]}
    assert subjects == (everyone if oidc else {})
    assert secrets == ({} if oidc else {f"{slug}-{e}": e for e in want["environments"]})
    issuers = {o["issuer"] for o in objects.get("federation policy", [])}
    assert issuers == ({"https://token.actions.githubusercontent.com"} if oidc else set())

    members: dict[str, set[str]] = {}
    for o in objects["workspace assignment"]:
        members.setdefault(o["name"], set()).add(o["workspace"])
    assert members == {**want["workspaces"], a["read_group"]: set(want["host"].values())}
    entitled = {(o["name"], o["workspace"]) for o in objects.get("entitlement", [])}
    job_clusters = a["compute"] == "job_cluster"
    assert entitled == ({(f"{slug}-{e}", want["host"][e]) for e in want["environments"]} if job_clusters else set())

    catalogs = {o["name"]: o["created_by_target"] for o in objects["catalog"]}
    assert catalogs == {c: want["bundle_catalogs"].get(c) for c in want["catalog"].values()}
    grants = {(o["name"], o["catalog"], tuple(sorted(o["privileges"]))) for o in objects.get("grant", [])}
    assert grants == want["grants"]

    (ruleset,) = objects["github ruleset"]
    assert (ruleset["branches"], ruleset["checks"]) == ([a["default_branch"], a["release_branch"]], CHECKS)
    assert {o["name"] for o in objects["github environment"]} == set(want["environments"])
    assert [o["name"] for o in objects["github required reviewers"]] == ["prod"]


def test_offline_plan_matches_the_answers(baked: Baked) -> None:
    assert_plan_matches_answers(baked)


def test_offline_plan_follows_answers_away_from_the_defaults(cookies_session: Any) -> None:
    for create_catalogs in (False, True):
        assert_plan_matches_answers(_bake(cookies_session, {**CUSTOM, "create_catalogs": create_catalogs}))


def test_the_plan_refuses_settings_that_disagree_with_the_workflows(baked_default: Baked, tmp_path: Path) -> None:
    project = Path(shutil.copytree(baked_default.path, tmp_path / "project"))
    settings = project / "tools" / "setup-environments.toml"
    settings.write_text(settings.read_text().replace("[environments.staging]", "[environments.qa]"))
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = setup_main(["plan", "--offline"], root=project)
    assert code == 2
    assert "'qa'" in err.getvalue()
    assert "make them agree" in err.getvalue()


# The default bakes (OIDC) run tests/setup with all the generated tests; these cover the client-secret side,
# job clusters (entitlements) and catalogs the bundle creates, once per pattern.
SETUP_COMBOS = [
    {
        "deployment_pattern": "deploy_code",
        "ci_auth": "client_secret",
        "compute": "job_cluster",
        "create_catalogs": True,
    },
    {"deployment_pattern": "deploy_models", "ci_auth": "client_secret", "create_catalogs": True, "cloud": "gcp"},
    {"deployment_pattern": "hybrid", "ci_auth": "client_secret", "create_catalogs": True, "cloud": "azure"},
]


@pytest.mark.slow
@pytest.mark.parametrize("answers", SETUP_COMBOS, ids=lambda a: f"{a['deployment_pattern']}-{a['ci_auth']}")
def test_generated_setup_tests_pass(cookies_session: Any, answers: dict[str, Any], tmp_path: Path) -> None:
    baked = _bake(cookies_session, answers)
    project = Path(shutil.copytree(baked.path, tmp_path / "project"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:cookies", "tests/setup"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    assert "(missing OAuth secret)" not in result.stdout, "the client-secret checks ran"
    assert "(wrong federation subject)" in result.stdout, "no federation policy without OIDC"


def test_setup_doc_runs_plan_apply_check_push_then_a_pull_request(baked_default: Baked) -> None:
    """The first-run order the issue asks for, in the commands docs/setup.md gives."""
    section = baked_default.text("docs/setup.md").split("## 2. ", 1)[1].split("\n## ", 1)[0]
    steps = [
        "scripts/setup-environments plan --offline",
        "scripts/setup-environments plan ",
        "scripts/setup-environments apply",
        "scripts/setup-environments check",
        f"git push -u origin {baked_default.context['default_branch']}",
        "gh pr create",
    ]
    positions = [section.find(step) for step in steps]
    assert -1 not in positions, dict(zip(steps, positions, strict=True))
    assert positions == sorted(positions), "plan, apply, check, push, then a pull request"
    options = {"--create-repo", "--reviewer", "--yes", "--account-host", "--account-profile", "--timeout"}
    assert {o for o in options if o in section} == options, "every option is documented"


def test_offline_plan_into_a_closed_pipe_ends_quietly(baked_default: Baked) -> None:
    """`scripts/setup-environments plan --offline | head`: the reader leaves early; no BrokenPipeError traceback.
    The pipe is closed before the tool writes, so the broken pipe is certain, not a race with `head`."""
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    script = str(baked_default.path / "scripts" / "setup-environments")
    child = subprocess.Popen(
        [script, "plan", "--offline"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=baked_default.path
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    stderr = child.stderr.read().decode()
    child.wait(timeout=60)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert child.returncode == 141, (child.returncode, stderr)  # as a shell tool killed by SIGPIPE: 128 + 13
