"""Helpers shared by the template's tests: the answer matrix, hook loading, expected file sets, YAML views."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from cookiecutter.utils import create_env_with_context
from jinja2 import FileSystemLoader
from repo_tools.project import Bundle

from template_rules import files

REPO = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = REPO / "{{cookiecutter.project_slug}}"
COOKIECUTTER_JSON: dict[str, Any] = json.loads((REPO / "cookiecutter.json").read_text())
QUESTIONS = [key for key in COOKIECUTTER_JSON if not key.startswith("_")]
PATTERNS = COOKIECUTTER_JSON["deployment_pattern"]
BINARY_SUFFIXES = {".png", ".jpg", ".gif", ".whl", ".gz", ".zip"}


# --- the matrix ---------------------------------------------------------------------------------


def matrix_axes() -> dict[str, list[Any]]:
    """Every choice list and boolean of cookiecutter.json: the answers that change files or their content."""
    axes: dict[str, list[Any]] = {}
    for key in QUESTIONS:
        value = COOKIECUTTER_JSON[key]
        if isinstance(value, list):
            axes[key] = list(value)
        elif isinstance(value, bool):
            axes[key] = [value, not value]
    return axes


# Axes whose values change the same files in ways that interact: baked as a full product. Every other axis
# (cloud, compute, retraining_trigger, serving_endpoint) changes its own lines or files and rides along that
# product, so the matrix grows linearly; `--full-matrix` bakes the whole product instead.
INTERACTING_AXES = ("deployment_pattern", "ci_auth", "create_catalogs")


def full_matrix() -> list[dict[str, Any]]:
    """The full product of the axes: one bake per combination."""
    axes = matrix_axes()
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def _pairs(combo: Mapping[str, Any]) -> set[tuple[str, Any, str, Any]]:
    return {(a, combo[a], b, combo[b]) for a, b in itertools.combinations(combo, 2)}


def matrix() -> list[dict[str, Any]]:
    """The product of the interacting axes, with the values of the independent axes chosen so that every pair of
    answers is baked at least once (all-pairs testing), and the matrix grows linearly. Cycling each independent axis
    on its own would lock two axes of the same length together (compute and serving_endpoint would always change at
    once). A depth-first search over the combinations of the product, trying first the values that bake the most new
    pairs and giving up a branch as soon as a pair can no longer be baked by the combinations left: deterministic,
    and at once for these few axes."""
    axes = matrix_axes()
    core = {key: values for key, values in axes.items() if key in INTERACTING_AXES}
    independent = {key: values for key, values in axes.items() if key not in INTERACTING_AXES}
    bases = [dict(zip(core, values, strict=True)) for values in itertools.product(*core.values())]
    rests = [dict(zip(independent, values, strict=True)) for values in itertools.product(*independent.values())]
    every_pair = {(a, x, b, y) for a, b in itertools.combinations(axes, 2) for x in axes[a] for y in axes[b]}

    def possible(pair: tuple[str, Any, str, Any], left: list[dict[str, Any]]) -> bool:
        a, x, b, y = pair
        return any(base.get(a, x) == x and base.get(b, y) == y for base in left)

    def search(chosen: list[dict[str, Any]], baked: set[tuple[str, Any, str, Any]]) -> list[dict[str, Any]] | None:
        if len(chosen) == len(bases):
            return chosen if baked >= every_pair else None
        base, left = bases[len(chosen)], bases[len(chosen) :]
        if not all(possible(pair, left) for pair in every_pair - baked):
            return None
        options = [{key: (base | rest)[key] for key in axes} for rest in rests]  # cookiecutter.json's order
        for option in sorted(options, key=lambda option: -len(_pairs(option) - baked)):
            found = search([*chosen, option], baked | _pairs(option))
            if found is not None:
                return found
        return None

    found = search([], set())
    assert found is not None, "no matrix of this size bakes every pair of answers: add an axis to INTERACTING_AXES"
    return found


def combo_id(combo: Mapping[str, Any]) -> str:
    return "-".join(f"{key}:{str(value).lower()}" for key, value in combo.items())


# --- hooks --------------------------------------------------------------------------------------


def render(text: str, context: Mapping[str, Any]) -> str:
    """Render like cookiecutter does: its environment class, extensions and `_jinja2_env_vars`."""
    env = create_env_with_context({"cookiecutter": {**COOKIECUTTER_JSON, **context}})
    return env.from_string(text).render(cookiecutter=dict(context))


def partial(name: str, context: Mapping[str, Any] | None = None) -> Any:
    """A Jinja partial of templates/ as a module: its `{% set %}` facts and macros, rendered for a context."""
    env = create_env_with_context({"cookiecutter": {**COOKIECUTTER_JSON, **(context or {})}})
    env.loader = FileSystemLoader(str(REPO / "templates"))
    return env.get_template(name).make_module({"cookiecutter": {**COOKIECUTTER_JSON, **(context or {})}})


def rendered_hook(name: str, context: Mapping[str, Any]) -> types.ModuleType:
    """hooks/<name>.py rendered for a context exactly as cookiecutter renders it, then imported: the code that runs."""
    source = render((REPO / "hooks" / f"{name}.py").read_text(), context)
    module = types.ModuleType(f"rendered_{name}")
    module.__file__ = str(REPO / "hooks" / f"{name}.py")
    sys.modules[module.__name__] = module  # dataclasses/NamedTuple need the module registered
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


# --- git repositories (cruft needs them) ------------------------------------------------------------------

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def run(
    *args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A command with a fixed git identity, no standard input (nothing may prompt) and this venv's tools first on
    PATH (generated scripts such as scripts/switch-pattern run through their shebang with the pinned tools)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run(
        args,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **GIT_ENV, "PATH": path, **(env or {})},
    )
    if check:
        assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def commit_all(repo: Path, message: str) -> None:
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-q", "--allow-empty", "-m", message, cwd=repo)


def git_copy_of_template(parent: Path) -> Path:
    """A git repository holding the working tree of this template: cruft renders templates from git."""
    repo = parent / "databricks-ml-template"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", "*.pyc"))
    run("git", "init", "-q", "-b", "main", cwd=repo)
    commit_all(repo, "template")
    return repo


# --- expected files -----------------------------------------------------------------------------


def template_paths() -> list[str]:
    return sorted(p.relative_to(TEMPLATE_DIR).as_posix() for p in TEMPLATE_DIR.rglob("*") if p.is_file())


def expected_files(context: Mapping[str, Any]) -> set[str]:
    """Every template file, its name rendered, minus what the post-gen table prunes for this context."""
    pruned = set(files.pruned_paths(context))
    rendered = {render(path, context) for path in template_paths()}
    kept = {path for path in rendered if not any(path == p or path.startswith(p + "/") for p in pruned)}
    return kept | {files.MANIFEST}  # written by the hook itself


# --- a baked project ----------------------------------------------------------------------------


@dataclass
class Baked:
    path: Path
    context: dict[str, Any]

    @property
    def pattern(self) -> str:
        return self.context["deployment_pattern"]

    @property
    def package(self) -> str:
        return self.context["__package_name"]

    def files(self) -> set[str]:
        return {p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()}

    def text_files(self) -> Iterator[Path]:
        for path in sorted(self.path.rglob("*")):
            if path.is_file() and path.suffix not in BINARY_SUFFIXES:
                yield path

    def text(self, relative: str) -> str:
        return (self.path / relative).read_text()

    def yaml(self, relative: str) -> Any:
        return yaml.safe_load(self.text(relative))

    @cached_property
    def workflows(self) -> dict[str, dict[str, Any]]:
        """Parsed workflows by file name. PyYAML reads the key `on` as True; normalise it back."""
        flows = {}
        for path in sorted((self.path / ".github" / "workflows").glob("*.yml")):
            data = yaml.safe_load(path.read_text())
            if True in data:
                data["on"] = data.pop(True)
            flows[path.name] = data
        return flows

    @cached_property
    def facts(self) -> Any:
        """The pattern facts the template itself uses (templates/pattern.j2), for this bake's answers."""
        return partial("pattern.j2", self.context)

    @cached_property
    def bundle(self) -> Bundle:
        """The bundle as the generated tools read it (repo_tools.project: includes merged as the CLI merges them)."""
        return Bundle.load(self.path)


# --- bundle configuration -----------------------------------------------------------------------


def grants_of(resource: Mapping[str, Any]) -> dict[str, set[str]]:
    """Principal -> privileges of a UC resource's grants; the CLI merges repeated grants of one principal."""
    grants: dict[str, set[str]] = {}
    for grant in resource.get("grants", []):
        grants.setdefault(grant["principal"], set()).update(grant["privileges"])
    return grants


VAR_REFERENCE = re.compile(r"\$\{var\.([A-Za-z0-9_]+)")


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from walk_strings(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)


# 3 patterns x 2 auth modes x create_catalogs, with clouds, computes, retraining triggers and serving_endpoint riding
# along; the full product is 3 x 3 x 2 x 2 x 2 x 2 x 2. A shrinking matrix is a regression.
MATRIX_SIZE_FLOOR = 12
FULL_MATRIX_SIZE_FLOOR = 288
