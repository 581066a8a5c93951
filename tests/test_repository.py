"""The template repository's own code: hooks, extensions, scripts and tests are linted like the code it generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from support import REPO


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    executable = str(Path(sys.executable).with_name("ruff"))
    return subprocess.run([executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_ruff_checks_the_template_s_python() -> None:
    result = ruff("check", "--no-cache", "hooks", "tests", "scripts", "template_rules")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_formats_the_template_s_python() -> None:
    result = ruff("format", "--check", "--no-cache", "hooks", "tests", "scripts", "template_rules")
    assert result.returncode == 0, result.stdout + result.stderr


def test_root_pre_commit_pins_the_ruff_of_requirements() -> None:
    """Contributors' pre-commit and the suite must lint with one ruff, or they disagree on formatting."""
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    (repo,) = [r for r in config["repos"] if r["repo"].endswith("/ruff-pre-commit")]
    assert f"ruff=={repo['rev'].removeprefix('v')}" in (REPO / "requirements.txt").read_text().splitlines()


def test_changelog_has_an_unreleased_section() -> None:
    """Teams on `cruft update` read what changed here; a change to the template adds a line under Unreleased."""
    text = (REPO / "CHANGELOG.md").read_text()
    assert "## Unreleased" in text
