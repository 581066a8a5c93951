"""What the serving tasks want of an endpoint, and how they compare it with what serves (serving.py,
smoke_test.py). The tasks against the serving API, with the real SDK: tests/e2e/test_real_time_serving.py."""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from databricks.sdk.errors import BadRequest, TemporarilyUnavailable
from databricks.sdk.service.serving import (
    AiGatewayConfig,
    AiGatewayInferenceTableConfig,
    ServingEndpointDetailed,
    ServingEndpointPermissions,
)

from {{ cookiecutter.__package_name }} import serving, smoke_test
from {{ cookiecutter.__package_name }}.serving import EndpointSpec

MODEL = "staging.taxi.fare"
SPEC = EndpointSpec(
    name="taxi-fare-staging",
    model_name=MODEL,
    catalog="staging",
    schema="taxi",
    service_principal="sp-app-id",
    query_group="fare-app",
    workload_size="Small",
    workload_type="CPU",
    scale_to_zero=True,
    tags=(("project", "taxi-fare"), ("environment", "staging")),
)


def detailed(
    version: str = "3", *, entities: int = 1, percentage: int = 100, **changes: Any
) -> ServingEndpointDetailed:
    """An endpoint as the API returns it, serving ``version`` as SPEC wants; ``changes`` to its entity."""
    entity = {
        "name": "champion",
        "entity_name": MODEL,
        "entity_version": version,
        "workload_size": "Small",
        "workload_type": "CPU",
        "scale_to_zero_enabled": True,
        **changes,
    }
    routes = [
        {"served_model_name": "champion", "served_entity_name": "champion", "traffic_percentage": percentage}
    ]
    return ServingEndpointDetailed.from_dict(
        {
            "name": SPEC.name,
            "id": "e1",
            "creator": "sp-app-id",
            "config": {"served_entities": [entity] * entities, "traffic_config": {"routes": routes}},
            "state": {"config_update": "NOT_UPDATING", "ready": "READY"},
            "tags": [{"key": "project", "value": "taxi-fare"}],
        }
    )


def test_the_endpoint_serves_one_entity_named_after_the_alias_at_a_version_number() -> None:
    entity = SPEC.served_entity("7")
    assert (entity.name, entity.entity_name, entity.entity_version) == ("champion", MODEL, "7")
    assert (entity.workload_size, entity.workload_type.value, entity.scale_to_zero_enabled) == (
        "Small",
        "CPU",
        True,
    )
    (route,) = SPEC.traffic().routes or []
    assert (route.served_model_name, route.traffic_percentage) == ("champion", 100), (
        "the route keeps its name"
    )


def test_only_the_service_principal_manages_and_the_group_queries() -> None:
    assert serving.direct_permissions(SPEC.access_control()) == {
        ("sp-app-id", "CAN_MANAGE"),
        ("fare-app", "CAN_QUERY"),
    }


def test_the_inference_table_is_in_the_environment_s_own_catalog_and_schema() -> None:
    table = SPEC.inference_table_config()
    assert (table.catalog_name, table.schema_name, table.enabled) == ("staging", "taxi", True)
    assert serving.inference_table("staging", "taxi") == f"staging.taxi.{table.table_name_prefix}_payload"
    assert serving.inference_table("staging", "taxi") == "staging.taxi.serving_payload"


def test_an_endpoint_serving_the_champion_as_configured_needs_no_update() -> None:
    assert serving.serves(detailed("3"), SPEC, "3")
    assert serving.served_version(detailed("3")) == "3"


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        (detailed("2"), "another version"),
        (detailed("3", workload_size="Medium"), "another size"),
        (detailed("3", workload_type="GPU_SMALL"), "another compute"),
        (detailed("3", scale_to_zero_enabled=False), "scale to zero off"),
        (detailed("3", name="taxi_fare-3"), "an entity named by version: routes would move"),
        (
            ServingEndpointDetailed.from_dict({"name": SPEC.name, "state": {"config_update": "IN_PROGRESS"}}),
            "no live config",
        ),
    ],
)
def test_any_difference_is_an_update(endpoint: ServingEndpointDetailed, why: str) -> None:
    assert not serving.serves(endpoint, SPEC, "3"), why


def test_a_second_entity_or_a_traffic_split_is_an_update() -> None:
    assert not serving.serves(detailed("3", entities=2), SPEC, "3")
    assert not serving.serves(detailed("3", percentage=90), SPEC, "3")


