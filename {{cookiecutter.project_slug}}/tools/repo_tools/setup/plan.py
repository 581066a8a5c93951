"""The commands' work: every object in the order apply makes it, the offline plan, and plan, check and apply
against the live state."""

from __future__ import annotations

import json
import sys

from repo_tools.setup.databricks_items import (
    Catalog,
    CatalogGrant,
    Entitlement,
    FederationPolicy,
    Group,
    OAuthSecret,
    ServicePrincipal,
    WorkspaceMember,
)
from repo_tools.setup.desired import Desired
from repo_tools.setup.github_items import (
    Branch,
    BranchPolicy,
    GitHubEnvironment,
    GitHubSecret,
    Repository,
    Reviewers,
    Ruleset,
    Variable,
)
from repo_tools.setup.items import Context, DecisionError, Item

OIDC_ISSUER = "https://token.actions.githubusercontent.com"
RULESET = "Required checks"


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
