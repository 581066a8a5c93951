"""The refresh task against a fake workspace that answers with databricks-sdk's own types: the monitor is
created once the predictions table exists, kept up to date, refreshed and waited for; failures fail it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from databricks.sdk.errors import NotFound, PermissionDenied
from databricks.sdk.service.catalog import SchemaInfo, TableInfo
from databricks.sdk.service.dataquality import (
    AggregationGranularity,
    DataProfilingStatus,
    InferenceProblemType,
    Monitor,
    Refresh,
    RefreshState,
)

from {{ cookiecutter.__package_name }} import monitor_refresh
from {{ cookiecutter.__package_name }}.monitor_refresh import MonitorRefreshError, Waiting

TABLE = "prod.taxi.predictions"
TABLE_ID = "7d5f1c2e-0000-4000-8000-000000000001"
SCHEMA_ID = "3a1b2c4d-0000-4000-8000-000000000002"
ASSETS = "/Workspace/Users/sp/.bundle/taxi/prod/monitoring"
SUCCESS, RUNNING = RefreshState.MONITOR_REFRESH_STATE_SUCCESS, RefreshState.MONITOR_REFRESH_STATE_RUNNING


@dataclass
class FakeDataQuality:
    """The Data Quality API of a workspace: monitors by table id, refreshes ending after ``refresh_polls``."""

    monitors: dict[str, Monitor] = field(default_factory=dict)
    refreshes: list[Refresh] = field(default_factory=list)
    refresh_polls: int = 1
    refresh_outcome: RefreshState = SUCCESS
    pending_polls: int = 0
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def get_monitor(self, object_type: str, object_id: str) -> Monitor:
        if object_id not in self.monitors:
            raise NotFound(f"Cannot find Monitor with ID: /tables:{object_id}/")
        monitor = self.monitors[object_id]
        config = monitor.data_profiling_config
        if config is not None and self.pending_polls:
            self.pending_polls -= 1
            return replace(
                monitor,
                data_profiling_config=replace(
                    config, status=DataProfilingStatus.DATA_PROFILING_STATUS_PENDING
                ),
            )
        return monitor

    def create_monitor(self, monitor: Monitor) -> Monitor:
        self.calls.append(("create", monitor.object_id))
        config = replace(
            monitor.data_profiling_config,
            status=DataProfilingStatus.DATA_PROFILING_STATUS_ACTIVE,
            dashboard_id="d-1",
        )
        self.monitors[monitor.object_id] = replace(monitor, data_profiling_config=config)
        return self.monitors[monitor.object_id]

    def update_monitor(self, object_type: str, object_id: str, monitor: Monitor, update_mask: str) -> Monitor:
        self.calls.append(("update", object_id, update_mask))
        current = self.monitors[object_id].data_profiling_config
        changes = {path.removeprefix("data_profiling_config."): None for path in update_mask.split(",")}
        wanted = monitor.data_profiling_config
        self.monitors[object_id] = replace(
            self.monitors[object_id],
            data_profiling_config=replace(current, **{name: getattr(wanted, name) for name in changes}),
        )
        return self.monitors[object_id]

    def list_refresh(self, object_type: str, object_id: str) -> list[Refresh]:
        return list(self.refreshes)

    def create_refresh(self, object_type: str, object_id: str, refresh: Refresh) -> Refresh:
        self.calls.append(("refresh", object_id))
        started = Refresh(
            object_type="table", object_id=object_id, refresh_id=100 + len(self.refreshes), state=RUNNING
        )
        self.refreshes.append(started)
        return started

    def get_refresh(self, object_type: str, object_id: str, refresh_id: int) -> Refresh:
        index = next(i for i, refresh in enumerate(self.refreshes) if refresh.refresh_id == refresh_id)
        if self.refresh_polls > 0:
            self.refresh_polls -= 1
        else:
            self.refreshes[index] = replace(self.refreshes[index], state=self.refresh_outcome, message="done")
        return self.refreshes[index]


@dataclass
class FakeWorkspace:
    tables_by_name: dict[str, TableInfo]
    data_quality: FakeDataQuality = field(default_factory=FakeDataQuality)
    grants: list[tuple[str, str, Any]] = field(default_factory=list)
    grant_error: Exception | None = None

    @property
    def tables(self) -> Any:
        return self

    @property
    def schemas(self) -> Any:
        return self

    @property
    def permissions(self) -> Any:
        return self

    def get(self, full_name: str) -> Any:
        if full_name.count(".") == 1:
            return SchemaInfo(full_name=full_name, schema_id=SCHEMA_ID)
        if full_name not in self.tables_by_name:
            raise NotFound(f"Table '{full_name}' does not exist.")
        return self.tables_by_name[full_name]

    def update(
        self, request_object_type: str, request_object_id: str, access_control_list: list[Any]
    ) -> None:
        if self.grant_error:
            raise self.grant_error
        self.grants.append((request_object_type, request_object_id, access_control_list))


class FakeSpark:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def sql(self, statement: str) -> None:
        self.statements.append(statement)


class Clock:
    """Simulated time: sleeping moves it on, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def waiting(self, timeout: float = 600.0) -> Waiting:
        return Waiting(poll_seconds=30.0, timeout_seconds=timeout, sleep=self.sleep, clock=lambda: self.now)


