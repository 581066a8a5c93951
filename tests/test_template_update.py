"""The Template update workflow (.github/workflows/template-update.yml), run as GitHub would: each job's `run:`
steps in order under `bash -e`, with only the environment the workflow gives that step, a stub `gh`, and a local
bare repository as origin. Each job runs in a fresh clone of origin, as on a new runner; the artifact steps are
the shared $RUNNER_TEMP.

What it proves: a person's commit on the template-update branch survives the next run; the tokens never reach the
template's code (its hooks run during the update) nor anything that code can write; the report cannot break out of
the pull request body's code fence; an update that touches .github/workflows/ without a token that may push
workflows fails with a message saying which token to store."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import commit_all, run

pytestmark = pytest.mark.slow

WORKFLOW = ".github/workflows/template-update.yml"
BRANCH = "template-update"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
# What the stub runner puts where the workflow writes an expression: distinctive strings, searched for afterwards.
TEMPLATE_TOKEN = "tpl-token-5f3c9a1e"
WORKFLOW_TOKEN = "gh-token-8b2d7e40"
PUSH_TOKEN = "push-token-c61a09d3"

# Appended to the template's post-gen hook: everything the template's code can see, written where it can write
# (a file in the project, its output, which becomes the report and the pull request body). It also tries the
# environment of every ancestor process. The triple backtick tries to close the body's code fence.
LEAKY_HOOK = r"""

def _leak() -> None:
    import os as _os
    from pathlib import Path as _Path

    seen = [f"{k}={v}" for k, v in _os.environ.items()]
    pid = _os.getppid()
    while pid > 1:
        try:
            seen += _Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
            status = _Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    _Path("leaked-environment.txt").write_text("\n".join(seen))
    print("```\nINJECTED: outside the fence?\n" + "\n".join(seen))


_leak()
"""


@dataclass
class Runner:
    """Runs the workflow's jobs on a project, like GitHub would, and keeps what the stub `gh` received."""

    tmp: Path
    project: Path
    origin: Path
    secrets: dict[str, str] = field(default_factory=lambda: {"TEMPLATE_REPO_TOKEN": TEMPLATE_TOKEN})
    runs: int = 0

    def __post_init__(self) -> None:
        self.stubs = self.tmp / "stubs"
        self.stubs.mkdir()
        self.gh_log = self.tmp / "gh.log"
        self.bodies = self.tmp / "bodies"
        self.bodies.mkdir()
        gh = self.stubs / "gh"
        gh.write_text(
            "#!/usr/bin/env bash\n"
            "set -eu\n"
            f"log={self.gh_log}; state={self.tmp}/pr-state\n"
            '[ -n "${GH_TOKEN:-}" ] || { echo "gh: no GH_TOKEN" >&2; exit 4; }\n'
            'echo "gh $* (token ${GH_TOKEN})" >> "$log"\n'
            'case "$1 $2" in\n'
            '  "pr view") if [ -f "$state" ]; then cat "$state"; else echo "no pull requests found" >&2; exit 1; fi;;\n'
            '  "pr create") echo OPEN > "$state";;\n'
            "esac\n"
            "while [ $# -gt 0 ]; do\n"
            f'  if [ "$1" = --body-file ]; then n=$(ls {self.bodies} | wc -l); cp "$2" {self.bodies}/body-$n.md; fi\n'
            "  shift\n"
            "done\n"
        )
        gh.chmod(0o755)

    def expression(self, value: Any) -> str:
        """A `${{ }}` value of the workflow, as this stub runner resolves it."""
        text = str(value)
        known = {
            "${{ github.token }}": WORKFLOW_TOKEN,
            "${{ secrets.GITHUB_TOKEN }}": WORKFLOW_TOKEN,
            "${{ runner.temp }}": str(self.temp),
        }
        for name in ("TEMPLATE_REPO_TOKEN", "TEMPLATE_UPDATE_TOKEN"):
            known[f"${{{{ secrets.{name} }}}}"] = self.secrets.get(name, "")
        for expr, resolved in known.items():
            text = text.replace(expr, resolved)
        # `secrets.X || github.token`
        text = re.sub(
            r"\$\{\{ secrets\.(\w+) \|\| github\.token \}\}",
            lambda m: self.secrets.get(m.group(1)) or WORKFLOW_TOKEN,
            text,
        )
        assert "${{" not in text, f"the stub runner does not know {text}"
        return text

    def workflow(self) -> dict[str, Any]:
        return yaml.safe_load((self.project / WORKFLOW).read_text())

    def run(self) -> subprocess.CompletedProcess[str]:
        """One run of the workflow; the result of the last step run (or of the first failing one)."""
        self.runs += 1
        self.temp = self.tmp / f"runner-temp-{self.runs}"
        self.temp.mkdir()
        flow = self.workflow()
        outputs: dict[str, dict[str, str]] = {}
        last = subprocess.CompletedProcess(args=[], returncode=0, stdout="", stderr="")
        for name, job in flow["jobs"].items():
            condition = job.get("if")
            if condition:
                match = re.fullmatch(r"needs\.(\w[\w-]*)\.outputs\.(\w+) == 'true'", condition.strip())
                assert match, f"the stub runner cannot evaluate {condition!r}"
                if outputs.get(match.group(1), {}).get(match.group(2)) != "true":
                    continue
            workdir = self.fresh_clone(name)  # every job on a runner of its own
            step_outputs: dict[str, dict[str, str]] = {}
            for step in job["steps"]:
                if "run" not in step or "pip install" in step["run"]:
                    continue  # checkout, setup-python, artifacts (the shared $RUNNER_TEMP), the tools installed
                output_file = self.temp / f"output-{name}-{step.get('id', 'step')}"
                output_file.touch()
                env = {
                    key: self.expression(value) for key, value in {**job.get("env", {}), **step.get("env", {})}.items()
                }
                path = f"{self.stubs}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
                env |= {"RUNNER_TEMP": str(self.temp), "GITHUB_OUTPUT": str(output_file), "PATH": path}
                last = run(
                    "bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", step["run"],
                    cwd=workdir, check=False, env=env,
                )  # fmt: skip
                if last.returncode != 0:
                    return last
                values = dict(line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line)
                step_outputs[step.get("id", "")] = values
            outputs[name] = {
                key: re.sub(
                    r"\$\{\{ steps\.([\w-]+)\.outputs\.(\w+) \}\}",
                    lambda m, found=step_outputs: found.get(m.group(1), {}).get(m.group(2), ""),
                    str(value),
                )
                for key, value in (job.get("outputs") or {}).items()
            }
        return last

    def fresh_clone(self, job: str) -> Path:
        checkout = self.tmp / f"checkout-{job}-{self.runs}"
        run("git", "clone", "-q", str(self.origin), str(checkout), cwd=self.tmp)
        return checkout

    def branch(self) -> str | None:
        listed = run("git", "ls-remote", str(self.origin), f"refs/heads/{BRANCH}", cwd=self.tmp).stdout.split()
        return listed[0] if listed else None


