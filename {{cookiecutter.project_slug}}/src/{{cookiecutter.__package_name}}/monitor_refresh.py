"""Keep the data-profiling monitor of the predictions table and refresh it (task ``refresh``).

Databricks data quality monitoring ("data profiling", the successor of Lakehouse Monitoring) computes the
metrics that the verdict task judges (profiling.py). This task, running as the job's identity (the
environment's service principal outside dev), talks to it through the Data Quality API of databricks-sdk
(``WorkspaceClient.data_quality``, the API the documentation describes; ``quality_monitors`` is deprecated):

1. no predictions table yet (batch inference has not run: no champion yet, or not scored yet): nothing to
   profile, the task ends green and says so; the verdict task then decides whether that is expected;
2. turns on the table's change data feed, so each refresh profiles only new rows (Databricks' recommendation);
3. creates the monitor (an inference log: regression, prediction, label, model id and timestamp columns, daily
   and weekly windows, one slice), or brings an existing one to this configuration;
4. refreshes it and waits for the refresh to end: a failed or cancelled refresh fails the task;
5. grants read_group read access to the monitor's dashboard (a failure is logged, the metrics stand).

Why a job and not a ``quality_monitors`` bundle resource: the monitored table must exist when the monitor is
created, and a bundle's first deploy to an empty environment would fail (batch inference creates the table
later); the Databricks CLI also refuses monitors in a bundle whose run_as identity is not the deploying one,
and ``presets.trigger_pause_status: PAUSED`` deletes a monitor's schedule. Here the monitor appears with the
first predictions, belongs to the identity the jobs run as, and is refreshed by this job's own schedule.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from databricks.sdk.errors import NotFound
from databricks.sdk.service.iam import AccessControlRequest, PermissionLevel

try:
    from databricks.sdk.service.dataquality import (
        AggregationGranularity,
        DataProfilingConfig,
        DataProfilingStatus,
        InferenceLogConfig,
        InferenceProblemType,
        Monitor,
        Refresh,
        RefreshState,
    )
except ImportError as error:  # pragma: no cover - an older runtime's databricks-sdk
    raise ImportError(
        "refresh-monitor needs a databricks-sdk with the Data Quality API (the documentation says >= 0.68)"
    ) from error

from . import profiling
from .cli import start_task, task_parser
from .data import DEFAULT_OUTPUT_TABLE, PREDICTION_COLUMN, TIMESTAMP_COLUMN
from .registry import qualify_table
from .runtime import get_spark

logger = logging.getLogger(__name__)

TABLE = "table"  # the Data Quality API's object type of a table monitor
CHANGE_DATA_FEED = "delta.enableChangeDataFeed"
API_GRANULARITIES = {
    "1 day": AggregationGranularity.AGGREGATION_GRANULARITY_1_DAY,
    "1 week": AggregationGranularity.AGGREGATION_GRANULARITY_1_WEEK,
}
# The configuration this task owns; everything else of an existing monitor (a schedule or notifications added
# in the UI, say) is left as it is.
MANAGED_FIELDS = ("output_schema_id", "inference_log", "slicing_exprs")
FINISHED = {
    RefreshState.MONITOR_REFRESH_STATE_SUCCESS,
    RefreshState.MONITOR_REFRESH_STATE_FAILED,
    RefreshState.MONITOR_REFRESH_STATE_CANCELED,
}


class MonitorRefreshError(RuntimeError):
    """The monitor could not be set up or refreshed; raised so the task fails."""


@dataclass(frozen=True)
class Waiting:
    """How long to wait for the monitor and its refresh, and how (injectable for the tests)."""

    poll_seconds: float = 30.0
    timeout_seconds: float = 3000.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def monitor_config(*, output_schema_id: str, assets_dir: str) -> DataProfilingConfig:
    """The inference-log profile of the predictions table (columns: data.py; windows, slice: profiling.py)."""
    return DataProfilingConfig(
        output_schema_id=output_schema_id,
        assets_dir=assets_dir,
        inference_log=InferenceLogConfig(
            problem_type=InferenceProblemType.INFERENCE_PROBLEM_TYPE_REGRESSION,
            prediction_column=PREDICTION_COLUMN,
            label_column=profiling.LABEL_COLUMN,
            model_id_column=profiling.MODEL_ID_COLUMN,
            timestamp_column=TIMESTAMP_COLUMN,
            granularities=[API_GRANULARITIES[granularity] for granularity in profiling.GRANULARITIES],
        ),
        slicing_exprs=list(profiling.SLICING_EXPRS),
    )


def _comparable(config: DataProfilingConfig, field: str) -> Any:
    value = getattr(config, field)
    if isinstance(value, InferenceLogConfig):
        as_dict = value.as_dict()
        return {**as_dict, "granularities": sorted(as_dict.get("granularities", []))}
    return sorted(value) if isinstance(value, list) else value


def changed_fields(current: DataProfilingConfig, wanted: DataProfilingConfig) -> list[str]:
    """The managed fields of an existing monitor that differ from ``wanted``."""
    return [field for field in MANAGED_FIELDS if _comparable(current, field) != _comparable(wanted, field)]


def ensure_monitor(workspace: Any, table_id: str, wanted: DataProfilingConfig) -> Monitor:
    """Create the table's monitor, or update the managed fields of the existing one where they differ."""
    try:
        monitor = workspace.data_quality.get_monitor(object_type=TABLE, object_id=table_id)
    except NotFound:
        logger.info("Creating the data-profiling monitor of table %s.", table_id)
        return workspace.data_quality.create_monitor(
            monitor=Monitor(object_type=TABLE, object_id=table_id, data_profiling_config=wanted)
        )
    current = monitor.data_profiling_config
    if current is None:
        raise MonitorRefreshError(
            f"Table {table_id} has a data quality monitor without data profiling (anomaly detection only?): "
            "remove it or add data profiling to it by hand."
        )
    changed = changed_fields(current, wanted)
    if not changed:
        logger.info("The monitor of table %s is up to date.", table_id)
        return monitor
    logger.info("Updating %s of the monitor of table %s.", ", ".join(changed), table_id)
    mask = ",".join(f"data_profiling_config.{field}" for field in changed)
    return workspace.data_quality.update_monitor(
        object_type=TABLE,
        object_id=table_id,
        monitor=Monitor(object_type=TABLE, object_id=table_id, data_profiling_config=wanted),
        update_mask=mask,
    )


