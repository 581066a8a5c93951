"""The hooks, rendered and tested directly: validation rules, refusal of bad answers, injection, pruning."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from cookiecutter.generate import generate_context, generate_files
from cookiecutter.prompt import prompt_for_config
from support import COOKIECUTTER_JSON, QUESTIONS, REPO, render, rendered_hook

from template_rules import answers, files


def default_context(**overrides: Any) -> dict[str, Any]:
    """The context cookiecutter builds with --no-input: defaults rendered in order, then overrides."""
    context = generate_context(context_file=str(REPO / "cookiecutter.json"), extra_context=overrides)
    return dict(prompt_for_config(context, no_input=True))


def test_choice_lists_match_cookiecutter_json() -> None:
    choices = {key: tuple(COOKIECUTTER_JSON[key]) for key in QUESTIONS if isinstance(COOKIECUTTER_JSON[key], list)}
    assert choices == answers.CHOICES
    booleans = tuple(key for key in QUESTIONS if isinstance(COOKIECUTTER_JSON[key], bool))
    assert booleans == answers.BOOLEANS


def test_every_question_has_a_rule_and_a_prompt() -> None:
    ruled = {rule.key for rule in answers.RULES}
    assert ruled == {*QUESTIONS, "__package_name"}
    assert set(QUESTIONS) == set(COOKIECUTTER_JSON["__prompts__"])


def test_defaults_are_valid_for_every_cloud() -> None:
    for cloud in answers.CHOICES["cloud"]:
        assert answers.validate(default_context(cloud=cloud)) == []


def test_defaults_are_valid_when_the_bundle_creates_the_catalogs() -> None:
    """With create_catalogs the catalogs default to names of the project's own, which the ownership rule accepts."""
    for pattern in answers.CHOICES["deployment_pattern"]:
        context = default_context(deployment_pattern=pattern, create_catalogs=True, project_name="Fraud Scoring")
        assert [context[f"{env}_catalog"] for env in answers.ENVIRONMENTS] == [
            "fraud_scoring_dev",
            "fraud_scoring_staging",
            "fraud_scoring_prod",
        ]
        assert answers.validate(context) == []


def test_only_the_catalogs_the_bundle_owns_must_be_the_project_s() -> None:
    """Deploy code never declares the dev catalog (an admin makes it, often shared): a shared name stays allowed."""
    assert answers.validate(default_context(create_catalogs=True, dev_catalog="dev")) == []
    assert answers.validate(default_context(create_catalogs=False)) == []
    refused = answers.validate(
        default_context(create_catalogs=True, deployment_pattern="deploy_models", dev_catalog="dev")
    )
    assert [line.split(": ", 2)[1] for line in refused] == ['dev_catalog="dev"']


