"""The one reader of this project's configuration, for every tool: the bundle (databricks.yml with its
includes and targets), the GitHub workflows with the targets and jobs their `databricks bundle` commands name
(shell.py reads each step as bash does), and scripts/patterns.json, the template's manifest of each pattern's
files and facts.

Nothing here talks to Databricks or GitHub: it reads files, and raises ProjectError naming the file it cannot
read."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from repo_tools.shell import BundleCommand, bundle_commands

ROOT = Path(__file__).resolve().parents[2]
PATTERNS = "scripts/patterns.json"
VARIABLE = re.compile(r"\$\{var\.([A-Za-z0-9_]+)\}")
# A GitHub expression ("$" and two braces): its value is known when the workflow runs, not here.
EXPRESSION = "$" + "{" * 2


class ProjectError(Exception):
    """A file of the project that cannot be read or parsed: `path` (relative to the project) and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path, self.reason = path, reason


def read_text(root: Path, relative: str) -> str:
    try:
        return (root / relative).read_text()
    except OSError as error:
        raise ProjectError(relative, str(error)) from None


def read_yaml(root: Path, relative: str) -> Any:
    import yaml  # on first use: scripts/switch-pattern starts without PyYAML, then finds a Python that has it

    try:
        return yaml.safe_load(read_text(root, relative)) or {}
    except yaml.YAMLError as error:
        raise ProjectError(relative, str(error).splitlines()[0]) from None


def merge(base: Any, override: Any) -> Any:
    """Merge as the bundle loader does: mappings key by key, sequences concatenated, the rest replaced."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(override, list):
        return base + copy.deepcopy(override)
    return copy.deepcopy(override)


# --- the bundle ------------------------------------------------------------------------------------------


@dataclass
class Bundle:
    files: dict[str, dict[str, Any]]  # relative path -> parsed content, databricks.yml first

    @classmethod
    def load(cls, root: Path = ROOT) -> Bundle:
        top = read_yaml(root, "databricks.yml")
        files = {"databricks.yml": top}
        for pattern in top.get("include") or []:
            for path in sorted(root.glob(pattern)):
                relative = path.relative_to(root).as_posix()
                files[relative] = read_yaml(root, relative)
        return cls(files)

    @cached_property
    def merged(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for content in self.files.values():
            merged = merge(merged, content)
        return merged

    @property
    def name(self) -> str:
        return str(self.merged["bundle"]["name"])

    @property
    def targets(self) -> dict[str, dict[str, Any]]:
        """Target name -> its own settings, merged over every file."""
        return {name: target or {} for name, target in (self.merged.get("targets") or {}).items()}

    @property
    def default_target(self) -> str | None:
        """The target a command without one deploys (`default: true`)."""
        return next((name for name, target in self.targets.items() if target.get("default")), None)

    def view(self, target: str) -> dict[str, Any]:
        """The configuration as the CLI sees it for one target: the top level overlaid with the target's
        mapping."""
        settings = self.targets[target]
        overlay = {k: v for k, v in settings.items() if k not in ("default", "mode")}
        view = merge({k: v for k, v in self.merged.items() if k != "targets"}, overlay)
        view["mode"] = settings.get("mode")
        return view

    def variable(self, target: str, name: str) -> Any:
        """The value a variable takes in a target: the target's value, else the declared default."""
        value = (self.targets[target].get("variables") or {}).get(name)
        return (
            value
            if value is not None
            else ((self.merged.get("variables") or {}).get(name) or {}).get("default")
        )

    def resolve(self, target: str, text: Any) -> str:
        """A `${var.x}` reference as a target resolves it; a principal lookup resolves to its display name."""
        match = VARIABLE.fullmatch(str(text))
        if not match:
            return str(text)
        value = self.variable(target, match.group(1))
        if isinstance(value, Mapping) and "lookup" in value:
            return str(value["lookup"].get("service_principal", text))
        return str(value)

    def host(self, target: str) -> str:
        return str(self.view(target)["workspace"]["host"]).rstrip("/")

    def jobs(self, target: str) -> dict[str, dict[str, Any]]:
        """The jobs a target deploys: the shared ones and its own."""
        return (self.view(target).get("resources") or {}).get("jobs") or {}

    def lookups(self, target: str) -> dict[str, str]:
        """Variable -> service principal display name, for each `lookup: service_principal:` of a target."""
        found = {}
        for name, value in (self.targets[target].get("variables") or {}).items():
            if isinstance(value, Mapping) and "service_principal" in (value.get("lookup") or {}):
                found[name] = value["lookup"]["service_principal"]
        return found

    def declared_catalogs(self) -> dict[str, tuple[str, list[dict[str, Any]]]]:
        """Catalog name -> (target that declares it, its grants resolved in that target)."""
        declared = {}
        for target, settings in self.targets.items():
            for catalog in ((settings.get("resources") or {}).get("catalogs") or {}).values():
                grants = [
                    {"principal": self.resolve(target, g["principal"]), "privileges": list(g["privileges"])}
                    for g in catalog.get("grants", [])
                ]
                declared[self.resolve(target, catalog["name"])] = (target, grants)
        return declared

    def files_defining_target_job(self, job: str) -> list[str]:
        """The files whose `targets:` give a target the job `job` of their own."""
        return [
            path
            for path, content in self.files.items()
            if any(
                job in (((t or {}).get("resources") or {}).get("jobs") or {})
                for t in (content.get("targets") or {}).values()
            )
        ]


