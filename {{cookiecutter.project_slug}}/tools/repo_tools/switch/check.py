"""`scripts/switch-pattern --check`: is this repository consistently one pattern?

Offline and read-only. Each finding is a Problem: the file, what is wrong, what to do. The checks: no file
of another pattern that this one lacks (scripts/patterns.json), every file of this pattern there, no *.rej or
*.orig anywhere (git-ignored ones too), no conflict marker in a file git tracks or would add (any encoding)
and no unmerged file, the pull requests' test target in the environment the pattern prescribes, each
pattern-dependent job deployed by the pattern's targets, every `databricks bundle` target and job a workflow
names defined by the bundle, every target with a workspace host, every variable used or set declared, every
console script's module there, no former or copied package beside the project's own under src/."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repo_tools import project
from repo_tools.project import ROOT, Bundle, ProjectError

# Lines git writes around a conflict. A bare "=======" is also a Markdown heading underline: not a marker.
MARKER = re.compile(r"^(<{7}|\|{7}|>{7})( |$)")
LEFTOVER_SUFFIXES = (".rej", ".orig")
DELETION = re.compile(r"^deleted file mode ", re.MULTILINE)  # a patch that deletes its file


def label(pattern: str) -> str:
    return pattern.replace("_", " ")


@dataclass(frozen=True)
class Problem:
    path: str
    what: str
    todo: str

    def __str__(self) -> str:
        return f"  {self.path}: {self.what}\n      -> {self.todo}"


def current_pattern(manifest: dict[str, Any]) -> str:
    """The pattern in .cruft.json; without it (plain cookiecutter), the one whose files are all present, and
    no file that it lacks."""
    cruft_file = ROOT / ".cruft.json"
    if cruft_file.is_file():
        return json.loads(cruft_file.read_text())["context"]["cookiecutter"]["deployment_pattern"]
    dependent = {f for facts in manifest.values() for f in facts["files"]}
    existing = {f for f in dependent if (ROOT / f).exists()}
    present = [p for p, facts in manifest.items() if existing == set(facts["files"])]
    if len(present) != 1:
        raise SystemExit(
            "scripts/switch-pattern: no .cruft.json and no single pattern's files: cannot tell the pattern"
        )
    return present[0]


def walk(root: Path) -> Iterator[Path]:
    """Every file under root, git-ignored ones included, except .git and virtual environments."""
    for directory, subdirs, files in os.walk(root):
        here = Path(directory)
        subdirs[:] = [d for d in subdirs if d != ".git" and not (here / d / "pyvenv.cfg").exists()]
        for name in files:
            yield here / name


def tracked_and_new(root: Path) -> list[Path]:
    """The files git tracks or would add: where a conflict marker would be committed."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:  # not a git repository: every file
        return list(walk(root))
    return sorted({root / name for name in listed.stdout.split("\0") if name and (root / name).is_file()})


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# Folders of files a team may delete on purpose (committed): the pattern's page, its tests.
OPTIONAL = ("docs/", "tests/")