# (key, bad value, words the message must contain[, the other answers that make it bad])
BAD_ANSWERS = [
    ("project_name", "", "one line"),
    ("project_name", "two\nlines", "one line"),
    ("project_slug", "Fraud Scoring", "lowercase"),
    ("project_slug", "9lives", "lowercase"),
    ("project_slug", "class", "keyword"),
    ("description", "x" * 301, "300"),
    ("deployment_pattern", "deploy_everything", "deploy_code, deploy_models"),
    ("cloud", "oracle", "aws, azure, gcp"),
    ("compute", "gpu", "serverless, job_cluster"),
    ("ci_auth", "pat", "github_oidc, client_secret"),
    ("create_catalogs", "yes", "true or false"),
    ("github_repository", "not a repo", "owner/name"),
    ("dev_workspace_host", "http://dev.cloud.databricks.com", "https"),
    ("staging_workspace_host", "https://adb-1.1.azuredatabricks.net/?o=1", "host only"),
    ("prod_workspace_host", "prod.cloud.databricks.com", "https"),
    ("dev_catalog", "my catalog", "Unity Catalog"),
    ("staging_catalog", "main.staging", "Unity Catalog"),
    ("prod_catalog", "prod/x", "Unity Catalog"),
    ("schema_name", "Fraud-Scoring", "Unity Catalog"),
    ("model_name", "fraud model", "Unity Catalog"),
    ("prod_catalog", "dev", "differ"),
    ("staging_catalog", "dev", "differ"),
    ("default_branch", "feature..x", "git branch"),
    ("release_branch", "rel ease", "git branch"),
    ("release_branch", "main", "differ"),
    ("read_group", "", "group name"),
    ("read_group", "a;rm -rf /", "group name"),
    # Each case a user actually tried.
    ("project_name", "   ", "one line"),
    ("project_name", "!!!", "letter or a digit"),
    ("project_slug", "a" * 65, "at most 64"),
    ("project_slug", "ac/dc-model", "lowercase"),
    ("__package_name", "../../../x", "derived from project_slug"),
    ("github_repository", "my-org/..", "not '.', '..'"),
    ("github_repository", "my-org/.", "not '.', '..'"),
    ("github_repository", "my-org/x.git", "ending in '.git'"),
    ("github_repository", "-org/x", "owner/name"),
    ("dev_workspace_host", "https://10.0.0.1", "not an IP address"),
    ("staging_workspace_host", "https://staging.cloud.databricks.com:70000", "port from 1 to 65535"),
    ("staging_workspace_host", "https://staging.cloud.databricks.com:0", "port from 1 to 65535"),
    ("prod_workspace_host", "https://adb-3.3.azuredatabricks.net", "workspace of AWS"),
    ("prod_workspace_host", "https://databricks.example.com", "*.cloud.databricks.com"),
    ("dev_catalog", "system", "reserves"),
    ("staging_catalog", "hive_metastore", "reserves"),
    ("prod_catalog", "samples", "reserves"),
    ("prod_catalog", "system_ml", "reserves"),
    ("schema_name", "information_schema", "reserved"),
    ("schema_name", "default", "shared schema"),
    ("default_branch", "refs/heads/main", "without refs/heads/"),
    ("default_branch", "HEAD", "git branch"),
    ("default_branch", "feature/.hidden", "git branch"),
    ("release_branch", "release.lock", "git branch"),
    ("release_branch", "release/", "git branch"),
    ("release_branch", "v1.", "git branch"),
    ("read_group", "users", "workspace-local"),
    ("read_group", "account users", "everyone in the account"),
    ("read_group", "admins", "workspace-local"),
    # Issue 17: the bundle owns the grants of the catalogs it creates; a shared catalog's other users would lose theirs.
    ("prod_catalog", "prod", "its name must contain taxi_fare_model", {"create_catalogs": True}),
    ("staging_catalog", "ml_staging", "not one other teams share", {"create_catalogs": True}),
    ("prod_catalog", "taxi_fare_modelprod", "of this project alone", {"create_catalogs": True}),
    ("dev_catalog", "dev", "owns its grants", {"create_catalogs": True, "deployment_pattern": "deploy_models"}),
]
BAD_CASES = [(key, value, words, others[0] if others else {}) for key, value, words, *others in BAD_ANSWERS]


@pytest.mark.parametrize(
    ("key", "value", "words", "others"), BAD_CASES, ids=[f"{k}={v!r}"[:40] for k, v, *_ in BAD_CASES]
)
def test_rule_refuses_bad_answer(key: str, value: Any, words: str, others: dict[str, Any]) -> None:
    context = default_context(**others)
    context[key] = value
    errors = answers.validate(context)
    mine = [e for e in errors if e.startswith(f"ERROR: {key}={json.dumps(value)}: ")]
    assert mine, errors
    assert any(words in e for e in mine), mine
    assert all(". Example: " in e for e in mine)
    # The example given must itself satisfy the rule it illustrates (checked against a valid context).
    rule = next(r for r in answers.RULES if r.key == key and f"{answers.text(r.rule, context)}. Example: " in mine[0])
    fixed = default_context(**others)
    fixed[key] = answers.text(rule.example, fixed) if not isinstance(COOKIECUTTER_JSON[key], bool) else False
    assert rule.ok(fixed[key], fixed)


