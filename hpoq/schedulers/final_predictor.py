"""A regressor of the final value (epoch R) from a curve prefix, warm-started from the curve store.

Training data D = the warm store's curves (earlier studies) plus the curves of the running study
that reached R; one model per prefix length, refit when D has grown since its last fit (method.md
3.3 ``refit="on_growth"``). The error used as a pruning margin is the root mean square of 5-fold
cross-validated residuals on D (or the predictor's own ``spread`` where it is larger), in metric
units, so "cannot beat the best final value" is judged against what the predictor really achieves.
"""
from __future__ import annotations

import numpy as np

from hpoq.predict import make_predictor
from hpoq.seeding import derive_rng


class FinalValuePredictor:
    """Predict the minimised value at epoch ``R`` from ``prefix`` (values of epochs 1..e) and a config.

    ``name``/``params``: a registry predictor (``hpoq.predict.make_predictor``); ``store``: a
    :class:`~hpoq.curves.table.CurveTable` of earlier studies or None; ``min_train``: curves needed
    before any prediction is made; ``max_store``: at most this many store curves (a seeded subset)
    are used, so that a fit stays well under a second.
    """

    def __init__(self, name: str, params: dict, *, seed: int, R: int, store=None, min_train: int = 8, folds: int = 5,
                 max_store: int = 200):
        self.name, self.params, self.seed, self.R = name, dict(params), int(seed), int(R)
        self.max_store = int(max_store)
        self.min_train, self.folds = int(min_train), int(folds)
        make_predictor(name, **self.params)  # fail early on an unknown predictor or parameter
        if store is not None:
            self.store_configs = [dict(c) for c in store.configs]
            self.store_curves = np.asarray(store.minimized()[:, :R], dtype=float)
        else:
            self.store_configs, self.store_curves = [], np.zeros((0, R))
        self.study: list[tuple[dict, list]] = []
        self.models: dict[int, tuple[int, object, float]] = {}   # e -> (|D| at fit, model, cv error)
        self.fits = 0

    def add_study_curves(self, items) -> None:
        """Replace the study part of D by ``items``: (config, curve of length >= R) pairs."""
        self.study = [(dict(c), list(curve[: self.R])) for c, curve in items]

    def _data(self):
        keep = np.flatnonzero(np.isfinite(self.store_curves).all(axis=1))
        if keep.size > self.max_store:  # a seeded subset keeps fits well under a second
            keep = np.sort(derive_rng(self.seed, "final-predictor-store").choice(keep, self.max_store, replace=False))
        configs = [self.store_configs[i] for i in keep]
        curves = self.store_curves[keep]
        study = [(c, curve) for c, curve in self.study if np.isfinite(curve).all()]
        if study:
            configs += [c for c, _ in study]
            curves = np.vstack([curves, np.asarray([curve for _, curve in study], dtype=float)])
        return configs, curves

    def _fit(self, e: int):
        configs, curves = self._data()
        n = len(configs)
        if n < self.min_train:
            return None
        cached = self.models.get(e)
        if cached is not None and cached[0] == n:
            return cached
        X, y = curves[:, :e], curves[:, self.R - 1]
        folds = derive_rng(self.seed, "final-predictor-folds", e, n).permutation(n) % min(self.folds, n)
        residuals = np.empty(n)
        for f in np.unique(folds):
            train, test = folds != f, folds == f
            model = make_predictor(self.name, **self.params).fit([configs[i] for i in np.flatnonzero(train)], X[train], y[train])
            residuals[test] = model.predict([configs[i] for i in np.flatnonzero(test)], X[test]).mean - y[test]
        model = make_predictor(self.name, **self.params).fit(configs, X, y)
        self.fits += 1 + len(np.unique(folds))
        entry = (n, model, float(np.sqrt(np.mean(residuals ** 2))))
        self.models[e] = entry
        return entry

    def predict(self, config: dict, prefix) -> tuple[float, float, int] | None:
        """(predicted final, error, |D|) or None while D is smaller than ``min_train``."""
        prefix = np.asarray(prefix, dtype=float)
        if prefix.ndim != 1 or prefix.size < 1 or not np.isfinite(prefix).all():
            return None
        fitted = self._fit(prefix.size)
        if fitted is None:
            return None
        n, model, cv_error = fitted
        pred = model.predict([config], prefix[None, :])
        spread = 0.0 if pred.spread is None else float(np.asarray(pred.spread).ravel()[0])
        return float(np.asarray(pred.mean).ravel()[0]), max(cv_error, spread), n

    def describe(self) -> dict:
        return {"name": self.name, "params": self.params, "store_curves": int(self.store_curves.shape[0]),
                "max_store": self.max_store,
                "study_curves": len(self.study), "min_train": self.min_train, "folds": self.folds, "fits": self.fits}
