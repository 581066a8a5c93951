"""Every answer's rules: what the pre-gen hook refuses (all at once, one line per refused answer) and what
scripts/bake checks before cruft runs, from this one table (`RULES`).

A refusal reads ``ERROR: <key>=<value>: <rule>. Example: <valid value>``. An answer derived from a refused one
(`DERIVED`) is not reported again: one typo, one line.
"""

from __future__ import annotations

import json
import keyword
import re

# The hooks import this module in a Python process of their own on every bake: `typing` (and `pathlib`, `shlex`,
# `shutil` where they are needed) cost more than the rest of the hook, so they are imported only to type-check, or
# where a refusal or a directory needs them (tests/test_hooks.py). Annotations are not evaluated.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    Check = Callable[[Any, Mapping[str, Any]], bool]
    Text = str | Callable[[Mapping[str, Any]], str]


# The choice lists of cookiecutter.json; tests/test_hooks.py keeps the two in step.
CHOICES: dict[str, tuple[str, ...]] = {
    "deployment_pattern": ("deploy_code", "deploy_models", "hybrid"),
    "cloud": ("aws", "azure", "gcp"),
    "compute": ("serverless", "job_cluster"),
    "ci_auth": ("github_oidc", "client_secret"),
    "retraining_trigger": ("schedule", "new_data"),
}
BOOLEANS = ("create_catalogs", "serving_endpoint")

