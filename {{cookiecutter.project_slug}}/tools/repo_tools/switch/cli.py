"""Switch this repository's deployment pattern through the template, and prove the switch is complete.

    scripts/switch-pattern deploy_code      switch to deploy code (or deploy_models, hybrid); with the
                                            pattern the repository already has, take the template's latest
                                            changes
    scripts/switch-pattern --check          verify only: offline, fetches nothing (pre-commit, CI)
    scripts/switch-pattern deploy_code --set dev_workspace_host=https://…
                                            change other answers in the same update (repeatable)

A switch refuses to start on a dirty tree, runs `cruft update` without any prompt, then verifies the result.
It exits 0 only when the tree is fully switched: no file of another pattern that this one lacks, no *.rej or
*.orig file anywhere (git-ignored ones too), no conflict marker, the pull requests' test target (host and
catalog) in the environment the pattern prescribes, each pattern-dependent job deployed by the pattern's
targets, and every `databricks bundle` target and job that a workflow names defined by the bundle. Otherwise
it prints what to do for each file and leaves the tree to you.

Which files belong to which pattern comes from scripts/patterns.json, written by the template from the same
table that decides which files a project gets.

Tools: cruft runs with the versions pinned in scripts/switch-pattern.requirements.txt (cruft 2.16.0 crashes
at its confirmation prompt with newer typer releases). This tool uses the interpreter that runs it when
its versions match the pins, else the one named by $SWITCH_PATTERN_PYTHON (which must match), else a private
virtual environment it creates once under .git/ (never committed) from the pins. `--check` needs only PyYAML.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
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


def switch(pattern: str, answers: dict[str, Any] | None = None) -> int:
    if git("rev-parse", "--is-inside-work-tree").returncode != 0:
        raise SystemExit("scripts/switch-pattern: not a git repository; commit the project first")
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
    ensure_pinned_tools()
    old = current_pattern(project.patterns(ROOT))
    change = (
        f"{label(old)} -> {label(pattern)}" if old != pattern else f"{label(pattern)}, its latest version"
    )
    print(f"Updating from the template: {change} ...", file=sys.stderr)
    from cookiecutter import exceptions

    # The template's hook has printed what it refused; cookiecutter would add its own traceback of that.
    logging.getLogger("cookiecutter").getChild("hooks").disabled = True
    try:
        updated = run_cruft_update(pattern, answers)
    except exceptions.FailedHookException:
        print("The template refused an answer (see above); nothing was changed.", file=sys.stderr)
        return 1
    if not updated:
        print("cruft update failed (see above); nothing was verified.", file=sys.stderr)
        return 1
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
            ensure_pinned_tools()
        return report(*verify(), switched=False)
    return switch(args.pattern, dict(args.set))
