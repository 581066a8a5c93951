"""Make a validated model version the ``champion`` (job task ``deploy``).

Batch inference loads ``models:/<catalog>.<schema>.<model>@champion``, so moving the alias is the
deployment. Only the current ``challenger`` (the version that validation passed) is deployed;
its ``challenger`` alias is removed once it is the champion.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Protocol

import mlflow

from .cli import add_version_arguments, start_task, task_parser
from .handoff import resolve_version
from .registry import CHALLENGER, CHAMPION, AliasReader, full_name, get_alias_version

logger = logging.getLogger(__name__)


class DeploymentClient(AliasReader, Protocol):
    """The part of ``mlflow.MlflowClient`` that deployment uses."""

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None: ...

    def delete_registered_model_alias(self, name: str, alias: str) -> None: ...


class DeploymentError(RuntimeError):
    """The version may not be deployed."""


def deploy(client: DeploymentClient, model_name: str, model_version: str) -> str | None:
    """Point ``champion`` at ``model_version`` and drop its ``challenger`` alias.

    Returns the previous champion version (None for a first deployment). Raises DeploymentError,
    moving nothing, when ``model_version`` is not the current challenger.
    """
    model_version = str(model_version)
    challenger = get_alias_version(client, model_name, CHALLENGER)
    previous = get_alias_version(client, model_name, CHAMPION)
    if previous == model_version and challenger is None:
        logger.info("Version %s of %s already is the %s.", model_version, model_name, CHAMPION)
        return previous
    if challenger != model_version:
        raise DeploymentError(
            f"Version {model_version} of {model_name} is not the {CHALLENGER} ({challenger or 'none'}): "
            "only a version that passed validation is deployed. Run validate-model first."
        )
    client.set_registered_model_alias(model_name, CHAMPION, model_version)
    client.delete_registered_model_alias(model_name, CHALLENGER)
    logger.info("%s: %s moved from version %s to %s.", model_name, CHAMPION, previous, model_version)
    return previous


def build_parser() -> argparse.ArgumentParser:
    parser = task_parser("deploy-model", __doc__.splitlines()[0])
    add_version_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point ``deploy-model``."""
    args = start_task(build_parser(), argv)
    client = mlflow.MlflowClient()
    model_name = full_name(args.catalog, args.schema, args.model_name)
    deploy(client, model_name, resolve_version(client, args, model_name))


if __name__ == "__main__":
    main()
