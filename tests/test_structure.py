"""Every combination bakes, yields exactly the expected files, parses, and leaves no template markup behind."""

from __future__ import annotations

import ast
import fnmatch
import itertools
import json
import re
import runpy
import shutil
import tomllib
from pathlib import Path

import pytest
import yaml
from support import (
    COOKIECUTTER_JSON,
    FULL_MATRIX_SIZE_FLOOR,
    INTERACTING_AXES,
    MATRIX_SIZE_FLOOR,
    REPO,
    TEMPLATE_DIR,
    Baked,
    expected_files,
    full_matrix,
    matrix,
    matrix_axes,
    template_paths,
)

from template_rules import files

# `{{`, `{%` or `{#` not preceded by `$` (GitHub's `${{ }}` is legitimate in workflows), or a cookiecutter reference.
LEFTOVER = re.compile(r"(?<!\$)\{\{|\{%|\{#|cookiecutter\.")
# Databricks dynamic value references, legitimate in bundle resource files only.
DATABRICKS_REFERENCE = re.compile(r"\{\{\s*(job|tasks|task|parent_run|run|workspace|job_run)\.[A-Za-z0-9_.]+\s*\}\}")


def test_matrix_covers_every_choice_and_boolean() -> None:
    combos = matrix()
    assert len(combos) >= MATRIX_SIZE_FLOOR
    assert len({json.dumps(c, sort_keys=True) for c in combos}) == len(combos)
    axes = matrix_axes()
    seen = lambda *keys: {tuple(c[k] for k in keys) for c in combos}  # noqa: E731
    # The interacting axes: their full product.
    assert len(seen(*INTERACTING_AXES)) == len(list(itertools.product(*(axes[k] for k in INTERACTING_AXES))))
    # Every pair of answers at least once: each value of an independent axis with every pattern and auth mode,
    # and with every value of the other independent axes (job-cluster node types differ per cloud; the serving
    # tasks run on either compute).
    for first, second in itertools.combinations(axes, 2):
        assert seen(first, second) == set(itertools.product(axes[first], axes[second])), (first, second)


def test_full_matrix_is_the_whole_product() -> None:
    combos = full_matrix()
    assert len(combos) >= FULL_MATRIX_SIZE_FLOOR
    assert len(combos) == len({json.dumps(c, sort_keys=True) for c in combos})
    assert all(c in combos for c in matrix())


def test_exact_file_set(baked: Baked) -> None:
    expected = expected_files(baked.context)
    actual = baked.files()
    assert sorted(actual - expected) == [], "files the pruning table does not predict"
    assert sorted(expected - actual) == [], "files the pruning table predicts but the bake lacks"


def test_pattern_specific_files(baked: Baked) -> None:
    files = baked.files()
    promote = f"src/{baked.package}/promote.py"
    workflows = {path for path in files if path.startswith(".github/workflows/")}
    common = {f".github/workflows/{name}" for name in ("ci.yml", "integration-tests.yml", "lint-workflows.yml")}
    common.add(".github/workflows/template-update.yml")
    own = {
        "deploy_code": {"deploy.yml"},
        "deploy_models": {"train.yml", "promote.yml", "release.yml"},
        "hybrid": {"deploy.yml", "release.yml"},
    }[baked.pattern]
    assert workflows == common | {f".github/workflows/{name}" for name in own}
    assert (promote in files) is (baked.pattern != "deploy_code"), "every pattern that copies a version promotes"
    assert ("targets/dev-shared.yml" in files) is (baked.pattern == "deploy_models")
    assert {
        path for path in files if path.startswith("docs/") and path.endswith(("code.md", "models.md", "hybrid.md"))
    } == {f"docs/{baked.pattern.replace('_', '-')}.md"}
    assert ("resources/catalogs.yml" in files) is baked.context["create_catalogs"]


def test_every_table_rule_names_a_template_file() -> None:
    """A rule for a path the template does not have would prune nothing and hide a typo."""
    table = files.KEEP_WHEN
    raw = set(template_paths())
    for path in table:
        templated = path.replace("{package}", "{{cookiecutter.__package_name}}")
        assert templated in raw, f"KEEP_WHEN names {path!r}, which is not in {TEMPLATE_DIR.name}/"


