"""Feature engineering for NYC yellow taxi trips (``samples.nyctaxi.trips``).

The model takes the raw trip columns (INPUT_COLUMNS) and derives its features itself, through
:class:`TripFeatures` at the head of the scikit-learn pipeline, so batch scoring and model serving
feed it raw trips and cannot compute features differently from training. The package is logged
with the model (``code_paths``), so the model loads where this wheel is not installed; where it is
installed, the installed version's feature code runs. Keep changes here backwards compatible with
registered models (for deploy models: the model in prod may be older than the code), or retrain.
"""

from __future__ import annotations

import functools
import logging
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

logger = logging.getLogger(__name__)

PICKUP_TIME = "tpep_pickup_datetime"
DROPOFF_TIME = "tpep_dropoff_datetime"
DISTANCE = "trip_distance"
PICKUP_ZIP = "pickup_zip"
DROPOFF_ZIP = "dropoff_zip"
TARGET = "fare_amount"

INPUT_COLUMNS: tuple[str, ...] = (PICKUP_TIME, DROPOFF_TIME, DISTANCE, PICKUP_ZIP, DROPOFF_ZIP)
"""The model's input: the raw trip columns known when the trip ends."""
SOURCE_COLUMNS: tuple[str, ...] = (*INPUT_COLUMNS, TARGET)
"""What training reads from the table."""
SPLIT_KEY_COLUMNS: tuple[str, ...] = INPUT_COLUMNS
"""Columns whose hash assigns a trip to the train or holdout split."""

FEATURE_COLUMNS: tuple[str, ...] = (
    "trip_distance",
    "trip_duration_min",
    "avg_speed_mph",
    "pickup_hour",
    "pickup_weekday",
    "is_weekend",
    "is_peak_hour",
    "is_overnight",
    "pickup_borough",
    "dropoff_borough",
    "is_cross_borough",
    "is_same_zip",
    "is_airport_trip",
)

# Borough codes from the first three digits of the ZIP code (an approximation: a few prefixes
# straddle county lines). 0 = unknown ZIP, 6 = outside New York City (New Jersey, Long Island, ...).
UNKNOWN_BOROUGH, OUTSIDE_NYC = 0, 6
BOROUGH_BY_ZIP_PREFIX: dict[int, int] = {
    100: 1,  # Manhattan
    101: 1,
    102: 1,
    104: 2,  # Bronx
    112: 3,  # Brooklyn
    110: 4,  # Queens
    111: 4,
    113: 4,
    114: 4,
    116: 4,
    103: 5,  # Staten Island
}
AIRPORT_ZIPS = frozenset({11430, 11371, 7114})  # JFK, LaGuardia, Newark
PEAK_HOURS = range(16, 20)  # weekday 4pm-8pm surcharge
OVERNIGHT_HOURS = frozenset({*range(20, 24), *range(6)})  # 8pm-6am surcharge


@dataclass(frozen=True)
class QualityRules:
    """Bounds that a trip must satisfy to be trained on or scored."""

    max_distance_miles: float = 100.0
    max_duration_min: float = 180.0
    max_speed_mph: float = 80.0
    min_fare: float = 2.5  # the flag-drop fare: anything lower is a refund or a data error
    max_fare: float = 250.0


