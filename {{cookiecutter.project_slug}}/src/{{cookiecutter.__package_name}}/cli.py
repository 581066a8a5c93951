"""The command line of the job steps: the options they share, argparse types, and ``start_task``.

Every step's ``main(argv)`` begins with ``start_task(build_parser(), argv)``; its ``build_parser`` starts
from :func:`task_parser` and adds the pieces below that it takes.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Sequence

from .data import DEFAULT_INPUT_TABLE
from .runtime import configure_logging, configure_mlflow

logger = logging.getLogger(__name__)

_RUN_ID = re.compile(r"^[0-9]+$")


def task_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """The parser of a job step, with the options every step takes: where the model lives.

    Step-specific options are added by the caller; parse with ``parse_task_args``.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--catalog", required=True, help="Unity Catalog catalog of this environment")
    parser.add_argument("--schema", required=True, help="Schema of the model (and of its tables)")
    parser.add_argument("--model_name", required=True, help="Registered model name inside the schema")
    return parser


def parse_task_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse a job task's arguments, ignoring (and logging) the ones this entry point does not take.

    Databricks pushes every job-level parameter down to each Python wheel task that takes named
    parameters, as ``--name=value``: a job parameter meant for one task (``source_version`` of
    model_promotion, for the ``copy`` task) also reaches the others. Every entry point parses through
    here, so such a parameter never fails a task. Prefix matching is off, so a pushed-down ``--model``
    is never taken for ``--model_name``. Missing or malformed options of the task itself still fail;
    a misspelt named parameter in a job definition is caught by the bundle tests instead.
    """
    parser.allow_abbrev = False
    args, ignored = parser.parse_known_args(argv)
    if ignored:
        logger.warning(
            "%s ignores arguments it does not take (job parameters reach every task): %s",
            parser.prog,
            " ".join(ignored),
        )
    return args


def start_task(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """What every job step does first: parse its arguments, then set up logging and MLflow."""
    args = parse_task_args(parser, argv)
    configure_logging()
    configure_mlflow()
    return args


def non_negative_int(value: str) -> int:
    """argparse type for ``--row_limit``."""
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (all rows) or positive, got {value}")
    return number


def positive_int(value: str) -> int:
    """argparse type for ``--lookback_days``."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def model_version_arg(value: str) -> str:
    """argparse type: a registered model version is a positive integer."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a model version number, got {value!r}")
    return str(int(value))


def job_run_id_arg(value: str) -> str:
    """argparse type for ``--job_run_id``: a Databricks run id is a number (it also goes into filters)."""
    if not _RUN_ID.match(value):
        raise argparse.ArgumentTypeError(
            f"expected the numeric id of the job run (reference job.run_id in the job), got {value!r}"
        )
    return value


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """``--input_table`` and ``--row_limit``: the trips a step reads."""
    parser.add_argument("--input_table", default=DEFAULT_INPUT_TABLE, help="Table of taxi trips")
    parser.add_argument("--row_limit", type=non_negative_int, default=0, help="Rows to read; 0 = all")


def add_version_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model_version`` (by hand) or ``--job_run_id`` (in a job), and the training run's experiment.

    ``handoff.resolve_version`` turns them into the version the step works on.
    """
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model_version", type=model_version_arg, help="The version, by number")
    which.add_argument(
        "--job_run_id",
        type=job_run_id_arg,
        help="The version a previous task of this job run trained or copied (see --experiment_name)",
    )
    parser.add_argument(
        "--experiment_name",
        help="With --job_run_id: the training run's experiment; without it, the version copied in the run",
    )
