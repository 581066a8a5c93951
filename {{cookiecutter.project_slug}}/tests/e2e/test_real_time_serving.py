"""Real-time serving end to end: the champion of the local registry behind MLflow's own scoring server, and
the serving tasks as the bundle defines them, run with the real databricks-sdk against a local fake of the
serving-endpoints API (serving_fake.py) whose invocations reach that scoring server.

What a pull request proves here: the served contract (a ``dataframe_split`` request, as Databricks clients
send it, gets the predictions batch inference writes for the same rows; a malformed one a 4xx) and how the
tasks drive the endpoint (create, update, no change, wait, a failed update, rollback, first deploy, creator).
What only a workspace shows: docs/serving.md.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import mlflow
import numpy as np
import pytest
import yaml
from e2e_support import (
    PROJECT,
    SCHEMA,
    JobRunError,
    aliases,
    job_definition,
    model_name,
    references_for,
    run_job,
    tables_for,
)
from serving_fake import FakeServing

from {{ cookiecutter.__package_name }}.features import INPUT_COLUMNS
from {{ cookiecutter.__package_name }}.serving import INFERENCE_TABLE_PREFIX, ServingError

TARGET = "staging"
MODEL = model_name(TARGET)
ENDPOINT = "taxi-fare-staging"
PRINCIPAL = "6f1b4c2e-0000-4000-8000-00000000beef"  # the staging service principal's application ID
QUERY_GROUP = "fare-app-callers"
# What the serve task receives in the staging target, as a deploy resolves the bundle's references.
SERVING_REFERENCES = {
    "var.serving_endpoint_name": ENDPOINT,
    "var.service_principal": PRINCIPAL,
    "var.serving_query_group": QUERY_GROUP,
    "var.serving_workload_size": "Small",
    "var.serving_workload_type": "CPU",
    "var.serving_scale_to_zero": "true",
    "bundle.name": "taxi-fare",
    "bundle.target": TARGET,
    # The promotion job's copy task (deploy models): the dev champion is its source.
    "var.source_catalog": "dev",
    "var.source_schema": SCHEMA,
}
# Look at the fake endpoint every 10 ms instead of every 15 s (a job parameter reaches every task).
FAST = {"poll_seconds": "0.01"}


class ModelServers:
    """MLflow's scoring server (the app `mlflow models serve --env-manager local` runs, under uvicorn) for
    each model version the fake endpoint serves, on 127.0.0.1; nothing is installed or downloaded."""

    def __init__(self, patch: pytest.MonkeyPatch) -> None:
        self.urls: dict[tuple[str, str], str] = {}
        self._servers: list[tuple[Any, threading.Thread]] = []
        # init() marks the process as a serving environment; undone when the module's tests are over.
        patch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "false")

    def __call__(self, name: str, version: str) -> str:
        if (name, version) not in self.urls:
            import uvicorn
            from mlflow.pyfunc import scoring_server

            app = scoring_server.init(mlflow.pyfunc.load_model(f"models:/{name}/{version}"))
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            deadline = time.monotonic() + 30
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.02)
            assert server.started, "the scoring server did not start"
            self._servers.append((server, thread))
            self.urls[(name, version)] = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self.urls[(name, version)]

    def close(self) -> None:
        for server, thread in self._servers:
            server.should_exit = True
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def servers() -> Iterator[ModelServers]:
    with pytest.MonkeyPatch.context() as patch:
        pool = ModelServers(patch)
        yield pool
        pool.close()


@pytest.fixture(scope="module")
def fake(servers: ModelServers) -> Iterator[FakeServing]:
    """The staging workspace's serving API, reached as its service principal (the job's run_as)."""
    api = FakeServing(identity=PRINCIPAL)
    api.serve_model = servers
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABRICKS_HOST", api.url)
        patch.setenv("DATABRICKS_TOKEN", api.token)
        yield api
    api.close()


def serving_job(target: str = TARGET) -> dict[str, Any]:
    return job_definition("serving-endpoint.job.yml", target, "serving_endpoint")


def mutations(fake: FakeServing, since: int) -> list[tuple[str, str]]:
    """The calls since the ``since``-th that change something (not reads, not queries)."""
    return [call for call in fake.calls[since:] if call[0] != "GET" and not call[1].endswith("/invocations")]


def champion_job(target: str = TARGET) -> tuple[str, dict[str, Any]]:
    """The job that moves champion in ``target``, as the CLI merges it: its own file's definition, then the
    tasks resources/serving-endpoint.job.yml appends (the CLI concatenates sequences of included files)."""
    added = yaml.safe_load((PROJECT / "resources" / "serving-endpoint.job.yml").read_text())
    jobs = added["targets"][target]["resources"]["jobs"]
    (key,) = set(jobs) - {"serving_endpoint"}
    assert set(jobs[key]) == {"tasks"}, "the serving file adds tasks to that job, nothing else"
    path = {"model_training": "model-training.job.yml", "model_promotion": "model-promotion.job.yml"}[key]
    job = job_definition(path, target, key)
    return key, {**job, "tasks": [*job["tasks"], *jobs[key]["tasks"]]}


def run_serving(run_id: str, catalog: str = TARGET, endpoint_name: str = ENDPOINT, **parameters: str) -> Any:
    """The serving_endpoint job of staging, for the model of ``catalog`` and the endpoint
    ``endpoint_name``."""
    references = references_for(catalog, **{**SERVING_REFERENCES, "var.serving_endpoint_name": endpoint_name})
    return run_job(
        serving_job(), "serving_endpoint", run_id, references, job_parameters={**FAST, **parameters}
    )


def endpoint(fake: FakeServing, name: str = ENDPOINT) -> dict[str, Any]:
    return fake.endpoints[name]


def served(fake: FakeServing, name: str = ENDPOINT) -> list[tuple[str, str]]:
    config = endpoint(fake, name)["config"] or {"served_entities": []}
    return [(entity["name"], str(entity["entity_version"])) for entity in config["served_entities"]]


@pytest.fixture(scope="module")
def first_champion(spark, registry, fake: FakeServing) -> str:
    """The job that moves champion in staging, run once on an environment without an endpoint: its deploy task
    makes the first champion, its serve task creates the endpoint, its smoke test queries it."""
    key, job = champion_job()
    if key == "model_promotion":  # deploy models: the copy's source is the dev champion
        run_job(
            job_definition("model-training.job.yml", "dev", "model_training"),
            "model_training",
            "601",
            references_for("dev"),
        )
    references = references_for(TARGET, **SERVING_REFERENCES)
    run = run_job(job, key, "602", references, job_parameters=FAST)
    assert run.tasks[-3:] == ["deploy", "serve", "smoke_test"], "serve and smoke-test right after deploy"
    return aliases(registry, MODEL)["champion"]


def test_the_first_champion_gets_an_endpoint_as_the_bundle_configures_it(
    fake: FakeServing, first_champion: str
) -> None:
    created = endpoint(fake)
    assert served(fake) == [("champion", first_champion)]
    (entity,) = created["config"]["served_entities"]
    assert entity["entity_name"] == MODEL
    assert (entity["workload_size"], entity["workload_type"], entity["scale_to_zero_enabled"]) == (
        "Small",
        "CPU",
        True,
    )
    assert created["config"]["traffic_config"]["routes"] == [
        {"served_model_name": "champion", "traffic_percentage": 100}
    ]
    assert created["creator"] == PRINCIPAL, "created by the environment's principal, never a person"
    assert created["state"] == {"config_update": "NOT_UPDATING", "ready": "READY"}
    assert created["ai_gateway"]["inference_table_config"] == {
        "catalog_name": TARGET,
        "schema_name": SCHEMA,
        "table_name_prefix": INFERENCE_TABLE_PREFIX,
        "enabled": True,
    }
    assert {tag["key"]: tag["value"] for tag in created["tags"]} == {
        "project": "taxi-fare",
        "environment": TARGET,
    }
    assert not created.get("route_optimized"), "route_optimized can only be set at creation: left off"
    direct = {
        (
            entry.get("service_principal_name") or entry.get("group_name") or entry.get("user_name"),
            level["permission_level"],
        )
        for entry in fake.permissions[created["id"]]
        for level in entry["all_permissions"]
    }
    assert direct == {(PRINCIPAL, "CAN_MANAGE"), (QUERY_GROUP, "CAN_QUERY")}, (
        "CAN_MANAGE for the principal only"
    )


def test_served_predictions_equal_batch_inference_for_the_same_rows(
    spark, registry, servers: ModelServers, first_champion: str
) -> None:
    """The request Databricks clients send (dataframe_split), to MLflow's scoring server of the champion."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS spark_catalog.e2e_{TARGET}")
    batch = job_definition("batch-inference.job.yml", TARGET, "batch_inference")
    run_job(batch, "batch_inference", "611", references_for(TARGET), tables=tables_for(TARGET))
    scored = spark.read.table(tables_for(TARGET)["predictions"]).toPandas().head(25)
    assert set(scored["model_version"]) == {int(first_champion)}
    split = json.loads(
        scored.loc[:, list(INPUT_COLUMNS)].to_json(orient="split", index=False, date_format="iso")
    )
    status, body = post(servers(MODEL, first_champion), {"dataframe_split": split})
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], scored["prediction"].to_numpy(), rtol=1e-9)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({"dataframe_split": {"columns": ["trip_distance"], "data": [[3.5]]}}, "columns missing"),
        (
            {"dataframe_split": {"columns": list(INPUT_COLUMNS), "data": [["x", "y", "far", "z", "w"]]}},
            "wrong types",
        ),
        ({"instances_of_nothing": []}, "no known input key"),
        (b"{not json", "not JSON"),
    ],
)
def test_a_malformed_request_is_a_client_error(
    servers: ModelServers, first_champion: str, payload: Any, why: str
) -> None:
    status, body = post(servers(MODEL, first_champion), payload)
    assert 400 <= status < 500, (why, status, body)