def _wait(what: str, done: Callable[[], bool], waiting: Waiting) -> None:
    deadline = waiting.clock() + waiting.timeout_seconds
    while not done():
        if waiting.clock() >= deadline:
            raise MonitorRefreshError(f"Gave up waiting for {what} after {waiting.timeout_seconds:.0f} s")
        waiting.sleep(waiting.poll_seconds)


def wait_until_active(workspace: Any, table_id: str, waiting: Waiting) -> Monitor:
    """A new or updated monitor is PENDING for a while; a refresh can start once it is ACTIVE."""
    latest: dict[str, Monitor] = {}

    def active() -> bool:
        monitor = workspace.data_quality.get_monitor(object_type=TABLE, object_id=table_id)
        latest["monitor"] = monitor
        status = monitor.data_profiling_config.status if monitor.data_profiling_config else None
        if status in (
            DataProfilingStatus.DATA_PROFILING_STATUS_ERROR,
            DataProfilingStatus.DATA_PROFILING_STATUS_FAILED,
        ):
            message = (
                monitor.data_profiling_config.latest_monitor_failure_message
                if monitor.data_profiling_config
                else ""
            )
            raise MonitorRefreshError(
                f"The monitor of table {table_id} is in state {status.value}: {message}"
            )
        return status == DataProfilingStatus.DATA_PROFILING_STATUS_ACTIVE

    _wait("the monitor to become active", active, waiting)
    return latest["monitor"]


def run_refresh(workspace: Any, table_id: str, waiting: Waiting) -> Refresh:
    """Refresh the metrics and wait for it; first wait for a refresh already under way (one at a time)."""
    api = workspace.data_quality
    for running in api.list_refresh(object_type=TABLE, object_id=table_id):
        if running.state not in FINISHED and running.refresh_id is not None:
            logger.info("Waiting for the refresh %s that is already under way.", running.refresh_id)
            _wait_for_refresh(api, table_id, running.refresh_id, waiting)
    started = api.create_refresh(
        object_type=TABLE, object_id=table_id, refresh=Refresh(object_type=TABLE, object_id=table_id)
    )
    if started.refresh_id is None:
        raise MonitorRefreshError(f"The refresh of table {table_id} did not start: {started}")
    logger.info("Refreshing the metrics of table %s (refresh %s).", table_id, started.refresh_id)
    finished = _wait_for_refresh(api, table_id, started.refresh_id, waiting)
    if finished.state != RefreshState.MONITOR_REFRESH_STATE_SUCCESS:
        state = finished.state.value if finished.state else "unknown"
        raise MonitorRefreshError(
            f"The refresh {finished.refresh_id} of table {table_id} ended {state}: {finished.message}"
        )
    return finished


