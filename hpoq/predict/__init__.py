"""Predictor registry: name -> ``"module:Class"``, imported lazily (docs/predictors.md).

``make_predictor("svr", seed=0)`` builds a :class:`~hpoq.predict.base.Predictor` from keyword
parameters; an unknown predictor name or an unknown parameter raises :class:`ConfigError`.
Heavy dependencies (dimod, dwave) are only imported when their predictor is built.
"""

from __future__ import annotations

from hpoq.errors import ConfigError
from hpoq.registry import build, import_class

#: registry name -> "module:Class"
PREDICTORS: dict[str, str] = {
    "svr": "hpoq.predict.svr:SVRPredictor",
    "qsvr": "hpoq.predict.qsvr:QSVRPredictor",
    "qsvr-paper": "hpoq.predict.qsvr:QSVRPaperPredictor",
    "default": "hpoq.predict.default:DefaultPredictor",
    # baselines (docs/predictors.md#baselines): what a predictor must rank better than
    "last-value": "hpoq.predict.baselines:LastValuePredictor",
    "power-law": "hpoq.predict.baselines:PowerLawPredictor",
}


def available_predictors() -> list[str]:
    """Registered predictor names, sorted."""
    return sorted(PREDICTORS)


def predictor_class(name: str):
    """The class registered under ``name`` (imported on first use)."""
    if name not in PREDICTORS:
        raise ConfigError(f"unknown predictor {name!r}; available: {', '.join(available_predictors())}")
    return import_class("predictor", name, PREDICTORS[name])


def make_predictor(name: str, *, path: str = "predictor.params", **params):
    """Build predictor ``name`` with keyword ``params`` (e.g. ``seed=0``), checked against its
    ``parameter_constraints`` (:func:`hpoq.registry.build`).

    Raises :class:`ConfigError` naming an unknown predictor or an unknown/invalid parameter (at ``path``).
    """
    return build("predictor", name, params, path=path, what=f"predictor {name!r}")
