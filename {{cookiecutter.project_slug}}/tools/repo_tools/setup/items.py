"""The objects of the desired state, compared with the live ones: each Item is described offline, inspected
live (a Finding) and created or fixed by apply, within one Context (the clients, whether apply may ask, a
cache of lookups shared by several items)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from repo_tools.setup.clients import (
    ACCOUNT_ADMIN,
    GITHUB_ADMIN,
    Databricks,
    DecisionError,
    GitHub,
    SetupError,
)
from repo_tools.setup.desired import Desired


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

    @property
    def db(self) -> Databricks:
        """The Databricks clients, which every live run has."""
        assert self.databricks is not None
        return self.databricks

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
            db = self.db
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
            db = self.db
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
            db = self.db
            client = db.workspace(host)
            self.cache[("ws", host)] = db.call(
                "read the workspace id", host, "a login to the workspace", client.get_workspace_id
            )
        return self.cache[("ws", host)]

    def assignments(self, host: str) -> dict[int, list[str]]:
        if ("assign", host) not in self.cache:
            db = self.db
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