def test_serving_again_changes_nothing(fake: FakeServing, first_champion: str) -> None:
    before = len(fake.calls)
    run = run_serving("621")
    assert run.tasks == ["serve", "smoke_test"]
    assert mutations(fake, before) == [], "an endpoint that serves the champion as configured gets no call"
    assert served(fake) == [("champion", first_champion)]


def test_a_new_champion_is_served_once_the_update_is_ready(
    registry, fake: FakeServing, first_champion: str
) -> None:
    version = new_version(registry, first_champion)
    registry.set_registered_model_alias(MODEL, "champion", version)
    fake.polls_to_settle = 3
    before = len(fake.calls)
    run_serving("631")
    calls = fake.calls[before:]
    updates = [call for call in calls if call == ("PUT", f"/api/2.0/serving-endpoints/{ENDPOINT}/config")]
    # One configuration update, nothing else: never a new endpoint (a name, route_optimized or description
    # change would mean one), never a second update.
    assert len(updates) == 1
    assert mutations(fake, before) == updates
    reads_after = calls[calls.index(updates[0]) + 1 :].count(
        ("GET", f"/api/2.0/serving-endpoints/{ENDPOINT}")
    )
    assert reads_after >= 3, "the task waited for the update to be ready"
    assert served(fake) == [("champion", version)]
    assert ("POST", f"/serving-endpoints/{ENDPOINT}/invocations") in calls, "and smoke-tested it"


