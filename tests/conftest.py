"""Fixtures: one bake per combination of answers, shared by every test that asserts on it.

Each combination is an xdist group (`scripts/test` runs `--dist loadgroup`), so every test of one bake runs on
the worker that baked it: a combination is baked once per run, not once per worker.
"""

from __future__ import annotations

import json
import os
import sys

# The tests import the generated project's tools from the template directory itself: no __pycache__ may appear
# there (cookiecutter would render it into every project). Set before anything imports them.
sys.dont_write_bytecode = True

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from support import COOKIECUTTER_JSON, PATTERNS, Baked, combo_id, full_matrix, git_copy_of_template, matrix  # noqa: E402

# Generated code imports mlflow; keep it quiet and local.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


_BAKES: dict[str, Baked] = {}


def _bake(cookies_session: Any, answers: dict[str, Any]) -> Baked:
    """Bake once per answer set and worker: pytest re-creates a parametrized session fixture whenever the tests of
    another parameter ran in between, and the bakes are read-only to the tests (they copy what they change)."""
    key = json.dumps(answers, sort_keys=True)
    if key not in _BAKES:
        _BAKES[key] = _bake_now(cookies_session, answers)
    return _BAKES[key]


def _bake_now(cookies_session: Any, answers: dict[str, Any]) -> Baked:
    result = cookies_session.bake(extra_context=answers)
    assert result.exit_code == 0, f"bake failed for {answers}: {result.exception!r}"
    assert result.exception is None
    return Baked(path=result.project_path, context=dict(result.context))


def _grouped(answer_sets: list[dict[str, Any]], ids: list[str]) -> list[Any]:
    return [pytest.param(a, id=i, marks=pytest.mark.xdist_group(i)) for a, i in zip(answer_sets, ids, strict=True)]


def _applies(metafunc: pytest.Metafunc, answers: dict[str, Any]) -> bool:
    """`@pytest.mark.answers(key=value)`: the test is collected only for bakes with those answers."""
    marker = metafunc.definition.get_closest_marker("answers")
    return marker is None or all(answers.get(key) == value for key, value in marker.kwargs.items())


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "baked" in metafunc.fixturenames:
        combos = full_matrix() if metafunc.config.getoption("--full-matrix") else matrix()
        combos = [c for c in combos if _applies(metafunc, c)]
        metafunc.parametrize("baked", _grouped(combos, [combo_id(c) for c in combos]), indirect=True, scope="session")
    if "baked_default" in metafunc.fixturenames:
        answers = [{"deployment_pattern": p} for p in PATTERNS if _applies(metafunc, {"deployment_pattern": p})]
        ids = [f"pattern:{a['deployment_pattern']}" for a in answers]
        metafunc.parametrize("baked_default", _grouped(answers, ids), indirect=True, scope="session")
    for name, serving_answers in SERVING_FIXTURES.items():
        if name in metafunc.fixturenames:
            answers = [a for a in serving_answers if _applies(metafunc, a)]
            metafunc.parametrize(
                name, _grouped(answers, [combo_id(a) for a in answers]), indirect=True, scope="session"
            )


# With serving_endpoint: every pattern and auth mode (the serving tests, linters and bundle checks), and the
# defaults of each pattern (the generated project's own tiers, as for baked_default).
SERVING_FIXTURES = {
    "baked_serving": [
        {"deployment_pattern": p, "ci_auth": auth, "serving_endpoint": True}
        for p in PATTERNS
        for auth in COOKIECUTTER_JSON["ci_auth"]
    ],
    "baked_tier": [{"deployment_pattern": p, **extra} for extra in ({}, {"serving_endpoint": True}) for p in PATTERNS],
}


@pytest.fixture(scope="session")
def baked(request: pytest.FixtureRequest, cookies_session: Any) -> Baked:
    """A combination of the matrix (support.matrix, or the full product with --full-matrix), baked once."""
    return _bake(cookies_session, request.param)


@pytest.fixture(scope="session")
def baked_default(request: pytest.FixtureRequest, cookies_session: Any) -> Baked:
    """The defaults of each deployment pattern (what `--no-input deployment_pattern=…` gives)."""
    return _bake(cookies_session, request.param)


def _answer_set_fixture(name: str, doc: str) -> Any:
    """A session fixture baking the answer sets SERVING_FIXTURES[name] (parametrized in pytest_generate_tests)."""

    def fixture(request: pytest.FixtureRequest, cookies_session: Any) -> Baked:
        return _bake(cookies_session, request.param)

    fixture.__doc__ = doc
    return pytest.fixture(scope="session", name=name)(fixture)


baked_serving = _answer_set_fixture("baked_serving", "serving_endpoint on, for each pattern and auth mode.")
baked_tier = _answer_set_fixture("baked_tier", "Each pattern's defaults, serving_endpoint off and on.")


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git copy of the working tree (cruft renders templates from git), one per test module."""
    return git_copy_of_template(tmp_path_factory.mktemp("template"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-snapshots",
        action="store_true",
        default=False,
        help="rewrite tests/snapshots/ from the current template (then review the diff)",
    )
    parser.addoption(
        "--full-matrix",
        action="store_true",
        default=False,
        help="bake the full product of every choice and boolean instead of the rotated matrix",
    )
