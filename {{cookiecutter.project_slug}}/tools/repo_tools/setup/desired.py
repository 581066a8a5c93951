"""The desired state, read from the project itself (repo_tools.project): the bundle for workspaces, catalogs,
principals and grants; the workflows for the GitHub Environments, what their jobs read and which target each
deploys; tools/setup-environments.toml for the repository, branches and reviewers."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repo_tools.project import ROOT, Bundle, ProjectError, WorkflowJob, workflow_jobs
from repo_tools.setup.clients import SetupError

SETTINGS = "tools/setup-environments.toml"


@dataclass
class Environment:
    """A GitHub Environment, the bundle target its jobs deploy, and the service principal they act as."""

    name: str
    target: str
    host: str
    catalog: str
    principal: str
    branches: list[str]
    reviewers: list[str] | None  # None: no approval required
    variables: dict[str, str | None]  # name -> value; None: the principal's application id (known live)
    secrets: list[str]
    oidc: bool


@dataclass
class Grant:
    catalog: str
    host: str
    principal: str  # a service principal's display name or a group name
    privileges: list[str]
    is_group: bool


@dataclass
class Desired:
    repository: str
    account_host: str
    default_branch: str
    release_branch: str
    environments: list[Environment]
    principal_workspaces: dict[str, list[str]]  # principal -> hosts it must be a member of
    group: str
    group_workspaces: list[str]
    catalogs: dict[str, tuple[str, str | None]]  # catalog -> (host, target whose deploy creates it, or None)
    grants: list[Grant]
    entitlements: list[str]
    checks: list[str]

    @property
    def ci_auth(self) -> str:
        return "github_oidc" if all(env.oidc for env in self.environments) else "client_secret"

    def environment(self, name: str) -> Environment:
        return next(env for env in self.environments if env.name == name)


def load_desired(root: Path = ROOT) -> Desired:
    try:
        settings = tomllib.loads((root / SETTINGS).read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SetupError(f"cannot read {SETTINGS}: {error}") from None
    try:
        bundle = Bundle.load(root)
        jobs = workflow_jobs(root)
    except ProjectError as error:
        raise SetupError(f"cannot read {Path(error.path).name}: {error.reason}") from None
    group = str(
        bundle.variable("dev", "read_group")
        if "dev" in bundle.targets
        else bundle.merged["variables"]["read_group"]["default"]
    )
    environments = load_environments(bundle, jobs, settings.get("environments", {}))
    catalogs = load_catalogs(bundle)
    return Desired(
        repository=str(settings["repository"]),
        account_host=str(settings["account_host"]),
        default_branch=str(settings["default_branch"]),
        release_branch=str(settings["release_branch"]),
        environments=environments,
        principal_workspaces=principal_workspaces(bundle, environments),
        group=group,
        group_workspaces=sorted({bundle.host(target) for target in bundle.targets}),
        catalogs=catalogs,
        grants=catalog_grants(bundle, environments, catalogs, group),
        entitlements=["allow-cluster-create"] if uses_job_clusters(bundle) else [],
        checks=sorted({job.name for job in jobs if job.on_pull_request and not job.environment}),
    )


def load_environments(
    bundle: Bundle, jobs: list[WorkflowJob], configured: dict[str, Any]
) -> list[Environment]:
    """Each GitHub Environment of the settings, in their order (the pipeline's), with what its jobs need."""
    used = sorted({job.environment for job in jobs if job.environment})
    if sorted(configured) != used:
        raise SetupError(
            f"{SETTINGS} names the Environments {sorted(configured)}, the workflows {used}: make them agree"
        )
    environments = []
    for name in configured:
        bound = [job for job in jobs if job.environment == name]
        targets = set().union(*(job.targets for job in bound))
        if len(targets) != 1:
            raise SetupError(
                f"the jobs bound to Environment {name} deploy {sorted(targets) or 'no'} target(s), not one"
            )
        (target,) = targets
        if target not in bundle.targets:
            raise SetupError(
                f"Environment {name}'s jobs deploy target {target}, which the bundle does not define"
            )
        principal = bundle.lookups(target).get("service_principal", f"{bundle.name}-{name}")
        variables: dict[str, str | None] = {}
        for variable in sorted(set().union(*(job.variables for job in bound))):
            variables[variable] = {"DATABRICKS_HOST": bundle.host(target), "DATABRICKS_CLIENT_ID": None}.get(
                variable, f"<{variable}: not known to setup-environments>"
            )
        reviewers = configured[name].get("reviewers")
        environments.append(
            Environment(
                name=name,
                target=target,
                host=bundle.host(target),
                catalog=str(bundle.variable(target, "catalog")),
                principal=principal,
                branches=list(configured[name].get("branches", [])),
                reviewers=None if reviewers is None else list(reviewers),
                variables=variables,
                secrets=sorted(set().union(*(job.secrets for job in bound))),
                oidc=all(job.env.get("DATABRICKS_AUTH_TYPE") == "github-oidc" for job in bound),
            )
        )
    return environments


def principal_workspaces(bundle: Bundle, environments: list[Environment]) -> dict[str, list[str]]:
    """Each principal in its own workspace; a principal that another target looks up (promotion) there too."""
    found = {env.principal: [env.host] for env in environments}
    for target in bundle.targets:
        for principal in bundle.lookups(target).values():
            hosts = found.setdefault(principal, [])
            if bundle.host(target) not in hosts:
                hosts.append(bundle.host(target))
    return found


def load_catalogs(bundle: Bundle) -> dict[str, tuple[str, str | None]]:
    """Every target's catalog -> (its workspace, the target whose deploy creates it, if one does)."""
    declared = bundle.declared_catalogs()
    catalogs: dict[str, tuple[str, str | None]] = {}
    for target in bundle.targets:
        catalog = str(bundle.variable(target, "catalog"))
        if catalog not in catalogs:
            owner = declared.get(catalog, (None, []))[0]
            catalogs[catalog] = (bundle.host(owner or target), owner)
    return catalogs


def catalog_grants(
    bundle: Bundle, environments: list[Environment], catalogs: dict[str, tuple[str, str | None]], group: str
) -> list[Grant]:
    """What each identity needs on the catalogs, less what a catalog resource of the bundle already grants."""
    needed: list[tuple[str, str, list[str], bool]] = [
        (catalog, group, ["USE_CATALOG"], True) for catalog in catalogs
    ]
    for env in environments:
        needed.append((env.catalog, env.principal, ["USE_CATALOG", "CREATE_SCHEMA"], False))
    for target in bundle.targets:
        for variable, principal in bundle.lookups(target).items():
            if variable != "service_principal":  # a reader from another environment (promotion)
                needed.append((str(bundle.variable(target, "catalog")), principal, ["USE_CATALOG"], False))
    declared = bundle.declared_catalogs()
    grants = []
    for catalog, principal, privileges, is_group in needed:
        managed = {
            privilege
            for grant in declared.get(catalog, (None, []))[1]
            if grant["principal"] == principal
            for privilege in grant["privileges"]
        }
        missing = [privilege for privilege in privileges if privilege not in managed]
        if missing:
            grants.append(Grant(catalog, catalogs[catalog][0], principal, missing, is_group))
    return grants


def uses_job_clusters(bundle: Bundle) -> bool:
    """Does a job of any target run on classic clusters (which needs the allow-cluster-create entitlement)?"""
    return any(
        job.get("job_clusters") or any("new_cluster" in task for task in job.get("tasks", []))
        for target in bundle.targets
        for job in bundle.jobs(target).values()
    )
