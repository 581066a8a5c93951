"""The clients of the live state: databricks-sdk for the account and each workspace, GitHub's REST API through
requests. Each failure becomes a SetupError of one line: which call, on which host, and what it needs (the
roles below). `require_live_dependencies` says what to install before the first call when the setup extra is
missing."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import tomllib
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from repo_tools.dependencies import requirement_name, unmet
from repo_tools.project import ROOT

ACCOUNT_ADMIN = "Databricks account admin"
WORKSPACE_ADMIN = "workspace admin of {host}"
CATALOG_ADMIN = "owner of the catalog, MANAGE on it, or metastore admin"
METASTORE_CREATE = "CREATE CATALOG on the metastore"
GITHUB_ADMIN = "GitHub token with Administration: read and write on the repository"
GITHUB_VARIABLES = "GitHub token with Environments and Variables: read and write"
GITHUB_SECRETS = "GitHub token with Environments and Secrets: read and write"

# What the commands import: every one PyYAML, the live ones (plan, check, apply) the clients too. The `setup`
# extra of pyproject.toml names the versions.
OFFLINE_DEPENDENCIES = ("pyyaml",)
LIVE_DEPENDENCIES = ("databricks-sdk", "pynacl", "requests")
EXTRA = "setup"


class SetupError(Exception):
    """A failure reported as one line: which call, on which host, and what it needs."""


class DecisionError(Exception):
    """A step that needs a person's decision, in a run that may not ask."""


def require_extra(names: tuple[str, ...], command: str, root: Path = ROOT) -> None:
    """Before the first import of them: these packages, at the versions the setup extra names; else one line
    saying what to install."""
    try:
        extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        extras = {}
    bounds = {requirement_name(requirement): requirement for requirement in extras.get(EXTRA, [])}
    missing = unmet(bounds.get(name, name) for name in names)
    if missing:
        offline = " (`plan --offline` needs only PyYAML)" if names != OFFLINE_DEPENDENCIES else ""
        raise SetupError(
            f"{command} needs the {EXTRA} extra, which lacks {', '.join(missing)}: "
            f'pip install -e ".[{EXTRA}]"{offline}'
        )


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
