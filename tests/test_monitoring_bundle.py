"""Monitoring and retraining on the parsed bundle, per pattern and per retraining trigger: the monitor's refresh and
the verdict in every environment's own schema, a first deploy that needs no data, retraining wired where the
pattern's facts say (cookiecutter.json `_patterns`), and the trigger that the `retraining_trigger` answer picks."""

from __future__ import annotations

import ast
import re
from typing import Any

import pytest
from support import COOKIECUTTER_JSON, PATTERNS, Baked

from template_rules import files

ENVIRONMENTS = ("dev", "staging", "prod")
TRAINING_JOB = "${resources.jobs.model_training.id}"
# The resources a deploy creates without any data: no quality_monitors (its table must exist first), and none
# that the CLI refuses under a run_as identity other than the deploying one (run_as.go: serving endpoints,
# quality monitors, apps).
DATA_FREE_RESOURCES = {"jobs", "schemas", "registered_models", "experiments", "catalogs", "volumes"}


def tasks_of(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {task["task_key"]: task for task in job["tasks"]}


def named(task: dict[str, Any]) -> dict[str, Any]:
    return task["python_wheel_task"]["named_parameters"]


def daily_start(job: dict[str, Any]) -> int:
    """Second of the (UTC) day at which a daily Quartz schedule "<s> <min> <h> * * ?" starts the job."""
    assert job["schedule"]["timezone_id"] == "UTC"
    seconds, minutes, hours, *rest = job["schedule"]["quartz_cron_expression"].split()
    assert rest == ["*", "*", "?"], f"not a daily schedule: {job['schedule']}"
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds)


def test_every_environment_refreshes_its_monitor_then_judges_what_batch_inference_wrote(baked: Baked) -> None:
    for target in baked.bundle.targets:
        jobs = baked.bundle.jobs(target)
        (score,) = jobs["batch_inference"]["tasks"]
        tasks = tasks_of(jobs["model_monitoring"])
        refresh, verdict = tasks["refresh"], tasks["verdict"]
        assert refresh["python_wheel_task"]["entry_point"] == "refresh-monitor"
        assert verdict["python_wheel_task"]["entry_point"] == "monitor-model"
        assert verdict["depends_on"] == [{"task_key": "refresh"}], "the verdict reads the refreshed metrics"
        scoring = named(score)
        for task in (refresh, verdict):
            for key in ("catalog", "schema", "model_name"):
                assert named(task)[key] == scoring[key], (target, task["task_key"], key)
            assert named(task)["predictions_table"] == scoring["output_table"], target
        assert jobs["model_monitoring"]["max_concurrent_runs"] == 1
        # Monitoring starts once the day's scoring has finished or timed out.
        scoring_ends = daily_start(jobs["batch_inference"]) + jobs["batch_inference"]["timeout_seconds"]
        assert daily_start(jobs["model_monitoring"]) >= scoring_ends, target


def test_the_monitor_and_its_tables_belong_to_the_environment(baked: Baked) -> None:
    """Tables by bare name in the catalog of the target and the schema resource (development mode's prefix and the
    pull requests' suffix apply); the dashboard in the deployment's folder (a test deployment's destroy removes
    it); the monitor has no schedule of its own to be deleted by the paused presets: the job's schedule refreshes."""
    for target in baked.bundle.targets:
        tasks = tasks_of(baked.bundle.jobs(target)["model_monitoring"])
        refresh, verdict = named(tasks["refresh"]), named(tasks["verdict"])
        assert (refresh["catalog"], refresh["schema"]) == ("${var.catalog}", "${resources.schemas.ml.name}")
        assert "." not in refresh["predictions_table"] and "." not in verdict["verdict_table"]
        assert refresh["assets_dir"].startswith("${workspace.root_path}/"), target
        assert refresh["read_group"] == "${var.read_group}"
        assert "schedule" not in refresh
    for env in ENVIRONMENTS:
        assert baked.bundle.variable(env, "catalog") == baked.context[f"{env}_catalog"]


