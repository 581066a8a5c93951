"""Switch this repository's deployment pattern through the template, and prove the switch is complete.

    scripts/switch-pattern deploy_code      switch to deploy code (or deploy_models, hybrid); with the
                                            pattern the repository already has, take the template's latest
                                            changes
    scripts/switch-pattern --check          verify only: offline, fetches nothing (pre-commit, CI)
    scripts/switch-pattern deploy_code --set dev_workspace_host=https://…
                                            change other answers in the same update (repeatable; a key
                                            that is not an answer in .cruft.json is refused, exit 2)

A switch refuses to start on a dirty tree, runs `cruft update` without any prompt, then verifies the result.
It exits 0 only when the tree is fully switched: no file of another pattern that this one lacks, no *.rej or
*.orig file anywhere (git-ignored ones too), no conflict marker or unmerged file, the pull requests' test
target (host and catalog) in the environment the pattern prescribes, each pattern-dependent job deployed by
the pattern's targets, and every `databricks bundle` target and job that a workflow names defined by the
bundle. Otherwise it prints what to do for each file and leaves the tree to you.

Which files belong to which pattern comes from scripts/patterns.json, written by the template from the same
table that decides which files a project gets.

Tools: cruft runs with the versions pinned in scripts/switch-pattern.requirements.txt (cruft 2.16.0 crashes
at its confirmation prompt with newer typer releases). This tool uses the interpreter that runs it when
its versions match the pins, else the one named by $SWITCH_PATTERN_PYTHON (which must match), else a private
virtual environment it creates once under .git/ (never committed) from the pins. `--check` needs only PyYAML.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import hashlib
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from repo_tools import project
from repo_tools.project import ROOT
from repo_tools.switch.check import LEFTOVER_SUFFIXES, current_pattern, label, relative, report, verify, walk
from repo_tools.switch.update import ensure_pinned_tools, git, run_cruft_update


def answer(text: str) -> tuple[str, Any]:
    """argparse type of --set: KEY=VALUE, the value as a string (true/false as booleans)."""
    key, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[a-z][a-z0-9_]*", key):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a template answer as KEY, got {text!r}")
    if key == "deployment_pattern":
        raise argparse.ArgumentTypeError("the pattern is the positional argument, not --set")
    return key, {"true": True, "false": False}.get(value, value)


def repository_problem() -> str | None:
    """Why a switch cannot run here: git must track the project, at the top of a repository of its own or in
    a folder of a larger one (a monorepo; the per-file merge prefixes the folder, as cruft does).

    A project git does not track, in a folder of another repository (the template clone's git-ignored
    out/<slug>, before `git init`), is refused: cruft's `git apply` would patch nothing while .cruft.json
    records the new answers, and the private tool environment would land in that other repository's .git."""
    top = git("rev-parse", "--show-toplevel")
    if top.returncode != 0:
        return "scripts/switch-pattern: not a git repository; commit the project first"
    outer = Path(top.stdout.strip()).resolve()
    if outer == ROOT.resolve() or git("ls-files", "--", ".cruft.json").stdout.strip():
        return None
    branch = "main"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        branch = json.loads((ROOT / ".cruft.json").read_text())["context"]["cookiecutter"]["default_branch"]
    return (
        f"scripts/switch-pattern: {ROOT} is inside the git repository {outer}, which does not track it: "
        "a switch or --set updates only a project git tracks. Make it a repository of its own:\n"
        f"  cd {shlex.quote(str(ROOT))} && git init -b {shlex.quote(branch)} && git add -A && "
        "git commit -m 'From the template'\n"
        f"(or, for a folder of {outer}, commit the project there first, with its .cruft.json).\n"
        "Nothing was changed."
    )