def prepare_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The INPUT_COLUMNS (plus the target when present) with the dtypes the model signature expects.

    Timestamps become timezone-naive datetimes, distances and ZIP codes floats (a missing ZIP
    stays NaN and is handled as an unknown borough). Raises ValueError naming missing columns.
    """
    missing = [name for name in INPUT_COLUMNS if name not in frame.columns]
    if missing:
        raise ValueError(f"Missing input columns {missing}; expected {list(INPUT_COLUMNS)}")
    columns = [*INPUT_COLUMNS, *([TARGET] if TARGET in frame.columns else [])]
    prepared = frame.loc[:, columns].copy()
    for name in (PICKUP_TIME, DROPOFF_TIME):
        times = pd.to_datetime(prepared[name])
        prepared[name] = times.dt.tz_localize(None) if times.dt.tz is not None else times
    for name in (DISTANCE, PICKUP_ZIP, DROPOFF_ZIP, *([TARGET] if TARGET in prepared else [])):
        prepared[name] = pd.to_numeric(prepared[name], errors="coerce").astype("float64")
    return prepared


def _duration_minutes(frame: pd.DataFrame) -> pd.Series:
    return (frame[DROPOFF_TIME] - frame[PICKUP_TIME]).dt.total_seconds() / 60.0


def quality_condition(
    distance: Any, duration_min: Any, fare: Any, rules: QualityRules, *, require_target: bool
) -> Any:
    """The data-quality rules, written once over column objects: pandas Series or Spark Columns.

    Only comparisons, ``*`` and ``&``: both libraries read them alike. A missing value fails every
    comparison (pandas: False; Spark: NULL, which a filter drops), and there is no division, so a zero
    duration cannot raise under Spark's ANSI mode. ``fare`` is ignored unless ``require_target``.
    :func:`quality_mask` (pandas) and ``data.quality_filter`` (Spark) are its two callers.
    """
    conditions = [
        distance > 0,
        distance <= rules.max_distance_miles,
        duration_min > 0,
        duration_min <= rules.max_duration_min,
        # speed = distance / (duration / 60) <= max_speed, without the division
        distance * 60.0 <= duration_min * rules.max_speed_mph,
    ]
    if require_target:
        conditions += [fare >= rules.min_fare, fare <= rules.max_fare]
    return functools.reduce(operator.and_, conditions)


def quality_mask(frame: pd.DataFrame, rules: QualityRules, *, require_target: bool) -> pd.Series:
    """True for the rows of a prepared frame that pass the data-quality rules."""
    if require_target and TARGET not in frame.columns:
        raise ValueError(f"Target column {TARGET!r} is required for training and validation")
    fare = frame[TARGET] if require_target else None
    mask = quality_condition(
        frame[DISTANCE], _duration_minutes(frame), fare, rules, require_target=require_target
    )
    return mask.fillna(False).astype(bool)


def clean_trips(
    frame: pd.DataFrame, rules: QualityRules | None = None, *, require_target: bool = True
) -> pd.DataFrame:
    """Typed trips that pass the data-quality rules; logs how many rows were dropped.

    ``require_target=False`` is for scoring: the fare is neither needed nor checked.
    """
    prepared = prepare_inputs(frame)
    mask = quality_mask(prepared, rules or QualityRules(), require_target=require_target)
    dropped = int((~mask).sum())
    if dropped:
        logger.info("Dropped %d of %d rows that fail the data-quality rules.", dropped, len(prepared))
    return prepared.loc[mask].reset_index(drop=True)


def zip_to_borough(zips: pd.Series) -> pd.Series:
    """Borough code per ZIP code (see BOROUGH_BY_ZIP_PREFIX)."""
    prefixes = (zips // 100).astype("Int64")
    boroughs = prefixes.map(BOROUGH_BY_ZIP_PREFIX).astype("float64").fillna(OUTSIDE_NYC)
    return boroughs.where(zips.notna(), UNKNOWN_BOROUGH).astype("int64")


def add_features(frame: pd.DataFrame) -> pd.DataFrame:
    """FEATURE_COLUMNS computed from a prepared frame (see :func:`prepare_inputs`)."""
    duration = _duration_minutes(frame)
    pickup = frame[PICKUP_TIME].dt
    hour = pickup.hour
    weekday = pickup.day_of_week
    is_weekend = weekday >= 5
    pickup_borough = zip_to_borough(frame[PICKUP_ZIP])
    dropoff_borough = zip_to_borough(frame[DROPOFF_ZIP])
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = frame[DISTANCE] / (duration / 60.0)
    features = pd.DataFrame(
        {
            "trip_distance": frame[DISTANCE],
            "trip_duration_min": duration,
            "avg_speed_mph": speed.replace([np.inf, -np.inf], np.nan),
            "pickup_hour": hour,
            "pickup_weekday": weekday,
            "is_weekend": is_weekend,
            "is_peak_hour": ~is_weekend & hour.isin(PEAK_HOURS),
            "is_overnight": hour.isin(OVERNIGHT_HOURS),
            "pickup_borough": pickup_borough,
            "dropoff_borough": dropoff_borough,
            "is_cross_borough": pickup_borough != dropoff_borough,
            "is_same_zip": frame[PICKUP_ZIP].eq(frame[DROPOFF_ZIP]),
            "is_airport_trip": frame[PICKUP_ZIP].isin(AIRPORT_ZIPS) | frame[DROPOFF_ZIP].isin(AIRPORT_ZIPS),
        },
        index=frame.index,
    )
    return features.astype("float64")[list(FEATURE_COLUMNS)]


class TripFeatures(TransformerMixin, BaseEstimator):
    """Stateless pipeline step: raw trip columns in, FEATURE_COLUMNS out."""

    def fit(self, X: pd.DataFrame, y: object = None) -> TripFeatures:  # noqa: N803 - scikit-learn API
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803 - scikit-learn API
        return add_features(prepare_inputs(X))

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(FEATURE_COLUMNS, dtype=object)
