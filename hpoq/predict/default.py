"""``default``: the pruning predictor — an ExtraTrees + NuSVR ensemble on robust curve summaries.

Beyond the paper (method.md 4): the paper's NuSVR on ``baker`` features is sensitive to single
spikes in the prefix (MLPF curves spike when a run restarts) and to hyperparameters on a
linear scale. This predictor

- encodes hyperparameters with :class:`HPEncoder` (log10 where a range spans decades);
- summarises the prefix robustly (:func:`curve_summary`): the level (last value of a running
  median of width 3), the last raw value's deviation from it (spike), the smoothed curve at
  up to ``n_points`` evenly spaced epochs relative to the level (its shape), the minimum so
  far and over the last quarter, and the slope over the last quarter;
- scales X with MinMax and the target robustly (median / IQR) fitted on its training set;
- averages an :class:`~sklearn.ensemble.ExtraTreesRegressor` (seeded, ``n_trees`` trees,
  leaves of >= 2 samples) and the tuned NuSVR of method.md 4.5 (C = 5.55, nu = 0.903);
- estimates ``spread`` from ``cv_folds``-fold cross-validation on the training set: the
  held-out RMSE, modulated per point by the members' disagreement relative to its held-out
  average, so that ``spread`` has the scale of the held-out error (target units).

Fit time: about 0.1-0.4 s at n = 300 on one core (CV included); robust down to n = 5.
"""
from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np

from hpoq.errors import HpoqError
from hpoq.predict.base import Prediction, Predictor
from hpoq.predict.features import HPEncoder


def _running_median(P: np.ndarray, width: int = 3) -> np.ndarray:
    if P.shape[1] < width:
        return P.copy()
    half = width // 2
    padded = np.pad(P, ((0, 0), (half, half)), mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, width, axis=1), axis=2)


def curve_summary(prefixes: np.ndarray, n_points: int = 10) -> np.ndarray:
    """Robust summary features of curve prefixes [n, e] (see the module docstring)."""
    P = np.asarray(prefixes, dtype=float)
    e = P.shape[1]
    smooth = _running_median(P, 3)
    level = smooth[:, -1:]
    k = max(2, int(math.ceil(e / 4)))
    idx = np.unique(np.round(np.linspace(0, e - 1, min(e, n_points))).astype(int))
    feats = [level, P[:, -1:] - level, smooth[:, idx] - level,
             P.min(axis=1, keepdims=True) - level, P[:, -k:].min(axis=1, keepdims=True) - level]
    if e >= 2:
        kk = min(k, e)
        feats.append((smooth[:, -1:] - smooth[:, -kk:-kk + 1]) / (kk - 1))
    return np.hstack(feats)


MEMBERS = ("et", "gbr", "svr")


