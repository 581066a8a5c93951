"""Keep the environment's model serving endpoint on the ``champion`` version (job task ``serve``).

A Databricks model serving endpoint takes a version number, never an alias, so after every move of
``champion`` this task points the endpoint at the version the alias now holds, and waits until that version
serves. It is idempotent: an endpoint that already serves the champion with the wanted compute gets no
change, a missing one is created, and any other difference is one configuration update.

- **One served entity, named after the alias** (``champion``): its name, and the one traffic route to it,
  stay the same across versions, so nothing that routes by served entity changes with a new version.
- **A failed update changes nothing that serves**: Databricks keeps the previous configuration live until
  the new one is ready; when it fails (``UPDATE_FAILED``) the task raises, naming the version that still
  serves, and the job run fails.
- **No champion, no endpoint**: on an environment that has not deployed a model yet the task logs that and
  succeeds; the endpoint appears with the first champion (the deploy task of the training or promotion job
  runs just before this one).
- **The creator is the environment's service principal**: an endpoint runs as, reads Unity Catalog as, and
  owns its inference table as the identity that created it, for good. The task creates an endpoint only
  when it runs as ``--service_principal`` (the target's ``run_as``), and refuses to manage one a person
  created.
- **Who may do what**: ``CAN_MANAGE`` for the service principal only, ``CAN_QUERY`` for ``--query_group``
  (the callers); the direct permissions are exactly these two.
- **Inference table**: AI Gateway logs every request and response to ``<catalog>.<schema>.serving_payload``
  (:func:`inference_table`), in the environment's own catalog and schema.
- **Rollback** (``--champion_version``): moves ``champion`` back to a version that passed validation in
  this environment, then serves it; batch inference follows the same alias.

Fields that would recreate the endpoint (its name, ``route_optimized``, ``description``) are set once at
creation and never changed here. docs/serving.md tells the whole story.
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import mlflow
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound
from databricks.sdk.service.serving import (
    AiGatewayConfig,
    AiGatewayInferenceTableConfig,
    EndpointCoreConfigInput,
    EndpointStateConfigUpdate,
    EndpointStateReady,
    EndpointTag,
    Route,
    ServedEntityInput,
    ServedEntityOutput,
    ServingEndpointAccessControlRequest,
    ServingEndpointDetailed,
    ServingEndpointPermissionLevel,
    ServingModelWorkloadType,
    TrafficConfig,
)

from .cli import model_version_arg, start_task, task_parser
from .registry import CHAMPION, STATUS_TAG, AliasReader, full_name, get_alias_version

logger = logging.getLogger(__name__)

SERVED_ENTITY = CHAMPION
"""The one served entity of every endpoint, named after the alias it follows."""
INFERENCE_TABLE_PREFIX = "serving"
"""AI Gateway names the payload table ``<prefix>_payload``: ``<catalog>.<schema>.serving_payload``."""
WORKLOAD_SIZES = ("Small", "Medium", "Large")
WORKLOAD_TYPES = tuple(member.value for member in ServingModelWorkloadType)
PASSED = "PASSED"
_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class ServingError(RuntimeError):
    """The endpoint could not be brought to the champion; what still serves is in the message."""


def inference_table(catalog: str, schema: str) -> str:
    """The table AI Gateway logs the endpoint's requests and responses to (the monitoring reads it)."""
    return full_name(catalog, schema, f"{INFERENCE_TABLE_PREFIX}_payload")


def endpoint_name_arg(value: str) -> str:
    """argparse type: Databricks accepts letters, digits, ``-`` and ``_`` (and keeps ``databricks-``)."""
    if not _ENDPOINT_NAME.match(value) or value.startswith("databricks-"):
        raise argparse.ArgumentTypeError(
            "expected an endpoint name of letters, digits, '-' and '_', not starting with 'databricks-'; "
            f"got {value!r}"
        )
    return value


def bool_arg(value: str) -> bool:
    """argparse type for the bundle's ``"true"``/``"false"`` variables."""
    if value.strip().lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return value.strip().lower() == "true"


