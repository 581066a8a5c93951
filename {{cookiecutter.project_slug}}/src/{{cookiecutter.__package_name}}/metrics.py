"""How a model is measured: its predictions on clean trips and the regression metrics of them.

Training logs these metrics, validation gates on them, monitoring watches them on the predictions table.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from . import features


class Predictor(Protocol):
    """Anything with ``predict(DataFrame)``: a scikit-learn pipeline or an MLflow pyfunc model."""

    def predict(self, frame: pd.DataFrame) -> object: ...


def compute_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Regression metrics used for logging, validation gates and monitoring."""
    y_true_arr, y_pred_arr = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if len(y_true_arr) == 0:
        raise ValueError("Cannot compute metrics on an empty set")
    return {
        "rmse": math.sqrt(mean_squared_error(y_true_arr, y_pred_arr)),
        "mae": float(mean_absolute_error(y_true_arr, y_pred_arr)),
        "r2": float(r2_score(y_true_arr, y_pred_arr)) if len(y_true_arr) > 1 else float("nan"),
    }


def predict_fares(model: Predictor, frame: pd.DataFrame) -> np.ndarray:
    """Predictions as a flat float array, whatever the model returns (array, Series or DataFrame)."""
    predictions = model.predict(frame.loc[:, list(features.INPUT_COLUMNS)])
    return np.asarray(predictions, dtype=float).reshape(-1)


def evaluate(model: Predictor, frame: pd.DataFrame) -> dict[str, float]:
    """Metrics of ``model`` on clean, labelled trips."""
    return compute_metrics(frame[features.TARGET], predict_fares(model, frame))