def test_tags_inference_table_and_permissions_are_compared_not_rewritten() -> None:
    endpoint = detailed("3")
    assert [tag.key for tag in serving.missing_tags(endpoint, SPEC)] == ["environment"]
    assert serving.inference_table_change(endpoint, SPEC) == "enable"
    endpoint.ai_gateway = AiGatewayConfig(inference_table_config=SPEC.inference_table_config())
    assert serving.inference_table_change(endpoint, SPEC) is None
    endpoint.ai_gateway.inference_table_config = AiGatewayInferenceTableConfig(
        catalog_name="staging", schema_name="old_schema", table_name_prefix="serving", enabled=True
    )
    assert serving.inference_table_change(endpoint, SPEC) == "move", "moving needs disabling first"
    inherited = ServingEndpointPermissions.from_dict(
        {
            "access_control_list": [
                {
                    "group_name": "admins",
                    "all_permissions": [{"permission_level": "CAN_MANAGE", "inherited": True}],
                },
                {
                    "service_principal_name": "sp-app-id",
                    "all_permissions": [{"permission_level": "CAN_MANAGE"}],
                },
                {"group_name": "fare-app", "all_permissions": [{"permission_level": "CAN_QUERY"}]},
            ]
        }
    )
    assert serving.direct_permissions(inherited.access_control_list) == serving.direct_permissions(
        SPEC.access_control()
    )


def test_no_champion_no_endpoint_and_not_one_call(fake_client) -> None:
    fake_client.add_version(MODEL)  # the model exists (the bundle created it), nothing was deployed
    nothing = SimpleNamespace()  # any use of the workspace client would raise AttributeError
    assert serving.serve_champion(nothing, fake_client, SPEC) is None  # type: ignore[arg-type]
    assert smoke_test.smoke_test(nothing, fake_client, endpoint_name=SPEC.name, model_name=MODEL) is None  # type: ignore[arg-type]


def test_rollback_only_to_a_version_validated_here(fake_client) -> None:
    good = fake_client.add_version(MODEL, tags={"model_validation_status": "PASSED"})
    copied = fake_client.add_version(MODEL)  # e.g. a copy that was never validated in this environment
    fake_client.set_registered_model_alias(MODEL, "champion", copied)
    with pytest.raises(serving.ServingError, match="not a rollback target"):
        serving.rollback(fake_client, MODEL, copied)
    serving.rollback(fake_client, MODEL, good)
    assert fake_client.aliases[MODEL]["champion"] == good


def test_the_job_s_parameters_parse() -> None:
    argv = [
        "--catalog=prod",
        "--schema=taxi",
        "--model_name=fare",
        "--endpoint_name=taxi-fare-prod",
        "--service_principal=sp-app-id",
        "--query_group=fare-app",
        "--workload_size=Medium",
        "--workload_type=CPU",
        "--scale_to_zero=false",
        "--champion_version=",  # the job parameter's default: no rollback
    ]
    args = serving.build_parser().parse_args(argv)
    assert (args.scale_to_zero, args.champion_version, args.workload_size) == (False, None, "Medium")
    assert serving.build_parser().parse_args([*argv[:-1], "--champion_version=4"]).champion_version == "4"


@pytest.mark.parametrize("name", ["databricks-fare", "taxi.fare", "taxi fare", ""])
def test_endpoint_names_databricks_refuses_are_refused(name: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        serving.endpoint_name_arg(name)


@pytest.mark.parametrize("value", ["yes", "1", ""])
def test_booleans_are_true_or_false(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        serving.bool_arg(value)


def test_served_predictions_must_equal_batch_scoring() -> None:
    batch = np.array([12.5, 7.25, 30.0])
    assert smoke_test.compare([12.5, 7.25, 30.0000000001], batch) < 1e-6
    with pytest.raises(smoke_test.SmokeTestError, match="differ from batch scoring"):
        smoke_test.compare([12.5, 7.25, 31.0], batch)
    with pytest.raises(smoke_test.SmokeTestError, match="2 predictions for 3 rows"):
        smoke_test.compare([12.5, 7.25], batch)


def test_a_cold_endpoint_is_asked_again_a_refusal_is_not() -> None:
    answers: list[Any] = [
        TemporarilyUnavailable("scaling from zero"),
        TemporarilyUnavailable("still"),
        "answer",
    ]
    slept: list[float] = []

    def query() -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert (
        smoke_test.query_until_ready(query, warmup_seconds=60, poll_seconds=5, sleep=slept.append) == "answer"
    )
    assert slept == [5, 5]
    with pytest.raises(smoke_test.SmokeTestError, match="did not answer within"):
        smoke_test.query_until_ready(
            query_raising(TemporarilyUnavailable("cold")), warmup_seconds=0, poll_seconds=1
        )
    with pytest.raises(BadRequest):
        smoke_test.query_until_ready(
            query_raising(BadRequest("bad input")), warmup_seconds=60, poll_seconds=1
        )


def query_raising(error: Exception) -> Any:
    def query() -> Any:
        raise error

    return query