# --- the workflows ---------------------------------------------------------------------------------------


def known(env: Mapping[str, Any] | None) -> dict[str, str | None]:
    """A workflow `env:` as the variables a step starts with; a GitHub expression's value is unknown here."""
    return {k: None if EXPRESSION in str(v) else str(v) for k, v in (env or {}).items()}


@dataclass
class WorkflowJob:
    path: str  # the workflow file, relative to the project
    key: str
    job: dict[str, Any]
    workflow_env: dict[str, str | None]
    on_pull_request: bool
    run_lines: dict[int, int]  # step index -> line of the workflow file its script starts on

    @property
    def workflow(self) -> str:
        return Path(self.path).name

    @property
    def name(self) -> str:
        return str(self.job.get("name", self.key))

    @property
    def environment(self) -> str | None:
        environment = self.job.get("environment")
        return environment.get("name") if isinstance(environment, Mapping) else environment

    @property
    def env(self) -> dict[str, Any]:
        return self.job.get("env") or {}

    @cached_property
    def bundle_commands(self) -> list[BundleCommand]:
        """Every `databricks bundle` command the job's steps run, with its line in the workflow file."""
        return job_bundle_commands(self.job, self.workflow_env, self.run_lines)

    @property
    def targets(self) -> set[str]:
        """The targets the job's bundle commands name (those known from the workflow itself)."""
        return {command.target for command in self.bundle_commands if command.target}

    @property
    def variables(self) -> set[str]:
        """The repository or Environment variables the job reads (`vars.X`)."""
        return set(re.findall(r"\bvars\.([A-Za-z0-9_]+)", json.dumps(self.job)))

    @property
    def secrets(self) -> set[str]:
        """The secrets the job reads, GitHub's own token aside."""
        return set(re.findall(r"\bsecrets\.([A-Za-z0-9_]+)", json.dumps(self.job))) - {"GITHUB_TOKEN"}


MATRIX_VALUE = re.compile(r"\$\{\{\s*matrix\.([A-Za-z0-9_-]+)\s*\}\}")
MAX_MATRIX = 256  # combinations read per job; a larger matrix is left unknown


def matrix_combinations(job: Mapping[str, Any]) -> list[dict[str, str]]:
    """The values of `matrix.<name>` in each run of a job's `strategy.matrix`, as GitHub expands it (lists
    multiplied, `exclude` removed, `include` added or extended); one empty combination without a matrix or
    when the matrix is an expression (`fromJSON(...)`: its values are not known here)."""
    matrix = (job.get("strategy") or {}).get("matrix") if isinstance(job.get("strategy"), Mapping) else None
    if not isinstance(matrix, Mapping):
        return [{}]
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    if not all(isinstance(values, list) for values in axes.values()):
        return [{}]
    combinations: list[dict[str, Any]] = [{}]
    for name, values in axes.items():
        combinations = [{**c, name: v} for c in combinations for v in values][: MAX_MATRIX + 1]
    if len(combinations) > MAX_MATRIX:
        return [{}]
    excluded = [e for e in matrix.get("exclude") or [] if isinstance(e, Mapping)]
    combinations = [
        c for c in combinations if not any(all(c.get(k) == v for k, v in e.items()) for e in excluded)
    ]
    for extra in [e for e in matrix.get("include") or [] if isinstance(e, Mapping)]:
        matching = [c for c in combinations if all(c[k] == v for k, v in extra.items() if k in axes)]
        if matching and axes:
            for c in matching:
                c.update({k: v for k, v in extra.items() if k not in axes})
        else:
            combinations.append(dict(extra))
    combinations = [c for c in combinations if c] or [{}]
    return [
        {k: json.dumps(v) if isinstance(v, (dict, list)) else str(v) for k, v in c.items()}
        for c in combinations
    ]


