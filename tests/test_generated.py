"""The generated project's own gates: ruff on every combination; its unit tests, its wheel and its entry points per
pattern (slow tier: these run the generated code)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import pytest
from support import REPO, Baked, Bundle

MIN_UNIT_TESTS = 5


def project_env(baked: Baked, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(baked.path / "src"),
        "PYTHONDONTWRITEBYTECODE": "1",  # the bake is shared: leave no __pycache__ behind
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


def test_dev_extra_pins_the_ruff_that_pre_commit_runs(baked: Baked) -> None:
    """CI lints with the dev extra's ruff, pre-commit with its own pin: two versions would format differently.
    The template checks generated code with the same version (requirements.txt)."""
    dev = tomllib.loads(baked.text("pyproject.toml"))["project"]["optional-dependencies"]["dev"]
    (ruff,) = [requirement for requirement in dev if re.match(r"ruff\b", requirement)]
    (hook,) = [
        repo for repo in baked.yaml(".pre-commit-config.yaml")["repos"] if repo["repo"].endswith("/ruff-pre-commit")
    ]
    assert ruff == f"ruff=={hook['rev'].removeprefix('v')}"
    assert ruff in (REPO / "requirements.txt").read_text().splitlines()


# serving_endpoint on adds modules, tasks and jobs and changes none of the others: mypy and the entry point probes
# on that bake cover the project without it too, so they run once per pattern.
SUPERSET = pytest.mark.answers(serving_endpoint=True)


@SUPERSET
def test_generated_package_type_checks(baked_tier: Baked) -> None:
    """mypy with the project's own settings ([tool.mypy] in pyproject.toml), the version its dev extra pins."""
    dev = tomllib.loads(baked_tier.text("pyproject.toml"))["project"]["optional-dependencies"]["dev"]
    (pin,) = [requirement for requirement in dev if re.match(r"mypy\b", requirement)]
    assert pin in (REPO / "requirements.txt").read_text().splitlines(), "the template checks with the same mypy"
    mypy = str(Path(sys.executable).with_name("mypy"))
    result = subprocess.run(
        [mypy, "--cache-dir", os.devnull, "--no-incremental"],
        cwd=baked_tier.path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def private_copy(baked: Baked, tmp_path: Path) -> Path:
    """Run the generated project's tools in a copy: they write build/, *.egg-info and caches, and the bake is
    shared with other tests (the snapshot test compares it file by file)."""
    return Path(shutil.copytree(baked.path, tmp_path / "project"))


@pytest.mark.slow
def test_generated_unit_tests_pass_offline(baked_tier: Baked, tmp_path: Path) -> None:
    """The generated project's own suite. Its end-to-end tier (a local Spark session, a real MLflow registry: most
    of the cost) runs on the serving bake of each pattern only: serving adds tasks, jobs and tests and changes none
    of the others (SUPERSET), so the other bake's tests/e2e is a subset of it. Its unit tests run on both."""
    report = tmp_path / "junit.xml"
    project = private_copy(baked_tier, tmp_path)
    serving = bool(baked_tier.context["serving_endpoint"])
    folders = [] if serving else ["--ignore=tests/e2e"]
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:cookies"),
            f"--junitxml={report}",
            *folders,
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        env={**without_databricks(project_env(baked_tier, tmp_path)), "PYTHONPATH": str(project / "src")},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    unit = [c for c in cases if "tests.unit" in c.get("classname", "") or "unit" in c.get("file", "")]
    integration = [c for c in cases if "integration" in c.get("classname", "")]
    e2e = [c for c in cases if "tests.e2e" in c.get("classname", "")]
    passed_unit = [c for c in unit if not list(c)]
    assert len(passed_unit) >= MIN_UNIT_TESTS, [c.get("name") for c in cases]
    assert integration, "the integration tests are collected (and skipped) locally"
    for case in integration:
        skipped = case.find("skipped")
        assert skipped is not None, f"{case.get('name')} ran without a workspace"
        assert "DATABRICKS_HOST" in (skipped.get("message") or ""), "skip reason must say what is missing"
    promotes = bool(baked_tier.facts.job_targets["model_promotion"])  # deploy models and hybrid
    if promotes:
        assert any("promote" in c.get("classname", "") for c in passed_unit), "promotion code is tested"
    assert any("test_serving" in c.get("classname", "") for c in passed_unit) is serving, "serving unit-tested"
    if not serving:
        assert e2e == [], "the end-to-end tier runs on the serving bake (the superset)"
        return
    # The local end-to-end tier ran for real where Java is (it is on CI), the promotion chain included where a
    # pattern copies versions (deploy models: dev -> staging -> prod; hybrid: staging -> prod);
    # without Java every e2e test is skipped and says why.
    assert len(e2e) >= 4
    assert any("test_promotion" in c.get("classname", "") for c in e2e) is promotes
    assert any("test_scale" in c.get("classname", "") for c in e2e), "the jobs' scale checks ran"
    assert any("test_real_time_serving" in c.get("classname", "") for c in e2e), "serving end to end"
    if os.environ.get("JAVA_HOME") or shutil.which("java"):
        assert all(not list(c) for c in e2e), [(c.get("name"), [x.tag for x in c]) for c in e2e]
    else:
        assert all("Java 17" in (c.find("skipped").get("message") or "") for c in e2e)


@pytest.mark.slow
def test_generated_wheel_builds_with_the_console_scripts(baked_tier: Baked, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=private_copy(baked_tier, tmp_path),
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
    scripts = tomllib.loads(baked_tier.text("pyproject.toml"))["project"]["scripts"]
    for name, target in scripts.items():
        assert f"{name} = {target}" in text
    assert any(n.startswith(f"{baked_tier.package}/") and n.endswith("train.py") for n in names)
    assert not any("tests/" in n for n in names), "tests stay out of the wheel"


PROBE = Path(__file__).parent / "probes" / "entry_points.py"
_probed: dict[Path, dict[str, Any]] = {}


def wheel_task_cases(baked: Baked) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Every wheel task of every target, with the argv Databricks gives it: its named parameters and, pushed
    down, every parameter of its job, all as --key=value (and a label saying where it comes from)."""
    scripts = tomllib.loads(baked.text("pyproject.toml"))["project"]["scripts"]
    bundle = baked.bundle
    cases, labels = [], []
    for target in bundle.targets:
        for job_key, job in bundle.jobs(target).items():
            job_parameters = {p["name"]: p.get("default", "") for p in job.get("parameters", [])}
            for task in job["tasks"]:
                if "python_wheel_task" not in task:  # a run_job_task starts another job, no entry point
                    continue
                wheel = task["python_wheel_task"]
                parameters = {**wheel.get("named_parameters", {}), **job_parameters}
                argv = [f"--{key}={sample_value(bundle, target, value)}" for key, value in parameters.items()]
                cases.append((scripts[wheel["entry_point"]], argv))
                labels.append(f"{target}/{job_key}/{task['task_key']} ({wheel['entry_point']}): {' '.join(argv)}")
    return cases, labels


def entry_point_probe(baked: Baked) -> dict[str, Any]:
    """tests/probes/entry_points.py against the generated package: one interpreter (one mlflow import) per bake
    for both tests below, its JSON cached."""
    if baked.path not in _probed:
        scripts = tomllib.loads(baked.text("pyproject.toml"))["project"]["scripts"]
        payload = {"help": scripts, "parse": wheel_task_cases(baked)[0]}
        result = subprocess.run(
            [sys.executable, str(PROBE), json.dumps(payload)],
            cwd=baked.path,
            capture_output=True,
            text=True,
            timeout=300,
            env=project_env(baked, Path(tempfile.mkdtemp())),
        )
        assert result.returncode == 0, result.stderr
        _probed[baked.path] = json.loads(result.stdout.splitlines()[-1])
    return _probed[baked.path]


@pytest.mark.slow
@SUPERSET
def test_every_named_parameter_is_an_option_of_its_entry_point(baked_tier: Baked) -> None:
    """Run each console script's --help and check every parameter the jobs pass is one of its options."""
    options = {name: set(found) for name, found in entry_point_probe(baked_tier)["options"].items()}
    checked = 0
    for target in baked_tier.bundle.targets:
        for job in baked_tier.bundle.jobs(target).values():
            for task in job["tasks"]:
                wheel = task.get("python_wheel_task", {})
                for parameter in wheel.get("named_parameters", {}):
                    assert f"--{parameter}" in options[wheel["entry_point"]], (wheel["entry_point"], parameter)
                    checked += 1
    assert checked >= 10


BUNDLE_VARIABLE = re.compile(r"\$\{var\.([A-Za-z0-9_]+)\}")
BUNDLE_REFERENCE = re.compile(r"\$\{[^}]+\}")
RESOURCE_ID = re.compile(r"\$\{resources\.[^}]+\.id\}")
JOB_RUN_ID = re.compile(r"\{\{\s*job\.run_id\s*\}\}")


def sample_value(bundle: Bundle, target: str, value: object) -> str:
    """A value of the kind the job would pass at run time: bundle variables resolved for the target, other
    references replaced by a name, the job run id by a number."""
    text = str(value)
    for _ in range(5):  # a variable's default may name another variable
        text = BUNDLE_VARIABLE.sub(lambda match: variable_sample(bundle, target, match.group(1)), text)
    text = RESOURCE_ID.sub("123", text)  # a job's (or other resource's) id is a number
    return JOB_RUN_ID.sub("1", BUNDLE_REFERENCE.sub("sample", text))


def variable_sample(bundle: Bundle, target: str, name: str) -> str:
    value = bundle.variable(target, name)
    return value if isinstance(value, str) else "sample"  # a lookup resolves to an ID at deploy time


@pytest.mark.slow
@SUPERSET
def test_every_wheel_task_accepts_its_parameters_and_its_job_s(baked_tier: Baked) -> None:
    """Databricks passes a wheel task its named parameters and, pushed down, every parameter of its job, all as
    --key=value. Feed exactly that to each entry point's real argument parsing: none may exit."""
    cases, labels = wheel_task_cases(baked_tier)
    outcomes = entry_point_probe(baked_tier)["outcomes"]
    failures = [
        f"{label}\n    -> {outcome}" for label, outcome in zip(labels, outcomes, strict=True) if outcome != "parsed"
    ]
    assert failures == [], "\n".join(failures)
    if baked_tier.facts.job_targets["model_promotion"]:
        assert any("--source_version=" in label and "validate-model" in label for label in labels), "job parameters fed"
    assert len(cases) >= 10


def test_integration_tests_read_what_the_workspace_computed(baked_default: Baked) -> None:
    """No model is unpickled on the runner (its libraries are not the model's): the integration tests read the
    champion's tags and the monitoring report of the job run, and need only the hash-pinned lock."""
    sources = "\n".join(p.read_text() for p in sorted((baked_default.path / "tests" / "integration").glob("*.py")))
    for forbidden in ("load_model", "import mlflow", "pyfunc", "import numpy", "import pandas", baked_default.package):
        assert forbidden not in sources, forbidden
    assert "get_run_output" in sources and "Monitoring report" in sources
    imported = set(re.findall(r"^\s*(?:from|import) ([a-z_]+)", sources, flags=re.MULTILINE))
    lock = baked_default.text("requirements/ci.txt")
    distributions = {"databricks": "databricks-sdk", "pytest": "pytest"}
    for module in imported - set(sys.stdlib_module_names) - {"__future__"}:
        assert f"\n{distributions.get(module, module)}==" in lock, f"tests/integration imports {module}: not locked"