def bake(template: Path, out: Path) -> Path:
    cruft = str(Path(sys.executable).with_name("cruft"))
    extra = json.dumps({"deployment_pattern": "deploy_code"})
    run(cruft, "create", "--no-input", "--output-dir", str(out), "--extra-context", extra, str(template), cwd=out)
    (project,) = out.iterdir()
    return project


@pytest.fixture
def runner(template_repo: Path, tmp_path: Path) -> Runner:
    """A project made from a copy of the template, with main pushed to a bare origin."""
    template = tmp_path / "template"
    shutil.copytree(template_repo, template)
    out = tmp_path / "baked"
    out.mkdir()
    project = bake(template, out)
    run("git", "init", "-q", "-b", "main", cwd=project)
    commit_all(project, "bake")
    origin = tmp_path / "origin.git"
    run("git", "init", "-q", "--bare", "-b", "main", str(origin), cwd=tmp_path)
    run("git", "remote", "add", "origin", str(origin), cwd=project)
    run("git", "push", "-q", "origin", "main", cwd=project)
    return Runner(tmp=tmp_path, project=project, origin=origin)


def move_template(runner: Runner, path: str, line: str) -> None:
    template = runner.tmp / "template"
    target = template / "{{cookiecutter.project_slug}}" / path
    target.write_text(target.read_text() + line)
    commit_all(template, f"template: {path}")


def bodies(runner: Runner) -> list[str]:
    return [p.read_text() for p in sorted(runner.bodies.iterdir(), key=lambda p: int(p.stem.split("-")[1]))]


