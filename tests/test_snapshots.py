"""Golden output: the default project of each pattern is committed under tests/snapshots/<pattern>/, so every
template change is reviewed as a diff of what users get. Refresh with `scripts/test --update-snapshots`.

Each file is stored with a `.golden` suffix so that tools reading the repository (linters, test collection,
duplicate finders) never mistake the snapshot for code of the template itself. The hash-pinned lock files are not
stored: they are copied into every project as they are, so each must equal the template's own file (a lock bump
is reviewed there, once, not three times)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import REPO, TEMPLATE_DIR, Baked

SNAPSHOTS = REPO / "tests" / "snapshots"
SUFFIX = ".golden"
LOCKS = ("requirements/ci.txt", "requirements/template-update.txt")


def project_files(root: Path) -> dict[str, str]:
    files = (p for p in sorted(root.rglob("*")) if p.is_file())
    return {p.relative_to(root).as_posix(): p.read_text() for p in files if p.relative_to(root).as_posix() not in LOCKS}


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
    for lock in LOCKS:
        assert baked_default.text(lock) == (TEMPLATE_DIR / lock).read_text(), lock
