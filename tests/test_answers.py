"""Every answer checked, every answer meaningful.

Each case is either refused (the key named, every problem listed once, nothing written anywhere, not even an
empty directory) or accepted (every generated file parses and carries the value as the string it was).
Plain cookiecutter is driven where the template can answer cleanly by itself; scripts/bake where cookiecutter
fails before the template's hook runs.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pexpect
import pytest
import yaml
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from support import COOKIECUTTER_JSON, QUESTIONS, REPO, Baked

from template_rules import answers, files

CLOUDS = COOKIECUTTER_JSON["_clouds"]


def defaults(**overrides: Any) -> dict[str, Any]:
    context = generate_context(context_file=str(REPO / "cookiecutter.json"), extra_context=overrides)
    return dict(prompt_for_config(context, no_input=True))


def errors_by_key(errors: list[str]) -> dict[str, int]:
    keys: dict[str, int] = {}
    for line in errors:
        key = line.removeprefix("ERROR: ").split("=", 1)[0]
        keys[key] = keys.get(key, 0) + 1
    return keys


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if ".cookiecutter_replay" not in p.parts)


# --- the rules --------------------------------------------------------------------------------------


STRING_KEYS = [key for key in [*QUESTIONS, "__package_name"] if isinstance(defaults()[key], str)]


@pytest.mark.parametrize("key", STRING_KEYS)
def test_a_trailing_newline_is_refused_by_every_rule(key: str) -> None:
    """`$` in re.match matches before a final newline; every rule must use fullmatch."""
    context = defaults()
    context[key] = context[key] + "\n"
    if key == "project_slug":  # keep the derived answers consistent so only the slug itself is wrong
        context["__package_name"] = answers._package(context[key])
    assert errors_by_key(answers.validate(context)).get(key) == 1, answers.validate(context)


def test_one_typo_is_one_line() -> None:
    """An empty name is reported once, not again through the slug, schema, model and repository made from it."""
    context = defaults(project_name="")
    assert context["project_slug"] == "-"  # the slug default stays a creatable directory name
    assert errors_by_key(answers.validate(context)) == {"project_name": 1}
    # A derived answer set explicitly is still checked on its own.
    context = defaults(project_name="", schema_name="Bad Schema")
    assert errors_by_key(answers.validate(context)) == {"project_name": 1, "schema_name": 1}


def test_slug_default_of_the_hook_is_the_one_cookiecutter_renders() -> None:
    names = ["Taxi Fare Model", "AC/DC Model", "", "   ", "x" * 10_000, "Café Ωmega", "🚕", "Fraud_Scoring  v2"]
    for name in names:
        assert answers.default_slug(name) == defaults(project_name=name)["project_slug"], name


def test_hosts_follow_the_cloud() -> None:
    for cloud, facts in CLOUDS.items():
        for other, other_facts in CLOUDS.items():
            host = other_facts["placeholder_hosts"]["dev"]
            errors = answers.validate(defaults(cloud=cloud, dev_workspace_host=host))
            assert bool(errors) == (cloud != other), (cloud, host, errors)
        for domain in facts["domains"]:  # sovereign clouds (GovCloud, Azure Government and China) are accepted
            assert answers.validate(defaults(cloud=cloud, prod_workspace_host=f"https://ws-1.{domain}")) == []


# --- plain cookiecutter --------------------------------------------------------------------------------


def cookiecutter(tmp_path: Path, *answers: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "out").mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(tmp_path / "out"), str(REPO), *answers]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)


# (answer, the one key refused)
REFUSED_BY_THE_HOOK = [
    ("project_name=", "project_name"),
    ("project_name=   ", "project_name"),
    ("project_name=" + "x" * 10_000, "project_name"),
    ("__package_name=../../../x", "__package_name"),
    ("default_branch=main\n", "default_branch"),
    ("dev_catalog=system", "dev_catalog"),
    ("dev_workspace_host=https://10.0.0.1:99999", "dev_workspace_host"),
    ("github_repository=my-org/..", "github_repository"),
    ("read_group=account users", "read_group"),
]


@pytest.mark.parametrize(("answer", "key"), REFUSED_BY_THE_HOOK, ids=[a[:30] for a, _ in REFUSED_BY_THE_HOOK])
def test_cookiecutter_refuses_once_and_writes_nothing(tmp_path: Path, answer: str, key: str) -> None:
    result = cookiecutter(tmp_path, answer)
    assert result.returncode != 0
    assert re.findall(r"^ERROR: (\w+)=", result.stderr, re.MULTILINE) == [key], result.stderr
    assert "1 answer(s) refused; nothing was generated." in result.stderr
    assert "--replay-file" in result.stderr  # how to run again with the other answers kept
    assert tree(tmp_path) == ["home", "out"], tree(tmp_path)


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["project_name=AC/DC Model"], {"project_slug": "ac-dc-model", "project_name": "AC/DC Model"}),
        (
            ['description=Fares 🚕 in NYC ✓ "quoted" \\ back\\ud83dslash', "project_name=Fraud 🚕 Scoring"],
            {"description": 'Fares 🚕 in NYC ✓ "quoted" \\ back\\ud83dslash', "project_name": "Fraud 🚕 Scoring"},
        ),
    ],
    ids=["slash-in-name", "emoji"],
)
def test_cookiecutter_accepts_and_every_file_parses(tmp_path: Path, answers: list[str], expected: dict) -> None:
    result = cookiecutter(tmp_path, *answers)
    assert result.returncode == 0, result.stderr
    project = tmp_path / "out" / defaults(**dict(a.split("=", 1) for a in answers))["project_slug"]
    assert tree(tmp_path / "out") == [project.name, *(f"{project.name}/{p}" for p in tree(project))]
    parse_every_file(project)
    if "description" in expected:
        assert (
            tomllib.loads((project / "pyproject.toml").read_text())["project"]["description"] == expected["description"]
        )
    if "project_name" in expected:
        assert (project / "README.md").read_text().startswith(f"# {expected['project_name']}\n")


def parse_every_file(project: Path) -> None:
    for path in sorted(project.rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"[\ud800-\udfff]", text), path
        if path.suffix in (".yml", ".yaml"):
            list(yaml.safe_load_all(text))
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix == ".json":
            json.loads(text)
        elif path.suffix == ".py":
            ast.parse(text)


def test_branches_reach_workflows_as_strings(cookies: Any) -> None:
    """`null`, `1.10` and `true` are branch names, not YAML's null, float and boolean."""
    for pattern, default, release in (("deploy_code", "1.10", "null"), ("deploy_models", "true", "0755")):
        result = cookies.bake(
            extra_context={"deployment_pattern": pattern, "default_branch": default, "release_branch": release}
        )
        assert result.exit_code == 0, result.exception
        baked = Baked(path=result.project_path, context=dict(result.context))
        parse_every_file(baked.path)
        seen = set()
        for name, flow in baked.workflows.items():
            push = flow["on"].get("push") if isinstance(flow["on"], dict) else None
            if push and "branches" in push:
                assert all(isinstance(b, str) for b in push["branches"]), name
                seen.update(push["branches"])
            for job in flow["jobs"].values():
                if "if" in job and "refs/heads/" in job["if"]:
                    assert re.search(rf"'refs/heads/({re.escape(default)}|{re.escape(release)})'", job["if"]), name
        assert seen == {default, release}, seen