def workspace(properties: dict[str, str] | None = None) -> FakeWorkspace:
    return FakeWorkspace({TABLE: TableInfo(full_name=TABLE, table_id=TABLE_ID, properties=properties)})


def refresh(
    ws: FakeWorkspace, spark: FakeSpark | None = None, clock: Clock | None = None, **kwargs: Any
) -> Any:
    return monitor_refresh.refresh_monitor(
        ws,
        spark or FakeSpark(),
        predictions_table=TABLE,
        assets_dir=ASSETS,
        read_group="data-scientists",
        waiting=(clock or Clock()).waiting(**kwargs),
    )


def test_the_monitor_is_an_inference_log_of_the_predictions_table_in_its_own_schema() -> None:
    config = monitor_refresh.monitor_config(output_schema_id=SCHEMA_ID, assets_dir=ASSETS)
    log = config.inference_log
    assert (config.output_schema_id, config.assets_dir) == (SCHEMA_ID, ASSETS)
    assert log.problem_type == InferenceProblemType.INFERENCE_PROBLEM_TYPE_REGRESSION
    assert (log.prediction_column, log.label_column, log.model_id_column, log.timestamp_column) == (
        "prediction",
        "fare_amount",
        "model_version",
        "scored_at",
    )
    assert log.granularities == [
        AggregationGranularity.AGGREGATION_GRANULARITY_1_DAY,
        AggregationGranularity.AGGREGATION_GRANULARITY_1_WEEK,
    ]
    assert config.slicing_exprs == [
        "pickup_zip IN (7114, 11371, 11430) OR dropoff_zip IN (7114, 11371, 11430)"
    ]
    assert config.schedule is None, "the job's schedule refreshes it (presets pause it outside prod)"
    assert Monitor.from_dict(
        Monitor(object_type="table", object_id=TABLE_ID, data_profiling_config=config).as_dict()
    )


def test_first_run_creates_the_monitor_refreshes_it_and_shares_the_dashboard() -> None:
    ws, spark = workspace(), FakeSpark()
    finished = refresh(ws, spark)

    assert finished.state == SUCCESS
    assert ws.data_quality.calls == [("create", TABLE_ID), ("refresh", TABLE_ID)]
    assert spark.statements == [f"ALTER TABLE {TABLE} SET TBLPROPERTIES (delta.enableChangeDataFeed = true)"]
    ((kind, dashboard, (grant,)),) = ws.grants
    assert (kind, dashboard, grant.group_name, grant.permission_level.value) == (
        "dashboards",
        "d-1",
        "data-scientists",
        "CAN_READ",
    )


