from __future__ import annotations

import pytest

from {{ cookiecutter.__package_name }} import metrics


def test_compute_metrics_on_known_values() -> None:
    scores = metrics.compute_metrics([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 6.0])
    assert scores["rmse"] == pytest.approx(1.0)
    assert scores["mae"] == pytest.approx(0.5)
    assert scores["r2"] == pytest.approx(1 - 4 / 5)
    with pytest.raises(ValueError, match="empty"):
        metrics.compute_metrics([], [])
