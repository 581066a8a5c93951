"""The package's dependency direction: job steps on top, the modules they share below.

A step is a module that a console script starts (``[project.scripts]`` in pyproject.toml). A step may import
any shared module but no other step; a shared module imports no step. So a change to one step cannot break
another, and what two steps share has one home below them (CONTRIBUTING.md, "How the package is laid out").
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

import {{ cookiecutter.__package_name }} as package

PACKAGE_DIR = Path(package.__file__).parent
ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
TABLE_ROW = re.compile(r"^\| `(\w+)\.py` \| (.*) \|$", re.MULTILINE)


def modules() -> dict[str, Path]:
    return {path.stem: path for path in sorted(PACKAGE_DIR.glob("*.py")) if path.stem != "__init__"}


def scripts_by_step() -> dict[str, str]:
    """Step module -> its console script's name."""
    scripts = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]
    prefix = f"{package.__name__}."
    return {target.partition(":")[0].removeprefix(prefix): name for name, target in scripts.items()}


def steps() -> set[str]:
    return set(scripts_by_step())


def imported_modules(path: Path) -> set[str]:
    """The modules of this package that ``path`` imports, relatively or absolutely, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module is None:  # from . import data, features
                found.update(alias.name for alias in node.names)
            elif node.level == 1 and node.module:  # from .data import load_table
                found.add(node.module.split(".")[0])
            elif node.level == 0 and node.module == package.__name__:  # from package import data
                found.update(alias.name for alias in node.names)
            elif node.level == 0 and node.module and node.module.startswith(f"{package.__name__}."):
                found.add(node.module.split(".")[1])
            elif node.level > 1:
                raise AssertionError(f"{path.name} imports from outside the package: {ast.unparse(node)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(f"{package.__name__}."):
                    found.add(alias.name.split(".")[1])
    return found & set(modules())


def import_graph() -> dict[str, set[str]]:
    return {name: imported_modules(path) for name, path in modules().items()}


def test_every_console_script_starts_a_module_of_the_package() -> None:
    assert steps(), "pyproject.toml names no console scripts"
    assert steps() <= set(modules()), steps() - set(modules())


@pytest.mark.parametrize("module", sorted(modules()))
def test_no_module_imports_a_step(module: str) -> None:
    """A step imports shared modules only; a shared module imports no step."""
    imported_steps = import_graph()[module] & steps()
    kind = "the step" if module in steps() else "the shared module"
    assert not imported_steps, (
        f"{kind} {module}.py imports the step(s) {sorted(imported_steps)}: move what they share "
        "into a shared module (registry, cli, data, metrics, ...) and import it from there"
    )


def test_the_shared_modules_import_each_other_without_cycles() -> None:
    graph = import_graph()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for imported in sorted(graph[module]):
                visit(imported, (*path, module))
            done.add(module)

    for module in sorted(graph):
        visit(module, ())


def test_contributing_describes_every_module() -> None:
    """CONTRIBUTING.md's two tables: each step with its console script, then each shared module."""
    rows = dict(TABLE_ROW.findall((ROOT / "CONTRIBUTING.md").read_text()))
    assert set(rows) == set(modules()), "CONTRIBUTING.md's tables and src/ list different modules"
    for step, script in scripts_by_step().items():
        assert rows[step].startswith(f"`{script}` |"), f"CONTRIBUTING.md: {step}.py is started by {script}"
    for shared in set(modules()) - steps():
        assert "|" not in rows[shared], f"CONTRIBUTING.md lists {shared}.py among the steps"


BOUNDED_COLLECTS = {("data", "to_pandas_bounded"), ("profiling", "bounded_rows")}
"""The functions that bring a DataFrame's rows to the driver: each takes a limit and refuses more."""


@pytest.mark.parametrize("module", sorted(modules()))
def test_rows_reach_the_driver_only_through_a_bounded_collect(module: str) -> None:
    """The jobs work on Spark's executors: ``collect``, ``toPandas``, ``toArrow`` and ``toLocalIterator``
    appear only inside BOUNDED_COLLECTS, so nothing proportional to a table reaches the driver.
    (tests/e2e/test_scale.py watches the same at run time, with a spy on the session's DataFrame class.)"""
    tree = ast.parse(modules()[module].read_text())
    allowed = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef) and (module, function.name) in BOUNDED_COLLECTS
        for node in ast.walk(function)
    }
    calls = [
        f"line {node.lineno}: .{node.func.attr}()"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and id(node) not in allowed
        and node.func.attr in {"collect", "toPandas", "toArrow", "toLocalIterator"}
    ]
    assert calls == [], f"{module}.py brings rows to the driver outside {sorted(BOUNDED_COLLECTS)}: {calls}"