def optional_version_arg(value: str) -> str | None:
    """argparse type for ``--champion_version``: empty (the job parameter's default) means no rollback."""
    return model_version_arg(value) if value.strip() else None


@dataclass(frozen=True)
class EndpointSpec:
    """What the environment's endpoint must be: the bundle's serving variables, as the task receives them."""

    name: str
    model_name: str  # <catalog>.<schema>.<model>
    catalog: str
    schema: str
    service_principal: str  # application ID: the creator, and the only CAN_MANAGE
    query_group: str
    workload_size: str = "Small"
    workload_type: str = "CPU"
    scale_to_zero: bool = False
    tags: tuple[tuple[str, str], ...] = ()

    def served_entity(self, version: str) -> ServedEntityInput:
        return ServedEntityInput(
            name=SERVED_ENTITY,
            entity_name=self.model_name,
            entity_version=str(version),
            workload_size=self.workload_size,
            workload_type=ServingModelWorkloadType(self.workload_type),
            scale_to_zero_enabled=self.scale_to_zero,
        )

    def traffic(self) -> TrafficConfig:
        return TrafficConfig(routes=[Route(served_model_name=SERVED_ENTITY, traffic_percentage=100)])

    def inference_table_config(self) -> AiGatewayInferenceTableConfig:
        return AiGatewayInferenceTableConfig(
            catalog_name=self.catalog,
            schema_name=self.schema,
            table_name_prefix=INFERENCE_TABLE_PREFIX,
            enabled=True,
        )

    def access_control(self) -> list[ServingEndpointAccessControlRequest]:
        return [
            ServingEndpointAccessControlRequest(
                service_principal_name=self.service_principal,
                permission_level=ServingEndpointPermissionLevel.CAN_MANAGE,
            ),
            ServingEndpointAccessControlRequest(
                group_name=self.query_group, permission_level=ServingEndpointPermissionLevel.CAN_QUERY
            ),
        ]

    def endpoint_tags(self) -> list[EndpointTag]:
        return [EndpointTag(key=key, value=value) for key, value in self.tags]


class Registry(AliasReader, Protocol):
    """The part of ``mlflow.MlflowClient`` that serving uses (rollback moves the alias)."""

    def get_model_version(self, name: str, version: str) -> Any: ...

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None: ...


# --- comparing what serves with what should -------------------------------------------------------------


def served_entity(endpoint: ServingEndpointDetailed) -> ServedEntityOutput | None:
    """The live ``champion`` entity (the configuration that answers requests), if any."""
    entities = (endpoint.config.served_entities if endpoint.config else None) or []
    return next((entity for entity in entities if entity.name == SERVED_ENTITY), None)


def served_version(endpoint: ServingEndpointDetailed) -> str | None:
    """The model version the endpoint serves now."""
    entity = served_entity(endpoint)
    return str(entity.entity_version) if entity and entity.entity_version else None


def serves(endpoint: ServingEndpointDetailed, spec: EndpointSpec, version: str) -> bool:
    """True when the live configuration is exactly one ``champion`` entity as ``spec`` wants it, at
    ``version``, with all traffic routed to it."""
    wanted = spec.served_entity(version)
    config = endpoint.config
    entities = (config.served_entities if config else None) or []
    routes = (config.traffic_config.routes if config and config.traffic_config else None) or []
    routed = [
        (route.served_model_name or route.served_entity_name, route.traffic_percentage) for route in routes
    ]
    if len(entities) != 1 or routed != [(SERVED_ENTITY, 100)]:
        return False
    (entity,) = entities
    workload_type = entity.workload_type or ServingModelWorkloadType.CPU
    return (
        entity.name == wanted.name
        and entity.entity_name == wanted.entity_name
        and str(entity.entity_version) == wanted.entity_version
        and entity.workload_size == wanted.workload_size
        and workload_type == wanted.workload_type
        and bool(entity.scale_to_zero_enabled) == wanted.scale_to_zero_enabled
    )


