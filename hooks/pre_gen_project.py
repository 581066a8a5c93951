"""Validate every answer before cookiecutter writes anything.

All problems are collected and reported at once on stderr as
``ERROR: <key>=<value>: <rule>. Example: <valid value>``; the hook then exits 1 and
cookiecutter removes the half-made project directory.

The answers reach this file only as data: cookiecutter renders the whole context into a JSON
string literal below (the ``tojson`` filter), so a quote, a backslash or template braces in an
answer can neither break this file nor run anything. Before rendering the file is still valid Python, so ruff and
the template's tests can import it and test ``validate`` directly.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

# The choice lists of cookiecutter.json; tests/test_hooks.py keeps the two in step.
CHOICES: dict[str, tuple[str, ...]] = {
    "deployment_pattern": ("deploy_code", "deploy_models"),
    "cloud": ("aws", "azure", "gcp"),
    "compute": ("serverless", "job_cluster"),
    "ci_auth": ("github_oidc", "client_secret"),
}
BOOLEANS = ("create_catalogs",)

SLUG = re.compile(r"^[a-z][a-z0-9]*([_-][a-z0-9]+)*$")
HOST = re.compile(r"^https://[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(:[0-9]{1,5})?$")
UC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,254}$")
GITHUB_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@+-]{0,254}$")
# git check-ref-format, restricted to what a branch in a workflow trigger can safely be.
BRANCH = re.compile(r"^(?!/|.*(\.\.|//|@\{|\.lock$|/$|\.$))[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Rule(NamedTuple):
    key: str
    ok: Callable[[Any, Mapping[str, Any]], bool]
    rule: str
    example: str


def _matches(pattern: re.Pattern[str]) -> Callable[[Any, Mapping[str, Any]], bool]:
    return lambda value, _context: isinstance(value, str) and bool(pattern.match(value))


def _one_line(limit: int) -> Callable[[Any, Mapping[str, Any]], bool]:
    return lambda value, _context: (
        isinstance(value, str) and 0 < len(value.strip()) <= limit and not CONTROL.search(value)
    )


def _package_ok(value: Any, _context: Mapping[str, Any]) -> bool:
    package = str(value).replace("-", "_")
    return package.isidentifier() and not keyword.iskeyword(package)


def _differs_from(*others: str) -> Callable[[Any, Mapping[str, Any]], bool]:
    return lambda value, context: all(value != context.get(other) for other in others)


RULES: tuple[Rule, ...] = (
    Rule("project_name", _one_line(100), "must be one line of 1 to 100 characters", "Fraud Scoring"),
    Rule(
        "project_slug",
        _matches(SLUG),
        "must be lowercase letters and digits, words joined by '-' or '_', starting with a letter",
        "fraud-scoring",
    ),
    Rule("project_slug", _package_ok, "must give a Python package name that is not a keyword", "fraud-scoring"),
    Rule("description", _one_line(300), "must be one line of 1 to 300 characters", "Scores card payments for fraud."),
    *(
        Rule(
            key,
            lambda value, _context, allowed=allowed: value in allowed,
            f"must be one of {', '.join(allowed)}",
            allowed[0],
        )
        for key, allowed in CHOICES.items()
    ),
    *(Rule(key, lambda value, _context: isinstance(value, bool), "must be true or false", "false") for key in BOOLEANS),
    Rule("github_repository", _matches(GITHUB_REPO), "must be a GitHub owner/name", "my-org/fraud-scoring"),
    *(
        Rule(
            f"{env}_workspace_host",
            _matches(HOST),
            "must be the https URL of a workspace, host only (no path, trailing slash, query or fragment)",
            f"https://{env}-workspace.cloud.databricks.com",
        )
        for env in ("dev", "staging", "prod")
    ),
    *(
        Rule(
            key,
            _matches(UC_NAME),
            "must be a Unity Catalog name usable unquoted: lowercase letters, digits and '_', starting with a letter",
            example,
        )
        for key, example in (
            ("dev_catalog", "dev"),
            ("staging_catalog", "staging"),
            ("prod_catalog", "prod"),
            ("schema_name", "fraud_scoring"),
            ("model_name", "fraud_classifier"),
        )
    ),
    Rule(
        "staging_catalog",
        _differs_from("dev_catalog"),
        "must differ from dev_catalog: each environment has its own catalog",
        "staging",
    ),
    Rule(
        "prod_catalog",
        _differs_from("dev_catalog", "staging_catalog"),
        "must differ from dev_catalog and staging_catalog",
        "prod",
    ),
    *(
        Rule(key, _matches(BRANCH), "must be a valid git branch name (letters, digits, '.', '_', '-', '/')", example)
        for key, example in (("default_branch", "main"), ("release_branch", "release"))
    ),
    Rule("release_branch", _differs_from("default_branch"), "must differ from default_branch", "release"),
    Rule(
        "read_group",
        _matches(GROUP),
        "must be a group name (letters, digits, spaces, '_', '.', '@', '+', '-')",
        "data-scientists",
    ),
)


def validate(context: Mapping[str, Any]) -> list[str]:
    """Return one error line per broken rule, in the order of RULES."""
    errors = []
    for rule in RULES:
        value = context.get(rule.key)
        if not rule.ok(value, context):
            errors.append(
                f"ERROR: {rule.key}={json.dumps(value, ensure_ascii=False)}: {rule.rule}. Example: {rule.example}"
            )
    return errors


def main() -> int:
    context = json.loads(r"""{{ cookiecutter | tojson }}""")
    errors = validate(context)
    for line in errors:
        print(line, file=sys.stderr)
    if errors:
        print(f"{len(errors)} answer(s) refused; nothing was generated.", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
