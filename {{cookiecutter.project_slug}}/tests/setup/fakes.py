"""Local fakes of the Databricks account and workspace APIs and of GitHub's REST API: real HTTP on 127.0.0.1,
one thread per server, in-memory state the tests read and change. Only the calls scripts/setup-environments
makes are served; anything else answers 404, so a new call shows up as a failing test."""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from nacl import encoding, public

Route = tuple[str, str, Callable[..., Any]]


class HttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class Server:
    """One listening socket; routes: (method, path regex, handler(match, query, body, headers))."""

    def __init__(
        self, token: str, routes: list[Route], log: list[tuple[str, str]], forbidden: set[str]
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait for an ACK

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def handle_any(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                path = unquote(url.path)
                log.append((self.command, path))
                headers: dict[str, str] = {}
                try:
                    if (
                        path != "/.well-known/databricks-config"
                        and self.headers.get("Authorization") != f"Bearer {token}"
                    ):
                        raise HttpError(401, {"message": "Bad credentials", "error_code": "UNAUTHENTICATED"})
                    if any(re.fullmatch(pattern, f"{self.command} {path}") for pattern in forbidden):
                        raise HttpError(
                            403, {"message": "You lack the permission", "error_code": "PERMISSION_DENIED"}
                        )
                    for method, pattern, handler in outer.routes:
                        match = re.fullmatch(pattern, path)
                        if method == self.command and match:
                            status, payload = handler(match, parse_qs(url.query), body, headers)
                            break
                    else:
                        raise HttpError(
                            404, {"message": f"no fake for {self.command} {path}", "error_code": "NOT_FOUND"}
                        )
                except HttpError as error:
                    status, payload = error.status, error.body
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any  # noqa: N815 (http.server names)

        self.routes = routes
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def mutations(log: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(method, path) for method, path in log if method not in ("GET", "HEAD")]


# --- Databricks ---------------------------------------------------------------------------------------


class FakeDatabricks:
    """One account, several workspaces (one port each), one metastore they share."""

    def __init__(self, workspaces: list[str], token: str = "dapi-fake", account_id: str = "acc-1") -> None:
        self.token, self.account_id = token, account_id
        self.log: list[tuple[str, str]] = []
        self.forbidden: set[str] = set()
        self.ids = itertools.count(1001)
        self.principals: dict[str, dict[str, Any]] = {}  # id -> SCIM resource
        self.groups: dict[str, dict[str, Any]] = {}
        self.assignments: dict[int, dict[int, list[str]]] = {}  # workspace id -> principal id -> permissions
        self.policies: dict[str, dict[str, dict[str, Any]]] = {}  # sp id -> policy id -> policy
        self.secrets: dict[str, list[str]] = {}  # sp id -> minted secret values
        self.entitlements: dict[tuple[int, str], set[str]] = {}  # (workspace id, sp id) -> entitlements
        self.catalogs: dict[str, dict[str, set[str]]] = {}  # name -> principal -> privileges
        prefix = f"/api/2.0/accounts/{account_id}"
        self.account = Server(token, self.account_routes(prefix), self.log, self.forbidden)
        self.workspaces: dict[str, Server] = {}
        self.workspace_ids: dict[str, int] = {}
        for number, name in enumerate(workspaces, start=1):
            workspace_id = 7000 + number
            self.workspaces[name] = Server(
                token, self.workspace_routes(workspace_id), self.log, self.forbidden
            )
            self.workspace_ids[name] = workspace_id
            self.assignments[workspace_id] = {}

    def close(self) -> None:
        for server in [self.account, *self.workspaces.values()]:
            server.close()

    # helpers for tests
    def principal_named(self, name: str) -> dict[str, Any]:
        (found,) = [p for p in self.principals.values() if p["displayName"] == name]
        return found

    def name_of(self, principal_id: int) -> str:
        found = self.principals.get(str(principal_id)) or self.groups[str(principal_id)]
        return found["displayName"]

    def principal_of(self, application_id_or_group: str) -> str:
        for sp in self.principals.values():
            if sp["applicationId"] == application_id_or_group:
                return sp["displayName"]
        return application_id_or_group

    @staticmethod
    def scim_list(resources: list[dict[str, Any]], query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        wanted = query.get("filter", [""])[0]
        match = re.fullmatch(r'(\w+) eq "(.*)"', wanted)
        if match:
            resources = [r for r in resources if str(r.get(match.group(1))) == match.group(2)]
        start = int(query.get("startIndex", ["1"])[0])
        page = resources[start - 1 : start - 1 + 100]
        return 200, {"totalResults": len(resources), "startIndex": start, "Resources": page}

    def account_routes(self, prefix: str) -> list[Route]:
        def list_sps(m: Any, q: Any, b: Any, h: Any) -> Any:
            return self.scim_list(list(self.principals.values()), q)

        def create_sp(m: Any, q: Any, b: Any, h: Any) -> Any:
            sp_id = str(next(self.ids))
            sp = {
                "id": sp_id,
                "applicationId": str(uuid.uuid4()),
                "displayName": b["displayName"],
                "active": True,
            }
            self.principals[sp_id] = sp
            return 201, sp

        def list_groups(m: Any, q: Any, b: Any, h: Any) -> Any:
            return self.scim_list(list(self.groups.values()), q)

        def create_group(m: Any, q: Any, b: Any, h: Any) -> Any:
            group_id = str(next(self.ids))
            self.groups[group_id] = {"id": group_id, "displayName": b["displayName"]}
            return 201, self.groups[group_id]

        def list_assignments(m: Any, q: Any, b: Any, h: Any) -> Any:
            assigned = self.assignments.get(int(m["ws"]))
            if assigned is None:
                raise HttpError(404, {"error_code": "NOT_FOUND", "message": "no such workspace"})
            items = [
                {"principal": {"principal_id": pid, "display_name": self.name_of(pid)}, "permissions": perms}
                for pid, perms in assigned.items()
            ]
            return 200, {"permission_assignments": items}

        def assign(m: Any, q: Any, b: Any, h: Any) -> Any:
            self.assignments[int(m["ws"])][int(m["pid"])] = list(b["permissions"])
            return 200, {"permissions": b["permissions"]}

        def sp_or_404(sp_id: str) -> None:
            if sp_id not in self.principals:
                raise HttpError(404, {"error_code": "NOT_FOUND", "message": f"no service principal {sp_id}"})

        def list_policies(m: Any, q: Any, b: Any, h: Any) -> Any:
            sp_or_404(m["sp"])
            return 200, {"policies": list(self.policies.get(m["sp"], {}).values())}

        def create_policy(m: Any, q: Any, b: Any, h: Any) -> Any:
            sp_or_404(m["sp"])
            policy_id = q.get("policy_id", [str(next(self.ids))])[0]
            if policy_id in self.policies.get(m["sp"], {}):
                raise HttpError(
                    409, {"error_code": "ALREADY_EXISTS", "message": f"policy {policy_id} exists"}
                )
            policy = {
                "name": f"accounts/{self.account_id}/servicePrincipals/{m['sp']}/federationPolicies/"
                + policy_id,
                "policy_id": policy_id,
                "oidc_policy": b["oidc_policy"],
            }
            self.policies.setdefault(m["sp"], {})[policy_id] = policy
            return 200, policy

        def update_policy(m: Any, q: Any, b: Any, h: Any) -> Any:
            policy = self.policies.get(m["sp"], {}).get(m["policy"])
            if policy is None:
                raise HttpError(404, {"error_code": "NOT_FOUND", "message": "no such policy"})
            policy["oidc_policy"] = b["oidc_policy"]
            return 200, policy

        def create_secret(m: Any, q: Any, b: Any, h: Any) -> Any:
            sp_or_404(m["sp"])
            value = f"dose{uuid.uuid4().hex}"
            self.secrets.setdefault(m["sp"], []).append(value)
            return 200, {
                "id": str(next(self.ids)),
                "secret": value,
                "status": "ACTIVE",
                "expire_time": "2028-01-01T00:00:00Z",
            }

        return [
            ("GET", "/.well-known/databricks-config", lambda m, q, b, h: (404, {"error_code": "NOT_FOUND"})),
            ("GET", f"{prefix}/scim/v2/ServicePrincipals", list_sps),
            ("POST", f"{prefix}/scim/v2/ServicePrincipals", create_sp),
            ("GET", f"{prefix}/scim/v2/Groups", list_groups),
            ("POST", f"{prefix}/scim/v2/Groups", create_group),
            ("GET", rf"{prefix}/workspaces/(?P<ws>\d+)/permissionassignments", list_assignments),
            (
                "PUT",
                rf"{prefix}/workspaces/(?P<ws>\d+)/permissionassignments/principals/(?P<pid>\d+)",
                assign,
            ),
            ("GET", rf"{prefix}/servicePrincipals/(?P<sp>\d+)/federationPolicies", list_policies),
            ("POST", rf"{prefix}/servicePrincipals/(?P<sp>\d+)/federationPolicies", create_policy),
            (
                "PATCH",
                rf"{prefix}/servicePrincipals/(?P<sp>\d+)/federationPolicies/(?P<policy>[^/]+)",
                update_policy,
            ),
            ("POST", rf"{prefix}/servicePrincipals/(?P<sp>\d+)/credentials/secrets", create_secret),
        ]

    def workspace_routes(self, workspace_id: int) -> list[Route]:
        def me(m: Any, q: Any, b: Any, h: Any) -> Any:
            h["X-Databricks-Org-Id"] = str(workspace_id)
            return 200, {"userName": "admin@example.com"}

        def members() -> list[dict[str, Any]]:
            assigned = self.assignments[workspace_id]
            return [
                {
                    **sp,
                    "entitlements": [
                        {"value": e} for e in sorted(self.entitlements.get((workspace_id, sp_id), []))
                    ],
                }
                for sp_id, sp in self.principals.items()
                if int(sp_id) in assigned
            ]

        def list_sps(m: Any, q: Any, b: Any, h: Any) -> Any:
            return self.scim_list(members(), q)

        def patch_sp(m: Any, q: Any, b: Any, h: Any) -> Any:
            if int(m["sp"]) not in self.assignments[workspace_id]:
                raise HttpError(404, {"error_code": "NOT_FOUND", "message": "not in this workspace"})
            for operation in b["Operations"]:
                assert operation["op"] == "add", operation
                assert operation["path"] == "entitlements", operation
                held = self.entitlements.setdefault((workspace_id, m["sp"]), set())
                held.update(v["value"] for v in operation["value"])
            return 204, None

        def catalog_or_404(name: str) -> dict[str, set[str]]:
            if name not in self.catalogs:
                raise HttpError(
                    404,
                    {"error_code": "CATALOG_DOES_NOT_EXIST", "message": f"Catalog '{name}' does not exist."},
                )
            return self.catalogs[name]

        def get_catalog(m: Any, q: Any, b: Any, h: Any) -> Any:
            catalog_or_404(m["name"])
            return 200, {"name": m["name"]}

        def create_catalog(m: Any, q: Any, b: Any, h: Any) -> Any:
            if b["name"] in self.catalogs:
                raise HttpError(409, {"error_code": "CATALOG_ALREADY_EXISTS", "message": "exists"})
            self.catalogs[b["name"]] = {}
            return 200, {"name": b["name"]}

        def get_grants(m: Any, q: Any, b: Any, h: Any) -> Any:
            grants = catalog_or_404(m["name"])
            who = q.get("principal", [None])[0]
            assignments = [
                {"principal": principal, "privileges": sorted(privileges)}
                for principal, privileges in grants.items()
                if privileges and who in (None, principal)
            ]
            return 200, {"privilege_assignments": assignments}

        def update_grants(m: Any, q: Any, b: Any, h: Any) -> Any:
            grants = catalog_or_404(m["name"])
            for change in b["changes"]:
                grants.setdefault(change["principal"], set()).update(change.get("add", []))
            return 200, {"privilege_assignments": []}

        uc = "/api/2.1/unity-catalog"
        return [
            ("GET", "/.well-known/databricks-config", lambda m, q, b, h: (404, {"error_code": "NOT_FOUND"})),
            ("GET", "/api/2.0/preview/scim/v2/Me", me),
            ("GET", "/api/2.0/preview/scim/v2/ServicePrincipals", list_sps),
            ("PATCH", r"/api/2.0/preview/scim/v2/ServicePrincipals/(?P<sp>\d+)", patch_sp),
            ("GET", rf"{uc}/catalogs/(?P<name>[^/]+)", get_catalog),
            ("POST", f"{uc}/catalogs", create_catalog),
            ("GET", rf"{uc}/permissions/catalog/(?P<name>[^/]+)", get_grants),
            ("PATCH", rf"{uc}/permissions/catalog/(?P<name>[^/]+)", update_grants),
        ]


# --- GitHub -------------------------------------------------------------------------------------------


class FakeGitHub:
    """One user (`octocat`), the repositories it creates, their Environments, variables, secrets, rulesets."""

    def __init__(self, token: str = "ghp-fake", login: str = "octocat") -> None:
        self.token, self.login = token, login
        self.log: list[tuple[str, str]] = []
        self.forbidden: set[str] = set()
        self.key = public.PrivateKey.generate()
        self.ids = itertools.count(501)
        self.users = {login: 1, "release-manager": 2}
        self.repos: set[str] = set()
        self.environments: dict[str, dict[str, Any]] = {}  # "owner/repo env" -> state
        self.branch_policies: dict[str, list[dict[str, Any]]] = {}
        self.variables: dict[str, dict[str, str]] = {}
        self.secrets: dict[str, dict[str, str]] = {}  # decrypted: tests check what was stored
        self.rulesets: dict[int, dict[str, Any]] = {}
        self.server = Server(token, self.routes(), self.log, self.forbidden)
        self.url = self.server.url

    def close(self) -> None:
        self.server.close()

    def reviewers(self, repo: str, env: str) -> list[str]:
        state = self.environments[f"{repo} {env}"]
        names = {v: k for k, v in self.users.items()}
        return sorted(names[r["id"]] for r in state.get("reviewers", []))

    def routes(self) -> list[Route]:
        repo = r"/repos/(?P<repo>[^/]+/[^/]+)"
        env = rf"{repo}/environments/(?P<env>[^/]+)"

        def repo_or_404(name: str) -> None:
            if name not in self.repos:
                raise HttpError(404, {"message": "Not Found"})

        def env_or_404(m: Any) -> dict[str, Any]:
            repo_or_404(m["repo"])
            state = self.environments.get(f"{m['repo']} {m['env']}")
            if state is None:
                raise HttpError(404, {"message": "Not Found"})
            return state

        def get_repo(m: Any, q: Any, b: Any, h: Any) -> Any:
            repo_or_404(m["repo"])
            return 200, {"full_name": m["repo"], "private": True}

        def create_repo(owner: str) -> Callable[..., Any]:
            def create(m: Any, q: Any, b: Any, h: Any) -> Any:
                full = f"{owner or m['org']}/{b['name']}"
                if full in self.repos:
                    raise HttpError(422, {"message": "name already exists on this account"})
                self.repos.add(full)
                return 201, {"full_name": full}

            return create

        def view(m: Any, state: dict[str, Any]) -> dict[str, Any]:
            rules = []
            if state.get("reviewers"):
                names = {v: k for k, v in self.users.items()}
                rules.append(
                    {
                        "type": "required_reviewers",
                        "prevent_self_review": state.get("prevent_self_review", False),
                        "reviewers": [
                            {"type": r["type"], "reviewer": {"id": r["id"], "login": names[r["id"]]}}
                            for r in state["reviewers"]
                        ],
                    }
                )
            if state.get("wait_timer"):
                rules.append({"type": "wait_timer", "wait_timer": state["wait_timer"]})
            return {
                "name": m["env"],
                "protection_rules": rules,
                "deployment_branch_policy": state.get("deployment_branch_policy"),
            }

        def get_env(m: Any, q: Any, b: Any, h: Any) -> Any:
            return 200, view(m, env_or_404(m))

        def put_env(m: Any, q: Any, b: Any, h: Any) -> Any:
            repo_or_404(m["repo"])
            state = self.environments.setdefault(f"{m['repo']} {m['env']}", {})
            body = b or {}
            for key in ("wait_timer", "prevent_self_review", "reviewers", "deployment_branch_policy"):
                if key in body:
                    state[key] = body[key]
            return 200, view(m, state)

        def policies_or_404(m: Any) -> list[dict[str, Any]]:
            state = env_or_404(m)
            if not (state.get("deployment_branch_policy") or {}).get("custom_branch_policies"):
                raise HttpError(404, {"message": "Not Found"})
            return self.branch_policies.setdefault(f"{m['repo']} {m['env']}", [])

        def list_policies(m: Any, q: Any, b: Any, h: Any) -> Any:
            found = policies_or_404(m)
            return 200, {"total_count": len(found), "branch_policies": found}

        def add_policy(m: Any, q: Any, b: Any, h: Any) -> Any:
            found = policies_or_404(m)
            if any(p["name"] == b["name"] for p in found):
                return 303, None
            found.append({"id": next(self.ids), "name": b["name"], "type": b.get("type", "branch")})
            return 200, found[-1]

        def variables(m: Any) -> dict[str, str]:
            env_or_404(m)
            return self.variables.setdefault(f"{m['repo']} {m['env']}", {})

        def get_variable(m: Any, q: Any, b: Any, h: Any) -> Any:
            found = variables(m)
            if m["name"] not in found:
                raise HttpError(404, {"message": "Not Found"})
            return 200, {"name": m["name"], "value": found[m["name"]]}

        def create_variable(m: Any, q: Any, b: Any, h: Any) -> Any:
            found = variables(m)
            if b["name"] in found:
                raise HttpError(409, {"message": "Already exists"})
            found[b["name"]] = b["value"]
            return 201, {}

        def update_variable(m: Any, q: Any, b: Any, h: Any) -> Any:
            found = variables(m)
            if m["name"] not in found:
                raise HttpError(404, {"message": "Not Found"})
            found[m["name"]] = b["value"]
            return 204, None

        def public_key(m: Any, q: Any, b: Any, h: Any) -> Any:
            env_or_404(m)
            return 200, {
                "key_id": "key-1",
                "key": self.key.public_key.encode(encoding.Base64Encoder()).decode(),
            }

        def get_secret(m: Any, q: Any, b: Any, h: Any) -> Any:
            env_or_404(m)
            if m["name"] not in self.secrets.get(f"{m['repo']} {m['env']}", {}):
                raise HttpError(404, {"message": "Not Found"})
            return 200, {"name": m["name"], "created_at": "2026-01-01T00:00:00Z"}

        def put_secret(m: Any, q: Any, b: Any, h: Any) -> Any:
            env_or_404(m)
            assert b["key_id"] == "key-1", b
            value = public.SealedBox(self.key).decrypt(base64.b64decode(b["encrypted_value"])).decode()
            stored = self.secrets.setdefault(f"{m['repo']} {m['env']}", {})
            status = 204 if m["name"] in stored else 201
            stored[m["name"]] = value
            return status, None

        def list_rulesets(m: Any, q: Any, b: Any, h: Any) -> Any:
            repo_or_404(m["repo"])
            page = int(q.get("page", ["1"])[0])
            found = [
                {"id": i, "name": r["name"], "enforcement": r["enforcement"]}
                for i, r in self.rulesets.items()
                if r["repo"] == m["repo"]
            ]
            return 200, found[(page - 1) * 30 : page * 30]

        def get_ruleset(m: Any, q: Any, b: Any, h: Any) -> Any:
            found = self.rulesets.get(int(m["id"]))
            if not found or found["repo"] != m["repo"]:
                raise HttpError(404, {"message": "Not Found"})
            return 200, {k: v for k, v in found.items() if k != "repo"}

        def create_ruleset(m: Any, q: Any, b: Any, h: Any) -> Any:
            repo_or_404(m["repo"])
            ruleset_id = next(self.ids)
            self.rulesets[ruleset_id] = {**b, "id": ruleset_id, "repo": m["repo"]}
            return 201, {**b, "id": ruleset_id}

        def update_ruleset(m: Any, q: Any, b: Any, h: Any) -> Any:
            get_ruleset(m, q, b, h)
            self.rulesets[int(m["id"])].update(b)
            return 200, b

        def get_branch(m: Any, q: Any, b: Any, h: Any) -> Any:
            repo_or_404(m["repo"])
            raise HttpError(404, {"message": "Branch not found"})  # the fake repositories are empty

        return [
            ("GET", "/user", lambda m, q, b, h: (200, {"login": self.login, "id": self.users[self.login]})),
            (
                "GET",
                r"/users/(?P<login>[^/]+)",
                lambda m, q, b, h: (
                    (200, {"login": m["login"], "id": self.users[m["login"]]})
                    if m["login"] in self.users
                    else (404, {"message": "Not Found"})
                ),
            ),
            ("GET", repo, get_repo),
            ("POST", "/user/repos", create_repo(self.login)),
            ("POST", r"/orgs/(?P<org>[^/]+)/repos", create_repo("")),
            ("GET", env, get_env),
            ("PUT", env, put_env),
            ("GET", f"{env}/deployment-branch-policies", list_policies),
            ("POST", f"{env}/deployment-branch-policies", add_policy),
            ("GET", f"{env}/variables/(?P<name>[^/]+)", get_variable),
            ("POST", f"{env}/variables", create_variable),
            ("PATCH", f"{env}/variables/(?P<name>[^/]+)", update_variable),
            ("GET", f"{env}/secrets/public-key", public_key),
            ("GET", f"{env}/secrets/(?P<name>[^/]+)", get_secret),
            ("PUT", f"{env}/secrets/(?P<name>[^/]+)", put_secret),
            ("GET", f"{repo}/rulesets", list_rulesets),
            ("GET", rf"{repo}/rulesets/(?P<id>\d+)", get_ruleset),
            ("POST", f"{repo}/rulesets", create_ruleset),
            ("PUT", rf"{repo}/rulesets/(?P<id>\d+)", update_ruleset),
            ("GET", rf"{repo}/branches/(?P<branch>[^/]+)", get_branch),
        ]