def missing_tags(endpoint: ServingEndpointDetailed, spec: EndpointSpec) -> list[EndpointTag]:
    """The spec's tags the endpoint lacks or holds with another value (other tags are left alone)."""
    current = {tag.key: tag.value for tag in endpoint.tags or []}
    return [tag for tag in spec.endpoint_tags() if current.get(tag.key) != tag.value]


def inference_table_change(endpoint: ServingEndpointDetailed, spec: EndpointSpec) -> str | None:
    """None when the inference table is as wanted; "enable" when it is off; "move" when it logs elsewhere
    (Databricks changes its catalog, schema or prefix only after it was disabled)."""
    current = endpoint.ai_gateway.inference_table_config if endpoint.ai_gateway else None
    wanted = spec.inference_table_config()
    if current is None or not current.enabled:
        return "enable"
    where = (current.catalog_name, current.schema_name, current.table_name_prefix)
    return None if where == (wanted.catalog_name, wanted.schema_name, wanted.table_name_prefix) else "move"


def direct_permissions(acl: Any) -> set[tuple[str, str]]:
    """(principal, level) of the direct permissions (not inherited ones) of a permissions response, or of a
    request's access control list."""
    found = set()
    for entry in acl or []:
        principal = entry.service_principal_name or entry.group_name or entry.user_name or ""
        levels = getattr(entry, "all_permissions", None)
        if levels is None:  # a request: one level
            found.add((principal, entry.permission_level.value))
            continue
        found |= {(principal, level.permission_level.value) for level in levels if not level.inherited}
    return found


# --- the task ------------------------------------------------------------------------------------------


def find_endpoint(workspace: WorkspaceClient, name: str) -> ServingEndpointDetailed | None:
    try:
        return workspace.serving_endpoints.get(name)
    except NotFound:
        return None


def wait_until_settled(
    workspace: WorkspaceClient, name: str, *, timeout_seconds: float, poll_seconds: float
) -> ServingEndpointDetailed:
    """Poll until no configuration update is in progress. Raises ServingError when the update failed or was
    cancelled (the previous configuration still serves) or did not finish in time."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        endpoint = workspace.serving_endpoints.get(name)
        state = endpoint.state.config_update if endpoint.state else None
        if state == EndpointStateConfigUpdate.NOT_UPDATING:
            return endpoint
        if state in (EndpointStateConfigUpdate.UPDATE_FAILED, EndpointStateConfigUpdate.UPDATE_CANCELED):
            raise ServingError(
                f"The update of endpoint {name} ended {state.value}; it still serves version "
                f"{served_version(endpoint) or 'none'} (see its events and build logs in the Serving UI)."
            )
        if time.monotonic() >= deadline:
            raise ServingError(
                f"Endpoint {name} is still updating after {timeout_seconds / 60:.0f} min; it serves version "
                f"{served_version(endpoint) or 'none'} until it finishes. Run this task again to wait on."
            )
        logger.info("Endpoint %s is updating (%s); next look in %.0f s.", name, state, poll_seconds)
        time.sleep(poll_seconds)


def check_creator(
    workspace: WorkspaceClient, spec: EndpointSpec, endpoint: ServingEndpointDetailed | None
) -> None:
    """The endpoint's identity is its creator's, for good: it must be the environment's service principal."""
    if endpoint is not None:
        if endpoint.creator != spec.service_principal:
            raise ServingError(
                f"Endpoint {spec.name} was created by {endpoint.creator}, not by the environment's service "
                f"principal {spec.service_principal}: it serves, reads Unity Catalog and owns its inference "
                "table as its creator, which cannot change. Delete it (Serving UI, or `databricks "
                f"serving-endpoints delete {spec.name}`) and run this task again as the service principal."
            )
        return
    me = workspace.current_user.me().user_name
    if me != spec.service_principal:
        raise ServingError(
            f"Refusing to create endpoint {spec.name} as {me}: its creator would be its identity for good. "
            f"Start the job instead (`databricks bundle run serving_endpoint -t <target>`): it runs as the "
            f"target's run_as, the service principal {spec.service_principal}."
        )