def _wait_for_refresh(api: Any, table_id: str, refresh_id: int, waiting: Waiting) -> Refresh:
    latest: dict[str, Refresh] = {}

    def finished() -> bool:
        latest["refresh"] = api.get_refresh(object_type=TABLE, object_id=table_id, refresh_id=refresh_id)
        return latest["refresh"].state in FINISHED

    _wait(f"the refresh {refresh_id}", finished, waiting)
    return latest["refresh"]


def share_dashboard(workspace: Any, monitor: Monitor, group: str) -> bool:
    """Read access to the monitor's dashboard for ``group``; False (logged) when it cannot be granted."""
    dashboard_id = monitor.data_profiling_config.dashboard_id if monitor.data_profiling_config else None
    if not dashboard_id:
        logger.warning("The monitor has no dashboard yet: nothing to share with %s.", group)
        return False
    try:
        workspace.permissions.update(
            request_object_type="dashboards",
            request_object_id=dashboard_id,
            access_control_list=[
                AccessControlRequest(group_name=group, permission_level=PermissionLevel.CAN_READ)
            ],
        )
    except Exception as error:  # the metrics stand without it; the log says what a person has to do
        logger.error("Could not give %s read access to the dashboard %s: %s", group, dashboard_id, error)
        return False
    logger.info("The dashboard %s is readable by %s.", dashboard_id, group)
    return True


def enable_change_data_feed(spark: Any, table_name: str, properties: dict[str, str] | None) -> None:
    if (properties or {}).get(CHANGE_DATA_FEED, "").lower() == "true":
        return
    logger.info(
        "Turning on the change data feed of %s (each refresh then profiles the new rows only).", table_name
    )
    spark.sql(f"ALTER TABLE {table_name} SET TBLPROPERTIES ({CHANGE_DATA_FEED} = true)")


def refresh_monitor(
    workspace: Any,
    spark: Any,
    *,
    predictions_table: str,
    assets_dir: str,
    read_group: str,
    waiting: Waiting | None = None,
) -> Refresh | None:
    """Steps 1 to 5 of the module docstring; None when there is no predictions table yet."""
    waiting = waiting or Waiting()
    try:
        table = workspace.tables.get(full_name=predictions_table)
    except NotFound:
        logger.info(
            "No table %s yet: batch inference has not scored a champion here. Nothing to profile; the "
            "verdict task says whether that is expected (docs/monitoring.md, 'The first days').",
            predictions_table,
        )
        return None
    enable_change_data_feed(spark, predictions_table, table.properties)
    schema_name = predictions_table.rsplit(".", 1)[0]
    schema = workspace.schemas.get(full_name=schema_name)
    wanted = monitor_config(output_schema_id=schema.schema_id, assets_dir=assets_dir)
    ensure_monitor(workspace, table.table_id, wanted)
    wait_until_active(workspace, table.table_id, waiting)
    finished = run_refresh(workspace, table.table_id, waiting)
    profile, drift = profiling.metric_tables(predictions_table)
    logger.info("Refreshed: %s and %s (in %s).", profile, drift, schema_name)
    monitor = workspace.data_quality.get_monitor(object_type=TABLE, object_id=table.table_id)
    share_dashboard(workspace, monitor, read_group)
    return finished


def build_parser() -> argparse.ArgumentParser:
    parser = task_parser("refresh-monitor", __doc__.splitlines()[0])
    parser.add_argument(
        "--predictions_table",
        default=DEFAULT_OUTPUT_TABLE,
        help="The monitored table: a name in --catalog.--schema, or a fully qualified catalog.schema.table",
    )
    parser.add_argument("--assets_dir", required=True, help="Workspace folder of the monitor's dashboard")
    parser.add_argument("--read_group", required=True, help="Group given read access to the dashboard")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point ``refresh-monitor``."""
    args = start_task(build_parser(), argv)
    from databricks.sdk import WorkspaceClient

    refresh_monitor(
        WorkspaceClient(),
        get_spark(),
        predictions_table=qualify_table(args.predictions_table, args.catalog, args.schema),
        assets_dir=args.assets_dir,
        read_group=args.read_group,
    )


if __name__ == "__main__":
    main()
