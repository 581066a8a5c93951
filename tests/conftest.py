"""Fixtures: one bake per combination of answers, shared by every test that asserts on it."""

from __future__ import annotations

import os
from typing import Any

import pytest
from support import PATTERNS, Baked, combo_id, matrix

# Generated code imports mlflow; keep it quiet and local.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

MATRIX = matrix()


def _bake(cookies_session: Any, answers: dict[str, Any]) -> Baked:
    result = cookies_session.bake(extra_context=answers)
    assert result.exit_code == 0, f"bake failed for {answers}: {result.exception!r}"
    assert result.exception is None
    return Baked(path=result.project_path, context=dict(result.context))


@pytest.fixture(scope="session", params=MATRIX, ids=combo_id)
def baked(request: pytest.FixtureRequest, cookies_session: Any) -> Baked:
    """Every combination of choices and booleans in cookiecutter.json, baked once per session."""
    return _bake(cookies_session, request.param)


@pytest.fixture(scope="session", params=PATTERNS, ids=lambda p: f"pattern:{p}")
def baked_default(request: pytest.FixtureRequest, cookies_session: Any) -> Baked:
    """The defaults of each deployment pattern (what `--no-input deployment_pattern=…` gives)."""
    return _bake(cookies_session, {"deployment_pattern": request.param})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-snapshots",
        action="store_true",
        default=False,
        help="rewrite tests/snapshots/ from the current template (then review the diff)",
    )