def test_no_template_leftovers(baked: Baked) -> None:
    problems = []
    for path in baked.text_files():
        relative = path.relative_to(baked.path).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if relative.startswith("resources/"):
                line = DATABRICKS_REFERENCE.sub("", line)
            if LEFTOVER.search(line):
                problems.append(f"{relative}:{number}: {line.strip()}")
            if "${{" in line and not relative.startswith(".github/"):
                problems.append(f"{relative}:{number}: GitHub expression outside .github/: {line.strip()}")
    assert problems == []


def test_every_structured_file_parses(baked: Baked) -> None:
    parsed = 0
    for path in baked.text_files():
        text = path.read_text()
        if path.suffix in (".yml", ".yaml"):
            assert yaml.safe_load(text) is not None, path
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix == ".json":
            json.loads(text)
        elif path.suffix == ".py":
            ast.parse(text, filename=str(path))
        else:
            continue
        parsed += 1
    assert parsed >= 20


def test_text_files_end_with_one_newline_and_no_tabs(baked: Baked) -> None:
    for path in baked.text_files():
        text = path.read_text()
        assert text.endswith("\n") and not text.endswith("\n\n\n"), path
        if path.suffix in (".yml", ".yaml", ".py", ".toml"):
            assert "\t" not in text, path


def test_no_raw_block_ends_a_line() -> None:
    """trim_blocks eats the newline after a block tag: `x: {% raw %}…{% endraw %}` at a line end would swallow the
    next line. Quote such values instead (`x: "{% raw %}…{% endraw %}"`)."""
    offenders = []
    for relative in template_paths():
        text = (TEMPLATE_DIR / relative).read_text()
        offenders += [f"{relative}:{n}" for n, line in enumerate(text.splitlines(), 1) if line.endswith("{% endraw %}")]
    assert offenders == []


@pytest.mark.parametrize("name", ["pre_gen_project", "post_gen_project"])
def test_hooks_are_valid_python_before_rendering(name: str) -> None:
    """Run as a module (not as cookiecutter's main): valid Python, and its imports of template_rules resolve."""
    hook = runpy.run_path(str(REPO / "hooks" / f"{name}.py"), run_name=f"hook_{name}")
    assert callable(hook["main"])


def test_files_copied_without_rendering_hold_no_template_markup() -> None:
    """`_copy_without_render` saves a Jinja compile per file on every bake; a file matched there must not need one
    (its markup would reach the project as it is)."""
    patterns = COOKIECUTTER_JSON["_copy_without_render"]
    copied = [path for path in template_paths() if any(fnmatch.fnmatch(path, pattern) for pattern in patterns)]
    assert len(copied) >= 20
    for path in copied:
        text = (TEMPLATE_DIR / path).read_text()
        assert not re.search(r"\{\{|\{%|\{#", text), f"{path} is copied without rendering but holds template markup"


def test_text_files_are_lf_in_the_repository_and_the_checkout_whatever_autocrlf_says(
    baked: Baked, tmp_path: Path
) -> None:
    """Issue 25 (noisy): with core.autocrlf=true, a file committed with CRLF made each template update of it one
    conflict, and a script checked out with a CRLF shebang failed to start (exit 127). The project's .gitattributes
    stores and checks out LF; a binary file is left alone."""
    from support import commit_all, run

    project = tmp_path / "project"
    shutil.copytree(baked.path, project)
    run("git", "init", "-q", "-b", "main", cwd=project)
    run("git", "config", "core.autocrlf", "false", cwd=project)  # an editor's CRLF file is committed as it is
    (project / "docs" / "team.md").write_bytes(b"# Team\r\n\r\nWritten on Windows.\r\n")
    (project / "logo.bin").write_bytes(b"\0\r\n\x89PNG\r\n")
    commit_all(project, "bake")
    assert run("git", "ls-files", "--eol", "docs/team.md", cwd=project).stdout.split()[0] == "i/lf"
    run("git", "config", "core.autocrlf", "true", cwd=project)  # Git for Windows' default: CRLF on checkout
    for path in project.rglob("*"):  # a fresh checkout, as a colleague on Windows gets it
        if path.is_file() and ".git" not in path.relative_to(project).parts:
            path.unlink()
    run("git", "checkout", "-q", "--", ".", cwd=project)
    assert b"\r" not in (project / "scripts" / "switch-pattern").read_bytes()
    assert b"\r" not in (project / "docs" / "team.md").read_bytes()
    assert (project / "logo.bin").read_bytes() == b"\0\r\n\x89PNG\r\n"
    result = run(str(project / "scripts" / "switch-pattern"), "--check", cwd=project, check=False)
    assert result.returncode != 127, result.stderr