class DefaultPredictor(Predictor):
    """ExtraTrees + NuSVR on hyperparameters and robust curve summaries, with a CV-based spread.

    Parameters: ``seed`` (trees and CV folds), ``n_trees`` (100), ``min_leaf`` (2),
    ``max_features`` (fraction of features per split, 0.66), ``C`` / ``nu`` of the NuSVR
    (5.55 / 0.903), ``n_points`` (curve shape points, 10), ``cv_folds`` (5; 0 = no CV, the
    spread is then the members' disagreement), ``use_hps`` (True).
    """

    name = "default"

    def __init__(self, seed: int = 0, n_trees: int = 100, min_leaf: int = 2, max_features: float = 0.66,
                 C: float = 5.55, nu: float = 0.903, n_points: int = 10, cv_folds: int = 5, use_hps: bool = True,
                 members: str = "et,gbr,svr", weights: str = "stack", y_scale: str = "std", gbr_trees: int = 150, gbr_lr: float = 0.1):
        if int(n_trees) < 1 or int(min_leaf) < 1 or not (0 < float(max_features) <= 1):
            raise HpoqError("default: n_trees >= 1, min_leaf >= 1 and max_features in (0, 1] are required")
        if float(C) <= 0 or not (0 < float(nu) <= 1):
            raise HpoqError(f"default: C must be > 0 and nu in (0, 1], got C={C}, nu={nu}")
        if int(cv_folds) < 0 or int(n_points) < 1:
            raise HpoqError("default: cv_folds >= 0 and n_points >= 1 are required")
        self.seed, self.n_trees, self.min_leaf = int(seed), int(n_trees), int(min_leaf)
        self.max_features, self.C, self.nu = float(max_features), float(C), float(nu)
        self.n_points, self.cv_folds, self.use_hps = int(n_points), int(cv_folds), bool(use_hps)
        self.member_names = [m.strip() for m in str(members).split(",") if m.strip()]
        unknown = sorted(set(self.member_names) - set(MEMBERS))
        if unknown or not self.member_names:
            raise HpoqError(f"default: unknown member(s) {', '.join(unknown) or '(none)'}; available: {', '.join(MEMBERS)}")
        if weights not in ("stack", "mean"):
            raise HpoqError(f"default: weights must be 'stack' or 'mean', got {weights!r}")
        if y_scale not in ("std", "iqr"):
            raise HpoqError(f"default: y_scale must be 'std' or 'iqr', got {y_scale!r}")
        self.weights_mode, self.y_scale_mode, self.gbr_trees, self.gbr_lr = weights, y_scale, int(gbr_trees), float(gbr_lr)
        self.fit_seconds = 0.0
        self.cv_rmse = None
        self._fitted = False

    # -- pieces ------------------------------------------------------------------------------
    def _features(self, configs, prefixes: np.ndarray) -> np.ndarray:
        curve = curve_summary(prefixes, self.n_points)
        hps = self.encoder.transform(configs, len(prefixes)) if self.use_hps else np.zeros((len(prefixes), 0))
        return np.hstack([hps, curve])

    def _members(self, n: int):
        from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor
        from sklearn.svm import NuSVR

        leaf = min(self.min_leaf, max(1, n // 4))
        out = []
        for name in self.member_names:
            if name == "et":
                out.append(ExtraTreesRegressor(n_estimators=self.n_trees, min_samples_leaf=leaf,
                                               max_features=self.max_features, random_state=self.seed, n_jobs=1))
            elif name == "gbr":
                out.append(GradientBoostingRegressor(n_estimators=self.gbr_trees, learning_rate=self.gbr_lr, max_depth=3,
                                                     subsample=0.8, min_samples_leaf=leaf, random_state=self.seed))
            else:
                out.append(NuSVR(C=self.C, nu=self.nu, gamma="scale"))
        return out

    @staticmethod
    def _fit_members(members, X, t):
        return [m.fit(X, t) for m in members]

    @staticmethod
    def _predict_members(members, X) -> np.ndarray:
        return np.vstack([m.predict(X) for m in members])  # [members, m]

    def _disagreement(self, preds: np.ndarray) -> np.ndarray:
        """Weighted variance of the members' predictions per point."""
        mean = self.w @ preds
        return self.w @ (preds - mean) ** 2

    @staticmethod
    def _stack_weights(oof: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Non-negative least squares of the targets on out-of-fold member predictions,
        shrunk towards equal weights for small n (n / (n + 20) on the NNLS part)."""
        from scipy.optimize import nnls

        k, n = oof.shape
        w, _ = nnls(oof.T, t)
        w = w / w.sum() if w.sum() > 0 else np.full(k, 1.0 / k)
        lam = n / (n + 20.0)
        return lam * w + (1 - lam) / k

    # -- Predictor API -------------------------------------------------------------------------
    def fit(self, configs: Sequence[dict] | None, prefixes: np.ndarray, targets: np.ndarray) -> "DefaultPredictor":
        from sklearn.model_selection import KFold
        from sklearn.preprocessing import MinMaxScaler

        t0 = time.perf_counter()
        P = np.asarray(prefixes, dtype=float)
        y = np.asarray(targets, dtype=float).ravel()
        if P.ndim != 2 or len(P) != len(y) or len(y) < 3 or P.shape[1] < 1:
            raise HpoqError(f"default: need >= 3 prefixes [n, e >= 1] matching targets [n], got {P.shape} and {y.shape}")
        if not (np.isfinite(P).all() and np.isfinite(y).all()):
            raise HpoqError("default: prefixes and targets must be finite")
        self.n_epochs = P.shape[1]
        self.encoder = HPEncoder(log_scale=True).fit(configs if self.use_hps else None)
        X = self._features(configs, P)
        self.x_scaler = MinMaxScaler().fit(X)
        Xs = self.x_scaler.transform(X)
        self.y_center = float(np.median(y))
        q75, q25 = np.percentile(y, [75, 25])
        scale = float(np.std(y)) if self.y_scale_mode == "std" else float(q75 - q25)
        scale = scale or float(np.ptp(y)) or 1.0
        self.y_scale = scale
        t = (y - self.y_center) / scale
        n = len(y)
        folds = min(self.cv_folds, n // 2) if self.cv_folds else 0
        self.disagreement_ref = None
        k = len(self.member_names)
        self.w = np.full(k, 1.0 / k)
        if folds >= 2:
            oof = np.zeros((k, n))
            for tr, te in KFold(folds, shuffle=True, random_state=self.seed).split(Xs):
                members = self._fit_members(self._members(len(tr)), Xs[tr], t[tr])
                oof[:, te] = self._predict_members(members, Xs[te])
            if self.weights_mode == "stack" and k > 1:
                self.w = self._stack_weights(oof, t)
            resid = self.w @ oof - t
            self.cv_rmse = float(np.sqrt(np.mean(resid ** 2)) * scale)
            self.cv_member_rmse = (np.sqrt(np.mean((oof - t) ** 2, axis=1)) * scale).tolist()
            self.disagreement_ref = float(np.sqrt(np.mean(self._disagreement(oof)))) or None
        self.members = self._fit_members(self._members(n), Xs, t)
        self._fitted = True
        self.fit_seconds = time.perf_counter() - t0
        return self

    def predict(self, configs: Sequence[dict] | None, prefixes: np.ndarray) -> Prediction:
        if not self._fitted:
            raise RuntimeError("default: predict called before fit")
        P = np.asarray(prefixes, dtype=float)
        if P.ndim == 1:
            P = P[None, :]
        if P.shape[1] != self.n_epochs:
            raise ValueError(f"default: fitted on prefixes of {self.n_epochs} epochs, got {P.shape[1]}")
        Xs = self.x_scaler.transform(self._features(configs, P))
        preds = self._predict_members(self.members, Xs)
        mean = (self.w @ preds) * self.y_scale + self.y_center
        disagreement = np.sqrt(self._disagreement(preds)) * self.y_scale
        if self.cv_rmse is not None and self.disagreement_ref:
            rel = disagreement / (self.disagreement_ref * self.y_scale)
            spread = self.cv_rmse * np.sqrt(0.5 + 0.5 * rel ** 2)
        elif self.cv_rmse is not None:
            spread = np.full(len(P), self.cv_rmse)
        else:
            spread = disagreement
        return Prediction(mean=mean, spread=spread, info={"predictor": self.name, "cv_rmse": self.cv_rmse,
                                                          "weights": dict(zip(self.member_names, self.w.round(3).tolist()))})

    def describe(self) -> dict:
        return {"name": self.name, "seed": self.seed, "n_trees": self.n_trees, "min_leaf": self.min_leaf,
                "max_features": self.max_features, "C": self.C, "nu": self.nu, "n_points": self.n_points,
                "cv_folds": self.cv_folds, "use_hps": self.use_hps, "cv_rmse": self.cv_rmse,
                "members": self.member_names, "weights": getattr(self, "w", np.array([])).round(3).tolist(),
                "fit_seconds": self.fit_seconds}
