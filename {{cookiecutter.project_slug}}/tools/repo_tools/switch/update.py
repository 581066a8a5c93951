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
from repo_tools.project import ROOT, ProjectError, patterns

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


def patched_paths(patch: str) -> tuple[str | None, str | None]:
    """The file a patch changes, before and after (None for a file created or deleted). From the `---`/`+++`
    lines, or, in a binary patch (which has none), from its `diff --git` line."""
    header = patch.partition("\n@@")[0]

    def side(marker: str) -> str | None:
        match = re.search(rf"^{re.escape(marker)} (.+)$", header, flags=re.MULTILINE)
        if not match or match.group(1).strip() == "/dev/null":
            return None
        name = match.group(1).strip().strip('"')
        return name.split("/", 1)[1] if "/" in name else name

    if re.search(r"^(---|\+\+\+) ", header, flags=re.MULTILINE):
        return side("---"), side("+++")
    match = re.match(r"diff --git [^/\s]+/(.+) [^/\s]+/(.+)$", header.splitlines()[0] if header else "")
    if not match:
        return None, None
    created = re.search(r"^new file mode ", header, flags=re.MULTILINE)
    deleted = re.search(r"^deleted file mode ", header, flags=re.MULTILINE)
    return (None if created else match.group(1)), (None if deleted else match.group(2))


def renamed_to(path: str) -> str | None:
    """Where the project moved `path` (`git mv`), when the commit that removed it renamed it to a file that is
    still there; None for a file the project deleted."""
    removed = git("log", "-1", "--format=%H", "--diff-filter=D", "--", path).stdout.strip()
    if not removed:
        return None
    shown = git("show", "-M", "--relative", "--name-status", "--format=", removed).stdout
    for line in shown.splitlines():
        status, *names = line.split("\t")
        if status.startswith("R") and len(names) == 2 and names[0] == path and (ROOT / names[1]).is_file():
            return names[1]
    return None


def retarget(patch: str, old: str, new: str) -> str:
    """The patch with its header naming `new` where it names `old` (the hunks stay as they are)."""
    header, sep, hunks = patch.partition("\n@@")
    for prefix in ("upstream-template-old/", "upstream-template-new/", "a/", "b/"):
        header = re.sub(rf"(?m)(?<=[ ]){re.escape(prefix + old)}(?=$|[ ])", prefix + new, header)
    return header + sep + hunks


def apply_per_file(diff: str, expanded_dir_path: Path, allow_untracked_files: bool) -> None:
    """Replaces cruft's patch step: a three-way merge per file, `--reject` only for a file that cannot merge.

    cruft applies the whole diff at once and, when a single file fails (a team edit to a file the switch
    deletes), re-applies everything with `--reject`, turning mergeable changes elsewhere into *.rej files.
    A change to a file the project renamed (`git mv`) is merged into the file under its new name; one that
    lands nowhere, not even as a *.rej, is written to <file>.rej: never dropped without a trace (the removal
    of a file the team edited too, unless the verification names the file anyway: one pattern's own). A change
    to a file the project deleted is left out, as cruft does, with a note.
    """
    # In a folder of a larger repository (a monorepo), the diff's paths are the project's and git apply reads
    # them from the repository's top: prefix them with the folder, as cruft does, or every patch misses.
    prefix = git("rev-parse", "--show-prefix").stdout.strip()
    directory = ["--directory", prefix] if prefix else []
    try:  # a kept file of one pattern only is reported by the verification, with what to do: no .rej for it
        pattern_files = {f for facts in patterns(ROOT).values() for f in facts["files"]}
    except (ProjectError, KeyError, TypeError):
        pattern_files = set()
    for patch in split_diff(diff):
        old, new = patched_paths(patch)
        if old is not None and new in (old, None) and not (ROOT / old).exists():
            moved = renamed_to(old)
            if moved is None:  # deleted; nothing to say when the template deletes it as well
                if new is not None:
                    print(
                        f"note: the template changed {old}, which this project deleted: left out",
                        file=sys.stderr,
                    )
                continue
            patch, old, new = retarget(patch, old, moved), moved, moved if new else None
        before = git("status", "--porcelain", "--untracked-files=all").stdout
        if git("apply", "-3", *directory, stdin=patch).returncode == 0:
            continue
        if git("status", "--porcelain", "--untracked-files=all").stdout != before:
            continue  # merged, with conflict markers
        if git("apply", "--reject", *directory, stdin=patch).returncode == 0:
            continue
        if new is None and old in pattern_files:
            continue
        rejected = ROOT / f"{new or old}.rej"
        if git("status", "--porcelain", "--untracked-files=all").stdout == before and not rejected.exists():
            rejected.parent.mkdir(parents=True, exist_ok=True)
            rejected.write_text(patch)


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
    # cruft leaves out of both renders every file the project lacks, so a change to a file the team renamed
    # was dropped without a word: apply_per_file decides, per file, between a renamed and a deleted one.
    generate_module = importlib.import_module("cruft._commands.utils.generate")
    if not hasattr(generate_module, "_get_deleted_files"):
        raise SystemExit(
            "scripts/switch-pattern: this cruft has no _get_deleted_files; use the pinned version"
        )
    generate_module._get_deleted_files = lambda template_dir, project_dir: set()
    # skip_apply_ask: never reach cruft's interactive prompt; extra_context is --variables-to-update.
    return update(
        ROOT,
        cookiecutter_input=False,
        skip_apply_ask=True,
        extra_context={**(answers or {}), "deployment_pattern": pattern},
    )
