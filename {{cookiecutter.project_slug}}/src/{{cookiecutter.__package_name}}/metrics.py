"""How a model is measured: its predictions on clean trips and the regression metrics of them.

Training logs these metrics, validation gates on them, monitoring watches them on the predictions table.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from . import features

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class Predictor(Protocol):
    """Anything with ``predict(DataFrame)``: a scikit-learn pipeline or an MLflow pyfunc model."""

    def predict(self, frame: pd.DataFrame) -> object: ...


def compute_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Regression metrics used for logging, validation gates and monitoring (pandas and NumPy).

    :func:`spark_metrics` computes the same numbers on a Spark DataFrame; a test holds them equal.
    """
    y_true_arr, y_pred_arr = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if len(y_true_arr) == 0:
        raise ValueError("Cannot compute metrics on an empty set")
    return {
        "rmse": math.sqrt(mean_squared_error(y_true_arr, y_pred_arr)),
        "mae": float(mean_absolute_error(y_true_arr, y_pred_arr)),
        "r2": float(r2_score(y_true_arr, y_pred_arr)) if len(y_true_arr) > 1 else float("nan"),
    }


def spark_metrics(frame: DataFrame, label: str, prediction: str) -> dict[str, float]:
    """:func:`compute_metrics` of two columns of a Spark DataFrame, as one aggregate on the executors:
    one row of sums reaches the driver, however many rows were scored."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's convention

    error = F.col(label) - F.col(prediction)
    row = frame.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(error * error).alias("squared"),
        F.sum(F.abs(error)).alias("absolute"),
        (F.var_pop(F.col(label)) * F.count(F.lit(1))).alias("total"),
    ).first()
    sums = row.asDict() if row is not None else {}
    n = int(sums.get("n") or 0)
    if n == 0:
        raise ValueError("Cannot compute metrics on an empty set")
    total = float(sums["total"])
    if n == 1:
        r2 = float("nan")
    elif total == 0.0:  # what r2_score returns for a constant label
        r2 = 1.0 if sums["squared"] == 0 else 0.0
    else:
        r2 = 1.0 - float(sums["squared"]) / total
    return {"rmse": math.sqrt(float(sums["squared"]) / n), "mae": float(sums["absolute"]) / n, "r2": r2}


def predict_fares(model: Predictor, frame: pd.DataFrame) -> np.ndarray:
    """Predictions as a flat float array, whatever the model returns (array, Series or DataFrame)."""
    predictions = model.predict(frame.loc[:, list(features.INPUT_COLUMNS)])
    return np.asarray(predictions, dtype=float).reshape(-1)


def evaluate(model: Predictor, frame: pd.DataFrame) -> dict[str, float]:
    """Metrics of ``model`` on clean, labelled trips."""
    return compute_metrics(frame[features.TARGET], predict_fares(model, frame))
