"""Forecasts of a later value of a curve from its prefix, which ``default`` scores its trials by
(:mod:`hpoq.schedulers.scores`).

A forecast at a checkpoint of epoch ``e`` predicts the minimised value at a *target* epoch ``T`` (``default``
asks for ``T = R``, the final value) from the prefix (values after epochs 1..e) and the hyperparameters,
with an uncertainty, learnt from the warm store of earlier studies
(docs/algorithms.md#where-the-savings-come-from) plus the study's own trials that reached ``T``.

Training sets are a pure function of the scheduler's state, so that a restored scheduler (and a
replayed journal) makes the same forecasts: the store (a seeded subset of at most ``max_store``
curves) plus the *first* ``N`` study trials, in arrival order, that reached ``T``, where ``N`` is
the largest size on the grid ``min_train * growth**j`` available, at most ``2 x max_store`` (a model is
refit only when the grid steps, cf. docs/algorithms.md#swift-hyperband ``refit="on_growth"``). The
uncertainty is the root mean square of
``folds``-fold cross-validated residuals on that set (or the predictor's own ``spread`` where
larger), in metric units.
"""

from __future__ import annotations

import math

import numpy as np

from hpoq.predict import make_predictor, predictor_class
from hpoq.registry import takes
from hpoq.seeding import derive_rng


def grid_size(count: int, min_train: int, growth: float) -> int:
    """The largest ``round(min_train * growth**j)`` <= ``count`` (0 below ``min_train``)."""
    if count < min_train:
        return 0
    size, j = min_train, 0
    while True:
        nxt = int(round(min_train * growth ** (j + 1)))
        if nxt > count:
            return size
        size, j = max(nxt, size + 1), j + 1


def stack_with_last(oof: np.ndarray, last: np.ndarray, y: np.ndarray, top: float = 0.25) -> tuple[np.ndarray, float]:
    """Weights ``(c, a, b)`` of the forecast ``c + a * prediction + b * last`` and its RMSE on ``y``.

    ``oof``: the predictor's out-of-fold predictions; ``last``: the value observed at the prefix's
    last epoch, the quantity successive halving ranks by. Two least-squares fits are compared,
    ``y ~ c + a * oof + b * last`` (stacking, Wolpert 1992) and ``y ~ c + b * last``; the stacked one
    is kept only where the ``top`` fraction it ranks best has a lower mean ``y`` than the fraction
    the observed value ranks best: the predictor is used where it selects better, not merely where
    it fits outliers (collapsed runs) better, and never ranks worse than the observed value."""
    ok = np.isfinite(oof) & np.isfinite(last) & np.isfinite(y)
    if ok.sum() < 4:
        return np.array([0.0, 0.0, 1.0]), math.inf
    oof, last, y = oof[ok], last[ok], y[ok]
    ones = np.ones_like(y)
    stacked = np.column_stack([ones, oof, last])
    coef_s = np.linalg.lstsq(stacked, y, rcond=None)[0]
    coef_l = np.linalg.lstsq(np.column_stack([ones, last]), y, rcond=None)[0]
    coef_l = np.array([coef_l[0], 0.0, coef_l[1]])
    k = max(2, int(round(top * y.size)))

    def top_mean(coef):
        return float(np.mean(y[np.argsort(stacked @ coef, kind="stable")[:k]]))

    coef = coef_s if top_mean(coef_s) < top_mean(coef_l) else coef_l
    return coef, float(np.sqrt(np.mean((stacked @ coef - y) ** 2)))


def stacked_forecast(coef: np.ndarray, prediction: np.ndarray, last: np.ndarray) -> np.ndarray:
    """The forecast ``c + a * prediction + b * last`` of :func:`stack_with_last`'s weights ``coef``."""
    return coef[0] + coef[1] * prediction + coef[2] * last


