"""The predictor seam: every scheduler talks to predictors through this interface only.

A predictor regresses a target value (the metric at a later epoch, lower = better as the
schedulers pass it) from a curve prefix and, optionally, the configuration's hyperparameters.
It never sees the config sampler, the scheduler or the MPI layer (docs/predictors.md#interface).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from hpoq.errors import InternalError
from hpoq.registry import Interval


class NotFittedError(SklearnNotFittedError, InternalError):
    """``predict`` (or a transform) called before ``fit``: a caller's bug, raised by every predictor.

    A subclass of scikit-learn's ``NotFittedError`` (so ``except`` clauses written for scikit-learn
    estimators catch it) and of :class:`hpoq.errors.InternalError` (a traceback, exit code 1).
    """


def check_fitted(fitted: bool, what: str) -> None:
    """Raise :class:`NotFittedError` naming ``what`` unless ``fitted``."""
    if not fitted:
        raise NotFittedError(f"{what}: predict called before fit")


@dataclass
class Prediction:
    """Predicted targets: ``mean`` (m,) and, where the predictor has one, a ``spread`` (m,)
    (ensemble standard deviation or cross-validated residual scale, in target units)."""

    mean: np.ndarray
    spread: np.ndarray | None = None
    info: dict = field(default_factory=dict)


class Predictor(ABC):
    """fit / predict on (hyperparameter dicts or None, curve prefixes [n, e], targets [n])."""

    #: registry name, e.g. "svr", "qsvr", "default"
    name: str = ""
    #: what every predictor takes (hpoq.registry); subclasses add their own parameters
    parameter_constraints = {"seed": [Interval(int, 0, None)]}

    @abstractmethod
    def fit(self, configs: Sequence[dict] | None, prefixes: np.ndarray, targets: np.ndarray) -> "Predictor":
        """Train on ``n`` curves: ``prefixes`` float [n, e] (values after epochs 1..e) and ``targets`` [n]."""

    @abstractmethod
    def predict(self, configs: Sequence[dict] | None, prefixes: np.ndarray) -> Prediction:
        """Predict targets for ``m`` prefixes of the same length ``e`` as in :meth:`fit`."""

    def describe(self) -> dict:
        """Settings and fit facts worth logging (sampler used, fallbacks, fit seconds)."""
        return {"name": self.name}
