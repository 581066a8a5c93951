"""Batch inference without Spark: the first days (no champion yet) and the command line.

Scoring itself runs on Spark's executors and is tested on a real local Spark session (tests/e2e/test_scale.py,
tests/e2e/test_job_graph.py)."""

from __future__ import annotations

import logging

import pytest

from {{ cookiecutter.__package_name }} import batch_inference

NAME = "prod.taxi.fare"


def test_no_champion_yet_scores_nothing_and_says_so_without_failing(
    fake_client, caplog: pytest.LogCaptureFixture
) -> None:
    """A new environment (or a deploy-models prod before its first promotion) has a model and no champion:
    the expected first days, so the scheduled job succeeds without touching Spark or the model."""
    fake_client.add_version(NAME)

    def no_udf(spark: object, uri: str) -> None:
        raise AssertionError(f"nothing to load without a champion, asked for {uri}")

    with caplog.at_level(logging.WARNING):
        outcome = batch_inference.run_batch_inference(
            None,  # never touched: the alias is read first
            fake_client,
            model_name=NAME,
            input_table="samples.nyctaxi.trips",
            row_limit=0,
            output_table="prod.taxi.predictions",
            make_udf=no_udf,
        )
    assert outcome == {"status": "NO_CHAMPION", "model_version": None, "scored_at": None}
    assert "NO_CHAMPION: prod.taxi.fare has no 'champion' alias yet" in caplog.text


def test_a_champion_that_cannot_be_loaded_fails_the_task(fake_client) -> None:
    fake_client.add_version(NAME)
    fake_client.aliases[NAME]["champion"] = "1"

    def broken(spark: object, uri: str) -> None:
        raise OSError(f"cannot download {uri}")

    with pytest.raises(OSError, match=r"models:/prod\.taxi\.fare/1"):
        batch_inference.run_batch_inference(
            None,
            fake_client,
            model_name=NAME,
            input_table="samples.nyctaxi.trips",
            row_limit=0,
            output_table="prod.taxi.predictions",
            make_udf=broken,
        )


def test_score_cli_defaults_to_a_predictions_table_in_the_schema() -> None:
    args = batch_inference.build_parser().parse_args(["--catalog=c", "--schema=s", "--model_name=m"])
    assert (args.input_table, args.row_limit, args.output_table) == (
        "samples.nyctaxi.trips",
        0,
        "predictions",
    )