def deleted_in_a_commit(path: str) -> bool:
    """The project's history has a commit that deleted `path`: a deletion someone committed, not a file a
    switch failed to write."""
    log = subprocess.run(
        ["git", "log", "-1", "--format=%H", "--diff-filter=D", "--", path],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return log.returncode == 0 and bool(log.stdout.strip())


def owners(manifest: dict[str, Any], path: str) -> str:
    """The patterns that have a pattern-dependent file, in words: `deploy models and hybrid`."""
    names = [label(p) for p, facts in manifest.items() if path in facts["files"]]
    return " and ".join(names)


def leftover_problems(manifest: dict[str, Any], pattern: str) -> list[Problem]:
    problems = []
    own = manifest[pattern]["files"]
    others = sorted({f for p, facts in manifest.items() if p != pattern for f in facts["files"]} - set(own))
    for path in others:
        if not (ROOT / path).exists():
            continue
        siblings = [f for f in own if Path(f).parent == Path(path).parent]
        into = f"into {' or '.join(siblings)} " if siblings else "into this pattern's files "
        having = owners(manifest, path)
        problems.append(
            Problem(
                path,
                f"only {having} {'have' if ' and ' in having else 'has'} this file; the switch kept it "
                "(you edited it)",
                f"port your edit {into}if it still applies (`git log -p -- {path}` shows it), "
                f"then delete it: git rm {path}",
            )
        )
    for path in own:
        if not (ROOT / path).exists() and not (path.startswith(OPTIONAL) and deleted_in_a_commit(path)):
            problems.append(
                Problem(
                    path,
                    f"missing: {label(pattern)} has this file",
                    "restore it from the template (`cruft diff` prints it) or from git history"
                    + (
                        f"; if you do not want it, delete it in a commit: git rm {path} && git commit"
                        if path.startswith(OPTIONAL)
                        else ""
                    ),
                )
            )
    return problems


def read_lenient(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return ""


def merge_leftover_problems(manifest: dict[str, Any]) -> list[Problem]:
    other_files = {f for facts in manifest.values() for f in facts["files"]}
    problems = []
    for path in sorted(walk(ROOT)):
        if not path.name.endswith(LEFTOVER_SUFFIXES):
            continue
        name, base = relative(path), relative(path)[: -len(path.suffix)]
        if path.suffix == ".rej" and base in other_files:
            todo = f"the template's removal of {base}: deal with {base} (above), then delete {name}"
        elif path.suffix == ".rej" and DELETION.search(read_lenient(path)):
            todo = (
                f"the template deletes {base}, which you edited: delete it (git rm {base}) or keep it as "
                f"your own, then delete {name}"
            )
        elif path.suffix == ".rej" and not (ROOT / base).exists():
            todo = (
                f"{base} is not there (renamed or deleted): apply the template's change in {name} to the "
                f"file that holds that content now, then delete {name} (if you deleted {base} on purpose, "
                f"just delete {name})"
            )
        elif path.suffix == ".rej":
            todo = f"apply the hunk in {name} to {base} by hand, then delete {name}"
        else:
            todo = f"a merge tool's backup: compare it with {base}, keep what you need, then delete {name}"
        problems.append(Problem(name, "merge leftover", todo))
    return problems


def unmerged_paths(root: Path) -> list[str]:
    """The files git's index holds as unmerged (`git status`: UU, AA, ...), whatever their markers look like
    (`conflict-marker-size` in .gitattributes changes them); relative to root."""
    listed = subprocess.run(["git", "ls-files", "-u", "-z"], cwd=root, capture_output=True, text=True)
    if listed.returncode != 0:
        return []
    return sorted({entry.split("\t", 1)[1] for entry in listed.stdout.split("\0") if "\t" in entry})


MAX_SCANNED = 5 * 1024 * 1024  # bytes: a larger tracked file (a data set) is not read on every pre-commit


def text_to_scan(path: Path) -> bytes | None:
    """A file's bytes to look for markers in; None for one over MAX_SCANNED or binary (a NUL in its first
    8 KiB: git writes no markers into it), read no further than that. A conflict git recorded in such a file
    is still found, through git's unmerged list."""
    try:
        if path.stat().st_size > MAX_SCANNED:
            return None
        with path.open("rb") as file:
            head = file.read(8192)
            return None if b"\0" in head else head + file.read()
    except OSError:
        return None


def marker_problems() -> list[Problem]:
    problems = []
    for path in tracked_and_new(ROOT):
        data = text_to_scan(path)
        if data is None:
            continue
        # Markers are ASCII: whatever the file's encoding, they survive a lenient decoding.
        lines = data.decode("utf-8", errors="replace").splitlines()
        hits = [str(n) for n, line in enumerate(lines, start=1) if MARKER.match(line)]
        if hits:
            problems.append(
                Problem(
                    relative(path),
                    f"conflict markers on line{'s' if len(hits) > 1 else ''} {', '.join(hits)}",
                    "resolve the markers: keep the template's side of pattern-specific lines, re-apply "
                    "your edit, remove the <<<<<<< ||||||| ======= >>>>>>> lines",
                )
            )
    reported = {problem.path for problem in problems}
    for name in unmerged_paths(ROOT):
        if name not in reported:
            problems.append(
                Problem(
                    name,
                    "unmerged: git recorded a conflict in this file (`git status` lists it as unmerged)",
                    f"resolve the conflict (its markers may be longer than 7 characters), "
                    f"then `git add {name}`",
                )
            )
    return problems


def test_target_problems(manifest: dict[str, Any], pattern: str, bundle: Bundle) -> list[Problem]:
    environment = manifest[pattern]["test_environment"]
    settings = {name: where(bundle, name) for name in bundle.targets}
    test, expected = settings.get("test", {}), settings.get(environment, {})
    wrong = [key for key in ("host", "catalog") if test.get(key) != expected.get(key)]
    if not wrong:
        return []
    owners = {}
    for key in wrong:
        owner = [name for name, t in settings.items() if name != "test" and t.get(key) == test.get(key)]
        owners[key] = f"{test.get(key)} ({', '.join(owner) or 'no environment'})"
    return [
        Problem(
            "targets/test.yml",
            f"{label(pattern)} runs pull requests' integration tests in {environment}, but the test target "
            "has " + " and ".join(f"{key} {owners[key]}" for key in wrong),
            "set "
            + " and ".join(f"{key}: {expected.get(key)}" for key in wrong)
            + f" (those of the {environment} "
            "target in databricks.yml); a test target with one environment's host and another's catalog "
            "writes pull requests' schemas where they do not belong",
        )
    ]


def step_sources(reported: set[str]) -> list[tuple[str, list[project.WorkflowJob], ProjectError | None]]:
    """Each workflow and composite action (`.github/actions/*/action.yml`) with the jobs whose steps it runs
    (none, and the error, when it does not parse); those already reported (another pattern's files) are
    left out."""
    found: list[tuple[str, list[project.WorkflowJob], ProjectError | None]] = []
    loaders = [(path, project.load_workflow) for path in project.workflow_paths(ROOT)]
    loaders += [(path, project.load_action) for path in project.action_paths(ROOT)]
    for path, load in loaders:
        if path in reported:
            continue
        try:
            found.append((path, load(ROOT, path), None))
        except ProjectError as error:
            found.append((path, [], error))
    return found


def test_override_problems(
    manifest: dict[str, Any], pattern: str, bundle: Bundle, reported: set[str]
) -> list[Problem]:
    """A workflow's `--var catalog=…` (or BUNDLE_VAR_catalog) on the test target overrides the catalog that
    test_target_problems checked in targets/test.yml: it must be the prescribed environment's too."""
    environment = manifest[pattern]["test_environment"]
    expected = where(bundle, environment).get("catalog") if environment in bundle.targets else None
    if expected is None:
        return []
    problems = []
    for path, jobs, _ in step_sources(reported):  # one that does not parse: reported by workflow_problems
        for job in jobs:
            for command in job.bundle_commands:
                target = command.target if command.target != "" else bundle.default_target
                catalog = dict(command.variables).get("catalog")
                if target != "test" or catalog is None or catalog == expected:
                    continue
                owner = [
                    name
                    for name in bundle.targets
                    if name != "test" and where(bundle, name).get("catalog") == catalog
                ]
                problems.append(
                    Problem(
                        f"{path}:{command.line}",
                        f"`bundle {command.verb}` on the test target sets catalog {catalog} "
                        f"({', '.join(owner) or 'no environment'}); {label(pattern)} runs pull requests' "
                        f"integration tests in {environment} (catalog {expected})",
                        "remove the catalog override (targets/test.yml sets the catalog), "
                        f"or make it {expected}",
                    )
                )
    return problems


def where(bundle: Bundle, target: str) -> dict[str, Any]:
    """The workspace host and catalog a target sets itself."""
    settings = bundle.targets[target]
    found = {}
    if "host" in (settings.get("workspace") or {}):
        found["host"] = str(settings["workspace"]["host"]).rstrip("/")  # the same workspace with a trailing /
    if "catalog" in (settings.get("variables") or {}):
        found["catalog"] = settings["variables"]["catalog"]
    return found


def workspace_problems(bundle: Bundle) -> list[Problem]:
    """Every target deploys to a workspace: its own host or the bundle's. A target with none is usually one
    a team file kept alive after the pattern that defined it went away (`targets: dev-shared:` in
    resources/)."""
    problems = []
    for name in bundle.targets:
        if (bundle.view(name).get("workspace") or {}).get("host"):
            continue
        files = [path for path, data in bundle.files.items() if name in ((data or {}).get("targets") or {})]
        problems.append(
            Problem(
                ", ".join(files) or "databricks.yml",
                f"target {name} has no workspace host (nor does the bundle's top level), so it deploys "
                "nowhere the project knows",
                f"if {name} is a target the pattern no longer has, remove it from these files; else give it "
                "`workspace: host:` and a `mode`, as databricks.yml does for its targets",
            )
        )
    return problems


def references(node: Any) -> Iterator[str]:
    """The variables every `${var.name}` in a parsed file refers to."""
    if isinstance(node, dict):
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)
    elif isinstance(node, str):
        yield from project.VARIABLE.findall(node)


def variable_problems(bundle: Bundle) -> list[Problem]:
    """Every variable a file uses (`${var.name}`) or a target sets is declared at the top level of some file
    (`variables:`): the CLI refuses the bundle otherwise. An undeclared one is usually what the old pattern's
    file that declared it left behind (a grant to `${var.promotion_principal}`)."""
    declared = set(bundle.merged.get("variables") or {})
    problems = []
    for path, content in bundle.files.items():
        content = content or {}
        used = set(references({k: v for k, v in content.items() if k != "variables"}))
        for target in (content.get("targets") or {}).values():
            used |= set((target or {}).get("variables") or {})
        missing = sorted(used - declared)
        if missing:
            problems.append(
                Problem(
                    path,
                    f"uses or sets variable{'s' if len(missing) > 1 else ''} {', '.join(missing)}, which no "
                    "file declares under the top-level `variables:`",
                    "if this is the other pattern's configuration, remove it (`cruft diff` shows the "
                    "template's side); else declare the variable under `variables:`",
                )
            )
    return problems


def template_targets(manifest: dict[str, Any]) -> set[str]:
    """The targets the template has in some pattern; a team's own target (a `qa` made from staging by a YAML
    alias, say) is the team's to shape."""
    names: set[str] = set()
    for facts in manifest.values():
        names |= set(facts.get("catalog_targets") or []) | set(facts.get("environments") or {})
        names |= set(facts.get("promotion_sources") or [])
        for targets in (facts.get("job_targets") or {}).values():
            names |= set(targets)
    return names


def defines_jobs_in_python(bundle: Bundle) -> bool:
    """The bundle loads resources from Python code (`python: resources:`): jobs this reader cannot see."""
    python = bundle.merged.get("python") or (bundle.merged.get("experimental") or {}).get("python") or {}
    return bool(isinstance(python, dict) and python.get("resources"))


def job_target_problems(manifest: dict[str, Any], pattern: str, bundle: Bundle) -> list[Problem]:
    """Each pattern-dependent job is deployed by exactly the targets the pattern prescribes."""
    problems = []
    known = template_targets(manifest)
    for job, wanted in manifest[pattern]["job_targets"].items():
        actual = sorted(name for name in bundle.targets if name in known and job in bundle.jobs(name))
        if set(actual) == set(wanted):
            continue
        problems.append(
            Problem(
                ", ".join(bundle.files_defining_target_job(job)) or "resources/",
                f"job {job} is deployed by targets {actual or 'none'}; {label(pattern)} deploys it in "
                f"{sorted(wanted) or 'no target'}",
                f"keep the template's side of the switch for {job}'s targets (`cruft diff` shows it)",
            )
        )
    return problems


def workflow_problems(bundle: Bundle, reported: set[str]) -> list[Problem]:
    """Every `databricks bundle` command names a target the bundle defines (its default one when it names
    none); every `bundle run J` a job that the target deploys, in workflows and composite actions (a matrix
    job once per run of its matrix). Workflows already reported (another pattern's
    files) are skipped: deleting them is the fix. A target set outside the workflow (a step output, say) is
    not checked."""
    problems = []
    python_jobs = defines_jobs_in_python(bundle)  # a job not in the YAML may be defined there
    for path, jobs, error in step_sources(reported):
        if error is not None:
            problems.append(Problem(path, f"does not parse as YAML: {error}", "fix it, then run --check"))
            continue
        for job in jobs:
            for command in job.bundle_commands:
                target = command.target if command.target != "" else bundle.default_target
                if target is None:
                    continue
                where = f"{path}:{command.line}"
                if target not in bundle.targets:
                    problems.append(
                        Problem(
                            where,
                            f"`bundle {command.verb}` uses target {target}, which the bundle does not define",
                            "delete or port this workflow: the pattern has no such target",
                        )
                    )
                elif command.key and command.key not in bundle.jobs(target) and not python_jobs:
                    problems.append(
                        Problem(
                            where,
                            f"runs job {command.key} in target {target}, which does not deploy it",
                            "delete or port this workflow: that job does not exist there in this pattern",
                        )
                    )
    return problems


def console_script_problems() -> list[Problem]:
    """Every console script in pyproject.toml points at a module the package has."""
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():
        return []
    try:
        scripts = tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {})
    except tomllib.TOMLDecodeError as error:  # e.g. conflict markers, reported on their own
        return [Problem("pyproject.toml", f"does not parse: {error}", "fix it (see the problems above)")]
    problems = []
    for name, entry in scripts.items():
        module = entry.split(":", 1)[0].replace(".", "/")
        if not any((ROOT / "src" / f"{module}{suffix}").exists() for suffix in (".py", "/__init__.py")):
            problems.append(
                Problem(
                    "pyproject.toml",
                    f"console script {name} points at {entry}, which does not exist",
                    f"remove the {name} line from [project.scripts] or restore its module",
                )
            )
    return problems