# --- scripts/bake: what cookiecutter cannot refuse cleanly by itself -----------------------------------------


def bake(tmp_path: Path, *args: str, root: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OUTPUT_DIR": str(tmp_path / "out"), "HOME": str(tmp_path / "home")}
    command = [sys.executable, str(root / "scripts" / "bake.py"), *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path, stdin=subprocess.DEVNULL
    )


PRESET = "default_context:\n  deployment_patern: deploy_models\n  cloud: oracle\n  compute: job_cluster\n"

# (arguments, keys refused, in order)
REFUSED_BY_BAKE = [
    (["project_slug=" + "a" * 300], ["project_slug"]),
    (["project_slug=ac/dc"], ["project_slug"]),
    (["project_name={{ oops"], ["project_name"]),
    (["deployment_pattern=deploy_everything", "create_catalogs=maybe"], ["deployment_pattern", "create_catalogs"]),
    (["deployment_patern=deploy_models"], ["deployment_patern"]),
    (["__package_name=../../../x", "cloud=gcp"], ["__package_name"]),
    (["--config-file=preset.yaml"], ["deployment_patern", "cloud"]),
    (
        ["project_name=", "default_branch=refs/heads/main", "prod_catalog=samples"],
        ["project_name", "prod_catalog", "default_branch"],
    ),
    # A refused choice does not hide the other refused answers (issue 24)...
    (["deployment_pattern=deploy_modles", "prod_catalog=system"], ["deployment_pattern", "prod_catalog"]),
    (
        ["cloud=azur", "create_catalogs=maybe", "prod_workspace_host=http://10.0.0.1"],
        ["cloud", "create_catalogs", "prod_workspace_host"],
    ),
    # ...but an answer that would pass once the choice is fixed is not refused for the default in its place.
    (["cloud=azur", "dev_workspace_host=https://adb-1234567890123456.7.azuredatabricks.net"], ["cloud"]),
]

RERUN = {  # the command to run again: the refused values never kept
    "deployment_pattern=deploy_modles prod_catalog=system": "  scripts/bake deployment_pattern=… prod_catalog=…",
    "cloud=azur dev_workspace_host=https://adb-1234567890123456.7.azuredatabricks.net": (
        "  scripts/bake dev_workspace_host=https://adb-1234567890123456.7.azuredatabricks.net cloud=…"
    ),
}


@pytest.mark.parametrize(("args", "keys"), REFUSED_BY_BAKE, ids=[" ".join(a)[:30] for a, _ in REFUSED_BY_BAKE])
def test_bake_refuses_up_front_and_writes_nothing(tmp_path: Path, args: list[str], keys: list[str]) -> None:
    (tmp_path / "preset.yaml").write_text(PRESET)
    result = bake(tmp_path, *args)
    assert result.returncode == 1
    assert re.findall(r"^ERROR: (\w+)=", result.stderr, re.MULTILINE) == keys, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{len(keys)} answer(s) refused; nothing was written." in result.stderr
    assert "scripts/bake" in result.stderr.splitlines()[-1]  # the command to run again
    assert tree(tmp_path) == ["preset.yaml"]
    if " ".join(args) in RERUN:
        assert result.stderr.splitlines()[-1] == RERUN[" ".join(args)]
    if "__package_name" in keys:  # derived: the command to run again leaves it out
        assert result.stderr.splitlines()[-1] == "  scripts/bake cloud=gcp"
    if "deployment_patern" in keys:
        assert "did you mean deployment_pattern?" in result.stderr


def test_bake_says_where_and_what_next_and_refuses_an_existing_project(tmp_path: Path) -> None:
    # A clone of the template with an `origin`: .cruft.json records that URL, not the clone's path.
    clone = tmp_path / "template"
    shutil.copytree(REPO, clone, ignore=shutil.ignore_patterns(".venv", ".git", "out", "__pycache__", ".pytest_cache"))
    url = "https://github.com/example-org/databricks-ml-template.git"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(clone)]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "t"], ["remote", "add", "origin", url]):
        subprocess.run([*git, *args], check=True, capture_output=True)

    result = bake(tmp_path, "cloud=azure", root=clone)
    assert result.returncode == 0, result.stderr
    project = tmp_path / "out" / "taxi-fare-model"
    assert result.stdout.splitlines()[0] == "Created out/taxi-fare-model (deploy_code on azure). Next:"
    assert "cd out/taxi-fare-model" in result.stdout and "pytest" in result.stdout
    assert "placeholders" in result.stderr  # the post-generation hook's warning
    assert result.stdout.splitlines()[-1].startswith("Before deploying, set the real dev, staging, prod workspace")
    state = json.loads((project / ".cruft.json").read_text())
    assert state["template"] == state["context"]["cookiecutter"]["_template"] == url
    assert "not on any remote branch" in result.stderr  # nothing was pushed to that origin

    again = bake(tmp_path, "cloud=azure", root=clone)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        f"ERROR: {project} already exists: remove it, or run again with --overwrite-if-exists to render over "
        "it (files the template no longer makes stay)."
    ]
    assert bake(tmp_path, "cloud=azure", "--overwrite-if-exists", root=clone).returncode == 0