def template_problem() -> str | None:
    """A template that is a local clone with uncommitted changes: cruft renders its commits only, so the
    changes would silently not be used."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        template = Path(json.loads((ROOT / ".cruft.json").read_text())["template"]).expanduser()
        if template.is_dir():
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=template,
                capture_output=True,
                text=True,
            )
            if status.returncode == 0 and status.stdout.strip():
                return (
                    f"scripts/switch-pattern: the template {template} has uncommitted changes, which the "
                    "update would not use (cruft renders the template's commits): commit or stash them there "
                    "first. Nothing was changed."
                )
    return None


def answers_of(state: bytes) -> dict[str, Any]:
    """The answers .cruft.json records, without the template's own bookkeeping (_template, _commit, ...)."""
    try:
        context = json.loads(state)["context"]["cookiecutter"]
    except (ValueError, KeyError, TypeError):
        return {}
    return {key: value for key, value in context.items() if not key.startswith("_")}


def fingerprint() -> dict[str, str]:
    """Every file of the project but .cruft.json, git-ignored ones included: what an update may change."""
    cruft = ROOT / ".cruft.json"
    return {relative(p): digest(p) for p in walk(ROOT) if p != cruft}


def digest(path: Path) -> str:
    """A file's content; a symbolic link's target (which may not exist: a dangling link is no error)."""
    if path.is_symlink():
        return "link:" + os.readlink(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unknown_answers(answers: dict[str, Any]) -> list[str]:
    """Each --set key that is not one of the template's answers in .cruft.json, with the closest one: cruft
    would take a misspelt key silently and change nothing."""
    cruft_file = ROOT / ".cruft.json"
    if not answers or not cruft_file.is_file():
        return []
    context = json.loads(cruft_file.read_text()).get("context", {}).get("cookiecutter", {})
    known = sorted(key for key in context if not key.startswith("_"))
    problems = []
    for key in answers:
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"the answers are: {', '.join(known)}"
        problems.append(f"unknown answer {key}: {hint}")
    return problems


# What the template's post-gen hook prints on each of cruft's renders, the old answers' one too: during a
# `--set dev_workspace_host=…` it named the very host being set. Held back; said once, of the new answers.
PLACEHOLDER_WARNING = re.compile(r"^WARNING: the .* workspace URL\(s\) are the template's placeholders;")


@contextlib.contextmanager
def placeholder_warnings_held() -> Iterator[None]:
    """Run with stderr (file descriptor 2: the hooks are processes of their own) into a temporary file, then
    pass on all of it but the hooks' placeholder warnings."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode(errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not PLACEHOLDER_WARNING.match(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def warn_about_placeholders(state: bytes) -> None:
    """The hook's warning, for the answers .cruft.json now records (the template's placeholder host of the
    project's cloud, in `_clouds`)."""
    try:
        context = json.loads(state)["context"]["cookiecutter"]
        examples = context["_clouds"][context["cloud"]]["placeholder_hosts"]
    except (ValueError, KeyError, TypeError):
        return
    placeholders = [
        env for env in ("dev", "staging", "prod") if context.get(f"{env}_workspace_host") == examples.get(env)
    ]
    if placeholders:
        print(
            f"WARNING: the {', '.join(placeholders)} workspace URL(s) are the template's placeholders; "
            "set the real ones before deploying (see the note at the top of README.md).",
            file=sys.stderr,
        )


# Puts the project's folder back as HEAD has it: index, files, nothing untracked (ignored files stay).
UNDO = "git reset -q -- . && git checkout -- . && git clean -fdq -- ."


def switch(pattern: str, answers: dict[str, Any] | None = None) -> int:
    problem = repository_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if not (ROOT / ".cruft.json").is_file():
        raise SystemExit(
            "scripts/switch-pattern: no .cruft.json: link the project once with `cruft link <template-url>`"
        )
    dirty = git("status", "--porcelain", "--untracked-files=all").stdout.splitlines()
    leftovers = [relative(p) for p in walk(ROOT) if p.name.endswith(LEFTOVER_SUFFIXES)]
    if dirty or leftovers:
        print(
            "Refusing to switch: commit or stash your changes, and finish any earlier merge first:",
            file=sys.stderr,
        )
        for line in dirty + leftovers:
            print(f"  {line}", file=sys.stderr)
        return 2
    problem = template_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    ensure_pinned_tools()
    old = current_pattern(project.patterns(ROOT))
    change = (
        f"{label(old)} -> {label(pattern)}" if old != pattern else f"{label(pattern)}, its latest version"
    )
    print(f"Updating from the template: {change} ...", file=sys.stderr)
    from cookiecutter import exceptions

    # The template's hook has printed what it refused; cookiecutter would add its own traceback of that.
    logging.getLogger("cookiecutter").getChild("hooks").disabled = True
    state, files = (ROOT / ".cruft.json").read_bytes(), fingerprint()
    from cruft.exceptions import CruftError

    try:
        with placeholder_warnings_held():
            updated = run_cruft_update(pattern, answers)
    except exceptions.FailedHookException:
        print("The template refused an answer (see above); nothing was changed.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # The switch started on a clean tree: everything changed since HEAD is its own half-done work.
        print(
            "\nscripts/switch-pattern: interrupted; the tree is half-updated (by the switch, not by you: it "
            "starts on a clean tree only). Undo it, then run the same command again:\n"
            f"  cd {shlex.quote(str(ROOT))} && {UNDO}",
            file=sys.stderr,
        )
        return 130
    except (
        ValueError
    ) as error:  # cookiecutter: a value that is none of a choice's options (--set compute=gpu)
        print(
            f"scripts/switch-pattern: the template refused an answer: {error} Nothing was changed.",
            file=sys.stderr,
        )
        return 2
    except CruftError as error:  # the template cannot be found or cloned (.cruft.json's "template")
        template = json.loads(state).get("template", "?")
        print(
            f'scripts/switch-pattern: cannot use the template {template} (.cruft.json\'s "template"): '
            f"{' '.join(error.format_message().split())} Fix its address in .cruft.json, commit, and run "
            "again. Nothing was changed.",
            file=sys.stderr,
        )
        return 1
    if not updated:
        print("cruft update failed (see above); nothing was verified.", file=sys.stderr)
        return 1
    was, now = answers_of(state), answers_of((ROOT / ".cruft.json").read_bytes())
    changed = sorted(key for key in was.keys() | now.keys() if was.get(key) != now.get(key))
    if changed and fingerprint() == files:  # every answer changes some file: this update was not applied
        (ROOT / ".cruft.json").write_bytes(state)
        print(
            f"scripts/switch-pattern: the update changed the answers ({', '.join(changed)}) but no file: "
            "it was not applied; .cruft.json is restored, nothing changed.",
            file=sys.stderr,
        )
        return 1
    warn_about_placeholders((ROOT / ".cruft.json").read_bytes())
    return report(*verify(pattern), switched=True)


def main(argv: list[str] | None = None) -> int:
    patterns = sorted(project.patterns(ROOT))
    parser = argparse.ArgumentParser(prog="scripts/switch-pattern", description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("pattern", nargs="?", choices=patterns, help="the pattern to switch to")
    group.add_argument("--check", action="store_true", help="verify only (offline)")
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        type=answer,
        action="append",
        default=[],
        help="also change this answer of the template (e.g. a workspace URL); the template's checks apply",
    )
    args = parser.parse_args(argv)
    if args.check and args.set:
        parser.error("--set changes answers: it needs a pattern, not --check")
    if args.check:
        try:
            import yaml  # noqa: F401
        except ImportError:
            problem = repository_problem()  # the private tool environment goes under the repository's .git
            if problem:
                print(problem, file=sys.stderr)
                return 2
            ensure_pinned_tools()
        return report(*verify(), switched=False)
    unknown = unknown_answers(dict(args.set))
    if unknown:
        for line in unknown:
            print(f"scripts/switch-pattern: --set {line}", file=sys.stderr)
        print("Nothing was changed.", file=sys.stderr)
        return 2
    return switch(args.pattern, dict(args.set))