# Every pattern is applied with re.fullmatch: `$` would also match before a trailing newline.
SLUG = re.compile(r"[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*")
SLUG_MAX = 64  # also the slug default's max_length in cookiecutter.json
HOST = re.compile(
    r"https://(?P<host>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+)(?::(?P<port>[0-9]+))?"
)
IPV4 = re.compile(r"[0-9]+(?:\.[0-9]+){3}")
UC_NAME = re.compile(r"[a-z][a-z0-9_]{0,254}")
GITHUB_REPO = re.compile(r"(?P<owner>[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38})/(?P<name>[A-Za-z0-9._-]{1,100})")
GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.@+-]{0,254}")
BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Names Databricks keeps for itself (SQL reference, "Reserved words and schemas",
# https://docs.databricks.com/aws/en/sql/language-manual/sql-ref-reserved-words: catalogs and schemas starting with
# SYS or DATABRICKS; the built-in catalogs hive_metastore, samples, spark_catalog), and `default`, the schema
# every catalog is created with: the bundle could not create it, and it is shared by everyone using the catalog.
RESERVED_CATALOGS = ("system", "hive_metastore", "samples", "spark_catalog", "information_schema")
RESERVED_SCHEMAS = ("information_schema", "default", "builtin", "session")
RESERVED_PREFIXES = ("sys", "databricks")
# Workspace-local groups cannot be granted Unity Catalog privileges; `account users` is everyone.
BROAD_GROUPS = ("users", "admins", "account users")
ENVIRONMENTS = ("dev", "staging", "prod")


class Rule:
    """One rule of one answer: `ok(value, answers)`, the rule in words, and a valid example."""

    __slots__ = ("example", "key", "ok", "rule")

    def __init__(self, key: str, ok: Check, rule: Text, example: Text) -> None:
        self.key, self.ok, self.rule, self.example = key, ok, rule, example

    def __repr__(self) -> str:
        return f"Rule({self.key!r}, {self.rule!r})"


def text(value: Text, context: Mapping[str, Any]) -> str:
    """A rule's words or example: fixed, or depending on the other answers (e.g. the cloud)."""
    return value(context) if callable(value) else value


def _matches(pattern: re.Pattern[str]) -> Check:
    return lambda value, _context: isinstance(value, str) and bool(pattern.fullmatch(value))


def _one_line(limit: int) -> Check:
    return lambda value, _context: (
        isinstance(value, str) and 0 < len(value.strip()) <= limit and not CONTROL.search(value)
    )


def _has_alnum(value: Any, _context: Mapping[str, Any]) -> bool:
    return isinstance(value, str) and any(char.isalnum() for char in value)


def _package(slug: Any) -> str:
    return str(slug).replace("-", "_")


def _package_ok(value: Any, _context: Mapping[str, Any]) -> bool:
    package = _package(value)
    return package.isidentifier() and not keyword.iskeyword(package)


def _differs_from(*others: str) -> Check:
    return lambda value, context: all(value != context.get(other) for other in others)


def _not_reserved(names: tuple[str, ...]) -> Check:
    return lambda value, _context: str(value) not in names and not str(value).startswith(RESERVED_PREFIXES)


def _cloud(context: Mapping[str, Any]) -> dict[str, Any]:
    """The chosen cloud's facts from cookiecutter.json's `_clouds` (one place for everything per cloud)."""
    clouds = context.get("_clouds") or {}
    return clouds.get(context.get("cloud")) or {"name": "the chosen cloud", "domains": [], "placeholder_hosts": {}}


def _host(value: Any) -> re.Match[str] | None:
    return HOST.fullmatch(value) if isinstance(value, str) else None


def _not_ip(value: Any, _context: Mapping[str, Any]) -> bool:
    match = _host(value)
    return bool(match) and not IPV4.fullmatch(match["host"])


def _port_ok(value: Any, _context: Mapping[str, Any]) -> bool:
    match = _host(value)
    return bool(match) and (match["port"] is None or 1 <= int(match["port"]) <= 65535)


def _cloud_domain(value: Any, context: Mapping[str, Any]) -> bool:
    match = _host(value)
    return bool(match) and match["host"].endswith(tuple("." + domain for domain in _cloud(context)["domains"]))


def _cloud_domain_rule(context: Mapping[str, Any]) -> str:
    cloud = _cloud(context)
    domains = " or ".join(f"*.{domain}" for domain in cloud["domains"])
    return f"must be a workspace of {cloud['name']} (cloud={context.get('cloud')}): a host under {domains}"


def _host_example(env: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda context: _cloud(context)["placeholder_hosts"].get(
        env, f"https://{env}-workspace.cloud.databricks.com"
    )


def _repo_name_ok(value: Any, _context: Mapping[str, Any]) -> bool:
    match = GITHUB_REPO.fullmatch(value) if isinstance(value, str) else None
    return bool(match) and match["name"] not in (".", "..") and not match["name"].lower().endswith(".git")


def _branch_ok(value: Any, _context: Mapping[str, Any]) -> bool:
    """git check-ref-format --branch, within the characters a workflow trigger can carry safely."""
    if not isinstance(value, str) or not BRANCH.fullmatch(value) or value == "HEAD" or ".." in value:
        return False
    return all(part and not part.startswith(".") and not part.endswith((".", ".lock")) for part in value.split("/"))


def _not_a_ref(value: Any, _context: Mapping[str, Any]) -> bool:
    return not str(value).startswith("refs/")


def _group_ok(value: Any, _context: Mapping[str, Any]) -> bool:
    return str(value).strip().lower() not in BROAD_GROUPS


def _owned_catalog_envs(context: Mapping[str, Any]) -> tuple[str, ...]:
    """The environments whose catalog the bundle creates and owns with create_catalogs (`_patterns` in
    cookiecutter.json, `owned_catalog_envs`); all three when the pattern itself is refused."""
    facts = (context.get("_patterns") or {}).get(context.get("deployment_pattern")) or {}
    return tuple(facts.get("owned_catalog_envs", ENVIRONMENTS))


def own_catalog(slug: Any, env: str) -> str:
    """The name of a catalog of the project's own (the catalogs' default with create_catalogs in cookiecutter.json)."""
    return f"{_package(slug)}_{env}"


def _project_owned(env: str) -> Check:
    """With create_catalogs, a catalog the bundle owns must be the project's own: its name carries the project's
    package name as whole '_'-separated words (`taxi_fare_model_prod`, `ml_taxi_fare_model_prod`)."""

    def ok(value: Any, context: Mapping[str, Any]) -> bool:
        if context.get("create_catalogs") is not True or env not in _owned_catalog_envs(context):
            return True
        return f"_{_package(context.get('project_slug'))}_" in f"_{value}_"

    return ok


def _catalog_example(env: str) -> Callable[[Mapping[str, Any]], str]:
    """A valid catalog for an environment: the project's own with create_catalogs, else the environment's name."""
    return lambda context: (
        own_catalog(context.get("project_slug"), env) if context.get("create_catalogs") is True else env
    )


def _project_owned_rule(context: Mapping[str, Any]) -> str:
    return (
        "with create_catalogs=true the bundle creates this catalog and owns its grants (each deploy revokes every "
        "principal it does not list), so it must be a catalog of this project alone, not one other teams share: "
        f"its name must contain {_package(context.get('project_slug'))} (or answer create_catalogs=false)"
    )


RULES: tuple[Rule, ...] = (
    Rule("project_name", _one_line(100), "must be one line of 1 to 100 characters", "Fraud Scoring"),
    Rule(
        "project_name",
        _has_alnum,
        "must contain a letter or a digit: the project slug is made from it",
        "Fraud Scoring",
    ),
    Rule(
        "project_slug",
        _matches(SLUG),
        "must be lowercase letters and digits, words joined by '-' or '_', starting with a letter",
        "fraud-scoring",
    ),
    Rule(
        "project_slug",
        lambda value, _context: len(value) <= SLUG_MAX,
        f"must be at most {SLUG_MAX} characters (it names the directory, the bundle and service principals)",
        "fraud-scoring",
    ),
    Rule("project_slug", _package_ok, "must give a Python package name that is not a keyword", "fraud-scoring"),
    Rule(
        "__package_name",
        lambda value, context: value == _package(context.get("project_slug")),
        "is derived from project_slug ('-' becomes '_') and cannot be set: set project_slug instead",
        lambda context: _package(context.get("project_slug")),
    ),
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
    Rule(
        "github_repository",
        _matches(GITHUB_REPO),
        "must be a GitHub owner/name (owner: letters, digits, single '-'; name: letters, digits, '.', '_', '-')",
        "my-org/fraud-scoring",
    ),
    Rule(
        "github_repository",
        _repo_name_ok,
        "must name a repository GitHub can create: not '.', '..' or ending in '.git'",
        "my-org/fraud-scoring",
    ),
    *(
        rule
        for env in ("dev", "staging", "prod")
        for rule in (
            Rule(
                f"{env}_workspace_host",
                _matches(HOST),
                "must be the https URL of a workspace, host only (no path, trailing slash, query or fragment)",
                _host_example(env),
            ),
            Rule(
                f"{env}_workspace_host",
                _not_ip,
                "must be the workspace's host name, not an IP address",
                _host_example(env),
            ),
            Rule(f"{env}_workspace_host", _port_ok, "must have a port from 1 to 65535, if any", _host_example(env)),
            Rule(f"{env}_workspace_host", _cloud_domain, _cloud_domain_rule, _host_example(env)),
        )
    ),
    *(
        Rule(
            key,
            _matches(UC_NAME),
            "must be a Unity Catalog name usable unquoted: lowercase letters, digits and '_', starting with a letter",
            example,
        )
        for key, example in (
            *((f"{env}_catalog", _catalog_example(env)) for env in ENVIRONMENTS),
            ("schema_name", "fraud_scoring"),
            ("model_name", "fraud_classifier"),
        )
    ),
    *(
        Rule(
            key,
            _not_reserved(RESERVED_CATALOGS),
            f"must not be a name Databricks reserves ({', '.join(RESERVED_CATALOGS)}, "
            "or starting with sys or databricks)",
            example,
        )
        for key, example in ((f"{env}_catalog", _catalog_example(env)) for env in ENVIRONMENTS)
    ),
    Rule(
        "schema_name",
        _not_reserved(RESERVED_SCHEMAS),
        f"must not be reserved or the catalogs' shared schema ({', '.join(RESERVED_SCHEMAS)}, "
        "or starting with sys or databricks)",
        "fraud_scoring",
    ),
    *(
        Rule(
            f"{env}_catalog",
            _project_owned(env),
            _project_owned_rule,
            _catalog_example(env),
        )
        for env in ENVIRONMENTS
    ),
    Rule(
        "staging_catalog",
        _differs_from("dev_catalog"),
        "must differ from dev_catalog: each environment has its own catalog",
        _catalog_example("staging"),
    ),
    Rule(
        "prod_catalog",
        _differs_from("dev_catalog", "staging_catalog"),
        "must differ from dev_catalog and staging_catalog",
        _catalog_example("prod"),
    ),
    *(
        rule
        for key, example in (("default_branch", "main"), ("release_branch", "release"))
        for rule in (
            Rule(
                key,
                _branch_ok,
                "must be a valid git branch name (git check-ref-format --branch): letters, digits, '.', '_', '-', "
                "'/'; no '..', no part starting with '.' or ending in '.' or '.lock', not HEAD",
                example,
            ),
            Rule(key, _not_a_ref, "must be the branch name alone, without refs/heads/ (workflows add it)", example),
        )
    ),
    Rule("release_branch", _differs_from("default_branch"), "must differ from default_branch", "release"),
    Rule(
        "read_group",
        _matches(GROUP),
        "must be a group name (letters, digits, spaces, '_', '.', '@', '+', '-')",
        "data-scientists",
    ),
    Rule(
        "read_group",
        _group_ok,
        "must be an account-level group you manage: 'users' and 'admins' are workspace-local (Unity Catalog "
        "cannot grant to them) and 'account users' is everyone in the account",
        "data-scientists",
    ),
)

# Answers whose default is made from an earlier one. When the earlier answer is refused and the later one is
# still the value derived from it, only the earlier one is reported: one typo, one line.
DERIVED: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    "project_slug": ("project_name", lambda slug, name: slug == default_slug(name)),
    "__package_name": ("project_slug", lambda value, slug: value == _package(slug)),
    "schema_name": ("project_slug", lambda value, slug: value == _package(slug)),
    "model_name": ("project_slug", lambda value, slug: value == _package(slug)),
    "github_repository": ("project_slug", lambda value, slug: str(value).endswith(f"/{slug}")),
    **{
        f"{env}_catalog": ("project_slug", lambda value, slug, env=env: value == own_catalog(slug, env))
        for env in ENVIRONMENTS
    },
}


def default_slug(name: Any) -> str:
    """The project_slug default of cookiecutter.json (`slugify` filter, max_length 64, "-" when empty)."""
    from slugify import slugify  # python-slugify: a dependency of cookiecutter, the filter cookiecutter uses

    return slugify(str(name), max_length=SLUG_MAX, word_boundary=True) or "-"


def validate(context: Mapping[str, Any], refused_before: Iterable[str] = ()) -> list[str]:
    """One error line per refused answer (its first broken rule), in the order of RULES. `refused_before`: answers
    already refused (scripts/bake's own checks), neither reported again nor the source of a reported derived one."""
    errors: list[str] = []
    refused: set[str] = set(refused_before)
    for rule in RULES:
        if rule.key in refused:
            continue
        value = context.get(rule.key)
        source, derived = DERIVED.get(rule.key, ("", None))
        if source in refused and derived and derived(value, context.get(source)):
            refused.add(rule.key)
            continue
        if not rule.ok(value, context):
            refused.add(rule.key)
            errors.append(
                f"ERROR: {rule.key}={json.dumps(value, ensure_ascii=False)}: {text(rule.rule, context)}. "
                f"Example: {text(rule.example, context)}"
            )
    return errors