# --- the interactive first run ----------------------------------------------------------------------


def test_interactive_refusal_then_rerun_from_the_replay_file(tmp_path: Path) -> None:
    """A real terminal: answer the questions, one refused; the hook says how to rerun; the rerun keeps the rest."""
    env = {**os.environ, "HOME": str(tmp_path / "home"), "COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"}
    typed = {"project_name": "Fraud Scoring", "cloud": "2", "read_group": "users"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "cookiecutter", "-o", str(tmp_path / "out"), str(REPO)],
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(50, 400),
    )
    for number, key in enumerate(QUESTIONS, start=1):
        child.expect(rf"\[{number}/{len(QUESTIONS)}\]")
        child.expect(r"\(([^()]*)\)(?:\x1b\[0m)?: ")
        child.sendline(typed.get(key, ""))
    child.expect(pexpect.EOF)
    child.close()
    output = child.before
    assert child.exitstatus != 0
    assert re.findall(r"ERROR: (\w+)=", output) == ["read_group"]
    rerun = re.search(r"^\s*(cookiecutter --replay-file .*)$", output, re.MULTILINE)
    assert rerun, output
    assert not (tmp_path / "out" / "fraud-scoring").exists()

    command = shlex.split(rerun[1])
    replay = Path(command[2])
    answers = json.loads(replay.read_text())
    assert answers["cookiecutter"]["project_name"] == "Fraud Scoring"
    answers["cookiecutter"]["read_group"] = "ml-readers"  # fix only the refused answer
    replay.write_text(json.dumps(answers))
    child = pexpect.spawn(sys.executable, ["-m", *command], env=env, encoding="utf-8", timeout=30)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    project = tmp_path / "out" / "fraud-scoring"
    bundle = yaml.safe_load((project / "databricks.yml").read_text())
    assert bundle["variables"]["read_group"]["default"] == "ml-readers"
    assert ".azuredatabricks.net" in bundle["targets"]["prod"]["workspace"]["host"]


