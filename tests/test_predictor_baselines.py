"""The predictor baselines (hpoq.predict.baselines): last-value and the training-free power law."""

from __future__ import annotations

import numpy as np
import pytest

from hpoq.errors import ConfigError
from hpoq.predict import make_predictor
from hpoq.predict.baselines import power_law_extrapolate
from hpoq.predict.evaluate import top_kept


def test_power_law_recovers_a_curve_of_its_family():
    t = np.arange(1, 11, dtype=float)
    curves = np.vstack([0.3 + 2.0 * t**-0.7, 1.0 + 0.5 * t**-1.5, np.full(10, 0.8)])
    final, rms = power_law_extrapolate(curves, 100)
    assert final[0] == pytest.approx(0.3 + 2.0 * 100**-0.7, abs=0.01)
    assert final[1] == pytest.approx(1.0 + 0.5 * 100**-1.5, abs=0.01)
    assert final[2] == pytest.approx(0.8) and np.all(rms < 0.01)


def test_power_law_extrapolates_a_worsening_or_short_curve_as_its_last_value():
    rising = np.linspace(1.0, 2.0, 6)[None, :]
    assert power_law_extrapolate(rising, 50)[0][0] == pytest.approx(2.0)
    assert power_law_extrapolate(np.array([[3.0, 2.0]]), 50)[0][0] == pytest.approx(2.0)


def test_power_law_needs_a_horizon_and_learns_nothing():
    P = np.array([[3.0, 2.0, 1.6, 1.4], [2.0, 1.9, 1.85, 1.83]])
    with pytest.raises(ConfigError, match="horizon"):
        make_predictor("power-law").fit(None, P, np.zeros(2))
    a = make_predictor("power-law", horizon=40).fit(None, P, np.zeros(2)).predict(None, P).mean
    b = make_predictor("power-law", horizon=40).fit(None, P, np.array([5.0, -5.0])).predict(None, P).mean
    np.testing.assert_array_equal(a, b)
    assert a[0] < a[1]  # the steep curve ends below the flat one it trails at epoch 4


def test_last_value_is_a_least_squares_calibration_of_the_last_epoch():
    P = np.array([[3.0, 2.0], [2.0, 1.0], [4.0, 3.0]])
    y = 2.0 * P[:, -1] + 1.0
    pred = make_predictor("last-value").fit(None, P, y).predict(None, np.array([[0.0, 5.0]])).mean
    assert pred[0] == pytest.approx(11.0)


def test_top_kept_counts_the_best_tenth_in_the_predicted_best_third():
    y = np.arange(30, dtype=float)
    assert top_kept(y, y) == 1.0 and top_kept(y, -y) == 0.0
    assert top_kept(y, np.r_[y[:2] + 100, y[2:]]) == pytest.approx(1 / 3)
