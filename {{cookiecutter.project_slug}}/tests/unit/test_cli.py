from __future__ import annotations

import argparse
import logging

import pytest

from {{ cookiecutter.__package_name }} import cli


def task_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="some-task")
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--model_name", default="fare")
    parser.add_argument("--row_limit", type=int, default=0)
    return parser


def test_task_arguments_ignore_pushed_down_job_parameters(caplog: pytest.LogCaptureFixture) -> None:
    """Databricks passes every job parameter to every wheel task; a task that does not take one goes on."""
    with caplog.at_level(logging.WARNING, logger=cli.__name__):
        args = cli.parse_task_args(
            task_parser(), ["--catalog=dev", "--source_version=champion", "--model=other", "--row_limit=5"]
        )
    # --model is ignored too, not taken as an abbreviation of --model_name.
    assert vars(args) == {"catalog": "dev", "model_name": "fare", "row_limit": 5}
    assert "some-task ignores arguments it does not take" in caplog.text
    assert "--source_version=champion --model=other" in caplog.text


def test_task_arguments_of_the_task_itself_are_still_checked() -> None:
    with pytest.raises(SystemExit):
        cli.parse_task_args(task_parser(), ["--source_version=champion"])  # no --catalog
    with pytest.raises(SystemExit):
        cli.parse_task_args(task_parser(), ["--catalog=dev", "--row_limit=many"])


@pytest.mark.parametrize("value", ["", "abc", "1 OR 1=1", "-1", "12 "])
def test_a_job_run_id_is_a_number(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="numeric id of the job run"):
        cli.job_run_id_arg(value)


def test_a_step_takes_a_version_or_a_job_run_but_not_both() -> None:
    parser = argparse.ArgumentParser()
    cli.add_version_arguments(parser)
    assert parser.parse_args(["--model_version=3"]).model_version == "3"
    assert parser.parse_args(["--job_run_id=12", "--experiment_name=/e"]).job_run_id == "12"
    for argv in ([], ["--model_version=3", "--job_run_id=12"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)


@pytest.mark.parametrize(
    ("convert", "value", "expected"), [("non_negative_int", "0", 0), ("positive_int", "7", 7)]
)
def test_counts_are_checked(convert: str, value: str, expected: int) -> None:
    assert getattr(cli, convert)(value) == expected
    with pytest.raises(argparse.ArgumentTypeError):
        getattr(cli, convert)("-1")


def test_a_model_version_is_a_positive_number() -> None:
    assert cli.model_version_arg("007") == "7"
    for bad in ("0", "v1", "-2", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="model version number"):
            cli.model_version_arg(bad)


def test_input_arguments_default_to_the_sample_trips() -> None:
    parser = argparse.ArgumentParser()
    cli.add_input_arguments(parser)
    args = parser.parse_args([])
    assert (args.input_table, args.row_limit) == ("samples.nyctaxi.trips", 0)
