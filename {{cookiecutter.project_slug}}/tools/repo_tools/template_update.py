"""What the Template update workflow runs (.github/workflows/template-update.yml), in three steps, each
with only the token it needs:

    python -m repo_tools.template_update fetch     clone the template (git alone sees TEMPLATE_REPO_TOKEN)
    python -m repo_tools.template_update render    cruft check; if the template moved on, apply the update
                                                   with scripts/switch-pattern and commit it: the template's
                                                   code (hooks, extensions) runs here, in a job with no token
    python -m repo_tools.template_update publish   in another job, which runs none of the template's code:
                                                   push the branch and open or refresh the pull request (git
                                                   and `gh` alone see the push token)

`render` leaves the commit (a git bundle) and the pull request's body under $RUNNER_TEMP/template-update/,
which the workflow hands to the publish job as an artifact. `publish` never destroys a commit it did not
make: when the branch holds anyone else's commit (a person finishing the update by hand), it stops and
says so.

Run with PYTHONPATH=tools from the repository's root. Standard library only."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

BRANCH = "template-update"
TITLE = "Update from the template"
BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
# Every token the workflow may hold: none of them reaches a command that does not need it.
TOKENS = ("GH_TOKEN", "GITHUB_TOKEN", "TEMPLATE_REPO_TOKEN", "TEMPLATE_UPDATE_TOKEN", "WORKFLOW_TOKEN")
# Files through which a step can change the environment of later steps: not for the template's code.
RUNNER_FILES = ("GITHUB_ENV", "GITHUB_PATH", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_STATE")
WORKFLOW_TOKEN_REFUSED = (
    "GitHub refuses a push that changes files under .github/workflows/ with the workflow's own token "
    "(github.token). Store a fine-grained personal access token for this repository with Contents: write, "
    "Pull requests: write and Workflows: write as the repository secret TEMPLATE_UPDATE_TOKEN "
    "(docs/switching-patterns.md), then run the Template update workflow again."
)


def credential_helper(variable: str) -> str:
    """A git credential helper answering from the environment of the git it is given to, never from disk."""
    answer = f'echo username=x-access-token; echo "password=${variable}"'
    return '!f() { test "$1" = get || return 0; ' + answer + "; }; f"


class UpdateError(Exception):
    """A message for the person reading the run's log; the step fails."""


def clean_environment(*drop: str) -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in TOKENS + drop}


def work_dir() -> Path:
    return Path(os.environ.get("RUNNER_TEMP") or "/tmp")


def out_dir() -> Path:
    return work_dir() / "template-update"


def mirror() -> Path:
    return work_dir() / "template.git"


