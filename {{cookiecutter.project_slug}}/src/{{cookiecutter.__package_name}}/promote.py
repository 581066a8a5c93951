"""Copy a model version from the previous environment's catalog (job ``model_promotion``, task ``copy``).

Deploy-models pattern: the model trained in dev is copied, never retrained, into staging and then
prod with ``MlflowClient.copy_model_version``. The copy is then validated and deployed by the same
tasks as a freshly trained model. Unity Catalog privileges are the gate: the job's identity needs
EXECUTE on the source model and CREATE MODEL VERSION (or ownership) on the target.

``copy_model_version`` copies the source version's tags too, so a copy would arrive "validated" by the
previous environment: the validation tags (``model_validation_status``, ``validation_*``) are removed from
the copy before the ``validate`` task judges it here. The copy is tagged with the job run's id, which is
how the tasks after this one find it (handoff.py).

Re-running a promotion is safe: when the target's champion already is a copy of the same source
version, that version is reused instead of copied again.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import mlflow
from mlflow.exceptions import MlflowException

from .cli import job_run_id_arg, start_task, task_parser
from .handoff import JOB_RUN_TAG
from .registry import CHAMPION, AliasReader, full_name, get_alias_version, is_validation_tag

logger = logging.getLogger(__name__)

PROMOTED_FROM_TAG = "promoted_from"
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class PromotionClient(AliasReader, Protocol):
    """The part of ``mlflow.MlflowClient`` that promotion uses."""

    def get_model_version(self, name: str, version: str) -> Any: ...

    def get_model_version_by_alias(self, name: str, alias: str) -> Any: ...

    def copy_model_version(self, src_model_uri: str, dst_name: str) -> Any: ...

    def set_model_version_tag(self, name: str, version: str, key: str, value: Any) -> None: ...

    def delete_model_version_tag(self, name: str, version: str, key: str) -> None: ...


@dataclass(frozen=True)
class SourceVersion:
    """``--source_version``: a version number or an alias."""

    version: str | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, value: str) -> SourceVersion:
        value = value.strip()
        if value.isdigit() and int(value) > 0:
            return cls(version=str(int(value)))
        if _ALIAS.match(value):
            return cls(alias=value.lower())
        raise ValueError(f"Expected a model version number or an alias (e.g. 'champion'), got {value!r}")

    def __str__(self) -> str:
        return self.version or f"@{self.alias}"


@dataclass(frozen=True)
class PromotionResult:
    source_name: str
    source_version: str
    target_name: str
    target_version: str
    copied: bool

    @property
    def source_ref(self) -> str:
        return f"{self.source_name}/{self.source_version}"


def resolve_source_version(client: PromotionClient, source_name: str, source: SourceVersion) -> str:
    """The version number ``source`` stands for; raises with a clear message when it does not exist."""
    try:
        if source.alias is not None:
            return str(client.get_model_version_by_alias(source_name, source.alias).version)
        return str(client.get_model_version(source_name, str(source.version)).version)
    except MlflowException as error:
        raise LookupError(f"Cannot find version {source} of {source_name}: {error.message}") from error


def _current_copy(client: PromotionClient, target_name: str, source_ref: str) -> str | None:
    """The target's champion version when it already is a copy of ``source_ref``."""
    try:
        champion = get_alias_version(client, target_name, CHAMPION)
    except MlflowException:
        return None  # the target model does not exist yet: copy_model_version creates it
    if champion is None:
        return None
    tags = client.get_model_version(target_name, champion).tags or {}
    return champion if tags.get(PROMOTED_FROM_TAG) == source_ref else None


def reset_validation_tags(client: PromotionClient, name: str, version: str) -> list[str]:
    """Remove the validation tags a copy inherited from its source; returns the keys removed."""
    tags = client.get_model_version(name, version).tags or {}
    removed = sorted(key for key in tags if is_validation_tag(key))
    for key in removed:
        client.delete_model_version_tag(name, version, key)
    if removed:
        logger.info("Removed the inherited validation tags %s from %s version %s.", removed, name, version)
    return removed


def promote(
    client: PromotionClient,
    *,
    source_name: str,
    target_name: str,
    source_version: str | SourceVersion,
    job_run_id: str | None = None,
) -> PromotionResult:
    """Copy ``source_name`` at ``source_version`` into ``target_name``; return the target version.

    The target version is tagged with ``job_run_id`` (when given) for the tasks after this one.
    """
    if source_name == target_name:
        raise ValueError(f"Source and target are the same model ({source_name}); check the catalogs")
    source = SourceVersion.parse(source_version) if isinstance(source_version, str) else source_version
    resolved = resolve_source_version(client, source_name, source)
    source_ref = f"{source_name}/{resolved}"

    existing = _current_copy(client, target_name, source_ref)
    if existing is not None:
        logger.info("%s version %s is already the champion copy of %s.", target_name, existing, source_ref)
        _tag_job_run(client, target_name, existing, job_run_id)
        return PromotionResult(source_name, resolved, target_name, existing, copied=False)

    copy = client.copy_model_version(f"models:/{source_ref}", target_name)
    target_version = str(copy.version)
    reset_validation_tags(client, target_name, target_version)
    client.set_model_version_tag(target_name, target_version, PROMOTED_FROM_TAG, source_ref)
    _tag_job_run(client, target_name, target_version, job_run_id)
    logger.info("Copied %s (%s) to %s version %s.", source_ref, source, target_name, target_version)
    return PromotionResult(source_name, resolved, target_name, target_version, copied=True)


def _tag_job_run(client: PromotionClient, name: str, version: str, job_run_id: str | None) -> None:
    if job_run_id:
        client.set_model_version_tag(name, version, JOB_RUN_TAG, job_run_id)


def source_version_arg(value: str) -> SourceVersion:
    """argparse type for ``--source_version``."""
    try:
        return SourceVersion.parse(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def build_parser() -> argparse.ArgumentParser:
    parser = task_parser("promote-model", __doc__.splitlines()[0])
    parser.add_argument("--source_catalog", required=True, help="Catalog of the environment promoted from")
    parser.add_argument("--source_schema", required=True, help="Schema of the source model (same model name)")
    parser.add_argument(
        "--source_version",
        type=source_version_arg,
        default=SourceVersion(alias=CHAMPION),
        help=f"Version number or alias of the source model (default: {CHAMPION})",
    )
    parser.add_argument(
        "--job_run_id", type=job_run_id_arg, help="Id of the job run: tags the copy (handoff.py)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point ``promote-model``; the copy is tagged with ``--job_run_id`` for the next tasks."""
    args = start_task(build_parser(), argv)
    result = promote(
        mlflow.MlflowClient(),
        source_name=full_name(args.source_catalog, args.source_schema, args.model_name),
        target_name=full_name(args.catalog, args.schema, args.model_name),
        source_version=args.source_version,
        job_run_id=args.job_run_id,
    )
    logger.info("Promoted %s to %s version %s.", result.source_ref, result.target_name, result.target_version)


if __name__ == "__main__":
    main()
