"""The switch itself: `cruft update` with the pinned tools, merging file by file.

cruft runs with the versions pinned in scripts/switch-pattern.requirements.txt (cruft 2.16.0 crashes at its
confirmation prompt with newer typer releases): the interpreter that runs the tool when its versions match the
pins, else the one named by $SWITCH_PATTERN_PYTHON (which must match), else a private virtual environment made
once under .git/ (never committed) from the pins."""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from repo_tools.dependencies import installed_versions, mismatches, read_pins
from repo_tools.project import ROOT

PINS = ROOT / "scripts" / "switch-pattern.requirements.txt"
PYTHON_VARIABLE = "SWITCH_PATTERN_PYTHON"
REEXEC_GUARD = "SWITCH_PATTERN_REEXEC"


def private_python(pins_file: Path = PINS, root: Path = ROOT) -> Path:
    """A virtual environment under .git/ with exactly the pins; made once per version of the pins file."""
    common = subprocess.run(
        ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    digest = hashlib.sha256(pins_file.read_bytes()).hexdigest()[:12]
    home = Path(common) / "switch-pattern" / f"venv-{digest}"
    python = home / "bin" / "python"
    if not python.exists():
        print(f"Installing the pinned template tools into {home} (once) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
        install = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(pins_file)]
        subprocess.run([str(python), *install], check=True)
    return python


def ensure_pinned_tools() -> None:
    """Return when this interpreter has the pinned versions; else run the tool again under one that has."""
    pins = read_pins(PINS)
    wrong = mismatches(pins, installed_versions(list(pins)))
    if not wrong:
        return
    if os.environ.get(REEXEC_GUARD):
        raise SystemExit(
            f"scripts/switch-pattern: {sys.executable} lacks the pinned tools: {', '.join(wrong)}"
        )
    named = os.environ.get(PYTHON_VARIABLE)
    python = Path(named) if named else private_python()
    # The package comes from this project's tools/, whatever the other interpreter has on its path.
    path = os.pathsep.join(filter(None, [str(ROOT / "tools"), os.environ.get("PYTHONPATH")]))
    argv = [str(python), "-m", "repo_tools.switch", *sys.argv[1:]]
    os.execve(str(python), argv, {**os.environ, REEXEC_GUARD: "1", "PYTHONPATH": path})


def git(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, input=stdin, capture_output=True, text=True)


def split_diff(diff: str) -> list[str]:
    """One patch per file of a `git diff` output."""
    return [
        f"diff --git {part}" for part in re.split(r"^diff --git ", diff, flags=re.MULTILINE) if part.strip()
    ]


def apply_per_file(diff: str, expanded_dir_path: Path, allow_untracked_files: bool) -> None:
    """Replaces cruft's patch step: a three-way merge per file, `--reject` only for a file that cannot merge.

    cruft applies the whole diff at once and, when a single file fails (a team edit to a file the switch
    deletes), re-applies everything with `--reject`, turning mergeable changes elsewhere into *.rej files.
    """
    for patch in split_diff(diff):
        before = git("status", "--porcelain").stdout
        if git("apply", "-3", stdin=patch).returncode != 0 and git("status", "--porcelain").stdout == before:
            git("apply", "--reject", stdin=patch)


# The git settings cruft's diff and the per-file merge rely on, whatever a person's git config says: without
# rename detection a file the template renamed keeps the edit while its new name misses it; other prefixes,
# colour or whitespace fixes make patches that do not apply as they should.
PINNED_GIT_CONFIG = {
    "diff.renames": "true",
    "diff.noprefix": "false",
    "diff.mnemonicPrefix": "false",
    "diff.relative": "false",
    "diff.algorithm": "myers",
    "diff.context": "3",
    "diff.interHunkContext": "0",
    "diff.suppressBlankEmpty": "false",
    "color.ui": "false",
    "color.diff": "false",
    "apply.whitespace": "nowarn",
    "merge.conflictStyle": "merge",
    "core.autocrlf": "false",
    "core.quotePath": "true",
}


def pin_git_config(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """Add PINNED_GIT_CONFIG to the environment (GIT_CONFIG_COUNT/KEY/VALUE, which win over every config
    file) of this process, so every git that cruft and this tool start uses it."""
    count = int(environ.get("GIT_CONFIG_COUNT", "0") or "0")
    for offset, (key, value) in enumerate(PINNED_GIT_CONFIG.items()):
        environ[f"GIT_CONFIG_KEY_{count + offset}"] = key
        environ[f"GIT_CONFIG_VALUE_{count + offset}"] = value
    environ["GIT_CONFIG_COUNT"] = str(count + len(PINNED_GIT_CONFIG))


def run_cruft_update(pattern: str, answers: dict[str, Any] | None = None) -> bool:
    from cruft import update

    pin_git_config()

    update_module = importlib.import_module("cruft._commands.update")

    if not hasattr(update_module, "_apply_patch"):
        raise SystemExit("scripts/switch-pattern: this cruft has no _apply_patch; use the pinned version")
    update_module._apply_patch = apply_per_file
    # skip_apply_ask: never reach cruft's interactive prompt; extra_context is --variables-to-update.
    return update(
        ROOT,
        cookiecutter_input=False,
        skip_apply_ask=True,
        extra_context={**(answers or {}), "deployment_pattern": pattern},
    )