def bake_cli(tmp_path: Path, *answers: str, template: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run the real cookiecutter CLI, as a user would, in an isolated home."""
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(tmp_path / "out"), str(template), *answers],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_reports_every_problem_at_once_and_leaves_nothing(tmp_path: Path) -> None:
    result = bake_cli(
        tmp_path,
        "prod_catalog=dev",
        "dev_workspace_host=http://dev",
        "default_branch=a..b",
        "model_name=Bad Model",
        "read_group=",
    )
    assert result.returncode != 0
    for key in ("prod_catalog", "dev_workspace_host", "default_branch", "model_name", "read_group"):
        assert f"ERROR: {key}=" in result.stderr, result.stderr
    assert "5 answer(s) refused" in result.stderr
    assert list((tmp_path / "out").glob("*")) == []


def test_cli_refuses_a_choice_outside_its_list(tmp_path: Path) -> None:
    result = bake_cli(tmp_path, "deployment_pattern=deploy_everything")
    assert result.returncode != 0
    assert "deploy_everything" in result.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").glob("*")) == []


def test_cli_defaults_bake(tmp_path: Path) -> None:
    result = bake_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "taxi-fare-model" / "databricks.yml").is_file()


HOSTILE = {
    "project_name": 'Fraud """ \'Scoring\' \\ {{ 7*7 }} __import__("os").system("touch pwned")',
    "description": 'Quotes " \' """ and a backslash \\ and {% raw %} and {{ cookiecutter.x }}: é ✓',
    "read_group": "data scientists",
}


def test_hook_reads_hostile_answers_as_data(tmp_path: Path) -> None:
    """Render the pre-gen hook with hostile answers and run it as cookiecutter does: nothing runs, values survive."""
    context = default_context()
    context.update(HOSTILE)
    script = tmp_path / "pre_gen_project.py"
    script.write_text(render((REPO / "hooks" / "pre_gen_project.py").read_text(), context))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert not (tmp_path / "pwned").exists()
    # The free text is accepted as data: neither the name nor the description is refused.
    assert "ERROR: project_name=" not in result.stderr
    assert "ERROR: description=" not in result.stderr
    # The rendered module sees the answers exactly as typed.
    module = rendered_hook("pre_gen_project", context)
    seen: dict[str, Any] = {}
    module.validate = lambda answers: seen.update(answers) or []
    assert module.main() == 0
    assert {key: seen[key] for key in HOSTILE} == HOSTILE


def test_hostile_free_text_reaches_generated_files_verbatim(tmp_path: Path) -> None:
    """Interactive answers are not re-rendered by cookiecutter: they must land in TOML/YAML exactly as typed."""
    context = default_context()
    context.update(HOSTILE)
    context["_template"] = str(REPO)
    generate_files(repo_dir=str(REPO), context={"cookiecutter": context}, output_dir=str(tmp_path))
    project = tmp_path / context["project_slug"]
    assert not (project / "pwned").exists() and not (tmp_path / "pwned").exists()
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == HOSTILE["description"]
    bundle = yaml.safe_load((project / "databricks.yml").read_text())
    assert bundle["variables"]["read_group"]["default"] == HOSTILE["read_group"]
    assert HOSTILE["project_name"] in (project / "README.md").read_text()