class FinalValuePredictor:
    """Forecasts for ``default``'s rungs (see the module docstring).

    ``name``/``params``: a registry predictor (:func:`hpoq.predict.make_predictor`); ``store``: a
    :class:`~hpoq.curves.table.CurveTable` of earlier studies or None; ``min_train``: curves needed
    before a model is fitted; ``growth``: the refit grid's factor; ``folds``: cross-validation
    folds of the uncertainty; ``max_store``: at most this many store curves (a seeded subset).
    """

    def __init__(
        self,
        name: str,
        params: dict,
        *,
        seed: int,
        R: int,
        store=None,
        min_train: int = 12,
        growth: float = 1.5,
        folds: int = 3,
        max_store: int = 200,
        stack: bool = True,
    ):
        self.name, self.params, self.seed, self.R = name, dict(params), int(seed), int(R)
        self.stack = bool(stack)
        self.min_train, self.growth = int(min_train), float(growth)
        self.folds, self.max_store = int(folds), int(max_store)
        if takes(predictor_class(name), "horizon"):  # an extrapolating predictor forecasts epoch R
            self.params.setdefault("horizon", self.R)
        make_predictor(name, **self.params)  # fail early on an unknown predictor or parameter
        configs, curves = [], np.zeros((0, self.R))
        if store is not None:
            full = np.asarray(store.minimized(), dtype=float)[:, : self.R]
            keep = np.flatnonzero(np.isfinite(full).all(axis=1)) if full.shape[1] == self.R else np.zeros(0, int)
            if keep.size > self.max_store:  # a seeded subset keeps every fit well under a second
                rng = derive_rng(self.seed, "final-predictor-store")
                keep = np.sort(rng.choice(keep, self.max_store, replace=False))
            configs, curves = [dict(store.configs[i]) for i in keep], full[keep]
        else:
            keep = np.zeros(0, int)
        self.store_configs, self.store_curves = configs, curves
        self.store_rows = [int(i) for i in keep]  # rows of ``store`` in the training sets, in order
        self.models: dict = {}  # (e, T, N) -> (model, stacking weights, cv error)
        self.fits = 0
        self.executor = None  # a concurrent.futures executor for background fits (the MPI master sets one)
        self.futures: dict = {}  # (e, T, N) -> Future of a background fit
        self.started: list = []  # (e, T, N) of the background fits, in the order they were started
        self.background_fits = 0  # models taken from a background fit (not in describe(): timing-free state)

    @property
    def store_size(self) -> int:
        return len(self.store_configs)

    def target(self, e: int, horizons, counts) -> tuple[int, int] | None:
        """(T, N): the target epoch and training-set size for prefixes of ``e`` epochs, or None.

        ``horizons``: candidate target epochs above ``e``, the last one R; ``counts[T]``: study
        trials that reached ``T`` (and may be used: see ``fit_lag`` in ``default``)."""
        for T in sorted((h for h in horizons if h > e), reverse=True):
            extra = self.store_size if T == self.R else 0
            # capped: a fit costs the same however many curves a long study has finished
            N = grid_size(min(extra + counts.get(T, 0), 2 * self.max_store), self.min_train, self.growth)
            if N:
                return T, N
        return None

    def _training_set(self, e: int, T: int, N: int, study):
        """Prefixes [N, e], targets [N] and configs: store first (only for T = R), then the study."""
        configs, X, y = [], [], []
        if T == self.R:
            configs += self.store_configs[:N]
            X += list(self.store_curves[:N, :e])
            y += list(self.store_curves[:N, T - 1])
        for config, curve in study[: N - len(configs)]:
            configs.append(config)
            X.append(np.asarray(curve[:e], dtype=float))
            y.append(float(curve[T - 1]))
        return configs, np.asarray(X, dtype=float), np.asarray(y, dtype=float)

    def _compute(self, e: int, T: int, N: int, configs, X, y):
        """(model, stacking weights, cv error, fits, out-of-fold stacked forecasts of the N training rows):
        a pure function of its arguments, safe in a thread."""
        folds = derive_rng(self.seed, "final-predictor-folds", e, T, N).permutation(N) % min(self.folds, N)
        oof = np.empty(N)
        for f in range(min(self.folds, N)):
            train, test = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            model = make_predictor(self.name, **self.params).fit([configs[i] for i in train], X[train], y[train])
            oof[test] = np.asarray(model.predict([configs[i] for i in test], X[test]).mean)
        if self.stack:
            coef, cv_error = stack_with_last(oof, X[:, -1], y)
        else:  # the predictor's own forecast (a ranking needs no calibration on the last value)
            coef, cv_error = np.array([0.0, 1.0, 0.0]), float(np.sqrt(np.mean((oof - y) ** 2)))
        model = make_predictor(self.name, **self.params).fit(configs, X, y)
        return model, coef, cv_error, 1 + min(self.folds, N), stacked_forecast(coef, oof, X[:, -1])

    def _fit(self, e: int, T: int, N: int, study):
        key = (e, T, N)
        if key not in self.models:
            future = self.futures.pop(key, None)
            self.background_fits += future is not None
            # fitted in the background since its data arrived (prefetch), else here; the same model either way
            if future is not None:
                entry = future.result()
            else:
                entry = self._compute(e, T, N, *self._training_set(e, T, N, study))
            self.fits += entry[3]  # counted when used, so the count does not depend on background timing
            self.models[key] = entry[:3] + entry[4:]  # (model, stacking weights, cv error, out-of-fold)
        return self.models[key]

    def out_of_fold(self, e: int, T: int, N: int, study) -> np.ndarray:
        """Stacked out-of-fold forecasts of model ``(e, T, N)``'s training rows: the store's first ones
        (:attr:`store_rows`), then the study's, in the order of :meth:`_training_set`."""
        return self._fit(e, T, N, study)[3]

    def prefetch(self, e: int, T: int, N: int, study) -> bool:
        """Start fitting model ``(e, T, N)`` on :attr:`executor` (the runtime's fit thread) if it is
        neither fitted nor under way; the training set is copied now. True when a fit was started."""
        key = (e, T, N)
        if self.executor is None or key in self.models or key in self.futures:
            return False
        self.futures[key] = self.executor.submit(self._compute, e, T, N, *self._training_set(e, T, N, study))
        self.started.append(key)
        return True

    def forecast(self, e: int, T: int, N: int, study, configs, prefixes) -> tuple[np.ndarray, np.ndarray]:
        """(means [m], uncertainties [m]) of the value at ``T`` for ``m`` prefixes of ``e`` epochs.

        ``study``: (config, curve) of the study trials that reached ``T``, in arrival order (the
        first ``N - |store part|`` are used)."""
        model, coef, cv_error = self._fit(e, T, N, study)[:3]
        prefixes = np.asarray(prefixes, dtype=float).reshape(len(configs), e)
        pred = model.predict(list(configs), prefixes)
        mean = stacked_forecast(coef, np.asarray(pred.mean, dtype=float).ravel(), prefixes[:, -1])
        spread = np.zeros_like(mean) if pred.spread is None else np.asarray(pred.spread, dtype=float).ravel()
        sigma = np.maximum(cv_error, np.where(np.isfinite(spread), spread, math.inf))
        return mean, sigma

    def describe(self) -> dict:
        return {
            "name": self.name,
            "params": self.params,
            "store_curves": self.store_size,
            "max_store": self.max_store,
            "min_train": self.min_train,
            "growth": self.growth,
            "folds": self.folds,
            "fits": self.fits,
        }
