"""What the end-to-end tests share: test data, and running a job of the bundle locally (see conftest.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

PROJECT = Path(__file__).resolve().parents[2]
SCHEMA = "taxi"
MODEL = "fare"
EXPERIMENT = "/e2e/training"
INPUT_TABLE = "spark_catalog.e2e_input.trips"
NOISY_TABLE = "spark_catalog.e2e_input.trips_noisy_fares"
JOB_RUN_ID_REFERENCE = re.compile(r"\{\{\s*job\.run_id\s*\}\}")
REFERENCE = re.compile(r"\$\{([^}]+)\}")


def java_problem() -> str | None:
    """Why Spark cannot start here, or None."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        return "tests/e2e need Java 17 or newer for Spark: no `java` on PATH or in JAVA_HOME"
    result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    found = re.search(r'version "(\d+)', result.stderr + result.stdout)
    if not found or int(found.group(1)) < 17:
        found_text = (result.stderr or result.stdout).strip()[:80]
        return f"tests/e2e need Java 17 or newer for Spark, found: {found_text}"
    return None


def trips(n: int = 800, seed: int = 7) -> pd.DataFrame:
    """Trips shaped like samples.nyctaxi.trips, with a fare that follows distance and duration."""
    rng = np.random.default_rng(seed)
    pickup = pd.Timestamp("2016-02-01") + pd.to_timedelta(rng.integers(0, 28 * 24 * 3600, n), unit="s")
    distance = rng.uniform(0.3, 15.0, n).round(2)
    minutes = distance * rng.uniform(2.5, 5.0, n) + rng.uniform(1.0, 5.0, n)
    zips = np.array([10001, 10011, 10019, 10023, 10128, 11201, 11215, 10451, 11101, 11430])
    return pd.DataFrame(
        {
            "tpep_pickup_datetime": pickup,
            "tpep_dropoff_datetime": pickup + pd.to_timedelta((minutes * 60).round(), unit="s"),
            "trip_distance": distance,
            "fare_amount": (3.0 + 2.5 * distance + 0.35 * minutes + rng.normal(0, 0.5, n)).round(2),
            "pickup_zip": rng.choice(zips, n).astype("int32"),
            "dropoff_zip": rng.choice(zips, n).astype("int32"),
        }
    )


# --- running a job of the bundle ---------------------------------------------------------------


class JobRunError(Exception):
    def __init__(self, task_key: str, error: BaseException) -> None:
        super().__init__(f"task {task_key} failed: {error!r}")
        self.task_key, self.error = task_key, error


@dataclass
class JobRun:
    """What one run did: the tasks it ran, in order."""

    job_key: str
    run_id: str
    tasks: list[str] = field(default_factory=list)


def job_definition(path: str, target: str, job_key: str) -> dict[str, Any]:
    """The job as resources/<path> defines it for a target (or at the top level)."""
    content = yaml.safe_load((PROJECT / "resources" / path).read_text())
    jobs = content.get("targets", {}).get(target, {}).get("resources", {}).get("jobs", {})
    return jobs.get(job_key) or content["resources"]["jobs"][job_key]


def entry_points() -> dict[str, str]:
    return tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["scripts"]


def resolve(value: object, references: Mapping[str, str], run_id: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1) not in references:
            raise KeyError(f"tests/e2e cannot resolve the bundle reference {match.group(0)}: add it here")
        return references[match.group(1)]

    return JOB_RUN_ID_REFERENCE.sub(run_id, REFERENCE.sub(replace, str(value)))


def run_job(
    job: Mapping[str, Any],
    job_key: str,
    run_id: str,
    references: Mapping[str, str],
    *,
    tables: Mapping[str, str] | None = None,
    job_parameters: Mapping[str, str] | None = None,
    completed: frozenset[str] = frozenset(),
) -> JobRun:
    """Run the tasks of a job definition in order, like Databricks: each task's console script with its
    named parameters, plus every job parameter (pushed down). The first failing task fails the run.

    ``tables`` maps a table parameter's bare value to the Spark name to use (see conftest.py);
    ``completed`` names tasks of this job run that ran before (a repair run goes on from there).
    """
    scripts, run = entry_points(), JobRun(job_key, run_id)
    parameters = {p["name"]: p.get("default", "") for p in job.get("parameters", [])}
    parameters.update(job_parameters or {})
    done = set(completed)
    for task in job["tasks"]:
        assert {d["task_key"] for d in task.get("depends_on", [])} <= done, "tasks are listed in run order"
        wheel = task["python_wheel_task"]
        named = {key: resolve(value, references, run_id) for key, value in wheel["named_parameters"].items()}
        named = {key: (tables or {}).get(value, value) for key, value in named.items()}
        argv = [f"--{key}={value}" for key, value in {**named, **parameters}.items()]
        module, _, function = scripts[wheel["entry_point"]].partition(":")
        try:
            getattr(import_module(module), function)(argv)
        except Exception as error:
            raise JobRunError(task["task_key"], error) from error
        done.add(task["task_key"])
        run.tasks.append(task["task_key"])
    return run


def references_for(catalog: str, *, input_table: str = INPUT_TABLE, **extra: str) -> dict[str, str]:
    """Bundle references, as a deploy to ``catalog`` resolves them."""
    return {
        "var.catalog": catalog,
        "resources.schemas.ml.name": SCHEMA,
        "resources.registered_models.model.name": MODEL,
        "resources.experiments.training.name": EXPERIMENT,
        "var.input_table": input_table,
        "var.row_limit": "0",
        "var.training_max_rows": "500000",
        **extra,
    }


def tables_for(catalog: str) -> dict[str, str]:
    """The bare table names the jobs use, in Spark's session catalog (one database per model catalog)."""
    return {"predictions": f"spark_catalog.e2e_{catalog}.predictions"}


def model_name(catalog: str) -> str:
    return f"{catalog}.{SCHEMA}.{MODEL}"


def aliases(client: Any, name: str) -> dict[str, str]:
    return {key: str(value) for key, value in client.get_registered_model(name).aliases.items()}
