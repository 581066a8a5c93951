from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from taxi_fare_model import features


def trip(
    pickup: str = "2016-02-03 10:00:00",  # a Wednesday
    minutes: float = 12.0,
    distance: float = 2.0,
    fare: float | None = 10.0,
    pickup_zip: float | None = 10001,
    dropoff_zip: float | None = 10011,
) -> dict[str, object]:
    start = pd.Timestamp(pickup)
    return {
        "tpep_pickup_datetime": start,
        "tpep_dropoff_datetime": start + pd.Timedelta(minutes=minutes),
        "trip_distance": distance,
        "fare_amount": fare,
        "pickup_zip": pickup_zip,
        "dropoff_zip": dropoff_zip,
    }


def test_quality_rules_reject_each_kind_of_bad_row() -> None:
    rows = {
        "good": trip(),
        "missing_zip_is_fine": trip(pickup_zip=None),
        "no_pickup_time": {**trip(), "tpep_pickup_datetime": pd.NaT},
        "no_distance": trip(distance=0.0),
        "negative_duration": trip(minutes=-3),
        "too_long": trip(minutes=400),
        "too_far": trip(distance=150.0, minutes=170),
        "too_fast": trip(distance=30.0, minutes=10),  # 180 mph
        "refund": trip(fare=-5.0),
        "too_expensive": trip(fare=900.0),
        "no_fare": trip(fare=None),
    }
    frame = features.prepare_inputs(pd.DataFrame.from_dict(rows, orient="index"))
    mask = features.quality_mask(frame, features.QualityRules(), require_target=True)
    assert mask[mask].index.tolist() == ["good", "missing_zip_is_fine"]


def test_clean_trips_keeps_good_rows_with_a_fresh_index(trips: pd.DataFrame) -> None:
    dirty = pd.concat([pd.DataFrame([trip(distance=0.0), trip(fare=-1.0)]), trips], ignore_index=True)
    clean = features.clean_trips(dirty)
    assert len(clean) == len(trips)
    assert clean.index.tolist() == list(range(len(trips)))
    assert (clean["trip_distance"] > 0).all()
    assert (clean["fare_amount"] >= 2.5).all()


def test_clean_trips_for_scoring_ignores_the_fare_but_not_the_trip() -> None:
    frame = pd.DataFrame([trip(fare=None), trip(fare=-5.0), trip(distance=0.0, fare=None)]).drop(
        columns="fare_amount"
    )
    clean = features.clean_trips(frame, require_target=False)
    assert len(clean) == 2
    assert "fare_amount" not in clean.columns
    with pytest.raises(ValueError, match="fare_amount"):
        features.clean_trips(frame, require_target=True)


def test_quality_rules_are_configurable() -> None:
    frame = pd.DataFrame([trip(distance=2.0), trip(distance=8.0, minutes=30)])
    strict = features.QualityRules(max_distance_miles=5.0)
    assert features.clean_trips(frame, strict)["trip_distance"].tolist() == [2.0]
    assert len(features.clean_trips(frame)) == 2


def test_missing_columns_are_named() -> None:
    frame = pd.DataFrame([trip()]).drop(columns=["pickup_zip", "trip_distance"])
    with pytest.raises(ValueError, match=r"\['trip_distance', 'pickup_zip'\]"):
        features.prepare_inputs(frame)


def test_prepare_inputs_normalises_dtypes_without_touching_the_input() -> None:
    frame = pd.DataFrame([trip()])
    frame["tpep_pickup_datetime"] = frame["tpep_pickup_datetime"].astype(str)
    frame["tpep_dropoff_datetime"] = frame["tpep_dropoff_datetime"].dt.tz_localize("UTC")
    frame["pickup_zip"] = frame["pickup_zip"].astype("int32")
    frame["extra"] = "ignored"
    before = frame.copy()

    prepared = features.prepare_inputs(frame)

    assert list(prepared.columns) == [*features.INPUT_COLUMNS, "fare_amount"]
    assert pd.api.types.is_datetime64_dtype(prepared["tpep_pickup_datetime"])
    assert prepared["tpep_dropoff_datetime"].dt.tz is None
    assert prepared["pickup_zip"].dtype == "float64"
    pd.testing.assert_frame_equal(frame, before)


def test_time_features() -> None:
    frame = features.prepare_inputs(
        pd.DataFrame(
            [
                trip(pickup="2016-02-03 17:30:00", minutes=15, distance=3.0),  # Wednesday rush hour
                trip(pickup="2016-02-06 17:30:00", minutes=30, distance=3.0),  # Saturday, same hour
                trip(pickup="2016-02-04 02:10:00", minutes=6, distance=1.0),  # Thursday night
            ]
        )
    )
    derived = features.add_features(frame)
    assert list(derived.columns) == list(features.FEATURE_COLUMNS)
    assert derived["trip_duration_min"].tolist() == [15.0, 30.0, 6.0]
    assert derived["avg_speed_mph"].tolist() == pytest.approx([12.0, 6.0, 10.0])
    assert derived["pickup_hour"].tolist() == [17, 17, 2]
    assert derived["pickup_weekday"].tolist() == [2, 5, 3]
    assert derived["is_weekend"].tolist() == [0, 1, 0]
    assert derived["is_peak_hour"].tolist() == [1, 0, 0]
    assert derived["is_overnight"].tolist() == [0, 0, 1]


def test_location_features() -> None:
    frame = features.prepare_inputs(
        pd.DataFrame(
            [
                trip(pickup_zip=10001, dropoff_zip=10001),  # within one Manhattan ZIP
                trip(pickup_zip=10019, dropoff_zip=11430),  # Manhattan -> JFK (Queens)
                trip(pickup_zip=11201, dropoff_zip=7114),  # Brooklyn -> Newark airport (NJ)
                trip(pickup_zip=None, dropoff_zip=10451),  # unknown -> Bronx
            ]
        )
    )
    derived = features.add_features(frame)
    assert derived["pickup_borough"].tolist() == [1, 1, 3, features.UNKNOWN_BOROUGH]
    assert derived["dropoff_borough"].tolist() == [1, 4, features.OUTSIDE_NYC, 2]
    assert derived["is_cross_borough"].tolist() == [0, 1, 1, 1]
    assert derived["is_same_zip"].tolist() == [1, 0, 0, 0]
    assert derived["is_airport_trip"].tolist() == [0, 1, 1, 0]


def test_transformer_matches_add_features_and_is_finite_on_clean_trips(trips: pd.DataFrame) -> None:
    clean = features.clean_trips(trips)
    transformer = features.TripFeatures().fit(clean)
    transformed = transformer.transform(clean)
    pd.testing.assert_frame_equal(transformed, features.add_features(features.prepare_inputs(clean)))
    assert np.isfinite(transformed.to_numpy()).all()
    assert list(transformer.get_feature_names_out()) == list(features.FEATURE_COLUMNS)
