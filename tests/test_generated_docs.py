"""The generated docs describe the generated files: every workflow, Environment, target and link is accounted for."""

from __future__ import annotations

import re

from support import TEMPLATE_DIR, Baked
from workflows import environment, integration_gate, jobs

from template_rules import files

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def pattern_doc(baked: Baked) -> str:
    return baked.text(f"docs/{baked.pattern.replace('_', '-')}.md")


def environments_used(baked: Baked) -> set[str]:
    used = set()
    for flow in baked.workflows.values():
        for job in flow["jobs"].values():
            env = job.get("environment")
            if env:
                used.add(env["name"] if isinstance(env, dict) else env)
    return used


def test_pattern_doc_lists_every_workflow_and_draws_the_path(baked: Baked) -> None:
    doc = pattern_doc(baked)
    for name, flow in baked.workflows.items():
        assert f"`{name}`" in doc, f"{name} missing from the pattern page"
        assert flow["name"] in doc
    assert "```mermaid" in doc


def test_setup_doc_covers_every_environment_and_its_federation_subject(baked: Baked) -> None:
    setup = baked.text("docs/setup.md")
    for env in environments_used(baked):
        assert f"`{env}`" in setup, f"GitHub Environment {env} is not documented"
        if baked.context["ci_auth"] == "github_oidc":
            assert f"repo:{baked.context['github_repository']}:environment:{env}" in setup
    if baked.context["ci_auth"] == "client_secret":
        assert "DATABRICKS_CLIENT_SECRET" in setup
    else:
        assert "DATABRICKS_CLIENT_SECRET" not in setup


def test_environments_doc_names_every_target_and_catalog(baked: Baked) -> None:
    doc = baked.text("docs/environments.md")
    for target in baked.bundle.targets:
        assert f"`{target}`" in doc, f"target {target} missing from docs/environments.md"
    for env in ("dev", "staging", "prod"):
        assert baked.context[f"{env}_catalog"] in doc
        assert baked.context[f"{env}_workspace_host"] in doc


