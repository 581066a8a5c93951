"""Set up, and check, everything CI needs outside this repository: service principals, their workspaces,
OIDC federation policies or OAuth secrets, catalogs and the grants the bundle does not make itself, GitHub
Environments with their variables, secrets, branch rules and reviewers, and the required checks.

    scripts/setup-environments plan --offline   # the desired state; no credentials, no network
    scripts/setup-environments plan             # the same, compared with what exists
    scripts/setup-environments apply            # create what is missing, fix what differs; never deletes
    scripts/setup-environments check            # read-only; exits 1 naming each missing or wrong piece

The desired state is read from the project itself: the bundle (databricks.yml, targets/, resources/) for
workspaces, catalogs, principals and grants; .github/workflows/ for the Environments, what their jobs read
and which target each deploys; tools/setup-environments.toml for the repository, branches and reviewers.
Databricks calls go through databricks-sdk; GitHub calls through its REST API (token from GH_TOKEN,
GITHUB_TOKEN or `gh auth token`; GITHUB_API_URL for GitHub Enterprise Server). docs/setup.md has the roles
each side needs.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = "tools/setup-environments.toml"
OIDC_ISSUER = "https://token.actions.githubusercontent.com"
RULESET = "Required checks"
SECRET_LIFETIME = f"{730 * 24 * 3600}s"  # two years, the longest Databricks allows

ACCOUNT_ADMIN = "Databricks account admin"
WORKSPACE_ADMIN = "workspace admin of {host}"
CATALOG_ADMIN = "owner of the catalog, MANAGE on it, or metastore admin"
METASTORE_CREATE = "CREATE CATALOG on the metastore"
GITHUB_ADMIN = "GitHub token with Administration: read and write on the repository"
GITHUB_VARIABLES = "GitHub token with Environments and Variables: read and write"
GITHUB_SECRETS = "GitHub token with Environments and Secrets: read and write"


class SetupError(Exception):
    """A failure reported as one line: which call, on which host, and what it needs."""


class DecisionError(Exception):
    """A step that needs a person's decision, in a run that may not ask."""


# --- the desired state, read from the project -------------------------------------------------------


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise SetupError(f"cannot read {path.name}: {error}".splitlines()[0]) from None


def merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge mappings key by key, like the bundle loader does for targets."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class Bundle:
    name: str
    variables: dict[str, Any]
    targets: dict[str, dict[str, Any]]
    resources: dict[str, Any]

    @classmethod
    def load(cls, root: Path) -> Bundle:
        top = read_yaml(root / "databricks.yml")
        files = [top] + [
            read_yaml(p) for pattern in top.get("include", []) for p in sorted(root.glob(pattern))
        ]
        targets: dict[str, dict[str, Any]] = {}
        resources: dict[str, Any] = {}
        for content in files:
            for name, target in (content.get("targets") or {}).items():
                targets[name] = merge(targets.get(name, {}), target or {})
            resources = merge(resources, content.get("resources") or {})
        return cls(
            name=top["bundle"]["name"],
            variables=top.get("variables", {}),
            targets=targets,
            resources=resources,
        )

    def variable(self, target: str, name: str) -> Any:
        value = (self.targets[target].get("variables") or {}).get(name)
        return value if value is not None else (self.variables.get(name) or {}).get("default")

    def resolve(self, target: str, text: str) -> str:
        """A `${var.x}` reference as a target resolves it; a principal lookup resolves to its display name."""
        match = re.fullmatch(r"\$\{var\.([A-Za-z0-9_]+)\}", str(text))
        if not match:
            return str(text)
        value = self.variable(target, match.group(1))
        if isinstance(value, Mapping) and "lookup" in value:
            return str(value["lookup"].get("service_principal", text))
        return str(value)

    def host(self, target: str) -> str:
        return str(self.targets[target]["workspace"]["host"]).rstrip("/")

    def lookups(self, target: str) -> dict[str, str]:
        """Variable -> service principal display name, for each `lookup: service_principal:` of a target."""
        found = {}
        for name, value in (self.targets[target].get("variables") or {}).items():
            if isinstance(value, Mapping) and "service_principal" in (value.get("lookup") or {}):
                found[name] = value["lookup"]["service_principal"]
        return found

    def declared_catalogs(self) -> dict[str, tuple[str, list[dict[str, Any]]]]:
        """Catalog name -> (target that declares it, its grants resolved in that target)."""
        declared = {}
        for target, content in self.targets.items():
            for catalog in ((content.get("resources") or {}).get("catalogs") or {}).values():
                grants = [
                    {"principal": self.resolve(target, g["principal"]), "privileges": list(g["privileges"])}
                    for g in catalog.get("grants", [])
                ]
                declared[self.resolve(target, catalog["name"])] = (target, grants)
        return declared

    def uses_job_clusters(self) -> bool:
        jobs = dict(self.resources.get("jobs") or {})
        for content in self.targets.values():
            jobs.update(((content.get("resources") or {}).get("jobs")) or {})
        return any(
            job.get("job_clusters") or any("new_cluster" in task for task in job.get("tasks", []))
            for job in jobs.values()
        )


@dataclass
class WorkflowJob:
    workflow: str
    name: str
    environment: str | None
    targets: set[str]
    variables: set[str]
    secrets: set[str]
    auth_type: str | None
    on_pull_request: bool


