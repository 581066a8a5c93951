"""The GitHub side: the repository, its release branch, Environments with their branch rules, reviewers,
variables and secrets, and the ruleset of required checks."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from repo_tools.setup.clients import GITHUB_ADMIN, GITHUB_SECRETS, GITHUB_VARIABLES, DecisionError
from repo_tools.setup.desired import SETTINGS
from repo_tools.setup.items import Context, Finding, Item, quote


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