def test_relative_links_resolve(baked: Baked) -> None:
    for path in [baked.path / "README.md", *sorted((baked.path / "docs").glob("*.md"))]:
        for target in LINK.findall(path.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            assert (path.parent / target).exists(), f"{path.name} links to missing {target}"


def test_readme_says_what_the_first_personal_deploy_needs(baked: Baked) -> None:
    readme = baked.text("README.md")
    first_deploy = readme.split("Before the first `databricks bundle deploy -t dev`", 1)[1].split("```", 1)[0]
    assert f"databricks auth login --host {baked.context['dev_workspace_host']}" in first_deploy
    floor = baked.bundle.files["databricks.yml"]["bundle"]["databricks_cli_version"]
    assert f"`databricks.yml` requires `{floor}`" in first_deploy
    assert f"**{floor.removeprefix('>= ')} or newer**" in first_deploy
    assert f"`{baked.context['dev_catalog']}` exists" in first_deploy
    assert "`USE CATALOG` and `CREATE SCHEMA`" in first_deploy
    cluster = "create clusters" in first_deploy
    assert cluster is (baked.context["compute"] == "job_cluster"), "the entitlement job clusters need"


def test_readme_estimates_pull_request_feedback_per_compute_choice(baked: Baked) -> None:
    readme = baked.text("README.md")
    rows = dict(re.findall(r"^\| (serverless|job cluster)((?: \(this project\))?) \|", readme, flags=re.MULTILINE))
    assert set(rows) == {"serverless", "job cluster"}
    chosen = baked.context["compute"].replace("_", " ")
    assert {name for name, mark in rows.items() if mark} == {chosen}
    assert "`integration_test`" in readme


def test_setup_docs_cover_every_environment_the_workflows_use(baked: Baked) -> None:
    used = {environment(job) for flow in baked.workflows.values() for job in jobs(flow).values()} - {None}
    setup = baked.text("docs/setup.md")
    section = setup.split("## 4. GitHub Environments", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| (.*)$", section, flags=re.MULTILINE))
    assert set(rows) == used, "one row per Environment a workflow uses, no other"
    test_host = baked.bundle.targets["test"]["workspace"]["host"]
    assert rows["test"].startswith(f"`DATABRICKS_HOST` = `{test_host}`")
    assert f"application ID of `{baked.context['project_slug']}-test`" in rows["test"]
    assert "No restriction" in rows["test"]
    for env in used - {"test"}:
        assert "Selected branches" in rows[env], f"{env} admits only its branches"
    assert "scripts/setup-environments apply" in setup, "the Environments are created by the set-up tool"
    assert "**yes**" in rows["prod"]
    if baked.context["ci_auth"] == "github_oidc":
        for env in used:
            assert f"repo:{baked.context['github_repository']}:environment:{env}`" in setup
    _, gate, _ = integration_gate(baked)
    assert f"**Integration tests / {gate['name']}**" in setup, "the gate is the required check"
    assert "git push origin" not in setup.split("## 6.", 1)[1], "releases are pull requests"


def test_doc_templates_are_markdown_with_whole_conditional_blocks() -> None:
    """Readable as templates: a conditional is a whole row or paragraph (`{% if %}` on its own line), never Markdown
    assembled inside an expression, and facts come from templates/pattern.j2 or cookiecutter.json, not local aliases.
    """
    docs = sorted((TEMPLATE_DIR / "docs").glob("*.md"))
    assert docs
    for doc in docs:
        text = doc.read_text()
        ternaries = re.findall(r"\{\{[^}]*\bif\b[^}]*\}\}", text)
        inline = ternaries + re.findall(r"\S[^\n]*\{% (?:if|else|elif|endif)\b", text)
        assert not inline, f"{doc.name}: put the condition on a line of its own around whole lines: {inline}"
        aliases = re.findall(r"\{% set (\w+) = (.*?) %\}", text)
        assert all(value == "cookiecutter._clouds[cookiecutter.cloud]" for _, value in aliases), (doc.name, aliases)


def test_shared_docs_follow_the_pattern_facts_not_the_pattern_name() -> None:
    """A new pattern is an entry of `_patterns` and a page of its own, not one more branch in every shared page: the
    shared docs read the facts (templates/pattern.j2) and never test the pattern's name. Only the pages KEEP_WHEN
    keeps for one pattern, and switching-patterns.md (which is about the other pattern), may."""
    own_pages = {
        path for path, keep in files.KEEP_WHEN.items() if "deployment_pattern" in keep and path.startswith("docs/")
    }
    shared = [doc for doc in sorted((TEMPLATE_DIR / "docs").glob("*.md")) if f"docs/{doc.name}" not in own_pages]
    assert shared
    for doc in shared:
        if doc.name != "switching-patterns.md":
            assert "deployment_pattern" not in doc.read_text(), f"{doc.name} tests the pattern's name"


# --- the first hour: from the bake to a green pull request (issue 24) -------------------------------------


def push_environments(baked: Baked) -> set[str]:
    """The GitHub Environments that a push to the default branch reaches: the jobs of the workflows it triggers,
    and of the workflows those call."""

    other = f"refs/heads/{baked.context['release_branch']}"

    def of(flow: dict) -> set[str]:
        found = set()
        for job in flow["jobs"].values():
            if other in str(job.get("if", "")):  # a job of the release branch only
                continue
            env = job.get("environment")
            if env:
                found.add(env["name"] if isinstance(env, dict) else env)
            called = job.get("uses", "")
            if called.startswith("./.github/workflows/"):
                found |= of(baked.workflows[called.rsplit("/", 1)[1]])
        return found

    used = set()
    for flow in baked.workflows.values():
        push = (flow.get(True) or flow.get("on") or {}).get("push") or {}
        if baked.context["default_branch"] in push.get("branches", []):
            used |= of(flow)
    return used


def test_setup_says_before_the_push_that_it_deploys(baked: Baked) -> None:
    setup = baked.text("docs/setup.md")
    push = f"git push -u origin {baked.context['default_branch']}"
    assert push in setup
    before = setup.split(push, 1)[0].split("## 2.", 1)[1]
    said = before.split("**The first push (step 5) already deploys**", 1)
    assert len(said) == 2, "setup.md must say before the push that it deploys"
    paragraph = said[1].split("\n\n", 1)[0]
    envs = push_environments(baked)
    assert envs, "a push to the default branch deploys somewhere"
    assert set(re.findall(r"`(dev|staging|prod|test)`", paragraph)) == envs, paragraph
    assert ("approval" in paragraph) == ("prod" in envs), paragraph
    page = baked.pattern.replace("_", "-") + ".md"
    assert f"]({page}#the-first-push)" in paragraph
    assert "\n### The first push\n" in pattern_doc(baked)


def first_hour(setup: str) -> str:
    return setup.split("\n## The first hour: from the bake to a green pull request\n", 1)[1].split("\n## ", 1)[0]


def test_setup_starts_with_the_first_hour_in_order(baked: Baked) -> None:
    setup = baked.text("docs/setup.md")
    headings = re.findall(r"^## (.*)$", setup, re.MULTILINE)
    assert headings[0] == "The first hour: from the bake to a green pull request"
    steps = re.findall(r"^(\d+)\. \*\*([^*]+)\*\*", first_hour(setup), re.MULTILINE)
    assert [int(n) for n, _ in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 5
    assert {who for _, who in steps} >= {"You", "The repository admin"}
    text = first_hour(setup)
    for command in (
        "git init",
        "pytest",
        "scripts/setup-environments plan",
        "apply --create-repo",
        "check",
        "apply --create-release-branch",
    ):
        assert command in text, command
    assert "docs/setup.md#the-first-hour-from-the-bake-to-a-green-pull-request" in baked.text("README.md")


def step_five_init(setup: str) -> str:
    (line,) = [line for line in setup.splitlines() if line.startswith("git init -b ")]
    return line


def test_step_five_commits_once_whether_or_not_the_bake_committed(baked_default: Baked, tmp_path) -> None:
    """The bake's "Next:" lines commit already; setup.md's step 5 must then do nothing, and still work alone."""
    import shutil
    import subprocess

    from support import commit_all, run

    line = step_five_init(baked_default.text("docs/setup.md"))
    fresh, committed = tmp_path / "fresh", tmp_path / "committed"
    for project in (fresh, committed):
        shutil.copytree(baked_default.path, project)
    run("git", "init", "-q", "-b", baked_default.context["default_branch"], cwd=committed)
    commit_all(committed, "From the template")
    for project in (fresh, committed):
        result = run("bash", "-ec", line, cwd=project, check=False)
        assert result.returncode == 0, f"{project.name}: {result.stdout}{result.stderr}"
        log = subprocess.run(["git", "log", "--format=%s"], cwd=project, capture_output=True, text=True).stdout
        assert log.splitlines() == ["From the template"], project.name
        assert run("git", "status", "--porcelain", cwd=project).stdout == ""


def test_readme_work_on_it_installs_pre_commit(baked: Baked) -> None:
    work = baked.text("README.md").split("## Work on it", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    assert "pre-commit install" in work
    assert (baked.path / ".pre-commit-config.yaml").is_file()