def rollback(registry: Registry, model_name: str, version: str) -> None:
    """Point ``champion`` back at ``version``, which must have passed validation in this environment."""
    status = (registry.get_model_version(model_name, version).tags or {}).get(STATUS_TAG)
    if status != PASSED:
        raise ServingError(
            f"Version {version} of {model_name} is not a rollback target: its {STATUS_TAG} is "
            f"{status or 'unset'}, not {PASSED} (only a version validated here may become {CHAMPION} again)."
        )
    previous = get_alias_version(registry, model_name, CHAMPION)
    registry.set_registered_model_alias(model_name, CHAMPION, version)
    logger.warning("Rollback: %s of %s moved from version %s to %s.", CHAMPION, model_name, previous, version)


def put_inference_table(
    workspace: WorkspaceClient, endpoint: ServingEndpointDetailed, table: AiGatewayInferenceTableConfig
) -> None:
    """Set the inference table. PUT replaces the whole AI Gateway configuration: what else the endpoint has
    (guardrails, rate limits, usage tracking, fallbacks) is sent back as it is, and only what it has, so an
    older databricks-sdk without one of those fields still works."""
    gateway = (endpoint.ai_gateway or AiGatewayConfig()).as_dict()
    others: dict[str, Any] = {
        key: getattr(endpoint.ai_gateway, key) for key in gateway if key != "inference_table_config"
    }
    workspace.serving_endpoints.put_ai_gateway(str(endpoint.name), inference_table_config=table, **others)


def sync_settings(workspace: WorkspaceClient, endpoint: ServingEndpointDetailed, spec: EndpointSpec) -> None:
    """Tags, inference table and permissions, each changed only when it differs."""
    tags = missing_tags(endpoint, spec)
    if tags:
        workspace.serving_endpoints.patch(spec.name, add_tags=tags)
        logger.info("Endpoint %s: tags %s set.", spec.name, [tag.key for tag in tags])
    change = inference_table_change(endpoint, spec)
    if change == "move":
        logger.warning(
            "Endpoint %s logs to another inference table; disabling it to log to %s from now on.",
            spec.name,
            inference_table(spec.catalog, spec.schema),
        )
        put_inference_table(workspace, endpoint, AiGatewayInferenceTableConfig(enabled=False))
    if change:
        put_inference_table(workspace, endpoint, spec.inference_table_config())
        logger.info("Endpoint %s logs to %s.", spec.name, inference_table(spec.catalog, spec.schema))
    current = workspace.serving_endpoints.get_permissions(str(endpoint.id)).access_control_list
    if direct_permissions(current) != direct_permissions(spec.access_control()):
        workspace.serving_endpoints.set_permissions(
            str(endpoint.id), access_control_list=spec.access_control()
        )
        logger.info(
            "Endpoint %s: CAN_MANAGE for %s, CAN_QUERY for %s.",
            spec.name,
            spec.service_principal,
            spec.query_group,
        )


