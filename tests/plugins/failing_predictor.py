"""A user-style predictor plugin whose fit always fails (a singular system, a lost solver, ...)."""

from hpoq.predict.base import Predictor


class FailingPredictor(Predictor):
    name = "failing"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, configs, prefixes, targets):
        raise RuntimeError("the solver lost its licence")

    def predict(self, configs, prefixes):  # pragma: no cover - never fitted
        raise RuntimeError("not fitted")


class BuggyPredictor(FailingPredictor):
    """A predictor that breaks an internal contract (a bug, not a numerical failure)."""

    name = "buggy"

    def fit(self, configs, prefixes, targets):
        from hpoq.errors import InternalError

        raise InternalError("buggy: prefixes and targets disagree")