def package_name() -> str | None:
    """The package the project builds: the template's `__package_name` answer in .cruft.json."""
    try:
        context = json.loads((ROOT / ".cruft.json").read_text())["context"]["cookiecutter"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    name = context.get("__package_name") or str(context.get("project_slug", "")).replace("-", "_")
    return str(name) or None


def former_package_names() -> set[str]:
    """Every package name .cruft.json has recorded in git history (`--set project_slug=…` changes it)."""
    log = subprocess.run(
        ["git", "log", "-p", "--format=", "--", ".cruft.json"], cwd=ROOT, capture_output=True, text=True
    )
    return set(re.findall(r'"__package_name":\s*"([^"]+)"', log.stdout))


def old_package_problems(manifest: dict[str, Any]) -> list[Problem]:
    """No package under src/ but the project's own that is a former name of it, or a copy of the template's
    package (one of its modules): setuptools ships every package under src/ in the wheel, and code that
    imports the old name breaks once it is gone. A package of the team's own, with none of those, is fine."""
    package, src = package_name(), ROOT / "src"
    if package is None or not src.is_dir():
        return []
    prefix = f"src/{package}/"
    template_modules = {
        name[len(prefix) :]
        for facts in manifest.values()
        for name in facts["files"]
        if name.startswith(prefix)
    }
    template_modules |= {p.name for p in (src / package).glob("*.py") if p.name != "__init__.py"}
    former = former_package_names()
    problems = []
    for directory in sorted(p for p in src.iterdir() if p.is_dir() and p.name != package):
        files = sorted(
            f.relative_to(directory).as_posix()
            for f in directory.rglob("*")
            if f.is_file() and "__pycache__" not in f.parts and not f.name.endswith((".pyc", ".egg-info"))
        )
        copies = [f for f in files if f in template_modules]
        if not files or directory.name.endswith(".egg-info") or not (directory.name in former or copies):
            continue
        why = (
            "a former name of the package" if directory.name in former else "a copy of the template's package"
        )
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        problems.append(
            Problem(
                f"src/{directory.name}/",
                f"{why} ({shown}), beside src/{package}/, the one this project builds; the wheel ships it "
                "too (setuptools takes every package under src/)",
                f"move what you still need into src/{package}/ (`git mv`), change imports of "
                f"{directory.name} to {package}, then delete the rest: git rm -r src/{directory.name}",
            )
        )
    return problems


def verify(pattern: str | None = None) -> tuple[str, list[Problem]]:
    manifest = project.patterns(ROOT)
    pattern = pattern or current_pattern(manifest)
    problems = leftover_problems(manifest, pattern) + merge_leftover_problems(manifest) + marker_problems()
    problems += old_package_problems(manifest)
    try:
        bundle = Bundle.load(ROOT)
        reported = {problem.path for problem in problems}
        found = test_target_problems(manifest, pattern, bundle) + workflow_problems(bundle, reported)
        found += test_override_problems(manifest, pattern, bundle, reported)
        problems += found + job_target_problems(manifest, pattern, bundle) + workspace_problems(bundle)
        problems += variable_problems(bundle)
    except ProjectError as error:
        if error.path not in {problem.path for problem in problems}:  # else its markers are reported
            problems.append(
                Problem(error.path, f"does not parse as YAML: {error}", "fix it, then run --check")
            )
    reported = {problem.path for problem in problems}
    # A file with conflict markers rarely parses: its markers are the problem to report.
    problems += [p for p in console_script_problems() if not (p.path in reported and "parse" in p.what)]
    return pattern, problems


def report(pattern: str, problems: list[Problem], switched: bool) -> int:
    if not problems:
        print(f"OK: this repository is consistently {label(pattern)}.")
        if switched:
            print("Review `git status`, run the tests, commit; then do the GitHub and Databricks side of the")
            print("change (docs/switching-patterns.md).")
        return 0
    head = (
        f"The switch to {label(pattern)} is not complete"
        if switched
        else f"Not consistently {label(pattern)}"
    )
    print(f"{head}: {len(problems)} problem(s). Finish by hand:\n", file=sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(
        "\nThen run scripts/switch-pattern --check until it prints OK, run the tests, and commit "
        "(docs/switching-patterns.md).",
        file=sys.stderr,
    )
    return 1
