"""Golden output: the default project of each pattern is committed under tests/snapshots/<pattern>/, so every
template change is reviewed as a diff of what users get. Refresh with `scripts/test --update-snapshots`.

Each file is stored with a `.golden` suffix so that tools reading the repository (linters, test collection,
duplicate finders) never mistake the snapshot for code of the template itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import REPO, Baked

SNAPSHOTS = REPO / "tests" / "snapshots"
SUFFIX = ".golden"


def project_files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def snapshot_files(root: Path) -> dict[str, str]:
    return {name.removesuffix(SUFFIX): text for name, text in project_files(root).items()}


def write_snapshot(baked: Baked, snapshot: Path) -> None:
    shutil.rmtree(snapshot, ignore_errors=True)
    for name, text in project_files(baked.path).items():
        target = snapshot / f"{name}{SUFFIX}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def test_default_project_matches_its_snapshot(baked_default: Baked, request: pytest.FixtureRequest) -> None:
    snapshot = SNAPSHOTS / baked_default.pattern
    if request.config.getoption("--update-snapshots"):
        write_snapshot(baked_default, snapshot)
    assert snapshot.is_dir(), f"no snapshot for {baked_default.pattern}: run scripts/test --update-snapshots"
    expected, actual = snapshot_files(snapshot), project_files(baked_default.path)
    assert sorted(actual) == sorted(expected), "the generated file set changed"
    changed = [name for name in expected if expected[name] != actual[name]]
    assert changed == [], "generated files changed; review the diff and refresh with --update-snapshots"
