"""Fixtures for the unit tests: synthetic trips, a fake MLflow registry client.

Nothing here needs a workspace, Spark or the network. MLflow writes to a file store in tmp_path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

# Before MLflow is first imported: no telemetry, and allow the local file store (refused by default).
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
# One OpenMP thread: the tiny models gain nothing from more, and spinning OpenMP threads slow the
# suite down tenfold on a busy CI runner or laptop.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from threadpoolctl import threadpool_limits

from {{ cookiecutter.__package_name }} import features

ZIPS = np.array([10001, 10011, 10019, 10023, 10128, 11201, 11215, 10451, 11101, 11430, 11371])


def synthetic_trips(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Trips shaped like samples.nyctaxi.trips, with a fare that is linear in distance and duration."""
    rng = np.random.default_rng(seed)
    pickup = pd.Timestamp("2016-02-01") + pd.to_timedelta(rng.integers(0, 28 * 24 * 3600, n), unit="s")
    distance = rng.uniform(0.3, 15.0, n).round(2)
    minutes = distance * rng.uniform(2.5, 5.0, n) + rng.uniform(1.0, 5.0, n)
    dropoff = pickup + pd.to_timedelta((minutes * 60).round(), unit="s")
    fare = (3.0 + 2.5 * distance + 0.35 * minutes + rng.normal(0.0, 0.5, n).clip(-1, 1)).round(2)
    return pd.DataFrame(
        {
            "tpep_pickup_datetime": pickup,
            "tpep_dropoff_datetime": dropoff,
            "trip_distance": distance,
            "fare_amount": fare,
            "pickup_zip": rng.choice(ZIPS, n).astype("int32"),
            "dropoff_zip": rng.choice(ZIPS, n).astype("int32"),
        }
    )


@pytest.fixture
def trips() -> pd.DataFrame:
    return synthetic_trips()


@pytest.fixture
def train_and_holdout(trips: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean trips split 4:1, for the tests of the pandas code (the jobs split in Spark: data.py)."""
    clean = features.clean_trips(trips)
    holdout = clean.iloc[::5]
    return clean.drop(index=holdout.index).reset_index(drop=True), holdout.reset_index(drop=True)


@pytest.fixture(autouse=True, scope="session")
def _single_threaded() -> Iterator[None]:
    """Also for native thread pools loaded before this file set OMP_NUM_THREADS."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(autouse=True)
def _off_databricks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests behave the same on a laptop, in CI and in a Databricks notebook."""
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    monkeypatch.delenv("DATABRICKS_ENV_VERSION", raising=False)


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A throwaway local MLflow tracking store and model registry (file store), also set in the env.

    The env variables make ``configure_mlflow()`` in the entry points keep this store.
    """
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture
def job_parameters() -> list[str]:
    """Job-level parameters as Databricks passes them to every Python wheel task with named parameters.

    ``source_version`` is the model_promotion job's parameter; ``run_reason`` stands for one a team adds
    later. Every entry point must run with them on its command line (``cli.parse_task_args``).
    """
    return ["--source_version=champion", "--run_reason=scheduled"]


# --- Fake MLflow registry client ------------------------------------------------------------


@dataclass
class FakeModelVersion:
    name: str
    version: str
    source: str = ""
    tags: dict[str, str] = field(default_factory=dict)


class FakeMlflowClient:
    """An in-memory registry with the MlflowClient methods the package calls.

    Missing models, versions and aliases raise MlflowException(RESOURCE_DOES_NOT_EXIST), like
    Unity Catalog does. ``calls`` records every mutating call in order.
    """

    def __init__(self) -> None:
        self.versions: dict[str, dict[str, FakeModelVersion]] = {}
        self.aliases: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[Any, ...]] = []

    def add_version(self, name: str, *, source: str = "", tags: dict[str, str] | None = None) -> str:
        versions = self.versions.setdefault(name, {})
        self.aliases.setdefault(name, {})
        version = str(len(versions) + 1)
        versions[version] = FakeModelVersion(name, version, source, dict(tags or {}))
        return version

    @staticmethod
    def _missing(what: str) -> MlflowException:
        return MlflowException(f"{what} not found", error_code=RESOURCE_DOES_NOT_EXIST)

    def get_registered_model(self, name: str) -> SimpleNamespace:
        if name not in self.versions:
            raise self._missing(f"Registered model {name}")
        return SimpleNamespace(name=name, aliases=dict(self.aliases[name]))

    def get_model_version(self, name: str, version: str) -> FakeModelVersion:
        try:
            return self.versions[name][str(version)]
        except KeyError:
            raise self._missing(f"Version {version} of {name}") from None

    def get_model_version_by_alias(self, name: str, alias: str) -> FakeModelVersion:
        version = self.aliases.get(name, {}).get(alias)
        if version is None:
            raise self._missing(f"Alias {alias} of {name}")
        return self.get_model_version(name, version)

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.get_model_version(name, version)
        self.calls.append(("set_alias", name, alias, str(version)))
        self.aliases[name][alias] = str(version)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self.calls.append(("delete_alias", name, alias))
        if self.aliases.get(name, {}).pop(alias, None) is None:
            raise self._missing(f"Alias {alias} of {name}")

    def set_model_version_tag(self, name: str, version: str, key: str, value: Any) -> None:
        self.calls.append(("set_tag", name, str(version), key, str(value)))
        self.get_model_version(name, version).tags[key] = str(value)

    def delete_model_version_tag(self, name: str, version: str, key: str) -> None:
        self.calls.append(("delete_tag", name, str(version), key))
        del self.get_model_version(name, version).tags[key]

    def search_model_versions(self, filter_string: str) -> list[FakeModelVersion]:
        """Only ``name='<model>'``, the filter the package uses on the registry it copies into."""
        name = filter_string.removeprefix("name='").removesuffix("'")
        return list(self.versions.get(name, {}).values())

    def copy_model_version(self, src_model_uri: str, dst_name: str) -> FakeModelVersion:
        source_name, _, source_version = src_model_uri.removeprefix("models:/").rpartition("/")
        source = self.get_model_version(source_name, source_version)
        self.calls.append(("copy", src_model_uri, dst_name))
        version = self.add_version(dst_name, source=src_model_uri, tags=source.tags)
        return self.get_model_version(dst_name, version)


@pytest.fixture
def fake_client() -> FakeMlflowClient:
    return FakeMlflowClient()


class LinearModel:
    """A stand-in for a loaded pyfunc model: predicts ``fare = intercept + slope * distance``."""

    def __init__(self, slope: float = 2.5, intercept: float = 2.5) -> None:
        self.slope, self.intercept = slope, intercept
        self.seen_columns: list[str] = []

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self.seen_columns = list(frame.columns)
        return self.intercept + self.slope * frame["trip_distance"].to_numpy(dtype=float)


@pytest.fixture
def linear_model() -> type[LinearModel]:
    """The class of a simple stand-in model: ``linear_model(slope, intercept)``."""
    return LinearModel


@pytest.fixture
def model_loader() -> Callable[[dict[str, LinearModel]], Callable[[str], LinearModel]]:
    """Build a ``load_model`` stand-in from a ``{model_uri: model}`` mapping; it records the URIs asked."""

    def build(models: dict[str, LinearModel]) -> Callable[[str], LinearModel]:
        requested: list[str] = []

        def load(uri: str) -> LinearModel:
            requested.append(uri)
            if uri not in models:
                raise MlflowException(f"{uri} not found", error_code=RESOURCE_DOES_NOT_EXIST)
            return models[uri]

        load.requested = requested  # type: ignore[attr-defined]
        return load

    return build