def test_a_persons_commit_on_the_branch_survives_the_next_run(runner: Runner) -> None:
    up_to_date = runner.run()
    assert up_to_date.returncode == 0 and "Up to date" in up_to_date.stdout, up_to_date.stdout + up_to_date.stderr
    assert not runner.gh_log.exists() and runner.branch() is None

    move_template(runner, "docs/environments.md", "\nA new paragraph from the template.\n")
    first = runner.run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "gh pr create --head template-update --title Update from the template" in runner.gh_log.read_text()
    pushed = run("git", "show", f"{BRANCH}:docs/environments.md", cwd=runner.origin).stdout
    assert pushed.endswith("A new paragraph from the template.\n")
    (body,) = bodies(runner)
    assert "scripts/switch-pattern --check passes" in body and "OK: this repository is consistently deploy code" in body

    # The next run, with only the workflow's own commit on the branch, rebuilds it from main.
    bot_commit = runner.branch()
    second = runner.run()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "gh pr edit template-update --body-file" in runner.gh_log.read_text()
    assert runner.branch() not in (None, bot_commit)

    # A person finishes the update by hand on the branch, as the docs say.
    person = runner.tmp / "person"
    run("git", "clone", "-q", "-b", BRANCH, str(runner.origin), str(person), cwd=runner.tmp)
    notes = person / "docs" / "environments.md"
    notes.write_text(notes.read_text() + "A person's fix.\n")
    commit_all(person, "Finish the template update")
    run("git", "push", "-q", "origin", BRANCH, cwd=person)
    fixed = runner.branch()
    edits = runner.gh_log.read_text().count("gh pr edit")

    third = runner.run()
    assert third.returncode == 1, third.stdout + third.stderr
    assert runner.branch() == fixed, "the person's commit was pushed over"
    short = fixed[:12] if fixed else ""
    assert f"{BRANCH} has commits this workflow did not make" in third.stdout + third.stderr
    assert short in third.stdout + third.stderr and "Finish the template update" in third.stdout + third.stderr
    assert runner.gh_log.read_text().count("gh pr edit") == edits, "the pull request body was replaced"


def test_the_template_code_never_sees_a_token_and_cannot_break_the_body(runner: Runner) -> None:
    hook = runner.tmp / "template" / "hooks" / "post_gen_project.py"
    head, main = hook.read_text().rsplit('if __name__ == "__main__":', 1)
    hook.write_text(head + LEAKY_HOOK + '\n\nif __name__ == "__main__":' + main)
    move_template(runner, "docs/environments.md", "\nA new paragraph from the template.\n")
    result = runner.run()
    assert result.returncode == 0, result.stdout + result.stderr
    log = runner.gh_log.read_text()
    assert f"(token {WORKFLOW_TOKEN})" in log, "gh got the workflow's token"
    (body,) = bodies(runner)
    assert "INJECTED" in body, "the hook's output reaches the report"
    # Every file the template's code could write: the project, the runner's temp directories, the clones, origin.
    assert (runner.tmp / "runner-temp-1" / "template.git").is_dir() and any(runner.tmp.glob("checkout-*/leaked-*"))
    leaks = []
    for path in runner.tmp.rglob("*"):
        ours = (
            path == runner.gh_log or path.is_relative_to(runner.stubs) or path.is_relative_to(runner.tmp / "template")
        )
        if path.is_file() and not ours:  # the template's own copy holds this test module, tokens and all
            data = path.read_bytes()
            leaks += [f"{path}: {token}" for token in (TEMPLATE_TOKEN, WORKFLOW_TOKEN) if token.encode() in data]
    assert leaks == []
    # The report sits in one fenced block that it cannot close: the opening fence is longer than any run of
    # backticks in the report, and the closing one matches it.
    fences = [line for line in body.splitlines() if re.fullmatch(r"`{3,}", line)]
    opening = next(line for line in body.splitlines() if re.fullmatch(r"`{3,}", line) and len(line) > 3)
    assert fences[0] == opening and fences[-1] == opening and fences.count(opening) == 2
    inside = body.split(opening)[1]
    assert "INJECTED: outside the fence?" in inside and "```" in inside


def test_a_workflow_change_needs_a_token_that_may_push_workflows(runner: Runner) -> None:
    move_template(runner, ".github/workflows/ci.yml", "# a comment from the template\n")
    refused = runner.run()
    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert "changes .github/workflows/ci.yml" in said and "TEMPLATE_UPDATE_TOKEN" in said
    assert "Workflows: write" in said
    assert runner.branch() is None and "pr create" not in (runner.gh_log.read_text() if runner.gh_log.exists() else "")

    runner.secrets["TEMPLATE_UPDATE_TOKEN"] = PUSH_TOKEN
    pushed = runner.run()
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert run("git", "show", f"{BRANCH}:.github/workflows/ci.yml", cwd=runner.origin).stdout.endswith(
        "# a comment from the template\n"
    )
    assert f"(token {PUSH_TOKEN})" in runner.gh_log.read_text()


def test_the_credential_helper_answers_git_from_the_environment_of_that_git_alone(tmp_path: Path) -> None:
    from repo_tools import template_update

    result = subprocess.run(
        ["git", "-c", "credential.helper=", "-c", "credential.helper=" + template_update.credential_helper("GH_TOKEN"),
         "credential", "fill"],
        input="protocol=https\nhost=github.com\n\n", capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "GH_TOKEN": PUSH_TOKEN, "GIT_TERMINAL_PROMPT": "0"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "username=x-access-token" in result.stdout.splitlines()
    assert f"password={PUSH_TOKEN}" in result.stdout.splitlines()