def cruft_state(root: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((root / ".cruft.json").read_text())
    return state


def git(
    *args: str, cwd: Path, token: tuple[str, str] | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """git with no hooks; with `token` (variable, value), a credential helper reading it (this git only)."""
    config = ["-c", "core.hooksPath=/dev/null"]
    environment = dict(env if env is not None else clean_environment())
    if token:
        variable, value = token
        config += ["-c", "credential.helper=", "-c", "credential.helper=" + credential_helper(variable)]
        environment[variable] = value
    return subprocess.run(["git", *config, *args], cwd=cwd, env=environment, capture_output=True, text=True)


def checked(result: subprocess.CompletedProcess[str], what: str) -> str:
    if result.returncode != 0:
        raise UpdateError(f"{what} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def set_output(name: str, value: str) -> None:
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(f"{name}={value}\n")


# --- fetch --------------------------------------------------------------------------------------------------


def fetch(root: Path) -> None:
    """A bare clone of the template, from which `render` works offline; the token in git's env only."""
    url = cruft_state(root)["template"]
    token = os.environ.get("TEMPLATE_REPO_TOKEN", "")
    shutil.rmtree(mirror(), ignore_errors=True)
    result = git(
        "clone", "--bare", "--quiet", url, str(mirror()),
        cwd=root, token=("TEMPLATE_REPO_TOKEN", token) if token else None,
    )  # fmt: skip
    if result.returncode != 0:
        hint = "" if token else " (a private template needs the repository secret TEMPLATE_REPO_TOKEN)"
        raise UpdateError(f"cannot clone the template {url}{hint}:\n{result.stderr}")
    print(f"Fetched the template {url}.")


# --- render -------------------------------------------------------------------------------------------------


def fence_for(text: str) -> str:
    """A Markdown code fence that `text` cannot close: longer than its longest run of backticks."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def body(pattern: str, verdict: str, report: str) -> str:
    fence = fence_for(report)
    return (
        "The template moved on since this repository's last update (`cruft check`).\n"
        f"This branch applies its changes with `scripts/switch-pattern {pattern}`.\n\n"
        f"**{verdict}**\n\n{fence}\n{report.rstrip()}\n{fence}\n\n"
        "Review the diff, then see docs/switching-patterns.md for the GitHub and Databricks side.\n"
    )


def render(root: Path) -> int:
    """The template's code runs in here: its environment has no token and no runner file of later steps."""
    if not mirror().is_dir():
        raise UpdateError(f"no clone of the template at {mirror()}: run `fetch` first")
    state = cruft_state(root)
    env = clean_environment(*RUNNER_FILES)
    # cruft clones the template by its URL: from the local clone instead, which needs no credential.
    env |= {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{mirror()}.insteadOf",
        "GIT_CONFIG_VALUE_0": state["template"],
    }
    cruft = shutil.which("cruft", path=env.get("PATH")) or "cruft"
    check = subprocess.run([cruft, "check"], cwd=root, env=env, capture_output=True, text=True)
    if check.returncode == 0:
        print("Up to date with the template.")
        set_output("changed", "false")
        return 0
    print(check.stdout + check.stderr, end="")
    pattern = state["context"]["cookiecutter"]["deployment_pattern"]
    checked(git("switch", "-q", "-c", BRANCH, cwd=root, env=env), f"git switch -c {BRANCH}")
    switch = subprocess.run(
        [str(root / "scripts" / "switch-pattern"), pattern],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    report = switch.stdout
    print(report, end="")
    if switch.returncode == 0:
        verdict = "scripts/switch-pattern --check passes: the update merged cleanly."
    else:
        verdict = (
            "scripts/switch-pattern --check FAILS: finish the update by hand on this branch "
            "(the report says how)."
        )
    bot = {
        "GIT_AUTHOR_NAME": BOT_NAME,
        "GIT_AUTHOR_EMAIL": BOT_EMAIL,
        "GIT_COMMITTER_NAME": BOT_NAME,
        "GIT_COMMITTER_EMAIL": BOT_EMAIL,
    }
    checked(git("add", "-A", cwd=root, env=env), "git add")
    checked(git("commit", "-q", "--no-verify", "-m", TITLE, cwd=root, env=env | bot), "git commit")
    out = out_dir()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    checked(
        git(
            "bundle",
            "create",
            "-q",
            str(out / "update.bundle"),
            f"refs/heads/{BRANCH}",
            "^HEAD~1",
            cwd=root,
            env=env,
        ),
        "git bundle create",
    )
    (out / "body.md").write_text(body(pattern, verdict, report))
    set_output("changed", "true")
    return 0


# --- publish ------------------------------------------------------------------------------------------------


def foreign_commits(root: Path, old: str, new: str) -> list[str]:
    """The commits on the branch that the fresh update does not contain and this workflow did not make."""
    listed = checked(
        git("log", "--format=%H%x00%ae%x00%ce%x00%an%x00%s", old, f"^{new}", cwd=root), "git log"
    ).splitlines()
    found = []
    for line in listed:
        sha, author, committer, name, subject = line.split("\0")
        if author != BOT_EMAIL or committer != BOT_EMAIL:
            found.append(f"{sha[:12]} {subject} ({name} <{author}>)")
    return found


def publish(root: Path) -> int:
    """Push the update and open or refresh its pull request: no template code runs in this job."""
    own = os.environ.get("TEMPLATE_UPDATE_TOKEN", "")
    token = own or os.environ.get("WORKFLOW_TOKEN", "")
    if not token:
        raise UpdateError(
            "no token to push with: the workflow gives WORKFLOW_TOKEN (github.token) to this step"
        )
    credential = ("GH_TOKEN", token)
    bundle = out_dir() / "update.bundle"
    checked(git("bundle", "verify", "-q", str(bundle), cwd=root), "git bundle verify")
    checked(git("fetch", "-q", str(bundle), f"+refs/heads/{BRANCH}:refs/update/new", cwd=root), "git fetch")
    new = checked(git("rev-parse", "refs/update/new", cwd=root), "git rev-parse").strip()
    workflows = checked(
        git("diff", "--name-only", f"{new}~1", new, "--", ".github/workflows/", cwd=root), "git diff"
    ).split()
    if workflows and not own:
        raise UpdateError(f"The update changes {', '.join(workflows)}. {WORKFLOW_TOKEN_REFUSED}")
    remote = checked(
        git("ls-remote", "origin", f"refs/heads/{BRANCH}", cwd=root, token=credential), "git ls-remote"
    ).split()
    old = remote[0] if remote else ""
    if old:
        checked(
            git("fetch", "-q", "origin", f"+refs/heads/{BRANCH}:refs/update/old", cwd=root, token=credential),
            f"git fetch origin {BRANCH}",
        )
        foreign = foreign_commits(root, "refs/update/old", new)
        if foreign:
            listing = "\n".join(f"  {line}" for line in foreign)
            raise UpdateError(
                f"{BRANCH} has commits this workflow did not make:\n{listing}\n"
                "Not replacing the branch, which would lose them. Finish the update on that branch and "
                "merge its pull request, or delete the branch to start afresh; the next run updates again."
            )
    pushed = git(
        "push", f"--force-with-lease=refs/heads/{BRANCH}:{old}", "origin", f"{new}:refs/heads/{BRANCH}",
        cwd=root, token=credential,
    )  # fmt: skip
    if pushed.returncode != 0:
        if "workflow" in pushed.stderr and "permission" in pushed.stderr:
            raise UpdateError(f"{pushed.stderr.strip()}\n{WORKFLOW_TOKEN_REFUSED}")
        if "stale info" in pushed.stderr or "rejected" in pushed.stderr:
            raise UpdateError(f"{BRANCH} changed while this run looked at it; run again:\n{pushed.stderr}")
        raise UpdateError(f"git push failed:\n{pushed.stderr}")
    print(pushed.stderr, end="")
    env = clean_environment() | {"GH_TOKEN": token}
    body_file = str(out_dir() / "body.md")
    state = subprocess.run(
        ["gh", "pr", "view", BRANCH, "--json", "state", "--jq", ".state"],
        cwd=root, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if state.returncode == 0 and state.stdout.strip() == "OPEN":
        command = ["gh", "pr", "edit", BRANCH, "--body-file", body_file]
    else:
        command = ["gh", "pr", "create", "--head", BRANCH, "--title", TITLE, "--body-file", body_file]
    if subprocess.run(command, cwd=root, env=env).returncode != 0:
        raise UpdateError(f"{' '.join(command[:3])} failed (see above)")
    return 0


def main(argv: list[str] | None = None) -> int:
    steps = {"fetch": fetch, "render": render, "publish": publish}
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in steps:
        print("usage: python -m repo_tools.template_update " + " | ".join(steps), file=sys.stderr)
        return 2
    try:
        return steps[args[0]](Path.cwd()) or 0
    except UpdateError as failure:
        message = str(failure)
        print(f"::error::{message.splitlines()[0]}", file=sys.stderr)
        print(message, file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