def workflow_jobs(root: Path) -> list[WorkflowJob]:
    jobs = []
    for path in sorted((root / ".github" / "workflows").glob("*.y*ml")):
        flow = read_yaml(path)
        triggers = flow.get("on", flow.get(True)) or {}
        on_pull_request = "pull_request" in (triggers if not isinstance(triggers, str) else [triggers])
        for key, job in (flow.get("jobs") or {}).items():
            environment = job.get("environment")
            if isinstance(environment, Mapping):
                environment = environment.get("name")
            text = json.dumps(job)
            runs = " ".join(str(step.get("run", "")) for step in job.get("steps", []))
            jobs.append(
                WorkflowJob(
                    workflow=path.name,
                    name=str(job.get("name", key)),
                    environment=environment,
                    targets=set(re.findall(r"databricks bundle \w+[^\n;&|]*?\s-t\s+([A-Za-z0-9_-]+)", runs)),
                    variables=set(re.findall(r"\bvars\.([A-Za-z0-9_]+)", text)),
                    secrets=set(re.findall(r"\bsecrets\.([A-Za-z0-9_]+)", text)) - {"GITHUB_TOKEN"},
                    auth_type=(job.get("env") or {}).get("DATABRICKS_AUTH_TYPE"),
                    on_pull_request=on_pull_request and not job.get("uses"),
                )
            )
    return jobs


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
    bundle = Bundle.load(root)
    jobs = workflow_jobs(root)
    configured = settings.get("environments", {})
    used = sorted({job.environment for job in jobs if job.environment})
    if sorted(configured) != used:
        raise SetupError(
            f"{SETTINGS} names the Environments {sorted(configured)}, the workflows {used}: make them agree"
        )
    used = list(configured)  # in the file's order: the order of the pipeline
    group = str(
        bundle.variable("dev", "read_group") if "dev" in bundle.targets else bundle.variables["read_group"]
    )

    environments = []
    for name in used:
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
                oidc=all(job.auth_type == "github-oidc" for job in bound),
            )
        )

    # Workspaces: each principal in its own; a principal that another target looks up (promotion) there too.
    principal_workspaces = {env.principal: [env.host] for env in environments}
    for target in bundle.targets:
        for principal in bundle.lookups(target).values():
            hosts = principal_workspaces.setdefault(principal, [])
            if bundle.host(target) not in hosts:
                hosts.append(bundle.host(target))
    all_hosts = sorted({bundle.host(target) for target in bundle.targets})

    # Catalogs: every target's; the bundle creates the ones a target declares (resources/catalogs.yml).
    declared = bundle.declared_catalogs()
    catalogs: dict[str, tuple[str, str | None]] = {}
    for target in bundle.targets:
        catalog = str(bundle.variable(target, "catalog"))
        if catalog not in catalogs:
            owner = declared.get(catalog, (None, []))[0]
            catalogs[catalog] = (bundle.host(owner or target), owner)

    # Catalog grants: what each identity needs, less what a catalog resource of the bundle already grants.
    needed: list[tuple[str, str, list[str], bool]] = [
        (catalog, group, ["USE_CATALOG"], True) for catalog in catalogs
    ]
    for env in environments:
        needed.append((env.catalog, env.principal, ["USE_CATALOG", "CREATE_SCHEMA"], False))
    for target in bundle.targets:
        for variable, principal in bundle.lookups(target).items():
            if variable != "service_principal":  # a reader from another environment (promotion)
                needed.append((str(bundle.variable(target, "catalog")), principal, ["USE_CATALOG"], False))
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

    checks = sorted({job.name for job in jobs if job.on_pull_request and not job.environment})
    return Desired(
        repository=str(settings["repository"]),
        account_host=str(settings["account_host"]),
        default_branch=str(settings["default_branch"]),
        release_branch=str(settings["release_branch"]),
        environments=environments,
        principal_workspaces=principal_workspaces,
        group=group,
        group_workspaces=all_hosts,
        catalogs=catalogs,
        grants=grants,
        entitlements=["allow-cluster-create"] if bundle.uses_job_clusters() else [],
        checks=checks,
    )


# --- live state: the clients ------------------------------------------------------------------------


