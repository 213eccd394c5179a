"""Feature sets and scalers for learning-curve predictors.

docs/predictors.md#features and docs/predictors.md#targets-and-scaling.

Feature sets, by name (``FEATURE_SETS``), for a prefix ``v_1..v_e`` of each curve:

- ``curve``: the prefix itself (e features);
- ``baker``: encoded hyperparameters, the prefix, its first differences (e-1) and second
  differences (e-2), as in Baker et al. 2017 [B17] and the predictor study [P1]: 79 features
  on MLPF at 25% known (7 + 25 + 24 + 23);
- ``stride2``: every second epoch v_1, v_3, ... (13 features at e = 25), the QSVR study's set.

Hyperparameters are encoded by :class:`HPEncoder` (numeric -> float, log10 where a positive
range spans two decades or more, strings -> one-hot). Scalers (``SCALERS``): ``minmax``
(MinMaxScaler on X and y; ``curve`` and ``baker``), ``quantile`` (QuantileTransformer with 50
quantiles, uniform output; ``stride2`` with QSVR) and ``none``; they are fitted on the
predictor's own training set.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from hpoq.errors import ConfigError
from hpoq.predict.base import NotFittedError


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class HPEncoder:
    """Encode hyperparameter dicts as a float matrix.

    - keys starting with ``"_"`` (e.g. ``_row``, ``_trial``) are bookkeeping and ignored;
    - a column whose values are all numbers becomes one float feature, ``log10`` of it when
      ``log_scale`` is on, every value is > 0 and max/min >= ``log_ratio`` (default 100);
      booleans count as categories;
    - any other column is one-hot over the categories seen in :meth:`fit` (sorted by their
      string form); an unseen category encodes as all zeros;
    - a missing key or ``None`` value encodes as the training mean (numeric) / all zeros (one-hot);
    - ``configs=None`` (no hyperparameters) gives zero features.
    """

    def __init__(self, log_scale: bool = True, log_ratio: float = 100.0):
        self.log_scale = bool(log_scale)
        self.log_ratio = float(log_ratio)
        self.columns: list[tuple] = []  # (key, "num", log, fill) | (key, "cat", categories)
        self.fitted = False

    def fit(self, configs: Sequence[dict] | None) -> "HPEncoder":
        self.columns = []
        self.fitted = True
        if not configs:
            return self
        keys: list[str] = []
        for cfg in configs:
            if cfg is None:
                continue
            for key in cfg:
                if not str(key).startswith("_") and key not in keys:
                    keys.append(key)
        for key in keys:
            values = [cfg.get(key) for cfg in configs if cfg is not None and cfg.get(key) is not None]
            # a missing value (None / NaN) does not turn a numeric column into a categorical one
            values = [v for v in values if not (_is_number(v) and math.isnan(float(v)))]
            if values and all(_is_number(v) and math.isfinite(float(v)) for v in values):
                arr = np.asarray(values, dtype=float)
                log = bool(self.log_scale and arr.min() > 0 and arr.max() / arr.min() >= self.log_ratio)
                enc = np.log10(arr) if log else arr
                self.columns.append((key, "num", log, float(enc.mean())))
            else:
                cats = sorted({str(v) for v in values})
                self.columns.append((key, "cat", cats))
        return self

    @property
    def n_features(self) -> int:
        return sum(1 if col[1] == "num" else len(col[2]) for col in self.columns)

    @property
    def feature_names(self) -> list[str]:
        names = []
        for col in self.columns:
            if col[1] == "num":
                names.append(f"log10({col[0]})" if col[2] else str(col[0]))
            else:
                names.extend(f"{col[0]}={c}" for c in col[2])
        return names

    def transform(self, configs: Sequence[dict] | None, n: int | None = None) -> np.ndarray:
        """Encode ``configs`` (or ``n`` rows of defaults when ``configs`` is None) as float [n, d]."""
        if not self.fitted:
            raise NotFittedError("HPEncoder.transform called before fit")
        if configs is None:
            if n is None:
                raise ValueError("HPEncoder.transform needs configs or n")
            configs = [None] * n
        out = np.zeros((len(configs), self.n_features), dtype=float)
        for r, cfg in enumerate(configs):
            cfg = cfg or {}
            j = 0
            for col in self.columns:
                value = cfg.get(col[0])
                if col[1] == "num":
                    _, _, log, fill = col
                    if value is None or not _is_number(value) or not math.isfinite(float(value)):
                        out[r, j] = fill
                    elif log:
                        out[r, j] = math.log10(value) if value > 0 else fill
                    else:
                        out[r, j] = float(value)
                    j += 1
                else:
                    cats = col[2]
                    if value is not None and str(value) in cats:
                        out[r, j + cats.index(str(value))] = 1.0
                    j += len(cats)
        return out

    def fit_transform(self, configs: Sequence[dict] | None, n: int | None = None) -> np.ndarray:
        return self.fit(configs).transform(configs, n)


def _check_prefixes(prefixes) -> np.ndarray:
    x = np.asarray(prefixes, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"curve prefixes must be a 2-d array [n, e >= 1], got shape {x.shape}")
    return x


def curve_features(configs, prefixes, encoder):
    """``curve``: the prefix v_1..v_e."""
    return _check_prefixes(prefixes)


def baker_features(configs, prefixes, encoder):
    """``baker``: hyperparameters ⊕ prefix ⊕ first differences ⊕ second differences [B17]."""
    x = _check_prefixes(prefixes)
    hp = encoder.transform(configs, len(x)) if encoder is not None else np.zeros((len(x), 0))
    return np.hstack([hp, x, np.diff(x, n=1, axis=1), np.diff(x, n=2, axis=1)])


def stride2_features(configs, prefixes, encoder):
    """``stride2``: v_1, v_3, ... (every second epoch of the prefix; the QSVR study)."""
    return _check_prefixes(prefixes)[:, ::2]


#: feature-set name -> builder(configs, prefixes, encoder) -> float [n, d]
FEATURE_SETS: dict[str, Callable] = {
    "curve": curve_features,
    "baker": baker_features,
    "stride2": stride2_features,
}

#: feature sets that use the hyperparameters
USES_HPS = {"baker"}


def build_features(kind: str, configs: Sequence[dict] | None, prefixes, encoder: HPEncoder | None) -> np.ndarray:
    """Feature matrix of set ``kind`` for ``prefixes`` [n, e] (and ``configs`` where the set uses them)."""
    try:
        builder = FEATURE_SETS[kind]
    except KeyError:
        raise ConfigError(f"unknown feature set {kind!r}; available: {', '.join(sorted(FEATURE_SETS))}") from None
    return builder(configs, prefixes, encoder)


def n_features(kind: str, n_epochs: int, encoder: HPEncoder | None = None) -> int:
    """Number of features of set ``kind`` for a prefix of ``n_epochs`` epochs."""
    e = int(n_epochs)
    if kind == "curve":
        return e
    if kind == "stride2":
        return (e + 1) // 2
    if kind == "baker":
        hp = encoder.n_features if encoder is not None else 0
        return hp + e + max(e - 1, 0) + max(e - 2, 0)
    raise ConfigError(f"unknown feature set {kind!r}; available: {', '.join(sorted(FEATURE_SETS))}")


class XYScaler:
    """Scale a feature matrix and a target vector with the same method (docs/predictors.md#targets-and-scaling).

    ``method``: ``minmax`` (MinMaxScaler to [0, 1] on X and on y), ``quantile``
    (QuantileTransformer(n_quantiles=min(50, n)), uniform output, on X and on y), ``none``.
    Predictions are mapped back with :meth:`inverse_y`.
    """

    def __init__(self, method: str = "minmax", n_quantiles: int = 50):
        if method not in SCALERS:
            raise ConfigError(f"unknown scaler {method!r}; available: {', '.join(SCALERS)}")
        self.method = method
        self.n_quantiles = int(n_quantiles)
        self.x_scaler = None
        self.y_scaler = None

    def _make(self, n: int):
        if self.method == "minmax":
            from sklearn.preprocessing import MinMaxScaler

            return MinMaxScaler()
        if self.method == "quantile":
            from sklearn.preprocessing import QuantileTransformer

            return QuantileTransformer(n_quantiles=max(1, min(self.n_quantiles, n)), output_distribution="uniform")
        return None

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "XYScaler":
        X = np.asarray(X, dtype=float)
        self.x_scaler = self._make(len(X))
        if self.x_scaler is not None:
            self.x_scaler.fit(X)
        if y is not None:
            self.y_scaler = self._make(len(y))
            if self.y_scaler is not None:
                self.y_scaler.fit(np.asarray(y, dtype=float).reshape(-1, 1))
        return self

    def transform_X(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        return X if self.x_scaler is None else self.x_scaler.transform(X)

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        return y if self.y_scaler is None else self.y_scaler.transform(y.reshape(-1, 1)).ravel()

    def inverse_y(self, y_scaled: np.ndarray) -> np.ndarray:
        y_scaled = np.asarray(y_scaled, dtype=float)
        return y_scaled if self.y_scaler is None else self.y_scaler.inverse_transform(y_scaled.reshape(-1, 1)).ravel()


SCALERS = ("minmax", "quantile", "none")

__all__ = ["HPEncoder", "FEATURE_SETS", "SCALERS", "XYScaler", "build_features", "n_features"]
