"""Benchmark: batch inference (the ``score`` task, through its entry point) on growing tables, on local Spark.

    python benchmarks/score_batch.py                        # 200k, 500k, 1M, 2M rows; driver capped at 1 GB
    python benchmarks/score_batch.py --sizes 100000 400000 --driver-memory 2g --cores 4

Needs the dev extra (``pip install -e ".[dev]"``: pyspark, the full mlflow) and Java 17. Nothing is
downloaded: a model is trained on a small synthetic table into a throwaway MLflow registry (sqlite), then
each size runs in a fresh process: Spark builds a synthetic trips table of that size on its executors, and
``score-batch`` scores it with the champion and appends the predictions, as the job does. Printed per size:
seconds, rows per second, the cost per row relative to the smallest size, and the driver's peak memory: the
Python driver process's peak RSS (where ``toPandas`` would put a table) and the JVM's peak heap (in local
mode the JVM also runs the executors).

What to expect and where the limit is: README, "Scale".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

CATALOG, SCHEMA, MODEL = "bench", "taxi", "fare"
DATABASE = "spark_catalog.bench"
DEFAULT_SIZES = (200_000, 500_000, 1_000_000, 2_000_000)
ZIPS = (10001, 10011, 10019, 10023, 10128, 11201, 11215, 10451, 11101, 11430)


def spark_session(root: Path, *, cores: int, driver_memory: str) -> Any:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("benchmark")
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", str(cores * 2))
        .config("spark.sql.warehouse.dir", str(root / "warehouse"))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.jars.ivy", str(root / "ivy"))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    session.sql(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    return session


def synthetic_trips(spark: Any, rows: int, *, partitions: int, seed: int = 0) -> Any:
    """Trips shaped like samples.nyctaxi.trips, generated on the executors (nothing built on the driver)."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's convention

    def uniform(low: float, high: float, salt: int) -> Any:
        return F.lit(low) + F.rand(seed * 100 + salt) * (high - low)

    zips = F.array(*(F.lit(z) for z in ZIPS))
    distance = F.round(uniform(0.3, 15.0, 1), 2)
    frame = spark.range(rows, numPartitions=partitions).select(
        F.timestamp_seconds(F.lit(1454284800) + uniform(0, 28 * 24 * 3600, 2).cast("long")).alias("pickup"),
        distance.alias("trip_distance"),
        F.element_at(zips, (F.rand(seed * 100 + 3) * len(ZIPS)).cast("int") + 1).alias("pickup_zip"),
        F.element_at(zips, (F.rand(seed * 100 + 4) * len(ZIPS)).cast("int") + 1).alias("dropoff_zip"),
        uniform(2.5, 5.0, 5).alias("pace"),
        uniform(1.0, 5.0, 6).alias("wait"),
        F.randn(seed * 100 + 7).alias("noise"),
    )
    minutes = F.col("trip_distance") * F.col("pace") + F.col("wait")
    return frame.select(
        F.col("pickup").alias("tpep_pickup_datetime"),
        F.timestamp_seconds(F.unix_seconds(F.col("pickup")) + (minutes * 60).cast("long")).alias(
            "tpep_dropoff_datetime"
        ),
        "trip_distance",
        F.round(F.lit(3.0) + 2.5 * F.col("trip_distance") + 0.35 * minutes + 0.5 * F.col("noise"), 2).alias(
            "fare_amount"
        ),
        "pickup_zip",
        "dropoff_zip",
    )


def common_arguments() -> list[str]:
    return [f"--catalog={CATALOG}", f"--schema={SCHEMA}", f"--model_name={MODEL}"]


def prepare(spark: Any) -> None:
    """Train and register the model on 20k rows, and make it the champion."""
    import mlflow

    from {{ cookiecutter.__package_name }} import train

    table = f"{DATABASE}.training"
    synthetic_trips(spark, 20_000, partitions=2, seed=1).write.mode("overwrite").saveAsTable(table)
    train.main([*common_arguments(), f"--input_table={table}", "--experiment_name=/benchmark"])
    mlflow.MlflowClient().set_registered_model_alias(f"{CATALOG}.{SCHEMA}.{MODEL}", "champion", "1")


def driver_memory_mb(spark: Any) -> tuple[float, float]:
    """(the Python driver's peak RSS, the JVM's peak heap: the sum of its heap pools' peaks), in MB."""
    python_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    jvm = spark.sparkContext._jvm.java.lang.management.ManagementFactory
    pools = [pool for pool in jvm.getMemoryPoolMXBeans() if str(pool.getType()) == "Heap memory"]
    return python_peak, sum(pool.getPeakUsage().getUsed() for pool in pools) / 1024 / 1024


def measure(spark: Any, rows: int, *, partitions: int) -> dict[str, float]:
    """Score a fresh table of ``rows`` trips with the job's entry point; seconds and driver memory."""
    from {{ cookiecutter.__package_name }} import batch_inference

    table = f"{DATABASE}.trips_{rows}"
    synthetic_trips(spark, rows, partitions=partitions).write.mode("overwrite").saveAsTable(table)
    output = f"{DATABASE}.predictions_{rows}"
    spark.sql(f"DROP TABLE IF EXISTS {output}")
    started = time.perf_counter()
    batch_inference.main([*common_arguments(), f"--input_table={table}", f"--output_table={output}"])
    seconds = time.perf_counter() - started
    scored = spark.read.table(output).count()
    python_mb, jvm_mb = driver_memory_mb(spark)
    return {"rows": rows, "scored": scored, "seconds": seconds, "python_mb": python_mb, "jvm_mb": jvm_mb}


def child(arguments: argparse.Namespace) -> None:
    root = Path(arguments.workdir)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["MLFLOW_REGISTRY_URI"] = os.environ["MLFLOW_TRACKING_URI"]
    spark = spark_session(root, cores=arguments.cores, driver_memory=arguments.driver_memory)
    if arguments.prepare:
        prepare(spark)
    else:
        partitions = max(arguments.cores * 2, arguments.rows // 250_000)
        result = measure(spark, arguments.rows, partitions=partitions)
        print("RESULT " + json.dumps(result), flush=True)
    spark.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.workdir:
        child(arguments)
        return

    with tempfile.TemporaryDirectory(prefix="benchmark-") as workdir:
        base = [sys.executable, __file__, f"--workdir={workdir}", f"--cores={arguments.cores}"]
        base.append(f"--driver-memory={arguments.driver_memory}")
        subprocess.run([*base, "--prepare"], check=True, stdout=subprocess.DEVNULL)
        results = []
        for rows in arguments.sizes:
            run = subprocess.run([*base, f"--rows={rows}"], capture_output=True, text=True)
            line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                print(f"{rows:>10,} rows: failed (exit {run.returncode}): {run.stderr.strip()[-300:]}")
                continue
            results.append(json.loads(line.removeprefix("RESULT ")))
    if not results:
        sys.exit(1)
    print(f"local[{arguments.cores}], driver memory {arguments.driver_memory}")
    header = ("rows", 10), ("seconds", 8), ("rows/s", 9), ("cost/row vs first", 18), ("Python MB", 10)
    print(" ".join(f"{name:>{width}}" for name, width in header), f"{'JVM MB':>7}")
    first = results[0]["seconds"] / results[0]["rows"]
    for result in results:
        per_row = result["seconds"] / result["rows"]
        print(
            f"{result['rows']:>10,} {result['seconds']:>8.1f} {result['rows'] / result['seconds']:>9,.0f} "
            f"{per_row / first:>18.2f} {result['python_mb']:>10.0f} {result['jvm_mb']:>7.0f}"
        )


if __name__ == "__main__":
    main()