def describe_error(error: BaseException) -> str:
    """One line for an exception raised by the SDK, requests or the network."""
    import requests
    from databricks.sdk import errors

    if isinstance(error, TimeoutError | requests.ConnectionError | requests.Timeout):
        return "unreachable (refused, unknown host or no answer in time: check the URL, VPN or firewall)"
    if isinstance(error, errors.PermissionDenied | errors.Unauthenticated):
        kind = "forbidden" if isinstance(error, errors.PermissionDenied) else "not authenticated"
        return f"{kind}: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def reachable(url: str, timeout: int) -> None:
    """Fail at once on a host that refuses connections or does not resolve: the SDK would retry it for its
    whole retry budget (and once more for its host metadata) before giving up."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
    except OSError as error:
        raise TimeoutError(f"cannot connect to {parts.hostname}:{port}: {error}") from None


class Databricks:
    """databricks-sdk clients for the account and each workspace, built on first use, failing fast."""

    def __init__(self, account_host: str, account_id: str | None, profile: str | None, timeout: int) -> None:
        self.account_host, self.account_id, self.profile, self.timeout = (
            account_host,
            account_id,
            profile,
            timeout,
        )
        self._workspaces: dict[str, Any] = {}

    def call(self, what: str, host: str, needs: str, function: Callable[[], Any]) -> Any:
        from databricks.sdk import errors

        try:
            return function()
        except (errors.DatabricksError, TimeoutError, OSError, ValueError) as error:
            reason = describe_error(error)
            needs = "" if reason.startswith("unreachable") else f" (needs: {needs})"
            raise SetupError(f"{what} on {host}: {reason}{needs}") from None

    def config(self, **kwargs: Any) -> Any:
        from databricks.sdk.core import Config

        host = kwargs.get("host")
        if host:
            reachable(host, self.timeout)
        return Config(http_timeout_seconds=self.timeout, retry_timeout_seconds=self.timeout, **kwargs)

    @cached_property
    def account(self) -> Any:
        from databricks.sdk import AccountClient

        if not (self.account_id or self.profile):
            raise SetupError("no Databricks account id: pass --account-id or set DATABRICKS_ACCOUNT_ID")
        kwargs: dict[str, Any] = {"profile": self.profile} if self.profile else {"host": self.account_host}
        if self.account_id:
            kwargs["account_id"] = self.account_id
        client = self.call(
            "sign in to the account",
            self.account_host,
            ACCOUNT_ADMIN,
            lambda: AccountClient(config=self.config(**kwargs)),
        )
        if not client.config.account_id:
            raise SetupError("no Databricks account id: pass --account-id or set DATABRICKS_ACCOUNT_ID")
        return client

    def workspace(self, host: str) -> Any:
        from databricks.sdk import WorkspaceClient

        if host not in self._workspaces:
            self._workspaces[host] = self.call(
                "sign in to the workspace",
                host,
                "a login to it (`databricks auth login --host <url>`)",
                lambda: WorkspaceClient(config=self.config(host=host)),
            )
        return self._workspaces[host]


class GitHub:
    """GitHub's REST API through requests: one session, short timeouts, errors as one line."""

    def __init__(self, api_url: str, token: str, timeout: int) -> None:
        import requests

        self.api_url, self.timeout = api_url.rstrip("/"), timeout
        self.host = urllib.parse.urlsplit(self.api_url).netloc
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {token}",
                "X-GitHub-Api-Version": "2022-11-28",
            }
        )

    def request(self, method: str, path: str, needs: str, body: Any = None, missing_ok: bool = False) -> Any:
        import requests

        what = f"{method} {path}"
        try:
            response = self.session.request(
                method, self.api_url + path, json=body, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as error:
            raise SetupError(f"{what} on {self.host}: {describe_error(error)}") from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 300 and response.status_code != 303:
            try:
                message = response.json().get("message", "")
            except ValueError:
                message = response.text[:200]
            reason = {
                401: "not authenticated",
                403: "forbidden",
                404: "not found (or not visible to the token)",
            }
            text = reason.get(response.status_code, f"HTTP {response.status_code}")
            raise SetupError(f"{what} on {self.host}: {text}: {message} (needs: {needs})".replace(": :", ":"))
        return response.json() if response.content else {}

    def pages(self, path: str, key: str, needs: str) -> Iterator[Any]:
        page = 1
        while True:
            sep = "&" if "?" in path else "?"
            data = self.request("GET", f"{path}{sep}per_page=30&page={page}", needs) or {}
            items = data.get(key, []) if isinstance(data, Mapping) else data
            yield from items
            if len(items) < 30:
                return
            page += 1


def github_token() -> str:
    for name in ("GH_TOKEN", "GITHUB_TOKEN"):
        if os.environ.get(name):
            return os.environ[name]
    gh = shutil.which("gh")
    if gh:
        result = subprocess.run(
            [gh, "auth", "token"], capture_output=True, text=True, timeout=30, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    raise SetupError("no GitHub token: set GH_TOKEN (or GITHUB_TOKEN), or log in with `gh auth login`")


def seal(public_key: str, value: str) -> str:
    """Encrypt a secret for GitHub: a libsodium sealed box to the Environment's public key."""
    from nacl import encoding, public

    box = public.SealedBox(public.PublicKey(public_key.encode(), encoding.Base64Encoder()))
    return base64.b64encode(box.encrypt(value.encode())).decode()


# --- the objects: desired vs live ---------------------------------------------------------------------


@dataclass
class Finding:
    status: str  # ok | missing | differs | pending | decision
    detail: str = ""


@dataclass
class Context:
    desired: Desired
    databricks: Databricks | None = None
    github: GitHub | None = None
    interactive: bool = False  # may apply ask? Not with --yes, nor without a terminal
    create_repo: bool = False
    create_release_branch: bool = False
    ask: Callable[[str], str] = input
    cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def repo(self) -> str:
        return self.desired.repository

    def gh(
        self, method: str, path: str, needs: str = GITHUB_ADMIN, body: Any = None, missing_ok: bool = False
    ) -> Any:
        assert self.github is not None
        return self.github.request(method, path, needs, body, missing_ok)

    def decide(self, question: str, refusal: str) -> str:
        """Ask a person; in a run that may not ask (--yes, or no terminal), refuse with what to do instead."""
        if not self.interactive:
            raise DecisionError(refusal)
        return self.ask(f"{question} ").strip()

    # Databricks lookups shared by several objects (cached for one run; cleared after a change).
    def principal(self, name: str) -> Any:
        if ("sp", name) not in self.cache:
            db = self.databricks
            assert db is not None
            found = db.call(
                f"list service principals named {name}",
                db.account_host,
                ACCOUNT_ADMIN,
                lambda: list(db.account.service_principals.list(filter=f'displayName eq "{name}"')),
            )
            found = [sp for sp in found if sp.display_name == name]
            if len(found) > 1:
                ids = ", ".join(str(sp.id) for sp in found)
                raise SetupError(
                    f"{len(found)} service principals are named {name} (ids {ids}): keep one, rename the rest"
                )
            self.cache[("sp", name)] = found[0] if found else None
        return self.cache[("sp", name)]

    def group(self, name: str) -> Any:
        if ("group", name) not in self.cache:
            db = self.databricks
            assert db is not None
            found = db.call(
                f"list groups named {name}",
                db.account_host,
                ACCOUNT_ADMIN,
                lambda: [
                    g
                    for g in db.account.groups.list(filter=f'displayName eq "{name}"')
                    if g.display_name == name
                ],
            )
            self.cache[("group", name)] = found[0] if found else None
        return self.cache[("group", name)]

    def workspace_id(self, host: str) -> int:
        if ("ws", host) not in self.cache:
            db = self.databricks
            assert db is not None
            client = db.workspace(host)
            self.cache[("ws", host)] = db.call(
                "read the workspace id", host, "a login to the workspace", client.get_workspace_id
            )
        return self.cache[("ws", host)]

    def assignments(self, host: str) -> dict[int, list[str]]:
        if ("assign", host) not in self.cache:
            db = self.databricks
            assert db is not None
            workspace_id = self.workspace_id(host)
            listed = db.call(
                f"list the principals of workspace {workspace_id}",
                db.account_host,
                ACCOUNT_ADMIN,
                lambda: list(db.account.workspace_assignment.list(workspace_id)),
            )
            self.cache[("assign", host)] = {
                a.principal.principal_id: [p.value for p in a.permissions or []]
                for a in listed
                if a.principal
            }
        return self.cache[("assign", host)]

    def repo_exists(self) -> bool:
        if "repo" not in self.cache:
            self.cache["repo"] = self.gh("GET", f"/repos/{self.repo}", missing_ok=True) is not None
        return self.cache["repo"]

    def environment(self, name: str) -> Any:
        key = ("env", name)
        if key not in self.cache:
            path = f"/repos/{self.repo}/environments/{quote(name)}"
            self.cache[key] = self.gh("GET", path, missing_ok=True) if self.repo_exists() else None
        return self.cache[key]

    def forget(self, *keys: Any) -> None:
        for key in keys:
            self.cache.pop(key, None)


def quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


class Item:
    """One object of the desired state: described offline, inspected live, created or fixed by apply."""

    kind = ""

    def __init__(self, name: str, **spec: Any) -> None:
        self.name, self.spec = name, spec

    def describe(self) -> str:
        return self.name

    def inspect(self, ctx: Context) -> Finding:
        raise NotImplementedError

    def fix(self, ctx: Context, finding: Finding) -> str:
        raise NotImplementedError

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, **self.spec}


# Databricks account and workspaces


class ServicePrincipal(Item):
    kind = "service principal"

    def describe(self) -> str:
        return f"{self.name} (GitHub Environment {self.spec['environment']})"

    def inspect(self, ctx: Context) -> Finding:
        sp = ctx.principal(self.name)
        return Finding("ok", f"application id {sp.application_id}") if sp else Finding("missing")

    def fix(self, ctx: Context, finding: Finding) -> str:
        db = ctx.databricks
        assert db is not None
        sp = db.call(
            f"create service principal {self.name}",
            db.account_host,
            ACCOUNT_ADMIN,
            lambda: db.account.service_principals.create(display_name=self.name, active=True),
        )
        ctx.cache[("sp", self.name)] = sp
        return f"created, application id {sp.application_id}"


class WorkspaceMember(Item):
    kind = "workspace assignment"

    def describe(self) -> str:
        return f"{self.name} in {self.spec['workspace']} (USER)"

    def principal(self, ctx: Context) -> Any:
        return ctx.group(self.name) if self.spec.get("group") else ctx.principal(self.name)

    def inspect(self, ctx: Context) -> Finding:
        principal = self.principal(ctx)
        if principal is None:
            return Finding("missing", f"after {self.name} exists")
        permissions = ctx.assignments(self.spec["workspace"]).get(int(principal.id))
        if not permissions:
            return Finding("missing")
        return Finding("ok", ", ".join(permissions))

    def fix(self, ctx: Context, finding: Finding) -> str:
        from databricks.sdk.service import iam

        db = ctx.databricks
        assert db is not None
        principal = self.principal(ctx)
        if principal is None:
            raise SetupError(f"cannot assign {self.name} to {self.spec['workspace']}: it does not exist")
        workspace_id = ctx.workspace_id(self.spec["workspace"])
        db.call(
            f"assign {self.name} to workspace {workspace_id}",
            db.account_host,
            ACCOUNT_ADMIN,
            lambda: db.account.workspace_assignment.update(
                workspace_id, int(principal.id), permissions=[iam.WorkspacePermission.USER]
            ),
        )
        ctx.forget(("assign", self.spec["workspace"]))
        return "assigned (USER)"


class FederationPolicy(Item):
    kind = "federation policy"

    def describe(self) -> str:
        return f"{self.name}: issuer {self.spec['issuer']}, subject {self.spec['subject']}"

    @property
    def policy_id(self) -> str:
        return f"github-{self.spec['environment']}".lower()

    def policies(self, ctx: Context, sp: Any) -> list[Any]:
        db = ctx.databricks
        assert db is not None
        return db.call(
            f"list the federation policies of {self.name}",
            db.account_host,
            ACCOUNT_ADMIN,
            lambda: list(db.account.service_principal_federation_policy.list(int(sp.id))),
        )

    def inspect(self, ctx: Context) -> Finding:
        sp = ctx.principal(self.name)
        if sp is None:
            return Finding("missing", f"after {self.name} exists")
        policies = self.policies(ctx, sp)
        for policy in policies:
            oidc = policy.oidc_policy
            if oidc and oidc.issuer == self.spec["issuer"] and oidc.subject == self.spec["subject"]:
                return Finding("ok")
        ours = [p for p in policies if (p.policy_id or p.name or "").split("/")[-1] == self.policy_id]
        if ours and ours[0].oidc_policy:
            found = ours[0].oidc_policy
            return Finding(
                "differs", f"policy {self.policy_id} has issuer {found.issuer}, subject {found.subject}"
            )
        return Finding("missing")

    def fix(self, ctx: Context, finding: Finding) -> str:
        from databricks.sdk.service import oauth2

        db = ctx.databricks
        sp = ctx.principal(self.name)
        assert db is not None
        assert sp is not None
        policy = oauth2.FederationPolicy(
            oidc_policy=oauth2.OidcFederationPolicy(issuer=self.spec["issuer"], subject=self.spec["subject"])
        )
        api = db.account.service_principal_federation_policy
        if finding.status == "differs":
            db.call(
                f"update federation policy {self.policy_id} of {self.name}",
                db.account_host,
                ACCOUNT_ADMIN,
                lambda: api.update(int(sp.id), self.policy_id, policy, update_mask="oidc_policy"),
            )
            return "updated"
        db.call(
            f"create a federation policy for {self.name}",
            db.account_host,
            ACCOUNT_ADMIN,
            lambda: api.create(int(sp.id), policy, policy_id=self.policy_id),
        )
        return "created"


class Entitlement(Item):
    kind = "entitlement"

    def describe(self) -> str:
        return f"{self.spec['entitlement']} for {self.name} in {self.spec['workspace']}"

    def workspace_sp(self, ctx: Context) -> Any:
        db = ctx.databricks
        sp = ctx.principal(self.name)
        assert db is not None
        if sp is None:
            return None
        host = self.spec["workspace"]
        client = db.workspace(host)
        found = db.call(
            f"find {self.name} in the workspace",
            host,
            WORKSPACE_ADMIN.format(host=host),
            lambda: list(client.service_principals.list(filter=f'applicationId eq "{sp.application_id}"')),
        )
        return found[0] if found else None

    def inspect(self, ctx: Context) -> Finding:
        sp = self.workspace_sp(ctx)
        if sp is None:
            return Finding("missing", f"after {self.name} is a member of the workspace")
        values = {e.value for e in sp.entitlements or []}
        return Finding("ok") if self.spec["entitlement"] in values else Finding("missing")

    def fix(self, ctx: Context, finding: Finding) -> str:
        from databricks.sdk.service import iam

        db = ctx.databricks
        sp = self.workspace_sp(ctx)
        assert db is not None
        host = self.spec["workspace"]
        if sp is None:
            raise SetupError(f"cannot entitle {self.name} in {host}: it is not a member of the workspace")
        operation = iam.Patch(
            op=iam.PatchOp.ADD, path="entitlements", value=[{"value": self.spec["entitlement"]}]
        )
        db.call(
            f"add {self.spec['entitlement']} to {self.name}",
            host,
            WORKSPACE_ADMIN.format(host=host),
            lambda: db.workspace(host).service_principals.patch(
                sp.id,
                operations=[operation],
                schemas=[iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP],
            ),
        )
        return "added"


class Group(Item):
    kind = "account group"

    def describe(self) -> str:
        return f"{self.name} (read access; its members are yours to manage)"

    def inspect(self, ctx: Context) -> Finding:
        return Finding("ok") if ctx.group(self.name) else Finding("missing")

    def fix(self, ctx: Context, finding: Finding) -> str:
        answer = ctx.decide(
            f"Create the empty account group {self.name} (you add its members later)? [y/N]",
            f"account group {self.name} is missing: create it (and add its members) in the account console, "
            "or run apply interactively",
        )
        if answer.lower() not in ("y", "yes"):
            raise DecisionError(f"account group {self.name} not created")
        db = ctx.databricks
        assert db is not None
        group = db.call(
            f"create group {self.name}",
            db.account_host,
            ACCOUNT_ADMIN,
            lambda: db.account.groups.create(display_name=self.name),
        )
        ctx.cache[("group", self.name)] = group
        return "created (empty)"


class Catalog(Item):
    kind = "catalog"

    def describe(self) -> str:
        created_by = self.spec["created_by_target"]
        how = f"created by the first deploy of target {created_by}" if created_by else "created by setup"
        return f"{self.name} in {self.spec['workspace']} ({how})"

    def inspect(self, ctx: Context) -> Finding:
        from databricks.sdk import errors

        db = ctx.databricks
        assert db is not None
        host = self.spec["workspace"]
        client = db.workspace(host)
        try:
            client.catalogs.get(self.name)
        except errors.NotFound:
            created_by = self.spec["created_by_target"]
            if created_by:
                return Finding(
                    "pending", f"deploy target {created_by} once (it creates the catalog), then apply again"
                )
            return Finding("missing")
        except (errors.DatabricksError, TimeoutError, OSError) as error:
            raise SetupError(
                f"read catalog {self.name} on {host}: {describe_error(error)} "
                f"(needs: USE CATALOG on it, or {CATALOG_ADMIN})"
            ) from None
        return Finding("ok")

    def fix(self, ctx: Context, finding: Finding) -> str:
        db = ctx.databricks
        assert db is not None
        host = self.spec["workspace"]
        db.call(
            f"create catalog {self.name}",
            host,
            METASTORE_CREATE,
            lambda: db.workspace(host).catalogs.create(
                self.name, comment="Created by scripts/setup-environments"
            ),
        )
        return "created"


class CatalogGrant(Item):
    kind = "grant"

    def describe(self) -> str:
        return f"{', '.join(self.spec['privileges'])} on catalog {self.spec['catalog']} to {self.name}"

    def principal_id(self, ctx: Context) -> str | None:
        if self.spec["group"]:
            return self.name
        sp = ctx.principal(self.name)
        return sp.application_id if sp else None

    def inspect(self, ctx: Context) -> Finding:
        from databricks.sdk import errors

        principal = self.principal_id(ctx)
        if principal is None:
            return Finding("missing", f"after {self.name} exists")
        db = ctx.databricks
        assert db is not None
        host, catalog = self.spec["workspace"], self.spec["catalog"]
        client = db.workspace(host)
        try:
            response = client.grants.get("catalog", catalog, principal=principal)
        except errors.NotFound:
            return Finding("missing", f"after catalog {catalog} exists")
        except (errors.DatabricksError, TimeoutError, OSError) as error:
            raise SetupError(
                f"read grants on catalog {catalog} on {host}: {describe_error(error)} "
                f"(needs: {CATALOG_ADMIN})"
            ) from None
        held = {
            p.value
            for assignment in response.privilege_assignments or []
            if assignment.principal == principal
            for p in assignment.privileges or []
        }
        if "ALL_PRIVILEGES" in held:
            return Finding("ok", "ALL_PRIVILEGES")
        missing = [p for p in self.spec["privileges"] if p not in held]
        return Finding("missing", f"lacks {', '.join(missing)}") if missing else Finding("ok")

    def fix(self, ctx: Context, finding: Finding) -> str:
        from databricks.sdk.service import catalog as uc

        principal = self.principal_id(ctx)
        db = ctx.databricks
        assert db is not None
        host, catalog = self.spec["workspace"], self.spec["catalog"]
        if principal is None:
            raise SetupError(f"cannot grant on {catalog} to {self.name}: it does not exist")
        change = uc.PermissionsChange(
            principal=principal, add=[uc.Privilege(p) for p in self.spec["privileges"]]
        )
        db.call(
            f"grant on catalog {catalog} to {self.name}",
            host,
            CATALOG_ADMIN,
            lambda: db.workspace(host).grants.update("catalog", catalog, changes=[change]),
        )
        return "granted"


class OAuthSecret(Item):
    kind = "oauth secret"

    def describe(self) -> str:
        env = self.spec["environment"]
        return f"of {self.name}, stored as secret {self.spec['secret']} of GitHub Environment {env}"

    def inspect(self, ctx: Context) -> Finding:
        if ctx.principal(self.name) is None:
            return Finding("missing", f"after {self.name} exists")
        return GitHubSecret.read(ctx, self.spec["environment"], self.spec["secret"])

    def fix(self, ctx: Context, finding: Finding) -> str:
        db = ctx.databricks
        sp = ctx.principal(self.name)
        assert db is not None
        assert sp is not None
        env, name = self.spec["environment"], self.spec["secret"]
        if ctx.environment(env) is None:
            raise SetupError(f"cannot store {name}: GitHub Environment {env} does not exist yet")
        key = ctx.gh("GET", f"/repos/{ctx.repo}/environments/{quote(env)}/secrets/public-key", GITHUB_SECRETS)
        created = db.call(
            f"create an OAuth secret for {self.name}",
            db.account_host,
            ACCOUNT_ADMIN,
            lambda: db.account.service_principal_secrets.create(str(sp.id), lifetime=SECRET_LIFETIME),
        )
        body = {"encrypted_value": seal(key["key"], created.secret), "key_id": key["key_id"]}
        ctx.gh("PUT", f"/repos/{ctx.repo}/environments/{quote(env)}/secrets/{name}", GITHUB_SECRETS, body)
        expiry = f", expires {created.expire_time}" if getattr(created, "expire_time", None) else ""
        return f"created and stored (value not shown{expiry}; rotate before it expires)"


# GitHub


class Repository(Item):
    kind = "github repository"

    def inspect(self, ctx: Context) -> Finding:
        return Finding("ok") if ctx.repo_exists() else Finding("missing", "or the token cannot see it")

    def fix(self, ctx: Context, finding: Finding) -> str:
        if not ctx.create_repo:
            raise DecisionError(f"repository {self.name} is missing: create it, or apply --create-repo")
        owner, name = self.name.split("/", 1)
        user = ctx.gh("GET", "/user")
        path = "/user/repos" if user.get("login", "").lower() == owner.lower() else f"/orgs/{owner}/repos"
        ctx.gh("POST", path, body={"name": name, "private": True, "auto_init": False})
        ctx.cache["repo"] = True
        return "created (private, empty: push the project next)"


class Branch(Item):
    kind = "github branch"

    def describe(self) -> str:
        return f"{self.name} (from {self.spec['from']}; `apply --create-release-branch`, or push it)"

    def inspect(self, ctx: Context) -> Finding:
        if not ctx.repo_exists():
            return Finding("pending", "push the project first")
        if ctx.gh("GET", f"/repos/{ctx.repo}/branches/{quote(self.name)}", missing_ok=True):
            return Finding("ok")
        if not ctx.gh("GET", f"/repos/{ctx.repo}/branches/{quote(self.spec['from'])}", missing_ok=True):
            return Finding("pending", f"push {self.spec['from']} first")
        return Finding("pending", f"create it from {self.spec['from']} before the first release")

    def fix(self, ctx: Context, finding: Finding) -> str:
        if not ctx.create_release_branch or "create it" not in finding.detail:
            raise DecisionError(f"branch {self.name}: {finding.detail}")
        head = ctx.gh("GET", f"/repos/{ctx.repo}/branches/{quote(self.spec['from'])}")
        body = {"ref": f"refs/heads/{self.name}", "sha": head["commit"]["sha"]}
        ctx.gh("POST", f"/repos/{ctx.repo}/git/refs", body=body)
        return f"created from {self.spec['from']} (its first push starts a prod run that waits for approval)"


class GitHubEnvironment(Item):
    kind = "github environment"

    def describe(self) -> str:
        branches = self.spec["deployment_branches"]
        return f"{self.name}: " + ("any branch" if not branches else f"only branches {', '.join(branches)}")

    def inspect(self, ctx: Context) -> Finding:
        if not ctx.repo_exists():
            return Finding("missing", "after the repository exists")
        live = ctx.environment(self.name)
        if live is None:
            return Finding("missing")
        policy = live.get("deployment_branch_policy")
        if self.spec["deployment_branches"] and not (policy and policy.get("custom_branch_policies")):
            return Finding("differs", "admits every branch")
        if not self.spec["deployment_branches"] and policy:
            return Finding("decision", "restricts its deployment branches, but pull requests need any branch")
        return Finding("ok")

    def fix(self, ctx: Context, finding: Finding) -> str:
        if finding.status == "decision":
            raise DecisionError(f"Environment {self.name} {finding.detail}: allow all branches")
        body = environment_body(ctx.environment(self.name))
        if self.spec["deployment_branches"]:
            body["deployment_branch_policy"] = {"protected_branches": False, "custom_branch_policies": True}
        ctx.gh("PUT", f"/repos/{ctx.repo}/environments/{quote(self.name)}", body=body)
        ctx.forget(("env", self.name))
        return "created" if finding.status == "missing" else "updated"


def environment_body(live: Mapping[str, Any] | None) -> dict[str, Any]:
    """The full PUT body that keeps an Environment as it is (PUT replaces what it is given)."""
    body: dict[str, Any] = {"deployment_branch_policy": (live or {}).get("deployment_branch_policy")}
    for rule in (live or {}).get("protection_rules", []):
        if rule.get("type") == "wait_timer":
            body["wait_timer"] = rule.get("wait_timer", 0)
        if rule.get("type") == "required_reviewers":
            body["prevent_self_review"] = bool(rule.get("prevent_self_review"))
            body["reviewers"] = [
                {"type": r["type"], "id": r["reviewer"]["id"]} for r in rule.get("reviewers", [])
            ]
    return body


def live_reviewers(live: Mapping[str, Any] | None) -> tuple[set[str], bool]:
    names, prevent = set(), False
    for rule in (live or {}).get("protection_rules", []):
        if rule.get("type") == "required_reviewers":
            prevent = bool(rule.get("prevent_self_review"))
            for reviewer in rule.get("reviewers", []):
                who = reviewer["reviewer"]
                names.add(
                    who.get("login") or f"{who.get('organization', {}).get('login', '')}/{who.get('slug')}"
                )
    return {n.lower() for n in names}, prevent


class Reviewers(Item):
    kind = "github required reviewers"

    def describe(self) -> str:
        named = (
            ", ".join(self.spec["reviewers"]) or "to be named (tools/setup-environments.toml or --reviewer)"
        )
        return f"{self.name}: {named}; prevent self-review"

    def inspect(self, ctx: Context) -> Finding:
        if ctx.environment(self.name) is None:
            return Finding("missing", f"after Environment {self.name} exists")
        names, prevent = live_reviewers(ctx.environment(self.name))
        wanted = [r for r in self.spec["reviewers"] if r.lower() not in names]
        if not names and not wanted:
            return Finding("decision", "nobody is named to approve it")
        if wanted:
            return Finding("missing", f"lacks {', '.join(wanted)}")
        return (
            Finding("ok", ", ".join(sorted(names))) if prevent else Finding("differs", "self-review allowed")
        )

    def fix(self, ctx: Context, finding: Finding) -> str:
        reviewers = list(self.spec["reviewers"])
        if finding.status == "decision":
            answer = ctx.decide(
                f"Who approves deployments to {self.name}? GitHub logins or org/team, comma-separated:",
                f"Environment {self.name} needs required reviewers: name them in {SETTINGS} (reviewers) "
                "or with --reviewer LOGIN",
            )
            reviewers = [r.strip() for r in answer.split(",") if r.strip()]
            if not reviewers:
                raise DecisionError(f"Environment {self.name}: no reviewer named")
        body = environment_body(ctx.environment(self.name))
        ids = {(r["type"], r["id"]) for r in body.get("reviewers", [])}
        for reviewer in reviewers:
            if "/" in reviewer:
                org, slug = reviewer.split("/", 1)
                ids.add(("Team", ctx.gh("GET", f"/orgs/{quote(org)}/teams/{quote(slug)}", "read:org")["id"]))
            else:
                ids.add(("User", ctx.gh("GET", f"/users/{quote(reviewer)}", "read access to users")["id"]))
        body["reviewers"] = [{"type": kind, "id": id_} for kind, id_ in sorted(ids)]
        body["prevent_self_review"] = True
        ctx.gh("PUT", f"/repos/{ctx.repo}/environments/{quote(self.name)}", body=body)
        ctx.forget(("env", self.name))
        return f"set: {', '.join(reviewers) or 'prevent self-review'}"


class BranchPolicy(Item):
    kind = "github deployment branch"

    def describe(self) -> str:
        return f"{self.spec['environment']} admits {self.name}"

    def path(self, ctx: Context) -> str:
        return f"/repos/{ctx.repo}/environments/{quote(self.spec['environment'])}/deployment-branch-policies"

    def inspect(self, ctx: Context) -> Finding:
        live = ctx.environment(self.spec["environment"])
        policy = (live or {}).get("deployment_branch_policy") or {}
        if not policy.get("custom_branch_policies"):
            return Finding(
                "missing", f"after Environment {self.spec['environment']} admits selected branches"
            )
        names = {p["name"] for p in ctx.github.pages(self.path(ctx), "branch_policies", GITHUB_ADMIN)}  # type: ignore[union-attr]
        return Finding("ok") if self.name in names else Finding("missing")

    def fix(self, ctx: Context, finding: Finding) -> str:
        ctx.gh("POST", self.path(ctx), body={"name": self.name, "type": "branch"})
        return "added"


class Variable(Item):
    kind = "github variable"

    def describe(self) -> str:
        value = self.spec["value"]
        shown = value if value is not None else f"<application id of {self.spec['principal']}>"
        return f"{self.spec['environment']}: {self.name} = {shown}"

    def value(self, ctx: Context) -> str | None:
        if self.spec["value"] is not None:
            return self.spec["value"]
        sp = ctx.principal(self.spec["principal"])
        return sp.application_id if sp else None

    def inspect(self, ctx: Context) -> Finding:
        env = self.spec["environment"]
        if ctx.environment(env) is None:
            return Finding("missing", f"after Environment {env} exists")
        want = self.value(ctx)
        if want is None:
            return Finding("missing", f"after {self.spec['principal']} exists")
        path = f"/repos/{ctx.repo}/environments/{quote(env)}/variables/{self.name}"
        live = ctx.gh("GET", path, GITHUB_VARIABLES, missing_ok=True)
        if live is None:
            return Finding("missing")
        if live.get("value") != want:
            return Finding("differs", f"is {live.get('value')!r}")
        return Finding("ok")

    def fix(self, ctx: Context, finding: Finding) -> str:
        env, want = self.spec["environment"], self.value(ctx)
        if want is None or want.startswith("<"):
            raise DecisionError(f"{env}: {self.name}: set its value yourself (setup does not know it)")
        base = f"/repos/{ctx.repo}/environments/{quote(env)}/variables"
        if finding.status == "missing":
            ctx.gh("POST", base, GITHUB_VARIABLES, {"name": self.name, "value": want})
            return "created"
        answer = ctx.decide(
            f"{env}: {self.name} {finding.detail}; set it to {want!r}? [y/N]",
            f"{env}: {self.name} {finding.detail}, expected {want!r}: confirm by running apply interactively",
        )
        if answer.lower() not in ("y", "yes"):
            raise DecisionError(f"{env}: {self.name} left as it is")
        ctx.gh("PATCH", f"{base}/{self.name}", GITHUB_VARIABLES, {"name": self.name, "value": want})
        return "updated"


class GitHubSecret(Item):
    """A secret the workflows read that setup cannot make itself (not a service principal's OAuth secret)."""

    kind = "github secret"

    def describe(self) -> str:
        return f"{self.spec['environment']}: {self.name} (value: yours to set, `gh secret set --env`)"

    @staticmethod
    def read(ctx: Context, env: str, name: str) -> Finding:
        if ctx.environment(env) is None:
            return Finding("missing", f"after Environment {env} exists")
        path = f"/repos/{ctx.repo}/environments/{quote(env)}/secrets/{name}"
        found = ctx.gh("GET", path, GITHUB_SECRETS, missing_ok=True)
        return (
            Finding("ok", "set (value not readable)")
            if found
            else Finding("missing", f"secret {name} of {env}")
        )

    def inspect(self, ctx: Context) -> Finding:
        return self.read(ctx, self.spec["environment"], self.name)

    def fix(self, ctx: Context, finding: Finding) -> str:
        raise DecisionError(
            f"{self.spec['environment']}: set secret {self.name} yourself: gh secret set {self.name} "
            f"--env {self.spec['environment']} --repo {ctx.repo}"
        )


class Ruleset(Item):
    kind = "github ruleset"

    def describe(self) -> str:
        return (
            f"{self.name!r} on {', '.join(self.spec['branches'])}: pull requests only; required checks "
            + ", ".join(repr(c) for c in self.spec["checks"])
        )

    def live(self, ctx: Context) -> Any:
        if not ctx.repo_exists():
            return None
        for summary in ctx.github.pages(f"/repos/{ctx.repo}/rulesets", "", GITHUB_ADMIN):  # type: ignore[union-attr]
            if summary.get("name") == self.name:
                return ctx.gh("GET", f"/repos/{ctx.repo}/rulesets/{summary['id']}")
        return None

    def wanted(self, live: Mapping[str, Any] | None) -> dict[str, Any]:
        """The ruleset with everything it must hold, merged into what it holds (nothing is removed)."""
        live = copy.deepcopy(dict(live or {}))  # inspect compares with the original afterwards
        refs = [f"refs/heads/{b}" for b in self.spec["branches"]]
        include = list((live.get("conditions") or {}).get("ref_name", {}).get("include", []))
        rules = list(live.get("rules", []))
        checks_rule = next((r for r in rules if r["type"] == "required_status_checks"), None)
        if checks_rule is None:
            checks_rule = {
                "type": "required_status_checks",
                "parameters": {
                    "strict_required_status_checks_policy": False,
                    "do_not_enforce_on_create": True,
                    "required_status_checks": [],
                },
            }
            rules.append(checks_rule)
        contexts = checks_rule["parameters"]["required_status_checks"]
        contexts += [{"context": c} for c in self.spec["checks"] if c not in {x["context"] for x in contexts}]
        if not any(r["type"] == "pull_request" for r in rules):
            rules.append(
                {
                    "type": "pull_request",
                    "parameters": {
                        "required_approving_review_count": 0,
                        "dismiss_stale_reviews_on_push": False,
                        "require_code_owner_review": False,
                        "require_last_push_approval": False,
                        "required_review_thread_resolution": False,
                    },
                }
            )
        return {
            "name": self.name,
            "target": "branch",
            "enforcement": "active",
            "conditions": {
                "ref_name": {
                    "include": include + [r for r in refs if r not in include],
                    "exclude": (live.get("conditions") or {}).get("ref_name", {}).get("exclude", []),
                }
            },
            "rules": rules,
            "bypass_actors": live.get("bypass_actors", []),
        }

    def inspect(self, ctx: Context) -> Finding:
        if not ctx.repo_exists():
            return Finding("missing", "after the repository exists")
        live = self.live(ctx)
        if live is None:
            return Finding("missing")
        wanted = self.wanted(live)
        gaps = []
        if live.get("enforcement") != "active":
            gaps.append(f"enforcement is {live.get('enforcement')}")
        include = (live.get("conditions") or {}).get("ref_name", {}).get("include", [])
        gaps += [
            f"does not cover {ref}"
            for ref in wanted["conditions"]["ref_name"]["include"]
            if ref not in include
        ]
        held = {
            c["context"]
            for r in live.get("rules", [])
            if r["type"] == "required_status_checks"
            for c in r["parameters"]["required_status_checks"]
        }
        gaps += [f"does not require {check!r}" for check in self.spec["checks"] if check not in held]
        if not any(r["type"] == "pull_request" for r in live.get("rules", [])):
            gaps.append("does not require pull requests")
        return Finding("differs", "; ".join(gaps)) if gaps else Finding("ok")

    def fix(self, ctx: Context, finding: Finding) -> str:
        live = self.live(ctx)
        if live is None:
            ctx.gh("POST", f"/repos/{ctx.repo}/rulesets", body=self.wanted(None))
            return "created"
        ctx.gh("PUT", f"/repos/{ctx.repo}/rulesets/{live['id']}", body=self.wanted(live))
        return "updated"


def items(desired: Desired) -> list[Item]:
    """Every object, in the order apply creates them (each after what it depends on)."""
    found: list[Item] = []
    for env in desired.environments:
        found.append(ServicePrincipal(env.principal, environment=env.name))
    for principal, hosts in desired.principal_workspaces.items():
        found += [WorkspaceMember(principal, workspace=host, permissions=["USER"]) for host in hosts]
    for env in desired.environments:
        if env.oidc:
            subject = f"repo:{desired.repository}:environment:{env.name}"
            found.append(
                FederationPolicy(env.principal, environment=env.name, issuer=OIDC_ISSUER, subject=subject)
            )
        found += [Entitlement(env.principal, workspace=env.host, entitlement=e) for e in desired.entitlements]
    found.append(Group(desired.group))
    found += [
        WorkspaceMember(desired.group, workspace=host, permissions=["USER"], group=True)
        for host in desired.group_workspaces
    ]
    for catalog, (host, created_by) in desired.catalogs.items():
        found.append(Catalog(catalog, workspace=host, created_by_target=created_by))
    for grant in desired.grants:
        found.append(
            CatalogGrant(
                grant.principal,
                catalog=grant.catalog,
                workspace=grant.host,
                privileges=grant.privileges,
                group=grant.is_group,
            )
        )
    found.append(Repository(desired.repository))
    for env in desired.environments:
        found.append(GitHubEnvironment(env.name, deployment_branches=env.branches))
        found += [BranchPolicy(branch, environment=env.name) for branch in env.branches]
        if env.reviewers is not None:
            found.append(Reviewers(env.name, reviewers=env.reviewers, prevent_self_review=True))
        for name, value in env.variables.items():
            found.append(Variable(name, environment=env.name, value=value, principal=env.principal))
        for name in env.secrets:
            if name == "DATABRICKS_CLIENT_SECRET":
                found.append(OAuthSecret(env.principal, environment=env.name, secret=name))
            else:
                found.append(GitHubSecret(name, environment=env.name))
    found.append(
        Ruleset(RULESET, branches=[desired.default_branch, desired.release_branch], checks=desired.checks)
    )
    found.append(Branch(desired.release_branch, **{"from": desired.default_branch}))
    return found


# --- commands -----------------------------------------------------------------------------------------

MARKS = {"ok": "ok", "missing": "missing", "differs": "differs", "pending": "pending", "decision": "decide"}


def line(item: Item, status: str, detail: str = "") -> str:
    text = f"  {MARKS.get(status, status):8} {item.kind}: {item.describe()}"
    return f"{text}  [{detail}]" if detail else text


def plan_offline(desired: Desired, as_json: bool) -> int:
    found = items(desired)
    if as_json:
        summary = {
            "repository": desired.repository,
            "account_host": desired.account_host,
            "ci_auth": desired.ci_auth,
            "environments": [env.__dict__ for env in desired.environments],
            "objects": [item.as_dict() for item in found],
        }
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"Desired state of {desired.repository} (CI authenticates with {desired.ci_auth}; "
        f"Databricks account {desired.account_host}):"
    )
    for item in found:
        print(f"  {item.kind}: {item.describe()}")
    return 0


