"""scripts/setup-environments against local fakes of the Databricks account and workspace APIs and of GitHub:
apply creates exactly what plan lists and nothing on a second run, check names every broken piece, secrets
never reach the output, and failures are one line, fast."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from conftest import PROJECT, Setup

from repo_tools.setup.clients import Databricks, GitHub
from repo_tools.setup.desired import Desired, Environment, Grant
from repo_tools.setup.items import Context
from repo_tools.setup.plan import items, run

REVIEWER = "release-manager"
APPLY = ("apply", "--yes", "--create-repo", "--reviewer", REVIEWER)


def planned(setup: Setup) -> set[tuple[Any, ...]]:
    """The objects the plan lists, in the shape `observed` reads them back from the fakes."""
    objects: set[tuple[Any, ...]] = set()
    for item in items(setup.desired()):
        s, kind = item.spec, item.kind
        if kind == "service principal" or kind == "account group" or kind == "github repository":
            objects.add((kind, item.name))
        elif kind == "workspace assignment":
            objects.add((kind, item.name, s["workspace"]))
        elif kind == "federation policy":
            objects.add((kind, item.name, s["issuer"], s["subject"]))
        elif kind == "entitlement":
            objects.add((kind, item.name, s["workspace"], s["entitlement"]))
        elif kind == "catalog":
            objects.add((kind, item.name))
        elif kind == "grant":
            objects.add((kind, item.name, s["catalog"], frozenset(s["privileges"])))
        elif kind == "oauth secret":
            objects.add((kind, item.name, s["environment"], s["secret"]))
        elif kind == "github environment":
            objects.add((kind, item.name, bool(s["deployment_branches"])))
        elif kind == "github deployment branch":
            objects.add((kind, s["environment"], item.name))
        elif kind == "github required reviewers":
            objects.add(
                (kind, item.name, tuple(sorted({*s["reviewers"], REVIEWER})), s["prevent_self_review"])
            )
        elif kind == "github variable":
            value = s["value"] if s["value"] is not None else f"<application id of {s['principal']}>"
            objects.add((kind, s["environment"], item.name, value))
        elif kind == "github ruleset":
            objects.add(
                (kind, item.name, tuple(f"refs/heads/{b}" for b in s["branches"]), tuple(sorted(s["checks"])))
            )
        elif kind != "github branch":  # the release branch waits for the first push
            raise AssertionError(f"no reading of {kind} in the fakes: add one")
    return objects


def observed(setup: Setup) -> set[tuple[Any, ...]]:
    """Everything the fakes hold, read back in the planned shape."""
    db, gh, repo = setup.databricks, setup.github, setup.desired().repository
    urls = {workspace_id: db.workspaces[host].url for host, workspace_id in db.workspace_ids.items()}
    app_ids = {sp["applicationId"]: sp["displayName"] for sp in db.principals.values()}
    objects: set[tuple[Any, ...]] = {
        ("service principal", sp["displayName"]) for sp in db.principals.values()
    }
    objects |= {("account group", group["displayName"]) for group in db.groups.values()}
    for workspace_id, assigned in db.assignments.items():
        objects |= {("workspace assignment", db.name_of(pid), urls[workspace_id]) for pid in assigned}
    for sp_id, policies in db.policies.items():
        for policy in policies.values():
            oidc = policy["oidc_policy"]
            objects.add(
                ("federation policy", db.principals[sp_id]["displayName"], oidc["issuer"], oidc["subject"])
            )
    for (workspace_id, sp_id), entitlements in db.entitlements.items():
        name = db.principals[sp_id]["displayName"]
        objects |= {("entitlement", name, urls[workspace_id], e) for e in entitlements}
    for catalog, grants in db.catalogs.items():
        objects.add(("catalog", catalog))
        objects |= {
            ("grant", db.principal_of(p), catalog, frozenset(privs)) for p, privs in grants.items() if privs
        }
    objects |= {("github repository", name) for name in gh.repos}
    for key, state in gh.environments.items():
        env = key.split(" ", 1)[1]
        custom = bool((state.get("deployment_branch_policy") or {}).get("custom_branch_policies"))
        objects.add(("github environment", env, custom))
        objects |= {("github deployment branch", env, p["name"]) for p in gh.branch_policies.get(key, [])}
        if state.get("reviewers"):
            reviewers = tuple(gh.reviewers(repo, env))
            objects.add(("github required reviewers", env, reviewers, state.get("prevent_self_review")))
        for name, value in gh.variables.get(key, {}).items():
            shown = f"<application id of {app_ids[value]}>" if value in app_ids else value
            objects.add(("github variable", env, name, shown))
        for name, value in gh.secrets.get(key, {}).items():
            # An OAuth secret counts only if it is one Databricks minted for the Environment's principal.
            client_id = gh.variables.get(key, {}).get("DATABRICKS_CLIENT_ID")
            owners = [db.principals[i]["displayName"] for i, values in db.secrets.items() if value in values]
            assert owners == [app_ids.get(client_id)], f"{env}: {name} holds no secret of its principal"
            objects.add(("oauth secret", owners[0], env, name))
    for ruleset in gh.rulesets.values():
        refs = tuple(ruleset["conditions"]["ref_name"]["include"])
        (checks_rule,) = [r for r in ruleset["rules"] if r["type"] == "required_status_checks"]
        checks = tuple(sorted(c["context"] for c in checks_rule["parameters"]["required_status_checks"]))
        assert any(r["type"] == "pull_request" for r in ruleset["rules"]), "changes arrive by pull request"
        assert ruleset["enforcement"] == "active"
        objects.add(("github ruleset", ruleset["name"], refs, checks))
    return objects


def prepare(setup: Setup) -> None:
    """What exists before setup in every account: the read group (often synced from an identity provider), and
    the catalogs the bundle itself creates on its first deploy (when it declares any)."""
    setup.databricks.groups["900"] = {"id": "900", "displayName": setup.desired().group}
    deploy_the_bundle_once(setup)


def deploy_the_bundle_once(setup: Setup) -> None:
    """The catalogs the bundle declares (create_catalogs) exist after its first deploy."""
    for catalog, (_host, created_by) in setup.desired().catalogs.items():
        if created_by:
            setup.databricks.catalogs[catalog] = {}


def one_line_error(result: Any) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.err + result.out
    return lines[0]


def test_plan_offline_lists_every_environment_with_its_principal_and_subject(setup: Setup) -> None:
    result = setup.run("plan", "--offline", "--json")
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    desired = setup.desired()
    assert [env["name"] for env in plan["environments"]] == list(setup_settings()["environments"])
    assert not setup.databricks.log, "offline means no request at all"
    assert not setup.github.log, "offline means no request at all"
    kinds = {(o["kind"], o["name"]) for o in plan["objects"]}
    for env in desired.environments:
        assert ("service principal", env.principal) in kinds
        assert ("github environment", env.name) in kinds
        if plan["ci_auth"] == "github_oidc":
            (policy,) = [
                o for o in plan["objects"] if o["kind"] == "federation policy" and o["name"] == env.principal
            ]
            assert policy["subject"] == f"repo:{desired.repository}:environment:{env.name}"
        else:
            assert ("oauth secret", env.principal) in kinds


def setup_settings() -> dict[str, Any]:
    import tomllib

    return tomllib.loads((PROJECT / "tools" / "setup-environments.toml").read_text())


def test_plan_and_check_on_an_empty_account_change_nothing_and_name_what_is_missing(setup: Setup) -> None:
    plan = setup.run("plan")
    assert plan.code == 0, plan.err
    check = setup.run("check")
    assert check.code == 1
    for env in setup.desired().environments:
        assert f"service principal {env.principal}" in check.err
        assert f"github environment {env.name}" in check.err
    assert setup.mutations() == [], "plan and check are read-only"


def test_apply_creates_exactly_the_plan_and_a_second_apply_changes_nothing(setup: Setup) -> None:
    prepare(setup)
    first = setup.run(*APPLY)
    assert first.code == 0, first.out + first.err
    assert observed(setup) == planned(setup)

    setup.clear_logs()
    second = setup.run(*APPLY)
    assert second.code == 0, second.out + second.err
    assert setup.mutations() == [], "a second apply must not change anything"
    assert "0 changed" in second.out

    check = setup.run("check")
    assert check.code == 0, check.err
    assert "check passed" in check.out


def test_no_secret_or_token_reaches_the_output_or_the_logs(setup: Setup) -> None:
    prepare(setup)
    result = setup.run(*APPLY)
    assert result.code == 0, result.err
    secrets = [value for values in setup.databricks.secrets.values() for value in values]
    if setup.desired().ci_auth == "client_secret":
        assert len(secrets) == len(setup.desired().environments), "one OAuth secret per Environment"
    text = result.out + result.err + setup.caplog.text
    for secret in [*secrets, setup.databricks.token, setup.github.token]:
        assert secret not in text


def break_policy_subject(setup: Setup, principal: str) -> None:
    (policy,) = setup.databricks.policies[setup.databricks.principal_named(principal)["id"]].values()
    policy["oidc_policy"]["subject"] = policy["oidc_policy"]["subject"].rsplit(":", 1)[0] + ":somewhere-else"


def schema_grant(desired: Desired) -> Grant | None:
    """The first CREATE SCHEMA grant the tool makes itself (none where the bundle grants every catalog)."""
    return next((g for g in desired.grants if "CREATE_SCHEMA" in g.privileges and not g.is_group), None)


def drop_grant(setup: Setup, principal: str, catalog: str) -> None:
    application_id = setup.databricks.principal_named(principal)["applicationId"]
    setup.databricks.catalogs[catalog][application_id].discard("CREATE_SCHEMA")


def drop_assignment(setup: Setup, principal: str, host: str) -> None:
    sp_id = int(setup.databricks.principal_named(principal)["id"])
    del setup.databricks.assignments[setup.databricks.workspace_ids[host_of(setup, host)]][sp_id]


def host_of(setup: Setup, url: str) -> str:
    return next(host for host, server in setup.databricks.workspaces.items() if server.url == url)


def environment_state(setup: Setup, env: str) -> dict[str, Any]:
    return setup.github.environments[f"{setup.desired().repository} {env}"]


def reviewed(d: Desired) -> Environment | None:
    return next((env for env in d.environments if env.reviewers is not None), None)


def restricted(d: Desired) -> Environment | None:
    return next((env for env in d.environments if env.branches), None)


Breakage = tuple[Callable[[Desired], bool], Callable[[Setup, Desired], None], Callable[[Desired], str]]
# name -> (does this project have the object?, break it, what check must name). Environment 0 is `test`.
BREAKAGES: dict[str, Breakage] = {
    "wrong federation subject": (
        lambda d: d.ci_auth == "github_oidc",
        lambda s, d: break_policy_subject(s, d.environments[0].principal),
        lambda d: f"federation policy {d.environments[0].principal}: issuer",
    ),
    "missing reviewer": (
        lambda d: reviewed(d) is not None,
        lambda s, d: environment_state(s, reviewed(d).name).update(reviewers=[]),
        lambda d: f"github required reviewers {reviewed(d).name}:",
    ),
    "missing grant": (
        lambda d: schema_grant(d) is not None,
        lambda s, d: drop_grant(s, schema_grant(d).principal, schema_grant(d).catalog),
        lambda d: f"to {schema_grant(d).principal}: missing: lacks CREATE_SCHEMA",
    ),
    "principal removed from its workspace": (
        lambda d: True,
        lambda s, d: drop_assignment(s, d.environments[-1].principal, d.environments[-1].host),
        lambda d: f"workspace assignment {d.environments[-1].principal} in {d.environments[-1].host}",
    ),
    "missing OAuth secret": (
        lambda d: d.ci_auth == "client_secret",
        lambda s, d: s.github.secrets[f"{d.repository} {d.environments[0].name}"].clear(),
        lambda d: f"oauth secret of {d.environments[0].principal}",
    ),
    "required check dropped": (
        lambda d: True,
        lambda s, d: next(iter(s.github.rulesets.values()))["rules"][0]["parameters"][
            "required_status_checks"
        ].pop(),
        lambda d: "github ruleset 'Required checks'",
    ),
    "branch restriction lifted": (
        lambda d: restricted(d) is not None,
        lambda s, d: environment_state(s, restricted(d).name).update(deployment_branch_policy=None),
        lambda d: f"github environment {restricted(d).name}: only branches",
    ),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_check_names_the_broken_piece_and_apply_repairs_it(setup: Setup, breakage: str) -> None:
    applies, breaks, named = BREAKAGES[breakage]
    desired = setup.desired()
    if not applies(desired):
        pytest.skip(f"this project has no such object ({breakage})")
    prepare(setup)
    assert setup.run(*APPLY).code == 0
    breaks(setup, desired)

    check = setup.run("check")
    assert check.code == 1, check.out
    failures = [line for line in check.err.splitlines() if line.startswith("  ")]
    assert any(named(desired) in line for line in failures), check.err
    others = [line for line in failures if named(desired) not in line and ": missing: after " not in line]
    assert others == [], f"only the broken piece (and what waits for it) is named:\n{check.err}"

    repaired = setup.run(*APPLY)
    assert repaired.code == 0, repaired.err
    assert setup.run("check").code == 0


def test_a_variable_that_differs_needs_a_person(setup: Setup) -> None:
    prepare(setup)
    assert setup.run(*APPLY).code == 0
    env = setup.desired().environments[0]
    setup.github.variables[f"{setup.desired().repository} {env.name}"]["DATABRICKS_HOST"] = (
        "https://elsewhere"
    )
    setup.clear_logs()
    result = setup.run(*APPLY)
    assert result.code == 3
    assert f"{env.name}: DATABRICKS_HOST is 'https://elsewhere'" in result.err
    assert "interactively" in result.err
    assert setup.mutations() == [], "refused means untouched"


def test_apply_without_a_decision_refuses_clearly(setup: Setup) -> None:
    """No reviewers named and no read group: --yes refuses both, names them, and still does the rest."""
    result = setup.run("apply", "--yes", "--create-repo")
    assert result.code == 3
    assert f"account group {setup.desired().group} is missing" in result.err
    if any(env.reviewers is not None for env in setup.desired().environments):
        assert "needs required reviewers" in result.err
        assert "--reviewer" in result.err
    assert setup.databricks.principals, "the rest was done"
    assert setup.github.environments, "the rest was done"


def test_apply_asks_a_person_and_uses_the_answers(setup: Setup) -> None:
    """Interactively, apply asks who approves prod and whether to create the read group, then does both."""
    deploy_the_bundle_once(setup)
    questions: list[str] = []

    def answer(question: str) -> str:
        questions.append(question)
        return REVIEWER if question.startswith("Who approves") else "y"

    context = Context(
        desired=setup.desired(),
        databricks=Databricks(setup.databricks.account.url, setup.databricks.account_id, None, 5),
        github=GitHub(setup.github.url, setup.github.token, 5),
        interactive=True,
        ask=answer,
        create_repo=True,
    )
    assert run(context, "apply") == 0, setup.capsys.readouterr().err
    group = setup.desired().group
    asked = ["Create the empty account group"] + (["Who approves"] if reviewed(setup.desired()) else [])
    assert [q[: len(a)] for q, a in zip(questions, asked, strict=True)] == asked
    assert group in questions[0]
    assert {g["displayName"] for g in setup.databricks.groups.values()} == {group}
    env = reviewed(setup.desired())
    if env is not None:
        assert setup.github.reviewers(setup.desired().repository, env.name) == [REVIEWER]
    assert setup.run("check").code == 0


def test_without_databricks_credentials_the_error_is_one_line(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABRICKS_TOKEN")
    monkeypatch.setenv("PATH", "/nonexistent")  # no Databricks CLI to fall back to
    result = setup.run("check")
    assert result.code == 2
    line = one_line_error(result)
    assert "sign in to the account" in line
    assert setup.databricks.account.url in line


def test_without_an_account_id_the_error_says_how_to_give_it(setup: Setup) -> None:
    result = setup.run("check", "--account-id", "")
    assert result.code == 2
    assert "DATABRICKS_ACCOUNT_ID" in one_line_error(result)


def test_catalogs_the_bundle_creates_wait_for_its_first_deploy(setup: Setup) -> None:
    pending = {c: t for c, (_h, t) in setup.desired().catalogs.items() if t}
    if not pending:
        pytest.skip("the bundle declares no catalog (create_catalogs is false)")
    setup.databricks.groups["900"] = {"id": "900", "displayName": setup.desired().group}
    result = setup.run(*APPLY)
    assert result.code == 3
    for catalog, target in pending.items():
        assert f"catalog {catalog}: deploy target {target} once" in result.err
        assert catalog not in setup.databricks.catalogs, "setup never creates a catalog the bundle manages"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_unreachable_in_seconds(result: Any, host: str) -> None:
    """Exit 2 with one line naming the host as unreachable, long before the SDK's retries would end."""
    assert result.code == 2
    line = one_line_error(result)
    assert host in line
    assert "unreachable" in line
    assert result.seconds < 15