def test_a_failed_update_keeps_the_previous_version_and_fails_the_run(
    registry, fake: FakeServing, first_champion: str
) -> None:
    live = served(fake)
    version = new_version(registry, first_champion)
    registry.set_registered_model_alias(MODEL, "champion", version)
    fake.failing_versions.add(version)
    with pytest.raises(JobRunError) as failed:
        run_serving("641")
    assert failed.value.task_key == "serve", "the smoke test does not run after a failed update"
    assert isinstance(failed.value.error, ServingError)
    assert f"still serves version {live[0][1]}" in str(failed.value.error)
    assert served(fake) == live
    assert endpoint(fake)["state"]["config_update"] == "UPDATE_FAILED"


def test_rollback_moves_champion_back_and_serves_it(registry, fake: FakeServing, first_champion: str) -> None:
    fake.failing_versions.clear()
    with pytest.raises(JobRunError) as refused:
        run_serving("651", champion_version=new_version(registry, first_champion))
    assert "not a rollback target" in str(refused.value.error), "only a version validated here"
    run_serving("652", champion_version=first_champion)
    assert aliases(registry, MODEL)["champion"] == first_champion
    assert served(fake) == [("champion", first_champion)]


def test_an_environment_without_a_champion_gets_no_endpoint_and_succeeds(registry, fake: FakeServing) -> None:
    """The first deploy of an empty environment: the bundle created the (empty) model; nothing serves yet."""
    registry.create_registered_model(model_name("prod"))
    before = len(fake.calls)
    run = run_serving("661", catalog="prod", endpoint_name="taxi-fare-prod")
    assert run.tasks == ["serve", "smoke_test"], "both tasks succeed"
    assert "taxi-fare-prod" not in fake.endpoints
    assert mutations(fake, before) == [], "not one call that changes anything"
    assert not [path for _, path in fake.calls[before:] if "serving-endpoints" in path], "not even a look"


