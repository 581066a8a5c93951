"""Prune the files that the answers do not call for.

KEEP_WHEN is the one rule table of the template: path -> the answers under which the path is kept.
Every other file of the template is always kept. The template's tests build each combination's
expected file set from this same table.

The same table also becomes scripts/patterns.json, the ownership manifest that
scripts/switch-pattern reads to check that a pattern switch is complete. Its content does not depend on
the deployment pattern, so a switch never rewrites it.

No network, no subprocess, no prompts: cruft runs this hook on each of its internal renders, so
running it twice must change nothing the second time.
"""

from __future__ import annotations

import json
import os
import sys

# Like the pre-gen hook, this runs as a Python process of its own on every bake: only what a bake needs is
# imported at run time (no `typing`, `pathlib` or `shutil`); annotations are not evaluated.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

CODE = {"deployment_pattern": "deploy_code"}
MODELS = {"deployment_pattern": "deploy_models"}
SERVING = {"serving_endpoint": True}

# Paths are relative to the generated project; {package} is the Python package name.
KEEP_WHEN: dict[str, Mapping[str, Any]] = {
    # deploy code: the code moves; every environment retrains.
    ".github/workflows/deploy.yml": CODE,
    "docs/deploy-code.md": CODE,
    # deploy models: the model moves dev -> staging -> prod; supporting code is released separately.
    ".github/workflows/train.yml": MODELS,
    ".github/workflows/promote.yml": MODELS,
    ".github/workflows/release.yml": MODELS,
    "docs/deploy-models.md": MODELS,
    "targets/dev-shared.yml": MODELS,
    "resources/model-promotion.job.yml": MODELS,
    "src/{package}/promote.py": MODELS,
    "tests/unit/test_promote.py": MODELS,
    "tests/e2e/test_promotion.py": MODELS,
    # Catalogs as bundle resources only when the team asks for them (needs CREATE CATALOG).
    "resources/catalogs.yml": {"create_catalogs": True},
    # A model serving endpoint per serving target, following champion (it costs money: only when asked for).
    "resources/serving-endpoint.job.yml": SERVING,
    "src/{package}/serving.py": SERVING,
    "src/{package}/smoke_test.py": SERVING,
    "tests/unit/test_serving.py": SERVING,
    "tests/e2e/test_real_time_serving.py": SERVING,
    "tests/e2e/serving_fake.py": SERVING,
    "docs/serving.md": SERVING,
}

MANIFEST = "scripts/patterns.json"


def is_kept(condition: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    return all(context.get(key) == value for key, value in condition.items())


def conditional_paths(context: Mapping[str, Any], *, kept: bool) -> list[str]:
    """The relative paths of KEEP_WHEN that this context keeps (kept=True) or drops (kept=False)."""
    package = context["__package_name"]
    return sorted(
        path.format(package=package) for path, condition in KEEP_WHEN.items() if is_kept(condition, context) is kept
    )


def pruned_paths(context: Mapping[str, Any]) -> list[str]:
    """The relative paths that this context drops."""
    return conditional_paths(context, kept=False)


def kept_paths(context: Mapping[str, Any]) -> list[str]:
    """The conditional paths that this context keeps."""
    return conditional_paths(context, kept=True)


def pattern_facts(context: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What each pattern prescribes beyond its own files, for scripts/switch-pattern to check: the environment
    (workspace and catalog of a databricks.yml target) in which pull requests run their integration tests
    (targets/test.yml), and the bundle targets that deploy each pattern-dependent job (resources/*.job.yml).
    From cookiecutter.json's `_patterns`, the facts the templates render from (templates/pattern.j2). With
    serving_endpoint, the serving_endpoint job belongs to the pattern's serving targets as well."""
    return {
        pattern: {
            "test_environment": facts["test_env"],
            "job_targets": {
                "model_training": list(facts["training_targets"]),
                "model_promotion": list(facts["promotion_targets"]),
                **({"serving_endpoint": list(facts["serving_targets"])} if context.get("serving_endpoint") else {}),
            },
        }
        for pattern, facts in context["_patterns"].items()
    }


def manifest(context: Mapping[str, Any]) -> dict[str, Any]:
    """For each pattern, the files only it has (under the other answers of this context) and its facts.

    The same for both patterns of a context, so a pattern switch leaves the manifest as it is.
    """
    facts = pattern_facts(context)
    patterns = sorted(facts)
    kept = {pattern: set(kept_paths({**context, "deployment_pattern": pattern})) for pattern in patterns}
    return {
        "about": "Written by the template from its KEEP_WHEN table; read by scripts/switch-pattern. Do not edit.",
        "patterns": {
            pattern: {
                "only_files": sorted(kept[pattern] - set().union(*(kept[p] for p in patterns if p != pattern))),
                **facts[pattern],
            }
            for pattern in patterns
        },
    }


def prune(project_dir: str | os.PathLike[str], context: Mapping[str, Any]) -> None:
    for relative in pruned_paths(context):
        path = os.path.join(project_dir, relative)
        if os.path.isdir(path):
            import shutil  # only for a directory in the table

            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)


def placeholder_hosts(context: Mapping[str, Any]) -> list[str]:
    """The environments whose workspace URL is still the template's example for the chosen cloud."""
    examples = context.get("_clouds", {}).get(context.get("cloud"), {}).get("placeholder_hosts", {})
    return [env for env in ("dev", "staging", "prod") if context.get(f"{env}_workspace_host") == examples.get(env)]


def warn_about_placeholders(context: Mapping[str, Any]) -> None:
    """Say it at the end of the bake (stderr): the project cannot deploy until the real hosts are set."""
    placeholders = placeholder_hosts(context)
    if placeholders:
        print(
            f"WARNING: the {', '.join(placeholders)} workspace URL(s) are the template's placeholders; "
            "set the real ones before deploying (see the note at the top of README.md).",
            file=sys.stderr,
        )


def main() -> int:
    context = json.loads(r"""{{ cookiecutter | tojson }}""")
    warn_about_placeholders(context)
    prune(os.getcwd(), context)
    os.makedirs(os.path.dirname(MANIFEST), exist_ok=True)
    with open(MANIFEST, "w", encoding="utf-8") as file:
        file.write(json.dumps(manifest(context), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