def test_an_unreachable_workspace_fails_in_seconds_with_one_line(setup: Setup) -> None:
    prepare(setup)
    env = setup.desired().environments[-1]
    dead = f"http://127.0.0.1:{closed_port()}"
    for path in [setup.root / "databricks.yml", *(setup.root / "targets").glob("*.yml")]:
        path.write_text(path.read_text().replace(env.host, dead))
    assert_unreachable_in_seconds(setup.run("check", timeout=2), dead)


def test_an_unreachable_account_fails_in_seconds_with_one_line(setup: Setup) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    assert_unreachable_in_seconds(setup.run("check", "--account-host", dead, timeout=2), dead)


def test_a_forbidden_account_call_names_the_call_the_host_and_the_role(setup: Setup) -> None:
    setup.databricks.forbidden.add(r"GET /api/2\.0/accounts/[^/]+/scim/v2/ServicePrincipals")
    result = setup.run("check")
    assert result.code == 2
    line = one_line_error(result)
    assert "list service principals named" in line
    assert setup.databricks.account.url in line
    assert "forbidden" in line
    assert "account admin" in line


def test_a_forbidden_github_call_names_the_call_the_host_and_the_permission(setup: Setup) -> None:
    prepare(setup)
    setup.github.forbidden.add(r"PUT /repos/.+/environments/[^/]+")
    result = setup.run(*APPLY)
    assert result.code == 2
    line = one_line_error(result)
    assert "PUT /repos/" in line
    assert setup.github.url.split("//")[1] in line
    assert "forbidden" in line
    assert "Administration" in line