def test_the_first_deploy_of_an_empty_environment_needs_no_data(baked: Baked) -> None:
    """No bundle resource depends on a table that batch inference creates later: the monitor is made by the refresh
    task once the table exists. So every target deploys on an empty catalog, whoever deploys it."""
    for target in baked.bundle.targets:
        resources = baked.bundle.view(target).get("resources", {})
        assert set(resources) <= DATA_FREE_RESOURCES, (target, set(resources) - DATA_FREE_RESOURCES)
    for relative, content in baked.bundle.files.items():
        assert "quality_monitors" not in str(content), relative


def test_thresholds_are_bundle_variables_with_the_code_s_defaults(baked: Baked) -> None:
    variables = baked.bundle.merged["variables"]
    source = ast.parse(baked.text(f"src/{baked.package}/monitoring.py"))
    (thresholds,) = [n for n in source.body if isinstance(n, ast.ClassDef) and n.name == "MonitoringThresholds"]
    defaults = {n.target.id: ast.literal_eval(n.value) for n in thresholds.body if isinstance(n, ast.AnnAssign)}
    for target in baked.bundle.targets:
        verdict = named(tasks_of(baked.bundle.jobs(target)["model_monitoring"])["verdict"])
        for name in ("max_mae", "max_mean_shift"):
            assert verdict[name] == f"${{var.{name}}}", (target, name)
            assert float(variables[name]["default"]) == defaults[name], name
        assert verdict["granularity"] == "${var.monitoring_granularity}"
    assert variables["monitoring_granularity"]["default"] in ("1 day", "1 week")
    assert all(variables[name].get("description") for name in ("max_mae", "max_mean_shift", "alert_emails"))


def test_failures_and_every_breach_reach_alert_emails(baked: Baked) -> None:
    """The job's on_failure, and the verdict task's own: a breach answered by retraining leaves the run "succeeded
    with failures", which sends no job-level failure notification."""
    spec = baked.bundle.merged["variables"]["alert_emails"]
    assert (spec["type"], spec["default"]) == ("complex", [])
    for target in baked.bundle.targets:
        job = baked.bundle.jobs(target)["model_monitoring"]
        assert job["email_notifications"] == {"on_failure": "${var.alert_emails}"}
        assert tasks_of(job)["verdict"]["email_notifications"] == {"on_failure": "${var.alert_emails}"}


