"""The files the answers call for: KEEP_WHEN, the one rule table of conditional files.

KEEP_WHEN maps a path to the answers under which the path is kept; every other file of the template is always kept.
The post-gen hook prunes by it, the template's tests build each combination's expected file set from it, and it
becomes scripts/patterns.json, the manifest that the generated switch tool reads to check that a pattern switch is
complete. The manifest does not depend on the deployment pattern, so a switch never rewrites it.
"""

from __future__ import annotations

import os

# The hooks import this module in a Python process of their own on every bake: `typing` (and `pathlib`, `shlex`,
# `shutil` where they are needed) cost more than the rest of the hook, so they are imported only to type-check, or
# where a refusal or a directory needs them (tests/test_hooks.py). Annotations are not evaluated.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


def patterns(*names: str) -> dict[str, tuple[str, ...]]:
    """The condition "the deployment pattern is one of these": a file that several patterns share is one row."""
    return {"deployment_pattern": names}


CODE = patterns("deploy_code")
MODELS = patterns("deploy_models")
HYBRID = patterns("hybrid")
SERVING = {"serving_endpoint": True}

# Paths are relative to the generated project; {package} is the Python package name.
KEEP_WHEN: dict[str, Mapping[str, Any]] = {
    # The pattern's own page.
    "docs/deploy-code.md": CODE,
    "docs/deploy-models.md": MODELS,
    "docs/hybrid.md": HYBRID,
    # Staging deploys the code and trains on every push to the default branch (deploy code, hybrid); in deploy code
    # a release does the same in prod.
    ".github/workflows/deploy.yml": patterns("deploy_code", "hybrid"),
    # A monitoring verdict retrains only where the environment trains its own model (cookiecutter.json,
    # _patterns.<pattern>.retrain_on_verdict; tests/test_monitoring_bundle.py keeps the two in step).
    "src/{package}/retraining.py": patterns("deploy_code", "hybrid"),
    "tests/unit/test_retraining.py": patterns("deploy_code", "hybrid"),
    # deploy models: the model is trained in dev (dev-shared) and moves dev -> staging -> prod by workflow.
    ".github/workflows/train.yml": MODELS,
    ".github/workflows/promote.yml": MODELS,
    "targets/dev-shared.yml": MODELS,
    # A model version copied into another catalog (deploy models: dev -> staging -> prod; hybrid: staging -> prod):
    # the promotion job and its code, and the Release workflow, which deploys the supporting code to prod (hybrid:
    # and then promotes the staging champion there).
    ".github/workflows/release.yml": patterns("deploy_models", "hybrid"),
    "resources/model-promotion.job.yml": patterns("deploy_models", "hybrid"),
    "src/{package}/promote.py": patterns("deploy_models", "hybrid"),
    "tests/unit/test_promote.py": patterns("deploy_models", "hybrid"),
    "tests/e2e/test_promotion.py": patterns("deploy_models", "hybrid"),
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
    """Every key of the condition has its value in the context; a tuple of values: one of them."""
    return all(
        context.get(key) in value if isinstance(value, tuple) else context.get(key) == value
        for key, value in condition.items()
    )


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


def facts_of(facts: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """A pattern's facts as this project has them: with serving_endpoint, the serving_endpoint job is deployed
    exactly in the pattern's serving targets, which scripts/switch-pattern checks like the other jobs."""
    job_targets = dict(facts["job_targets"])
    if context.get("serving_endpoint"):
        job_targets["serving_endpoint"] = list(facts["serving_targets"])
    return {**facts, "job_targets": job_targets}


def manifest(context: Mapping[str, Any]) -> dict[str, Any]:
    """For each pattern, the pattern-dependent files it has (under the other answers of this context: the files
    some other pattern lacks) and its facts (cookiecutter.json's `_patterns`, under the names the templates use).

    The same for every pattern of a context, so a pattern switch leaves the manifest as it is.
    """
    facts = context["_patterns"]
    patterns = sorted(facts)
    kept = {pattern: set(kept_paths({**context, "deployment_pattern": pattern})) for pattern in patterns}
    everywhere = set.intersection(*kept.values())
    return {
        "about": "Written by the template from its KEEP_WHEN table; read by scripts/switch-pattern. Do not edit.",
        "patterns": {
            pattern: {"files": sorted(kept[pattern] - everywhere), **facts_of(facts[pattern], context)}
            for pattern in patterns
        },
    }


def prune(project_dir: str | os.PathLike[str], context: Mapping[str, Any]) -> None:
    for relative in pruned_paths(context):
        path = os.path.join(project_dir, relative)
        if os.path.isdir(path):
            import shutil

            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)


def placeholder_hosts(context: Mapping[str, Any]) -> list[str]:
    """The environments whose workspace URL is still the template's example for the chosen cloud."""
    examples = context.get("_clouds", {}).get(context.get("cloud"), {}).get("placeholder_hosts", {})
    return [env for env in ("dev", "staging", "prod") if context.get(f"{env}_workspace_host") == examples.get(env)]