def test_later_runs_only_refresh_and_a_changed_configuration_is_updated_in_place() -> None:
    ws = workspace({"delta.enableChangeDataFeed": "true"})
    spark = FakeSpark()
    refresh(ws, spark)
    refresh(ws, spark)
    assert [call[0] for call in ws.data_quality.calls] == ["create", "refresh", "refresh"]
    assert spark.statements == [], "the change data feed was on already"

    config = ws.data_quality.monitors[TABLE_ID].data_profiling_config
    stale = replace(config, slicing_exprs=["trip_distance > 10"], dashboard_id="d-1")
    ws.data_quality.monitors[TABLE_ID] = replace(
        ws.data_quality.monitors[TABLE_ID], data_profiling_config=stale
    )
    refresh(ws, spark)
    assert ("update", TABLE_ID, "data_profiling_config.slicing_exprs") in ws.data_quality.calls
    assert ws.data_quality.monitors[TABLE_ID].data_profiling_config.slicing_exprs == config.slicing_exprs


def test_no_predictions_table_yet_is_nothing_to_profile() -> None:
    """The first days of an environment: batch inference has not written the table. Nothing is created."""
    ws = FakeWorkspace({})
    assert refresh(ws) is None
    assert ws.data_quality.calls == []
    assert ws.grants == []


def test_it_waits_for_a_new_monitor_and_for_a_refresh_already_running() -> None:
    ws, clock = workspace(), Clock()
    ws.data_quality.pending_polls = 2
    ws.data_quality.refreshes = [
        Refresh(object_type="table", object_id=TABLE_ID, refresh_id=7, state=RUNNING)
    ]
    ws.data_quality.refresh_polls = 2
    refresh(ws, clock=clock)
    assert ws.data_quality.refreshes[0].state == SUCCESS, "the running refresh was waited for"
    assert clock.now >= 4 * 30


def test_a_failed_or_endless_refresh_and_a_broken_monitor_fail_the_task() -> None:
    ws = workspace()
    ws.data_quality.refresh_outcome = RefreshState.MONITOR_REFRESH_STATE_FAILED
    with pytest.raises(MonitorRefreshError, match="ended MONITOR_REFRESH_STATE_FAILED"):
        refresh(ws)

    endless = workspace()
    endless.data_quality.refresh_polls = 10**6
    with pytest.raises(MonitorRefreshError, match="Gave up waiting for the refresh"):
        refresh(endless, timeout=300.0)

    broken = workspace()
    refresh(broken)
    config = broken.data_quality.monitors[TABLE_ID].data_profiling_config
    failed = replace(
        config,
        status=DataProfilingStatus.DATA_PROFILING_STATUS_ERROR,
        latest_monitor_failure_message="no warehouse",
    )
    broken.data_quality.monitors[TABLE_ID] = replace(
        broken.data_quality.monitors[TABLE_ID], data_profiling_config=failed
    )
    with pytest.raises(MonitorRefreshError, match="DATA_PROFILING_STATUS_ERROR: no warehouse"):
        refresh(broken)


def test_a_dashboard_that_cannot_be_shared_is_logged_and_the_metrics_stand(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ws = workspace()
    ws.grant_error = PermissionDenied("not allowed")
    assert refresh(ws).state == SUCCESS
    assert "Could not give data-scientists read access to the dashboard d-1" in caplog.text


def test_the_command_line_takes_the_job_s_parameters(job_parameters: list[str]) -> None:
    common = ["--catalog=c", "--schema=s", "--model_name=m", f"--assets_dir={ASSETS}", "--read_group=g"]
    args = monitor_refresh.build_parser().parse_known_args([*common, *job_parameters])[0]
    assert (args.predictions_table, args.assets_dir, args.read_group) == ("predictions", ASSETS, "g")
    with pytest.raises(SystemExit):
        monitor_refresh.build_parser().parse_args(common[:3])