def test_the_launcher_runs_the_module() -> None:
    result = subprocess.run(
        [str(PROJECT / "scripts" / "setup-environments"), "plan", "--offline", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHON": sys.executable},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["repository"] == setup_settings()["repository"]


def python_with_only_pyyaml(home: Path) -> Path:
    """A virtual environment whose one package is this interpreter's PyYAML (linked, not downloaded)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True, timeout=60)
    python = home / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pyyaml = metadata.distribution("pyyaml")
    for top in {Path(str(file)).parts[0] for file in pyyaml.files or [] if not str(file).startswith("..")}:
        (Path(site) / top).symlink_to(Path(str(pyyaml.locate_file(top))))
    return python


def test_without_the_setup_extra_a_live_command_says_what_to_install(tmp_path: Path) -> None:
    """Not a traceback: one line naming each missing package of the extra and the command, exit 2; the offline
    plan needs only PyYAML."""
    python = python_with_only_pyyaml(tmp_path / "venv")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYTHON": str(python),
        "DATABRICKS_HOST": "https://127.0.0.1:9",
        "DATABRICKS_TOKEN": "dapi-fake",
        "GH_TOKEN": "ghp_fake",
    }
    launcher = str(PROJECT / "scripts" / "setup-environments")
    for command in ("plan", "check", "apply"):
        result = subprocess.run([launcher, command], capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"error: scripts/setup-environments {command} needs the setup extra"), line
        for package in ("databricks-sdk>=", "pynacl>=", "requests>="):
            assert package in line, line
        assert 'pip install -e ".[setup]"' in line
    offline = subprocess.run(
        [launcher, "plan", "--offline"], capture_output=True, text=True, timeout=60, env=env
    )
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.startswith("Desired state of ")
