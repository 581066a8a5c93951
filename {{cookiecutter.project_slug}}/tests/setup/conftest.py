"""Fixtures for scripts/setup-environments: a copy of this project's configuration whose workspace hosts point
at local fakes, the fakes themselves, and a runner that calls the tool's real main() with the real
databricks-sdk and requests (nothing patched; only HTTP on 127.0.0.1)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes import FakeDatabricks, FakeGitHub

from repo_tools.project import Bundle
from repo_tools.setup.cli import main
from repo_tools.setup.desired import Desired, load_desired

PROJECT = Path(__file__).resolve().parents[2]
# What the tool reads: the bundle, the workflows and its own settings.
CONFIGURATION = ["databricks.yml", "targets", "resources", ".github", "tools/setup-environments.toml"]


def workspace_hosts(root: Path) -> list[str]:
    """Every target's workspace, as the tool itself reads the bundle."""
    bundle = Bundle.load(root)
    return sorted({bundle.host(target) for target in bundle.targets})


def copy_configuration(destination: Path, hosts: dict[str, str]) -> Path:
    """This project's configuration with each workspace host replaced (longest first: no partial match)."""
    for relative in CONFIGURATION:
        source = PROJECT / relative
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
    for path in [destination / "databricks.yml", *sorted((destination / "targets").glob("*.yml"))]:
        text = path.read_text()
        for old in sorted(hosts, key=len, reverse=True):
            text = text.replace(old, hosts[old])
        path.write_text(text)
    return destination


@dataclass
class Result:
    code: int
    out: str
    err: str
    seconds: float


@dataclass
class Setup:
    root: Path
    databricks: FakeDatabricks
    github: FakeGitHub
    capsys: pytest.CaptureFixture[str]
    caplog: pytest.LogCaptureFixture

    def run(self, *argv: str, timeout: int = 5) -> Result:
        command, *rest = argv
        options = [
            "--account-host",
            self.databricks.account.url,
            "--account-id",
            self.databricks.account_id,
            "--timeout",
            str(timeout),
        ]
        start = time.monotonic()
        code = main([command, *options, *rest], root=self.root)
        seconds = time.monotonic() - start
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err, seconds)

    def desired(self) -> Desired:
        return load_desired(self.root)

    def mutations(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.databricks.log + self.github.log if m not in ("GET", "HEAD")]

    def clear_logs(self) -> None:
        self.databricks.log.clear()
        self.github.log.clear()


@pytest.fixture
def setup(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> Iterator[Setup]:
    hosts = workspace_hosts(PROJECT)
    databricks = FakeDatabricks(workspaces=hosts)
    github = FakeGitHub()
    root = copy_configuration(tmp_path / "project", {h: databricks.workspaces[h].url for h in hosts})
    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "GITHUB_", "GH_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    monkeypatch.setenv("DATABRICKS_TOKEN", databricks.token)
    monkeypatch.setenv("GH_TOKEN", github.token)
    monkeypatch.setenv("GITHUB_API_URL", github.url)
    monkeypatch.setenv("HOME", str(tmp_path))
    caplog.set_level("DEBUG")
    try:
        yield Setup(root, databricks, github, capsys, caplog)
    finally:
        databricks.close()
        github.close()