def with_matrix(node: Any, values: Mapping[str, str]) -> Any:
    """A job's settings with each `matrix.<name>` expression replaced by its value in one run."""
    if not values:
        return node
    if isinstance(node, str):
        return MATRIX_VALUE.sub(lambda m: values.get(m.group(1), m.group(0)), node)
    if isinstance(node, Mapping):
        return {k: with_matrix(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [with_matrix(v, values) for v in node]
    return node


def job_bundle_commands(
    job: Mapping[str, Any],
    workflow_env: Mapping[str, str | None] | None = None,
    run_lines: Mapping[int, int] | None = None,
) -> list[BundleCommand]:
    """The `databricks bundle` commands of a workflow job's bash steps, each step read with the variables its
    workflow, job and step `env` set; lines counted from the step's `run_lines` entry (0 without one). A job
    with a `strategy.matrix` is read once per run of the matrix (a target from `matrix.target`, say)."""
    found: list[BundleCommand] = []
    for values in matrix_combinations(job):
        run = with_matrix({"env": job.get("env"), "steps": job.get("steps")}, values)
        job_env = {**(workflow_env or {}), **known(run.get("env"))}
        for index, step in enumerate(run.get("steps") or []):
            script = step.get("run") if isinstance(step, Mapping) else None
            if not isinstance(script, str) or str(step.get("shell", "bash")).split()[0] not in ("bash", "sh"):
                continue
            start = (run_lines or {}).get(index, 0)
            for command in bundle_commands(script, {**job_env, **known(step.get("env"))}):
                command = replace(command, line=start + command.line)
                if command not in found:
                    found.append(command)
    return found


def workflow_paths(root: Path = ROOT) -> list[str]:
    return [p.relative_to(root).as_posix() for p in sorted((root / ".github" / "workflows").glob("*.y*ml"))]


def action_paths(root: Path = ROOT) -> list[str]:
    """The repository's own actions (`.github/actions/<name>/action.yml`): a composite one runs steps too."""
    found = (root / ".github" / "actions").glob("**/action.y*ml")
    return [p.relative_to(root).as_posix() for p in sorted(found)]


def load_with_node(root: Path, relative: str) -> tuple[Any, Any]:
    """A YAML file's node tree (for the lines steps start on) and its data ({} when empty), parsed once."""
    import yaml

    loader = yaml.SafeLoader(read_text(root, relative))
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None) or {}
    except yaml.YAMLError as error:
        raise ProjectError(relative, str(error).splitlines()[0]) from None
    finally:
        loader.dispose()


def load_action(root: Path, relative: str) -> list[WorkflowJob]:
    """A composite action's steps as one job (`runs`), read as a workflow job's; other actions run none."""
    import yaml

    node, action = load_with_node(root, relative)
    runs = action.get("runs") if isinstance(action, Mapping) else None
    if not isinstance(runs, Mapping) or runs.get("using") != "composite":
        return []
    lines = run_lines(yaml.MappingNode("tag:yaml.org,2002:map", [(yaml.ScalarNode("", "jobs"), node)]))
    job = {"steps": runs.get("steps") or []}
    return [WorkflowJob(relative, "runs", job, {}, False, lines.get("runs", {}))]


def load_workflow(root: Path, relative: str) -> list[WorkflowJob]:
    """The jobs of one workflow file. Parsed once, keeping the line each step's script starts on."""
    node, flow = load_with_node(root, relative)
    triggers = flow.get("on", flow.get(True)) or {}  # PyYAML reads the key `on` as True
    on_pull_request = "pull_request" in ([triggers] if isinstance(triggers, str) else triggers)
    lines = run_lines(node)
    return [
        WorkflowJob(
            path=relative,
            key=key,
            job=job,
            workflow_env=known(flow.get("env")),
            on_pull_request=on_pull_request and not job.get("uses"),
            run_lines=lines.get(key, {}),
        )
        for key, job in (flow.get("jobs") or {}).items()
    ]


def run_lines(node: Any) -> dict[str, dict[int, int]]:
    """Job key -> step index -> the 1-based line of the workflow file where the step's script starts."""
    import yaml

    found: dict[str, dict[int, int]] = {}
    jobs = _value(node, "jobs")
    for key_node, job in getattr(jobs, "value", []) if isinstance(jobs, yaml.MappingNode) else []:
        steps = _value(job, "steps")
        for index, step in enumerate(steps.value if isinstance(steps, yaml.SequenceNode) else []):
            script = _value(step, "run")
            if isinstance(script, yaml.ScalarNode):
                block = script.style in ("|", ">")  # the script starts on the line after `run: |`
                found.setdefault(key_node.value, {})[index] = script.start_mark.line + 1 + block
    return found


def _value(node: Any, key: str) -> Any:
    """The value node of `key` in a mapping node (None for anything else)."""
    import yaml

    pairs = node.value if isinstance(node, yaml.MappingNode) else []
    return next((value for k, value in pairs if getattr(k, "value", None) == key), None)


def workflow_jobs(root: Path = ROOT) -> list[WorkflowJob]:
    return [job for relative in workflow_paths(root) for job in load_workflow(root, relative)]


# --- the template's manifest -----------------------------------------------------------------------------


def patterns(root: Path = ROOT) -> dict[str, dict[str, Any]]:
    """Pattern -> the pattern-dependent files it has (`files`) and its facts, as the template wrote them."""
    try:
        return json.loads(read_text(root, PATTERNS))["patterns"]
    except (ValueError, KeyError) as error:
        raise ProjectError(PATTERNS, f"not the template's manifest: {error}") from None
