"""The generated package's requirements against what each compute runs (tests/computes.py, with sources).

pip installs the wheel of a job on top of what the compute ships: a shipped distribution that satisfies its
requirement stays, any other is installed at the newest version the requirement admits. From that, per compute:
the MLflow that promotions copy with must work across workspaces, there must be one coherent MLflow, and MLflow's
Unity Catalog artifact path must find its cloud storage client. The last is also taken for real in this venv, with
nothing but what the generated requirements bring.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
from typing import Any

import pytest
from computes import (
    COMPUTES,
    COPY_ACROSS_WORKSPACES_BROKEN,
    COPY_ACROSS_WORKSPACES_FIXED,
    MLFLOW_DISTRIBUTIONS,
    UC_STORAGE_IMPORTS,
    Compute,
)
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from cookiecutter.utils import create_env_with_context
from jinja2 import FileSystemLoader
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version
from support import COOKIECUTTER_JSON, REPO, TEMPLATE_DIR, Baked, partial

RUNTIME = partial("bundle.j2").runtime
# The compute of each `compute` answer, as templates/bundle.j2 names it.
TEMPLATE_COMPUTES = {"serverless": RUNTIME["environment_version"], "job_cluster": RUNTIME["spark_version"]}
NEWEST = "newest"  # installed by pip: the newest release the requirement admits
# APIs the generated code calls, with the release that brought them: a compute that keeps an older copy fails there.
API_FLOORS = {"databricks-sdk": ("0.68.0", "WorkspaceClient.data_quality, which monitor_refresh.py calls")}


def requirements(pyproject: str) -> list[Requirement]:
    return [Requirement(line) for line in tomllib.loads(pyproject)["project"]["dependencies"]]


def copies_model_versions(pattern: str) -> bool:
    """Every pattern that promotes copies versions between catalogs (cookiecutter.json's `_patterns`)."""
    return bool(COOKIECUTTER_JSON["_patterns"][pattern]["job_targets"]["model_promotion"])


def install(compute: Compute, wanted: list[Requirement]) -> dict[str, str]:
    """What the compute holds once pip has installed the wheel: distribution -> version, or NEWEST."""
    markers = {**default_environment(), "python_version": compute.python, "python_full_version": f"{compute.python}.0"}
    held = dict(compute.preinstalled)
    for requirement in wanted:
        if requirement.marker and not requirement.marker.evaluate(markers):
            continue
        name = canonicalize_name(requirement.name)
        if name not in held or not requirement.specifier.contains(held[name], prereleases=True):
            held[name] = NEWEST
    return held


def problems(compute: Compute, wanted: list[Requirement], *, copies: bool, cloud: str) -> list[str]:
    """Why the package would not work on this compute; empty when it would."""
    held = install(compute, wanted)
    found = []
    mlflow = [r for r in wanted if canonicalize_name(r.name) in MLFLOW_DISTRIBUTIONS]
    if len(mlflow) != 1:
        found.append(f"the package must ask for one MLflow distribution, not {[str(r) for r in mlflow]}")
    for requirement in mlflow:
        name = canonicalize_name(requirement.name)
        if name not in compute.preinstalled:
            found.append(f"{requirement} is not the MLflow {compute.label} ships: it would install a second one")
        kept = held[name]
        if copies and kept != NEWEST and Version(kept) < Version(COPY_ACROSS_WORKSPACES_FIXED):
            found.append(f"{requirement} keeps {compute.label}'s {name} {kept}: copies across workspaces fail")
        admitted = [v for v in COPY_ACROSS_WORKSPACES_BROKEN if requirement.specifier.contains(v)]
        if copies and admitted:
            found.append(f"{requirement} admits {', '.join(admitted)}, whose copies across workspaces fail")
    full, skinny = held.get("mlflow"), held.get("mlflow-skinny")
    if full not in (None, NEWEST) and skinny != full:
        found.append(
            f"mixed MLflow on {compute.label}: its mlflow {full} pins mlflow-skinny=={full}, and the package's "
            "requirements upgrade mlflow-skinny under it"
        )
    for distribution, (floor, why) in API_FLOORS.items():
        kept = held.get(distribution)
        if kept is None:
            found.append(f"no {distribution} on {compute.label}: the package needs {why}")
        elif kept != NEWEST and Version(kept) < Version(floor):
            found.append(f"{compute.label} keeps {distribution} {kept}, older than {floor}: no {why}")
    for module, distribution in UC_STORAGE_IMPORTS[cloud].items():
        if distribution not in held:
            found.append(f"no {distribution} on {compute.label}: MLflow's Unity Catalog artifacts need {module}")
    return found


def computes_of(baked: Baked) -> set[str]:
    """The computes the bake's jobs name (environment_version, spark_version), and those of every `compute`."""
    named = set(TEMPLATE_COMPUTES.values())
    for target in baked.bundle.targets:
        for job in baked.bundle.jobs(target).values():
            named |= {env["spec"]["environment_version"] for env in job.get("environments", [])}
            named |= {c["new_cluster"]["spark_version"] for c in job.get("job_clusters", [])}
    return named


def test_the_requirements_work_on_every_compute(baked: Baked) -> None:
    project = tomllib.loads(baked.text("pyproject.toml"))["project"]
    wanted = requirements(baked.text("pyproject.toml"))
    for key in sorted(computes_of(baked)):
        assert key in COMPUTES, f"{key}: add what it ships to tests/computes.py, with the source"
        compute = COMPUTES[key]
        assert SpecifierSet(project["requires-python"]).contains(f"{compute.python}.0"), compute.label
        found = problems(compute, wanted, copies=copies_model_versions(baked.pattern), cloud=baked.context["cloud"])
        assert found == [], f"{compute.label} ({compute.source}):\n" + "\n".join(found)


OLD = [Requirement("mlflow-skinny>=3.1"), Requirement("pandas>=1.5")]  # the requirement before issue 17


@pytest.mark.parametrize(
    ("key", "wanted", "copies", "words"),
    [
        # Issue 17, item 1: pip keeps the runtime's MLflow when it satisfies the bound.
        ("18.x-cpu-ml-scala2.13", OLD, True, "keeps Databricks Runtime 18 LTS ML's mlflow-skinny 3.8.1"),
        ("5", OLD, True, "keeps serverless environment 5's mlflow-skinny 3.8.1"),
        # Item 2: the wheel's mlflow-skinny upgraded under the ML runtime's full mlflow.
        ("17.3.x-cpu-ml-scala2.13", OLD, False, "mixed MLflow"),
        ("18.x-cpu-ml-scala2.13", [Requirement("mlflow-skinny>=3.12")], True, "mixed MLflow"),
        # ... and the other way round: the full mlflow beside serverless's mlflow-skinny.
        ("5", [Requirement("mlflow>=3.12")], True, "would install a second one"),
    ],
    ids=["runtime-18-ml-keeps-3.8.1", "serverless-5-keeps-3.8.1", "ml-runtime-mixed", "ml-runtime-mixed-copy", "full"],
)
def test_known_broken_combinations_are_found(key: str, wanted: list[Requirement], copies: bool, words: str) -> None:
    found = problems(COMPUTES[key], wanted, copies=copies, cloud="aws")
    assert any(words in line for line in found), found


# --- the Unity Catalog artifact path, taken in this venv -----------------------------------------------------------


def rendered_pyproject(**answers: Any) -> str:
    """pyproject.toml as cookiecutter renders it (its Jinja loader reads templates/ too), for answers over defaults."""
    context = dict(prompt_for_config(generate_context(str(REPO / "cookiecutter.json"), extra_context=answers), True))
    env = create_env_with_context({"cookiecutter": {**COOKIECUTTER_JSON, **context}})
    env.loader = FileSystemLoader([str(TEMPLATE_DIR), str(REPO / "templates")])
    return env.get_template("pyproject.toml").render(cookiecutter=context)


def closure(wanted: list[Requirement]) -> set[str]:
    """The distributions the requirements bring, following this venv's installed metadata (extras, markers)."""
    seen: set[str] = set()
    todo = [(r, frozenset(r.extras)) for r in wanted]
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        try:
            metadata = importlib.metadata.metadata(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here: nothing of it can be imported either
        if name in seen and not extras:
            continue
        seen.add(name)
        for line in metadata.get_all("Requires-Dist") or []:
            dependency = Requirement(line)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in {"", *extras}):
                todo.append((dependency, frozenset(dependency.extras)))
    return seen


def test_the_requirements_bring_the_cloud_storage_client(baked: Baked) -> None:
    brought = closure(requirements(baked.text("pyproject.toml")))
    needed = set(UC_STORAGE_IMPORTS[baked.context["cloud"]].values())
    assert needed <= brought, f"missing {sorted(needed - brought)}: MLflow cannot move model artifacts in UC"


# Runs in a fresh interpreter of this venv: every storage client module that the generated requirements do not
# bring is refused, then MLflow builds the artifact repository of a model version's temporary credentials, as its
# UC registry store does for each upload and download. S3's repository asks the bucket's region at once: a loopback
# server answers (MLFLOW_S3_ENDPOINT_URL); nothing leaves the machine.
UC_ARTIFACT_REPO = r"""
import importlib.abc, json, os, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

refused, cloud = json.loads(sys.argv[1]), sys.argv[2]


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == module or name.startswith(module + ".") for module in refused):
            raise ModuleNotFoundError(f"No module named {name!r} (not brought by the requirements)", name=name)


class Region(BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(200)
        self.send_header("x-amz-bucket-region", "eu-west-1")
        self.end_headers()

    def log_message(self, *args):
        pass


sys.meta_path.insert(0, Refuse())
server = ThreadingHTTPServer(("127.0.0.1", 0), Region)
threading.Thread(target=server.serve_forever, daemon=True).start()
os.environ["MLFLOW_S3_ENDPOINT_URL"] = f"http://127.0.0.1:{server.server_port}"

import mlflow.store._unity_catalog.registry.rest_store  # noqa: F401  (the registry store that calls the path below)
from mlflow.protos.databricks_uc_registry_messages_pb2 import (
    AwsCredentials, AzureUserDelegationSAS, GcpOauthToken, TemporaryCredentials,
)
from mlflow.utils._unity_catalog_utils import get_artifact_repo_from_storage_info

token, location = {
    "aws": (TemporaryCredentials(aws_temp_credentials=AwsCredentials(
        access_key_id="id", secret_access_key="secret", session_token="session")), "s3://bucket/models/m"),
    "azure": (TemporaryCredentials(azure_user_delegation_sas=AzureUserDelegationSAS(sas_token="sv=1")),
              "abfss://models@account.dfs.core.windows.net/m"),
    "gcp": (TemporaryCredentials(gcp_oauth_token=GcpOauthToken(oauth_token="token")), "gs://bucket/models/m"),
}[cloud]
repository = get_artifact_repo_from_storage_info(
    storage_location=location, scoped_token=token, base_credential_refresh_def=lambda: token
)
print(type(repository).__name__)
"""
REPOSITORY = {
    "aws": "OptimizedS3ArtifactRepository",
    "azure": "AzureDataLakeArtifactRepository",
    "gcp": "GCSArtifactRepository",
}


@pytest.mark.slow
@pytest.mark.parametrize("cloud", sorted(UC_STORAGE_IMPORTS))
def test_unity_catalog_artifacts_work_with_only_the_requirements(cloud: str) -> None:
    wanted = requirements(rendered_pyproject(cloud=cloud, deployment_pattern="deploy_models"))
    for requirement in wanted:  # this venv is one the generated requirements allow
        assert requirement.specifier.contains(importlib.metadata.version(requirement.name)), requirement
    brought = closure(wanted)
    refused = [m for imports in UC_STORAGE_IMPORTS.values() for m, dist in imports.items() if dist not in brought]
    result = subprocess.run(
        [sys.executable, "-c", UC_ARTIFACT_REPO, json.dumps(refused), cloud],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [REPOSITORY[cloud]]


# pyspark 4.3.0 (the newest on PyPI in 2026-12) warns at each import of its pandas support, 38 to 44 times in a
# `pytest` of a fresh `pip install -e ".[dev]"`: pyspark/sql/pandas/utils.py, require_minimum_pandas_version:
# "PySpark does not yet fully support pandas >= 3.0.0 ... It is recommended to use pandas < 3.0.0 for now";
# its setup.py asks for pandas >= 2.2.0.
PYSPARK_NEWEST = "4.3.0"
PANDAS_PYSPARK_SUPPORTS = ("2.2.0", "2.3.3")
PANDAS_PYSPARK_WARNS_ON = ("3.0.0", "3.1.1")


def test_dev_extra_resolves_pandas_that_pyspark_supports(baked_default: Baked) -> None:
    """What a fresh `pip install -e ".[dev]"` may resolve: the newest pyspark with a pandas it does not warn about."""
    project = tomllib.loads(baked_default.text("pyproject.toml"))["project"]
    wanted = [Requirement(line) for line in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]
    (pyspark,) = [r for r in wanted if r.name == "pyspark"]
    assert pyspark.specifier.contains(PYSPARK_NEWEST)
    pandas = SpecifierSet(",".join(str(r.specifier) for r in wanted if r.name == "pandas"))
    assert [v for v in PANDAS_PYSPARK_WARNS_ON if pandas.contains(v)] == []
    assert all(pandas.contains(v) for v in PANDAS_PYSPARK_SUPPORTS), pandas
    # The jobs' own requirements stay as they are: the bound is for the local Spark of the dev extra only.
    jobs = [Requirement(line) for line in project["dependencies"]]
    assert all(r.specifier.contains("3.1.1") for r in jobs if r.name == "pandas")


def test_the_suite_runs_the_generated_code_on_what_a_user_installs(baked_default: Baked) -> None:
    """The slow tier runs the generated project's tests in this venv: its pins (requirements.txt) must be versions
    the generated dev extra resolves to, so the suite tests what `pip install -e ".[dev]"` gives a user (pyspark
    4.0.1 with pandas 3.1.1 was never a user's combination once the extra bounded pandas)."""
    project = tomllib.loads(baked_default.text("pyproject.toml"))["project"]
    wanted = [Requirement(line) for line in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]
    pins = {
        canonicalize_name(r.name): next(iter(r.specifier)).version
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
        for r in [Requirement(line.split("#")[0].strip())]
        if str(r.specifier).startswith("==")
    }
    for name in ("pyspark", "pandas", "mlflow", "mlflow-skinny", "scikit-learn"):
        specifier = SpecifierSet(",".join(str(r.specifier) for r in wanted if canonicalize_name(r.name) == name))
        assert specifier.contains(pins[name]), f"requirements.txt pins {name}=={pins[name]}, the extra: {specifier}"
    assert pins["pyspark"] == PYSPARK_NEWEST, "the newest pyspark the extra admits, as a fresh install takes"
