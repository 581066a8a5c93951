"""The Databricks side: service principals, their workspaces, federation policies, entitlements, the read
group, catalogs and their grants, and the principals' OAuth secrets (stored in GitHub Environments)."""

from __future__ import annotations

from typing import Any

from repo_tools.setup.clients import (
    ACCOUNT_ADMIN,
    CATALOG_ADMIN,
    GITHUB_SECRETS,
    METASTORE_CREATE,
    WORKSPACE_ADMIN,
    DecisionError,
    SetupError,
    describe_error,
    seal,
)
from repo_tools.setup.github_items import GitHubSecret
from repo_tools.setup.items import Context, Finding, Item, quote

SECRET_LIFETIME = f"{730 * 24 * 3600}s"  # two years, the longest Databricks allows


class ServicePrincipal(Item):
    kind = "service principal"

    def describe(self) -> str:
        return f"{self.name} (GitHub Environment {self.spec['environment']})"

    def inspect(self, ctx: Context) -> Finding:
        sp = ctx.principal(self.name)
        return Finding("ok", f"application id {sp.application_id}") if sp else Finding("missing")

    def fix(self, ctx: Context, finding: Finding) -> str:
        db = ctx.db
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

        db = ctx.db
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
        db = ctx.db
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

        db = ctx.db
        sp = ctx.principal(self.name)
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
        db = ctx.db
        sp = ctx.principal(self.name)
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

        db = ctx.db
        sp = self.workspace_sp(ctx)
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
        db = ctx.db
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

        db = ctx.db
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
        db = ctx.db
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
        db = ctx.db
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
        db = ctx.db
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
        db = ctx.db
        sp = ctx.principal(self.name)
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