def run(ctx: Context, mode: str) -> int:
    """plan, check or apply; returns the exit code."""
    failures, refused, changed = [], [], 0
    for item in items(ctx.desired):
        finding = item.inspect(ctx)
        if finding.status == "ok" or (item.kind == "github branch" and mode != "apply"):
            print(line(item, finding.status, finding.detail))
            continue
        if mode != "apply":
            print(line(item, finding.status, finding.detail))
            failures.append(
                f"{item.kind} {item.describe()}: {finding.status}"
                + (f": {finding.detail}" if finding.detail else "")
            )
            continue
        if finding.detail.startswith("after "):  # what it depends on was refused or is pending
            print(line(item, "waiting", finding.detail))
            refused.append(f"{item.kind} {item.name}: waits, {finding.detail}")
            continue
        if finding.status == "pending" and item.kind != "github branch":
            print(line(item, "pending", finding.detail))
            refused.append(f"{item.kind} {item.name}: {finding.detail}")
            continue
        try:
            result = item.fix(ctx, finding)
        except DecisionError as refusal:
            print(line(item, "skipped", str(refusal)))
            if item.kind != "github branch":
                refused.append(str(refusal))
            continue
        changed += 1
        print(line(item, "changed", result))
    if mode == "check":
        if failures:
            print(f"\ncheck failed: {len(failures)} missing or wrong:", file=sys.stderr)
            for failure in failures:
                print(f"  {failure}", file=sys.stderr)
            return 1
        print("\ncheck passed")
    elif mode == "plan":
        print(
            f"\n{len(failures)} to create or fix (scripts/setup-environments apply)"
            if failures
            else "\nnothing to do"
        )
    else:
        print(f"\n{changed} changed")
        if refused:
            print(f"{len(refused)} left for a person:", file=sys.stderr)
            for refusal in refused:
                print(f"  {refusal}", file=sys.stderr)
            return 3
    return 0


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--account-id",
        default=os.environ.get("DATABRICKS_ACCOUNT_ID"),
        help="Databricks account id (default: $DATABRICKS_ACCOUNT_ID)",
    )
    common.add_argument("--account-host", help="accounts console URL (default: the workspaces' cloud's)")
    common.add_argument(
        "--account-profile", help="~/.databrickscfg profile for the account (instead of the above)"
    )
    common.add_argument(
        "--timeout", type=int, default=15, help="seconds before an unreachable host is an error"
    )
    common.add_argument("--json", action="store_true", help="machine-readable output (plan --offline)")
    top = argparse.ArgumentParser(prog="scripts/setup-environments", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", parents=[common], help="the desired state, compared with the live one")
    plan.add_argument(
        "--offline", action="store_true", help="no credentials, no network: the desired state only"
    )
    commands.add_parser("check", parents=[common], help="read-only preflight; exit 1 naming what is missing")
    apply = commands.add_parser("apply", parents=[common], help="create what is missing, fix what differs")
    apply.add_argument("--yes", action="store_true", help="never ask: refuse the steps that need a decision")
    apply.add_argument("--create-repo", action="store_true", help="create the GitHub repository (private)")
    apply.add_argument("--create-release-branch", action="store_true", help="create the release branch")
    apply.add_argument(
        "--reviewer", action="append", default=[], help="approver of Environments with reviewers"
    )
    return top


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    args = parser().parse_args(argv)
    # The SDK's debug log holds response bodies, an OAuth secret among them: never below INFO. Its warnings
    # (e.g. host metadata it could not read) would add lines to each error: not shown.
    sdk_log = logging.getLogger("databricks.sdk")
    sdk_log.setLevel(max(sdk_log.getEffectiveLevel(), logging.INFO))
    sdk_log.addHandler(logging.NullHandler())
    try:
        desired = load_desired(root)
        for env in desired.environments:
            if env.reviewers is not None:
                env.reviewers = list(dict.fromkeys(env.reviewers + getattr(args, "reviewer", [])))
        if args.command == "plan" and args.offline:
            return plan_offline(desired, args.json)
        account_host = args.account_host or desired.account_host
        api_url = os.environ.get("GITHUB_API_URL", "https://api.github.com")
        ctx = Context(
            desired=desired,
            databricks=Databricks(account_host, args.account_id, args.account_profile, args.timeout),
            github=GitHub(api_url, github_token(), args.timeout),
            interactive=not getattr(args, "yes", False) and sys.stdin.isatty(),
            create_repo=getattr(args, "create_repo", False),
            create_release_branch=getattr(args, "create_release_branch", False),
        )
        return run(ctx, args.command)
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