# --- every answer matters: the cloud -----------------------------------------------------------------------


def test_the_cloud_has_its_page_links_and_identities(baked: Baked) -> None:
    facts = CLOUDS[baked.context["cloud"]]
    page = baked.text("docs/cloud.md")
    assert page.startswith(f"# Databricks on {facts['name']}\n")
    assert facts["identity"] in page
    assert all(f"*.{domain}" in page for domain in facts["domains"])
    readme = baked.text("README.md")
    assert "(docs/cloud.md)" in readme
    for other, other_facts in CLOUDS.items():
        present = other_facts["docs"] + "/" in page + readme
        assert present == (other == baked.context["cloud"]), other
    if baked.context["cloud"] == "azure":
        assert "Microsoft Entra ID" in page


def test_placeholder_hosts_are_flagged_until_real_ones_are_set(cookies: Any) -> None:
    flagged = cookies.bake(extra_context={"cloud": "gcp", "prod_workspace_host": "https://4.4.gcp.databricks.com"})
    readme = (flagged.project_path / "README.md").read_text()
    assert "**Placeholder workspace URLs** for dev, staging:" in readme
    assert files.placeholder_hosts(flagged.context) == ["dev", "staging"]
    real = {f"{env}_workspace_host": f"https://{env}-ml.cloud.databricks.com" for env in ("dev", "staging", "prod")}
    clean = cookies.bake(extra_context=real)
    assert "Placeholder" not in (clean.project_path / "README.md").read_text()
    assert files.placeholder_hosts(clean.context) == []