def test_no_endpoint_is_created_by_a_person_nor_managed_when_a_person_created_it(
    registry, fake: FakeServing, first_champion: str
) -> None:
    fake.identity = "alice@example.com"  # the job run by hand as a person, for a new endpoint
    try:
        before = len(fake.calls)
        with pytest.raises(JobRunError) as refused:
            run_serving("671", endpoint_name="taxi-fare-by-hand")
        assert "Refusing to create endpoint taxi-fare-by-hand as alice@example.com" in str(
            refused.value.error
        )
        assert mutations(fake, before) == []
        assert "taxi-fare-by-hand" not in fake.endpoints
    finally:
        fake.identity = PRINCIPAL
    endpoint(fake)["creator"] = "bob@example.com"  # made by hand, before this job existed
    try:
        before = len(fake.calls)
        with pytest.raises(JobRunError) as refused:
            run_serving("672")
        assert "was created by bob@example.com" in str(refused.value.error)
        assert mutations(fake, before) == []
    finally:
        endpoint(fake)["creator"] = PRINCIPAL


def test_an_inference_table_elsewhere_is_disabled_then_moved(fake: FakeServing, first_champion: str) -> None:
    endpoint(fake)["ai_gateway"] = {
        "inference_table_config": {
            "catalog_name": "old",
            "schema_name": "old",
            "table_name_prefix": "x",
            "enabled": True,
        },
        "usage_tracking_config": {"enabled": True},  # set by the team in the Serving UI
    }
    before = len(fake.calls)
    run_serving("681")
    gateway = [call for call in fake.calls[before:] if call[1].endswith("/ai-gateway")]
    assert gateway == [("PUT", f"/api/2.0/serving-endpoints/{ENDPOINT}/ai-gateway")] * 2, (
        "disable, then enable"
    )
    assert endpoint(fake)["ai_gateway"]["inference_table_config"]["catalog_name"] == TARGET
    assert endpoint(fake)["ai_gateway"]["usage_tracking_config"] == {"enabled": True}, "the rest is kept"


# --- helpers -------------------------------------------------------------------------------------------


def new_version(registry: Any, like: str) -> str:
    """Another version of the staging model, registered from the same run as ``like`` (no validation tags)."""
    source = registry.get_model_version(MODEL, like)
    return str(registry.create_model_version(MODEL, source.source, run_id=source.run_id).version)


def post(url: str, payload: Any) -> tuple[int, Any]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{url}/invocations", data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