def test_pruning_is_declarative_and_idempotent(tmp_path: Path) -> None:
    context = default_context(deployment_pattern="deploy_code")
    pruned = files.pruned_paths(context)
    assert ".github/workflows/promote.yml" in pruned
    assert f"src/{context['__package_name']}/promote.py" in pruned
    assert ".github/workflows/deploy.yml" not in pruned
    for relative in [*pruned, "README.md", f"src/{context['__package_name']}/train.py"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x\n")
    files.prune(tmp_path, context)
    after_first = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    files.prune(tmp_path, context)
    after_second = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert after_first == after_second == ["README.md", f"src/{context['__package_name']}/train.py"]


def test_every_pattern_keeps_its_own_files() -> None:
    code = set(files.pruned_paths(default_context(deployment_pattern="deploy_code")))
    models = set(files.pruned_paths(default_context(deployment_pattern="deploy_models")))
    assert ".github/workflows/deploy.yml" in models and ".github/workflows/deploy.yml" not in code
    assert "resources/model-promotion.job.yml" in code and "resources/model-promotion.job.yml" not in models
    assert "resources/catalogs.yml" in code and "resources/catalogs.yml" in models
    assert "resources/catalogs.yml" not in files.pruned_paths(default_context(create_catalogs=True))


def test_hooks_use_no_network_subprocess_or_git() -> None:
    """cruft runs the hooks on each of its internal renders: they, and the rules they import, must only read answers
    and prune files."""
    allowed = {"__future__", "json", "keyword", "os", "re", "shlex", "sys", "shutil", "collections.abc", "pathlib"}
    allowed |= {"typing", "template_rules.answers", "template_rules.files"}
    allowed.add("slugify")  # python-slugify, cookiecutter's own slug filter: the project_slug default
    sources = [REPO / "hooks" / f"{name}.py" for name in ("pre_gen_project", "post_gen_project")]
    for path in [*sources, REPO / "template_rules" / "answers.py", REPO / "template_rules" / "files.py"]:
        tree = ast.parse(path.read_text())
        name = path.name
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert imported <= allowed, f"{name} imports {imported - allowed}"
        calls = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
        processes = ("os.system", "os.popen", "os.exec", "os.spawn", "os.fork", "os.posix_spawn", "os.startfile")
        assert not {c for c in calls if c.startswith((*processes, "subprocess", "eval", "exec", "input"))}, name
        assert {c for c in calls if c.startswith("os.")} <= {
            "os.getcwd",
            "os.makedirs",
            "os.unlink",
            "os.path.join",
            "os.path.isdir",
            "os.path.lexists",
            "os.path.dirname",
        }, name


def test_copying_the_template_keeps_it_bakeable(tmp_path: Path) -> None:
    """The template works from any path (cruft clones it elsewhere)."""
    copy = tmp_path / "tpl"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", ".pytest_cache"))
    result = bake_cli(tmp_path, "deployment_pattern=deploy_models", template=copy)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "taxi-fare-model" / ".github" / "workflows" / "promote.yml").is_file()


def imported_modules(script: Path, cwd: Path) -> set[str]:
    """The modules a script imports (`-X importtime`), start-up included. Isolated and without `site` (`-I -S`), so
    no `.pth` file of the environment imports anything on the script's behalf: the hooks need only the standard
    library and template_rules on a passing bake."""
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-X", "importtime", str(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("hook", ["pre_gen_project", "post_gen_project"])
def test_a_passing_hook_imports_only_what_a_bake_needs(hook: str, tmp_path: Path) -> None:
    """Each hook is a Python process of its own on every bake; `typing`, `pathlib`, `shlex` and `shutil` were a
    tenth of the bake (measured: 2.56 against 2.43 one-file templates, CONTRIBUTING.md). They are imported only to
    type-check, or on the way that reports a refusal; the post-gen hook does not compile the answers' rules."""
    context = {**default_context(), "_template": str(REPO), "_repo_dir": str(REPO), "_output_dir": str(tmp_path)}
    script = tmp_path / f"{hook}.py"
    script.write_text(render((REPO / "hooks" / f"{hook}.py").read_text(), context))
    project = tmp_path / "project"
    project.mkdir()
    imported = imported_modules(script, cwd=project)
    assert "template_rules.files" in imported or "template_rules.answers" in imported, "the probe saw no import"
    assert not imported & {"typing", "pathlib", "shlex", "shutil", "dataclasses", "inspect", "slugify"}, imported
    assert hook == "pre_gen_project" or "template_rules.answers" not in imported


def test_hooks_import_the_rules_of_the_template_being_rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cookiecutter renders a hook from its template's directory: the hook puts that template's rules first on its
    path, not those of the template this process imported them from (scripts/bake renders a clone of HEAD)."""
    copy = tmp_path / "template"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", ".pytest_cache"))
    for directory, root in ((copy, copy), (tmp_path, REPO)):
        monkeypatch.chdir(directory)
        for hook in ("pre_gen_project", "post_gen_project"):
            rendered = render((copy / "hooks" / f"{hook}.py").read_text(), default_context())
            assert f'sys.path.insert(0, json.loads(r""" {json.dumps(str(root))} """))' in rendered, hook
