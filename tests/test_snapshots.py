"""Golden output: the default project of each pattern is committed under tests/snapshots/<pattern>/, so every
template change is reviewed as a diff of what users get. Refresh with `scripts/test --update-snapshots`."""

from __future__ import annotations

import shutil

import pytest
from support import REPO, Baked

SNAPSHOTS = REPO / "tests" / "snapshots"


def snapshot_files(root) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_default_project_matches_its_snapshot(baked_default: Baked, request: pytest.FixtureRequest) -> None:
    snapshot = SNAPSHOTS / baked_default.pattern
    if request.config.getoption("--update-snapshots"):
        shutil.rmtree(snapshot, ignore_errors=True)
        shutil.copytree(baked_default.path, snapshot)
    assert snapshot.is_dir(), f"no snapshot for {baked_default.pattern}: run scripts/test --update-snapshots"
    expected, actual = snapshot_files(snapshot), snapshot_files(baked_default.path)
    assert sorted(actual) == sorted(expected), "the generated file set changed"
    changed = [name for name in expected if expected[name] != actual[name]]
    assert changed == [], "generated files changed; review the diff and refresh with --update-snapshots"
