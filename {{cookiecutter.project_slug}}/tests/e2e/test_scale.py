"""The jobs work on Spark's executors: the Spark forms of the rules agree with the pandas forms, and no step
brings a table to the driver. On a real local Spark session and MLflow registry (conftest.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from e2e_support import EXPERIMENT, INPUT_TABLE, aliases, job_definition, references_for, run_job, trips

from {{ cookiecutter.__package_name }} import batch_inference, data, features, metrics, validate

KEYS = features.SPLIT_KEY_COLUMNS
WIDE_TABLE = "spark_catalog.e2e_input.trips_many_partitions"
CHECKED = "spark_catalog.e2e_input.trips_quality"


def edge_cases() -> pd.DataFrame:
    """Trips at and beyond every bound of the data-quality rules, plus missing values."""
    base = trips(40, seed=3)
    start = pd.Timestamp("2016-02-03 10:00:00")
    rows = []
    for distance, minutes, fare in [
        (0.0, 10, 10.0),  # no distance
        (-1.0, 10, 10.0),
        (np.nan, 10, 10.0),
        (100.0, 90, 200.0),  # at the distance bound: kept
        (100.01, 90, 200.0),
        (1.0, 0, 10.0),  # zero duration: no division error under ANSI mode, dropped
        (1.0, -5, 10.0),
        (1.0, 180, 10.0),  # at the duration bound: kept
        (1.0, 180.5, 10.0),
        (80.0, 60, 100.0),  # exactly 80 mph: kept
        (80.5, 60, 100.0),
        (2.0, 10, 2.5),  # flag-drop fare: kept
        (2.0, 10, 2.49),
        (2.0, 10, 250.0),
        (2.0, 10, 250.01),
        (2.0, 10, np.nan),  # no label: scored, not trained on
    ]:
        rows.append(
            {
                "tpep_pickup_datetime": start,
                "tpep_dropoff_datetime": start + pd.Timedelta(minutes=minutes),
                "trip_distance": distance,
                "fare_amount": fare,
                "pickup_zip": 10001,
                "dropoff_zip": 11430,
            }
        )
    extra = pd.DataFrame(rows).astype(base.dtypes.to_dict())
    missing_time = extra.head(1).assign(tpep_pickup_datetime=pd.NaT)
    return pd.concat([base, extra, missing_time], ignore_index=True)


def rows_of(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    times = (features.PICKUP_TIME, features.DROPOFF_TIME)
    keyed = frame.loc[:, list(KEYS)].assign(**{name: frame[name].astype("datetime64[us]") for name in times})
    return sorted(keyed.itertuples(index=False, name=None))


@pytest.fixture(scope="module")
def checked_table(spark) -> str:
    spark.createDataFrame(edge_cases()).write.mode("overwrite").saveAsTable(CHECKED)
    return CHECKED


@pytest.mark.parametrize("require_target", [True, False])
def test_the_quality_rules_keep_the_same_rows_in_pandas_and_in_spark(
    spark, checked_table: str, require_target: bool
) -> None:
    """One definition (features.quality_condition), two forms: they must never drift apart."""
    in_pandas = features.clean_trips(edge_cases(), require_target=require_target)
    in_spark = data.read_trips(spark, checked_table, require_target=require_target).toPandas()
    assert rows_of(in_spark) == rows_of(in_pandas)
    assert len(in_pandas) == 40 + (5 if require_target else 8), "the bounds themselves are kept"


def test_a_row_keeps_its_split_whatever_is_read_with_it_and_however_the_table_is_partitioned(spark) -> None:
    frame = data.read_trips(spark, INPUT_TABLE, require_target=True)
    train_split, holdout = data.split_train_holdout(frame)
    holdout_rows = rows_of(holdout.toPandas())
    assert set(holdout_rows).isdisjoint(rows_of(train_split.toPandas()))
    assert train_split.count() + holdout.count() == frame.count()
    assert 0.15 < len(holdout_rows) / frame.count() < 0.25

    shuffled = frame.repartition(7, features.DISTANCE).limit(300)
    _, holdout_of_subset = data.split_train_holdout(shuffled)
    subset_holdout = rows_of(holdout_of_subset.toPandas())
    assert subset_holdout
    assert set(subset_holdout) <= set(holdout_rows), "validation reads the same holdout"

    retyped = frame.withColumn("pickup_zip", frame["pickup_zip"].cast("int"))
    assert rows_of(data.split_train_holdout(retyped)[1].toPandas()) == holdout_rows, "int or float keys agree"
    with pytest.raises(ValueError, match="fraction"):
        data.split_train_holdout(frame, fraction=1.0)
    with pytest.raises(KeyError, match="no_such_column"):
        data.split_train_holdout(frame, ("no_such_column",))


def test_the_training_sample_is_bounded_random_and_reproducible(spark) -> None:
    frame = data.read_trips(spark, INPUT_TABLE, require_target=True)
    first = data.sample(frame, 120).toPandas()
    again = data.sample(frame.repartition(5), 120).toPandas()
    assert 90 <= len(first) <= 120
    assert rows_of(first) == rows_of(again), "the same rows whatever the partitioning"
    everything = rows_of(frame.toPandas())
    positions = sorted(everything.index(row) for row in rows_of(first))
    assert positions[-1] > len(everything) * 0.9, "from the whole table, not the first rows found"
    assert rows_of(data.sample(frame, 10_000).toPandas()) == everything, "a small table is taken whole"
    assert rows_of(data.sample(frame, 120, seed=7).toPandas()) != rows_of(first), "the seed changes it"


def test_bounded_collects_and_samples_refuse_what_is_not_bounded(spark) -> None:
    frame = data.read_trips(spark, INPUT_TABLE, require_target=True)
    assert len(data.to_pandas_bounded(frame.limit(5), 5, "five rows")) == 5
    with pytest.raises(RuntimeError, match="at most 5 rows"):
        data.to_pandas_bounded(frame, 5, "the table")
    with pytest.raises(ValueError, match="max_rows"):
        data.sample(frame, 0)


def test_the_spark_metrics_are_the_pandas_metrics(spark) -> None:
    rng = np.random.default_rng(5)
    label = rng.normal(20, 5, 500)
    frame = pd.DataFrame({"label": label, "predicted": label + rng.normal(0, 2, 500)})
    expected = metrics.compute_metrics(frame["label"], frame["predicted"])
    found = metrics.spark_metrics(spark.createDataFrame(frame), "label", "predicted")
    assert found == pytest.approx(expected, rel=1e-9)
    one = metrics.spark_metrics(spark.createDataFrame(frame.head(1)), "label", "predicted")
    assert np.isnan(one["r2"])
    assert np.isnan(metrics.compute_metrics([1.0], [2.0])["r2"])
    with pytest.raises(ValueError, match="empty"):
        metrics.spark_metrics(spark.createDataFrame(frame).limit(0), "label", "predicted")


# --- nothing proportional to a table reaches the driver ------------------------------------------


class DriverRows:
    """Every result that Spark hands to the Python driver during a test, by method, with its row count."""

    METHODS = ("collect", "toPandas", "toArrow", "toLocalIterator")

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    @property
    def largest(self) -> int:
        return max((rows for _, rows in self.seen), default=0)


@pytest.fixture
def driver_rows(spark, monkeypatch: pytest.MonkeyPatch) -> DriverRows:
    DataFrame = type(spark.range(1))  # noqa: N806 - the session's own DataFrame class (classic or Connect)
    spy = DriverRows()
    for method in DriverRows.METHODS:
        original = getattr(DataFrame, method)

        def counted(self: Any, *args: Any, _original: Any = original, _name: str = method, **kw: Any) -> Any:
            result = _original(self, *args, **kw)
            if _name == "toLocalIterator":
                result = list(result)
            spy.seen.append((_name, len(result) if not hasattr(result, "num_rows") else result.num_rows))
            return iter(result) if _name == "toLocalIterator" else result

        monkeypatch.setattr(DataFrame, method, counted)
    return spy


@pytest.fixture(scope="module")
def wide_table(spark) -> str:
    """More partitions (12) than the session has cores (1), and more rows than any bound below."""
    rows = trips(3000, seed=11)
    spark.createDataFrame(rows).repartition(12).write.mode("overwrite").saveAsTable(WIDE_TABLE)
    return WIDE_TABLE


def test_training_fits_on_a_bounded_sample_and_says_how_many_rows(spark, registry, wide_table: str) -> None:
    references = references_for("dev", input_table=wide_table, **{"var.training_max_rows": "400"})
    job = job_definition("model-training.job.yml", "dev", "model_training")
    run_job(job, "model_training", "6001", references)
    run = registry.search_runs(
        [registry.get_experiment_by_name(EXPERIMENT).experiment_id],
        filter_string="tags.job_run_id = '6001'",
    )[0]
    assert run.data.params["max_training_rows"] == "400"
    assert 300 <= int(run.data.params["train_rows"]) <= 400, "a sample of the ~2,400 training rows"
    assert int(run.data.params["holdout_sample_rows"]) <= 100
    assert run.data.metrics["holdout_r2"] > 0.8


def test_batch_inference_and_validation_bring_no_table_to_the_driver(
    spark, registry, wide_table: str, driver_rows: DriverRows
) -> None:
    """A spy on every way a DataFrame reaches Python: the jobs' collects stay bounded (an aggregate, the
    training sample), however big the table; scoring 3,000 rows brings back at most a row of sums."""
    model = "dev.taxi.fare"
    job = job_definition("model-training.job.yml", "dev", "model_training")
    run_job(job, "model_training", "6002", references_for("dev", input_table=wide_table))
    champion = aliases(registry, model)["champion"]
    driver_rows.seen.clear()

    spark.sql("CREATE DATABASE IF NOT EXISTS spark_catalog.e2e_scale")
    output = "spark_catalog.e2e_scale.predictions"
    outcome = batch_inference.run_batch_inference(
        spark, registry, model_name=model, input_table=wide_table, row_limit=0, output_table=output
    )
    assert outcome["status"] == "SCORED"
    assert driver_rows.largest <= 1, driver_rows.seen
    evaluate = validate.holdout_evaluator(spark, wide_table)
    found = evaluate(f"models:/{model}/{champion}")
    assert found["r2"] > 0.8
    assert driver_rows.largest <= 1, driver_rows.seen

    written = spark.read.table(output)
    clean = data.read_trips(spark, wide_table, require_target=False).count()
    assert written.count() == clean == 3000
    assert written.select("model_version").distinct().toPandas()["model_version"].tolist() == [int(champion)]
    sample = written.limit(200).toPandas()
    assert (sample["prediction"] - sample["fare_amount"]).abs().median() < 1.5


def test_the_spy_sees_a_collect_of_the_table(spark, wide_table: str, driver_rows: DriverRows) -> None:
    """The mechanism above, broken on purpose: a step that collected its table would be seen."""
    data.read_trips(spark, wide_table, require_target=False).toPandas()
    assert driver_rows.largest == 3000


def test_a_row_limit_still_bounds_what_the_test_target_reads(spark, registry, wide_table: str) -> None:
    model = "dev.taxi.fare"
    output = "spark_catalog.e2e_scale.predictions_limited"
    spark.sql("CREATE DATABASE IF NOT EXISTS spark_catalog.e2e_scale")
    batch_inference.run_batch_inference(
        spark, registry, model_name=model, input_table=wide_table, row_limit=250, output_table=output
    )
    assert spark.read.table(output).count() == 250