def serve_champion(
    workspace: WorkspaceClient,
    registry: Registry,
    spec: EndpointSpec,
    *,
    rollback_to: str | None = None,
    timeout_seconds: float = 2400,
    poll_seconds: float = 15,
) -> str | None:
    """Bring the endpoint to the champion (after an optional rollback); returns the version served, or None
    when the model has no champion yet (nothing is created then)."""
    if rollback_to:
        rollback(registry, spec.model_name, rollback_to)
    version = get_alias_version(registry, spec.model_name, CHAMPION)
    if version is None:
        logger.info(
            "%s has no %s yet: no endpoint to serve. %s appears with the first %s.",
            spec.model_name,
            CHAMPION,
            spec.name,
            CHAMPION,
        )
        return None
    waited = {"timeout_seconds": timeout_seconds, "poll_seconds": poll_seconds}
    endpoint = find_endpoint(workspace, spec.name)
    check_creator(workspace, spec, endpoint)
    if endpoint is None:
        logger.info("Creating endpoint %s serving %s version %s.", spec.name, spec.model_name, version)
        workspace.serving_endpoints.create(
            spec.name,
            config=EndpointCoreConfigInput(
                name=spec.name, served_entities=[spec.served_entity(version)], traffic_config=spec.traffic()
            ),
            ai_gateway=AiGatewayConfig(inference_table_config=spec.inference_table_config()),
            tags=spec.endpoint_tags(),
            description=f"Serves the {CHAMPION} of {spec.model_name} (managed by its bundle's serving job).",
        )
        endpoint = wait_until_settled(workspace, spec.name, **waited)
    else:
        if endpoint.state and endpoint.state.config_update == EndpointStateConfigUpdate.IN_PROGRESS:
            logger.info("Endpoint %s has an update in progress; waiting for it first.", spec.name)
            try:
                endpoint = wait_until_settled(workspace, spec.name, **waited)
            except ServingError as error:  # that update's failure is not ours: the live config is what counts
                logger.warning("%s", error)
                endpoint = workspace.serving_endpoints.get(spec.name)
        if serves(endpoint, spec, version):
            logger.info("Endpoint %s already serves version %s as configured.", spec.name, version)
        else:
            previous = served_version(endpoint)
            logger.info("Endpoint %s: version %s -> %s.", spec.name, previous, version)
            workspace.serving_endpoints.update_config(
                spec.name, served_entities=[spec.served_entity(version)], traffic_config=spec.traffic()
            )
            endpoint = wait_until_settled(workspace, spec.name, **waited)
    sync_settings(workspace, endpoint, spec)
    ready = endpoint.state.ready if endpoint.state else None
    if ready != EndpointStateReady.READY or not serves(endpoint, spec, version):
        raise ServingError(
            f"Endpoint {spec.name} settled but is {ready and ready.value} serving version "
            f"{served_version(endpoint) or 'none'}, not version {version}."
        )
    logger.info("Endpoint %s serves %s version %s.", spec.name, spec.model_name, version)
    return version


def build_parser() -> argparse.ArgumentParser:
    parser = task_parser("serve-model", __doc__.splitlines()[0])
    parser.add_argument("--endpoint_name", type=endpoint_name_arg, required=True, help="The serving endpoint")
    parser.add_argument("--service_principal", required=True, help="Application ID: creates, manages it")
    parser.add_argument("--query_group", required=True, help="Group allowed to query it (CAN_QUERY)")
    parser.add_argument("--workload_size", choices=WORKLOAD_SIZES, default="Small", help="Concurrency")
    parser.add_argument("--workload_type", choices=WORKLOAD_TYPES, default="CPU", help="CPU or GPU compute")
    parser.add_argument("--scale_to_zero", type=bool_arg, default=False, help="true: no cost while idle")
    parser.add_argument("--project", default="", help="Tag `project` of the endpoint")
    parser.add_argument("--environment", default="", help="Tag `environment` of the endpoint")
    parser.add_argument(
        "--champion_version",
        type=optional_version_arg,
        default=None,
        help="Rollback: make this validated version the champion first (empty: serve the current champion)",
    )
    parser.add_argument("--timeout_minutes", type=float, default=40, help="How long to wait for the endpoint")
    parser.add_argument("--poll_seconds", type=float, default=15, help="Time between looks at the endpoint")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point ``serve-model``."""
    args = start_task(build_parser(), argv)
    named = (("project", args.project), ("environment", args.environment))
    tags = tuple((key, value) for key, value in named if value)
    spec = EndpointSpec(
        name=args.endpoint_name,
        model_name=full_name(args.catalog, args.schema, args.model_name),
        catalog=args.catalog,
        schema=args.schema,
        service_principal=args.service_principal,
        query_group=args.query_group,
        workload_size=args.workload_size,
        workload_type=args.workload_type,
        scale_to_zero=args.scale_to_zero,
        tags=tags,
    )
    serve_champion(
        WorkspaceClient(),
        mlflow.MlflowClient(),
        spec,
        rollback_to=args.champion_version,
        timeout_seconds=args.timeout_minutes * 60,
        poll_seconds=args.poll_seconds,
    )


if __name__ == "__main__":
    main()