def retraining_tasks(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [task for task in job["tasks"] if task["task_key"] in ("retrain_gate", "retrain") or "run_job_task" in task]


def test_a_verdict_retrains_exactly_where_the_pattern_says(baked: Baked) -> None:
    """Deploy code: the monitoring job of dev, staging and prod runs its own training job after a breach, through a
    gate (no task values from wheel tasks, so no condition_task), at most once per min_hours_between_retrains.
    Deploy models: prod never trains, so no monitoring job ever starts a training."""
    facts = baked.facts
    assert set(facts.retrain_on_verdict) <= set(facts.job_targets["model_training"]) - {"test"}
    for target in baked.bundle.targets:
        jobs = baked.bundle.jobs(target)
        job = jobs["model_monitoring"]
        if target not in facts.retrain_on_verdict:
            assert retraining_tasks(job) == [], target
            continue
        tasks = tasks_of(job)
        gate, retrain = tasks["retrain_gate"], tasks["retrain"]
        assert (gate["depends_on"], gate["run_if"]) == ([{"task_key": "verdict"}], "AT_LEAST_ONE_FAILED")
        assert gate["python_wheel_task"]["entry_point"] == "retrain-gate"
        parameters = named(gate)
        assert parameters["training_job_id"] == TRAINING_JOB
        assert parameters["verdict_table"] == named(tasks["verdict"])["verdict_table"]
        assert parameters["job_run_id"] == named(tasks["verdict"])["job_run_id"] == "{{job.run_id}}"
        assert parameters["min_hours_between_retrains"] == "${var.min_hours_between_retrains}"
        assert int(baked.bundle.variable(target, "min_hours_between_retrains")) >= 24, "no retraining storms"
        assert retrain == {
            "task_key": "retrain",
            "depends_on": [{"task_key": "retrain_gate"}],
            "run_job_task": {"job_id": TRAINING_JOB},
        }
        assert "model_training" in jobs, target
        # The run waits for the training it started: its own timeout covers its tasks and that job's.
        own = sum(task.get("timeout_seconds", 0) for task in job["tasks"])
        assert job["timeout_seconds"] >= own + jobs["model_training"]["timeout_seconds"], target
    if baked.pattern == "deploy_models":
        assert not facts.retrain_on_verdict and "model_training" not in baked.bundle.jobs("prod")


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_gate_s_module_exists_where_the_facts_retrain(pattern: str) -> None:
    """KEEP_WHEN (answers) and _patterns' retrain_on_verdict (facts) must agree: a pattern that retrains on a
    verdict ships retraining.py, one that does not ships no dead code."""
    context = {"deployment_pattern": pattern, "__package_name": "pkg", "create_catalogs": False}
    shipped = {path for path in ("src/pkg/retraining.py", "tests/unit/test_retraining.py")} - set(
        files.pruned_paths(context)
    )
    retrains = bool(COOKIECUTTER_JSON["_patterns"][pattern]["retrain_on_verdict"])
    assert shipped == ({"src/pkg/retraining.py", "tests/unit/test_retraining.py"} if retrains else set())


WEEKLY = {"quartz_cron_expression": "0 0 3 ? * MON", "timezone_id": "UTC", "pause_status": "UNPAUSED"}


def test_the_retraining_trigger_answer_decides_what_retrains(baked: Baked) -> None:
    """schedule: weekly, on the one target that retrains on a schedule (deploy code: prod's training job; deploy
    models: the Train workflow, so that promotion follows). new_data: that target's training job gets a table update
    trigger on input_table instead, unpaused, at most one run a day. Nowhere else a schedule or trigger."""
    facts, answer = baked.facts, baked.context["retraining_trigger"]
    in_job = answer == "new_data" or facts.schedule_in == "training_job"
    for target in facts.job_targets["model_training"]:
        job = baked.bundle.jobs(target)["model_training"]
        here = in_job and target == facts.retraining_target
        if not here:
            assert "schedule" not in job and "trigger" not in job, target
        elif answer == "schedule":
            assert job["schedule"] == WEEKLY and "trigger" not in job, target
        else:
            assert "schedule" not in job, target
            trigger = job["trigger"]
            assert trigger["pause_status"] == "UNPAUSED"
            update = trigger["table_update"]
            assert update["table_names"] == ["${var.input_table}"]
            assert update["condition"] == "ANY_UPDATED"
            assert update["min_time_between_triggers_seconds"] >= 86400, "at most one retraining a day"
            assert update["wait_after_last_change_seconds"] >= 60
    if baked.pattern == "deploy_models":
        schedules = baked.workflows["train.yml"]["on"].get("schedule")
        assert schedules == ([{"cron": "0 3 * * 1"}] if answer == "schedule" else None)
    assert re.search(rf"retraining_trigger: {answer}\b", baked.text("resources/model-training.job.yml"))


def test_the_monitoring_doc_tells_this_project_s_path(baked: Baked) -> None:
    doc, facts = baked.text("docs/monitoring.md"), baked.facts
    for target in baked.bundle.targets:
        assert f"| `{target}` |" in doc, f"docs/monitoring.md: no monitored table for {target}"
    assert f"retraining trigger\n`{baked.context['retraining_trigger']}`" in doc
    assert ("`retrain_gate`" in doc) is bool(facts.retrain_on_verdict)
    assert ("Prod never trains" in doc) is not facts.retrain_on_verdict
    variables = baked.bundle.merged["variables"]
    for name in ("max_mae", "max_mean_shift"):
        assert f"`{name}` ({variables[name]['default']}" in doc, name
    if facts.retrain_on_verdict:
        hours = baked.bundle.variable("prod", "min_hours_between_retrains")
        assert f"`min_hours_between_retrains` ({hours} hours" in doc
        assert f"in `{'`, `'.join(facts.retrain_on_verdict)}` the monitoring job" in doc
