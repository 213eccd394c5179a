"""``svr``: the classical predictor of the paper, scikit-learn NuSVR (docs/predictors.md#classical-svr, [P1], [B17]).

Defaults reproduce the paper: ``NuSVR()`` (RBF kernel, nu = 0.5, C = 1.0, gamma = 'scale')
on ``baker`` features with raw hyperparameters, ``MinMaxScaler`` on X and y fitted on the
training set, predictions inverse-transformed. ``kind="epsilon"`` gives ``SVR`` with
``epsilon`` instead (the 20-point baseline: ``features="stride2", scaler="quantile",
kind="epsilon", C=67.61, gamma=0.1, epsilon=0.02``).
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from hpoq.errors import ConfigError
from hpoq.predict.base import Prediction, Predictor, check_fitted
from hpoq.predict.features import FEATURE_SETS, SCALERS, USES_HPS, HPEncoder, XYScaler, build_features
from hpoq.registry import Boolean, Interval, Options


class SVRPredictor(Predictor):
    """NuSVR (or epsilon-SVR) on a named feature set with scaled X and y.

    Parameters: ``features`` (``baker`` | ``curve`` | ``stride2``), ``scaler`` (``minmax`` |
    ``quantile`` | ``none``), ``kind`` (``nu`` | ``epsilon``), ``C``, ``nu``, ``epsilon``
    (in scaled target units), ``gamma`` (``'scale'`` or a float, 1/scaled-feature²),
    ``hp_log`` (log10 for hyperparameters spanning decades; off = the paper's raw values),
    ``seed`` (accepted for a uniform interface; NuSVR is deterministic).
    """

    name = "svr"
    parameter_constraints = {
        "features": [Options(*sorted(FEATURE_SETS))],
        "scaler": [Options(*SCALERS)],
        "kind": [Options("nu", "epsilon")],
        "C": [Interval(float, 0, None, closed="neither")],
        "nu": [Interval(float, 0, 1, closed="right")],
        "epsilon": [Interval(float, 0, None)],
        "gamma": [Options("scale", "auto"), Interval(float, 0, None, closed="neither")],
        "hp_log": [Boolean()],
    }

    def __init__(
        self,
        features: str = "baker",
        scaler: str = "minmax",
        kind: str = "nu",
        C: float = 1.0,
        nu: float = 0.5,
        epsilon: float = 0.1,
        gamma="scale",
        hp_log: bool = False,
        seed: int = 0,
    ):
        if features not in FEATURE_SETS:
            raise ConfigError(f"svr: unknown feature set {features!r}; available: {', '.join(sorted(FEATURE_SETS))}")
        if scaler not in SCALERS:
            raise ConfigError(f"svr: unknown scaler {scaler!r}; available: {', '.join(SCALERS)}")
        if kind not in ("nu", "epsilon"):
            raise ConfigError(f"svr: kind must be 'nu' or 'epsilon', got {kind!r}")
        if not (0 < float(nu) <= 1):
            raise ConfigError(f"svr: nu must lie in (0, 1], got {nu}")
        if float(C) <= 0:
            raise ConfigError(f"svr: C must be > 0, got {C}")
        if not (gamma in ("scale", "auto") or (isinstance(gamma, (int, float)) and gamma > 0)):
            raise ConfigError(f"svr: gamma must be 'scale', 'auto' or a positive number, got {gamma!r}")
        self.features, self.scaler_name, self.kind = features, scaler, kind
        self.C, self.nu, self.epsilon, self.gamma = float(C), float(nu), float(epsilon), gamma
        self.hp_log, self.seed = bool(hp_log), int(seed)
        self.encoder: HPEncoder | None = None
        self.scaler: XYScaler | None = None
        self.model = None
        self.n_epochs = None
        self.fit_seconds = 0.0

    def _estimator(self):
        from sklearn.svm import SVR, NuSVR

        if self.kind == "nu":
            return NuSVR(C=self.C, nu=self.nu, gamma=self.gamma)
        return SVR(C=self.C, epsilon=self.epsilon, gamma=self.gamma)

    def fit(self, configs: Sequence[dict] | None, prefixes: np.ndarray, targets: np.ndarray) -> "SVRPredictor":
        t0 = time.perf_counter()
        prefixes = np.asarray(prefixes, dtype=float)
        targets = np.asarray(targets, dtype=float).ravel()
        if prefixes.ndim != 2 or len(prefixes) != len(targets) or len(targets) < 2:
            raise ConfigError(
                f"svr: need >= 2 prefixes [n, e] matching targets [n], got {prefixes.shape} and {targets.shape}"
            )
        self.n_epochs = prefixes.shape[1]
        self.encoder = HPEncoder(log_scale=self.hp_log).fit(configs if self.features in USES_HPS else None)
        X = build_features(self.features, configs, prefixes, self.encoder)
        self.scaler = XYScaler(self.scaler_name).fit(X, targets)
        self.model = self._estimator().fit(self.scaler.transform_X(X), self.scaler.transform_y(targets))
        self.fit_seconds = time.perf_counter() - t0
        return self

    def predict(self, configs: Sequence[dict] | None, prefixes: np.ndarray) -> Prediction:
        check_fitted(self.model is not None, "svr")
        prefixes = np.asarray(prefixes, dtype=float)
        if prefixes.ndim == 1:
            prefixes = prefixes[None, :]
        if prefixes.shape[1] != self.n_epochs:
            raise ValueError(f"svr: fitted on prefixes of {self.n_epochs} epochs, got {prefixes.shape[1]}")
        X = build_features(self.features, configs, prefixes, self.encoder)
        mean = self.scaler.inverse_y(self.model.predict(self.scaler.transform_X(X)))
        return Prediction(mean=mean, spread=None, info={"predictor": self.name})

    def describe(self) -> dict:
        return {
            "name": self.name,
            "features": self.features,
            "scaler": self.scaler_name,
            "kind": self.kind,
            "C": self.C,
            "nu": self.nu,
            "epsilon": self.epsilon,
            "gamma": self.gamma,
            "hp_log": self.hp_log,
            "fit_seconds": self.fit_seconds,
        }
