"""The generated project's own gates: ruff on every combination; its unit tests, its wheel and its entry points per
pattern (slow tier: these run the generated code)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from support import Baked

MIN_UNIT_TESTS = 5


def project_env(baked: Baked, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(baked.path / "src"),
        "HOME": str(tmp_path),  # mlflow and friends write config under $HOME
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }


def without_databricks(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith(("DATABRICKS_", "IT_"))}


def test_generated_code_passes_ruff(baked: Baked) -> None:
    ruff = str(Path(sys.executable).with_name("ruff"))
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        result = subprocess.run([ruff, *args], cwd=baked.path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_generated_unit_tests_pass_offline(baked_default: Baked, tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:cookies", f"--junitxml={report}"],
        cwd=baked_default.path,
        capture_output=True,
        text=True,
        timeout=600,
        env=without_databricks(project_env(baked_default, tmp_path)),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    unit = [c for c in cases if "tests.unit" in c.get("classname", "") or "unit" in c.get("file", "")]
    integration = [c for c in cases if "integration" in c.get("classname", "")]
    passed_unit = [c for c in unit if not list(c)]
    assert len(passed_unit) >= MIN_UNIT_TESTS, [c.get("name") for c in cases]
    assert integration, "the integration tests are collected (and skipped) locally"
    for case in integration:
        skipped = case.find("skipped")
        assert skipped is not None, f"{case.get('name')} ran without a workspace"
        assert "DATABRICKS_HOST" in (skipped.get("message") or ""), "skip reason must say what is missing"
    if baked_default.pattern == "deploy_models":
        assert any("promote" in c.get("classname", "") for c in passed_unit), "promotion code is tested"


@pytest.mark.slow
def test_generated_wheel_builds_with_the_console_scripts(baked_default: Baked, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=baked_default.path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        text = archive.read(entry_points).decode()
    scripts = tomllib.loads(baked_default.text("pyproject.toml"))["project"]["scripts"]
    for name, target in scripts.items():
        assert f"{name} = {target}" in text
    assert any(n.startswith(f"{baked_default.package}/") and n.endswith("train.py") for n in names)
    assert not any("tests/" in n for n in names), "tests stay out of the wheel"


HELP_PROBE = """
import contextlib, importlib, io, json, sys
options = {}
for name, target in json.loads(sys.argv[1]).items():
    module, _, function = target.partition(":")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        getattr(importlib.import_module(module), function)(["--help"])
    options[name] = [w.split("=")[0] for w in out.getvalue().split() if w.startswith("--")]
print(json.dumps(options))
"""


@pytest.mark.slow
def test_every_named_parameter_is_an_option_of_its_entry_point(baked_default: Baked, tmp_path: Path) -> None:
    """Run each console script's --help and check every parameter the jobs pass is one of its options."""
    scripts = tomllib.loads(baked_default.text("pyproject.toml"))["project"]["scripts"]
    result = subprocess.run(
        [sys.executable, "-c", HELP_PROBE, json.dumps(scripts)],
        cwd=baked_default.path,
        capture_output=True,
        text=True,
        timeout=300,
        env=project_env(baked_default, tmp_path),
    )
    assert result.returncode == 0, result.stderr
    options = {name: set(found) for name, found in json.loads(result.stdout.splitlines()[-1]).items()}
    checked = 0
    for target in baked_default.bundle.targets:
        for job in baked_default.bundle.jobs(target).values():
            for task in job["tasks"]:
                wheel = task["python_wheel_task"]
                for parameter in wheel.get("named_parameters", {}):
                    assert f"--{parameter}" in options[wheel["entry_point"]], (wheel["entry_point"], parameter)
                    checked += 1
    assert checked >= 10