def test_bake_checks_each_answer_as_it_is_typed(tmp_path: Path) -> None:
    """scripts/bake --interactive: a refused answer is said at once and asked again; the others are kept."""
    env = {**os.environ, "OUTPUT_DIR": str(tmp_path / "out"), "COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"}
    script = str(REPO / "scripts" / "bake.py")
    child = pexpect.spawn(
        sys.executable, [script, "--interactive", "cloud=azure"], env=env, encoding="utf-8", timeout=30
    )
    typed = {
        "project_name": ["Fraud Scoring"],
        "dev_workspace_host": ["https://10.0.0.1", ""],
        "read_group": ["users", ""],
    }
    asked = []
    while child.expect([r"\[(\d+)/\d+\]", pexpect.EOF]) == 0:
        key = QUESTIONS[int(child.match[1]) - 1]
        asked.append(key)
        child.expect(r"\(([^()]*)\)(?:\x1b\[0m)?: ")
        child.sendline((typed.get(key) or [""]).pop(0))
    child.close()
    assert child.exitstatus == 0, child.before
    # Asked again right after the refusal, not after the last question.
    assert asked == [*QUESTIONS[:9], "dev_workspace_host", *QUESTIONS[9:19], "read_group", *QUESTIONS[19:]]
    project = tmp_path / "out" / "fraud-scoring"
    bundle = yaml.safe_load((project / "databricks.yml").read_text())
    assert bundle["variables"]["read_group"]["default"] == "data-scientists"
    assert bundle["targets"]["dev"]["workspace"]["host"] == CLOUDS["azure"]["placeholder_hosts"]["dev"]

    # Without --interactive, on a terminal, only the refused answers are asked again.
    child = pexpect.spawn(
        sys.executable, [script, "read_group=users", "project_name=Churn"], env=env, encoding="utf-8", timeout=30
    )
    child.expect(r"ERROR: read_group=")
    child.expect(r"\[read_group, e\.g\. data-scientists\]: ")
    child.sendline("ml-readers")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    bundle = yaml.safe_load((tmp_path / "out" / "churn" / "databricks.yml").read_text())
    assert bundle["variables"]["read_group"]["default"] == "ml-readers"


BRANCH_NAMES = [
    "main",
    "develop",
    "release/1.10",
    "1.10",
    "null",
    "true",
    "feature/x_y-z",
    "v1.0",
    "a.b.c",
    "HEAD",
    "-main",
    "main.",
    "main.lock",
    "a/b.lock/c",
    "a..b",
    "a//b",
    "/main",
    "main/",
    ".hidden",
    "a/.b",
    "a b",
    "a~b",
    "a^b",
    "a:b",
    "a?b",
    "a*b",
    "a[b",
    "a\\b",
    "a@{b",
    "@",
    "main\n",
    "refs/heads/main",
    "ünïcode",
]


def test_branch_rule_agrees_with_git(tmp_path: Path) -> None:
    """Every branch the hook accepts, git accepts (the hook itself never runs git); `refs/heads/…` aside."""
    for name in BRANCH_NAMES:
        git = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True, cwd=tmp_path)
        accepted = answers._branch_ok(name, {}) and answers._not_a_ref(name, {})
        if accepted:
            assert git.returncode == 0, name
        elif name not in ("refs/heads/main", "ünïcode", "@"):  # git takes these; the hook is stricter
            assert git.returncode != 0, name


def test_bake_warns_of_a_local_origin_as_what_it_is(tmp_path: Path) -> None:
    """A clone of a clone: `origin` is a local path, not missing; the warning says which (issue 24)."""
    upstream, clone = tmp_path / "upstream", tmp_path / "template"
    shutil.copytree(
        REPO, upstream, ignore=shutil.ignore_patterns(".venv", ".git", "out", "__pycache__", ".pytest_cache")
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "t"]):
        subprocess.run([*git, "-C", str(upstream), *args], check=True, capture_output=True)
    subprocess.run([*git, "clone", "-q", str(upstream), str(clone)], check=True, capture_output=True)

    result = bake(tmp_path, root=clone)
    assert result.returncode == 0, result.stderr
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("WARNING: .cruft.json")]
    assert "no remote 'origin' URL" not in warning
    assert f"its remote 'origin' is the local path {upstream}" in warning, warning
    state = json.loads((tmp_path / "out" / "taxi-fare-model" / ".cruft.json").read_text())
    assert state["template"] == str(clone)
