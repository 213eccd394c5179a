"""Baselines every learning-curve predictor must beat (docs/predictors.md#baselines).

- ``last-value``: the last observed value, linearly calibrated on the training set
  (``target ~ a + b x last``, least squares). Successive halving ranks by the last value, so a
  predictor that does not rank better than this one adds nothing to a rung decision.
- ``power-law``: training-free, one curve at a time (Domhan, Springenberg, Hutter, IJCAI 2015, the
  ``pow3`` member of their family): the prefix is fitted by ``v(t) = c + a t^-alpha`` (t in epochs,
  ``a >= 0``: a curve that improves and levels off; ``alpha`` on a log-spaced grid, ``c`` and ``a`` by
  least squares for each), and extrapolated to ``horizon`` epochs (the target epoch; a scheduler or the
  evaluation passes it). A curve that gets worse, or a prefix of one or two epochs, is extrapolated as
  its last value. ``fit`` learns nothing: it only records the prefix length. ``spread``: the fit's
  residual RMS scaled by how far the extrapolation reaches, in target units.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hpoq.errors import ConfigError
from hpoq.predict.base import Prediction, Predictor, check_fitted
from hpoq.predict.features import _check_prefixes
from hpoq.registry import Interval

#: the power-law exponents tried per curve
ALPHAS = np.geomspace(0.05, 4.0, 160)


class LastValuePredictor(Predictor):
    """``a + b x last observed value``, fitted by least squares (see the module docstring)."""

    name = "last-value"
    parameter_constraints = {"seed": [Interval(int, 0, None)]}

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.coef: np.ndarray | None = None
        self.n_epochs = None

    def fit(self, configs: Sequence[dict] | None, prefixes: np.ndarray, targets: np.ndarray) -> "LastValuePredictor":
        P = _check_prefixes(prefixes)
        y = np.asarray(targets, dtype=float).ravel()
        if len(y) != len(P) or len(y) < 2:
            raise ConfigError(f"last-value: need >= 2 prefixes matching targets, got {P.shape} and {y.shape}")
        last = P[:, -1]
        ok = np.isfinite(last) & np.isfinite(y)
        X = np.column_stack([np.ones(ok.sum()), last[ok]])
        self.coef = np.linalg.lstsq(X, y[ok], rcond=None)[0] if ok.sum() >= 2 else np.array([0.0, 1.0])
        self.n_epochs = P.shape[1]
        return self

    def predict(self, configs: Sequence[dict] | None, prefixes: np.ndarray) -> Prediction:
        check_fitted(self.coef is not None, "last-value")
        P = _check_prefixes(prefixes)
        return Prediction(mean=self.coef[0] + self.coef[1] * P[:, -1], spread=None, info={"predictor": self.name})

    def describe(self) -> dict:
        return {"name": self.name, "coef": None if self.coef is None else [float(c) for c in self.coef]}


def power_law_extrapolate(P: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(values at ``horizon``, residual RMS) of the per-curve fits ``c + a t^-alpha`` of prefixes ``P`` [n, e]."""
    n, e = P.shape
    last = P[:, -1].copy()
    if e < 3:
        return last, np.zeros(n)
    t = np.arange(1, e + 1, dtype=float)
    best_sse = np.full(n, np.inf)
    out, rms = last.copy(), np.zeros(n)
    finite = np.isfinite(P).all(axis=1)
    Y = np.where(finite[:, None], P, 0.0)
    for alpha in ALPHAS:
        x = t**-alpha
        xm, xv = x.mean(), x.var()
        a = ((Y * (x - xm)).mean(axis=1)) / xv  # slope on t^-alpha, per curve
        c = Y.mean(axis=1) - a * xm
        sse = ((Y - (c[:, None] + a[:, None] * x)) ** 2).sum(axis=1)
        better = (sse < best_sse) & (a >= 0) & finite
        best_sse = np.where(better, sse, best_sse)
        out = np.where(better, c + a * float(horizon) ** -alpha, out)
        rms = np.where(better, np.sqrt(sse / e), rms)
    return out, rms


class PowerLawPredictor(Predictor):
    """Per-curve power-law extrapolation to ``horizon`` epochs, training-free (see the module docstring)."""

    name = "power-law"
    parameter_constraints = {"seed": [Interval(int, 0, None)], "horizon": [Interval(int, 1, None), None]}

    def __init__(self, horizon: int | None = None, seed: int = 0):
        self.horizon = None if horizon is None else int(horizon)
        self.seed = int(seed)
        self.n_epochs = None

    def fit(self, configs: Sequence[dict] | None, prefixes: np.ndarray, targets: np.ndarray) -> "PowerLawPredictor":
        self.n_epochs = _check_prefixes(prefixes).shape[1]
        if self.horizon is None:
            raise ConfigError("power-law: give the target epoch as predictor_params horizon (the scheduler sets R)")
        return self

    def predict(self, configs: Sequence[dict] | None, prefixes: np.ndarray) -> Prediction:
        check_fitted(self.n_epochs is not None, "power-law")
        P = _check_prefixes(prefixes)
        mean, rms = power_law_extrapolate(P, max(self.horizon, P.shape[1]))
        reach = np.log(max(self.horizon, P.shape[1]) / P.shape[1]) + 1.0
        return Prediction(mean=mean, spread=rms * reach, info={"predictor": self.name})

    def describe(self) -> dict:
        return {"name": self.name, "horizon": self.horizon}
