"""Predictor registry: name -> ``"module:Class"``, imported lazily (docs/predictors.md).

``make_predictor("svr", seed=0)`` builds a :class:`~hpoq.predict.base.Predictor` from keyword
parameters; an unknown predictor name or an unknown parameter raises :class:`ConfigError`.
Heavy dependencies (dimod, dwave) are only imported when their predictor is built.
"""
from __future__ import annotations

import inspect

from hpoq.errors import ConfigError
from hpoq.registry import import_class

#: registry name -> "module:Class"
PREDICTORS: dict[str, str] = {
    "svr": "hpoq.predict.svr:SVRPredictor",
    "qsvr": "hpoq.predict.qsvr:QSVRPredictor",
    "qsvr-paper": "hpoq.predict.qsvr:QSVRPaperPredictor",
    # the name of qsvr's present defaults before they became qsvr's (study files may still use it)
    "qsvr-tuned": "hpoq.predict.qsvr:QSVRPredictor",
    "default": "hpoq.predict.default:DefaultPredictor",
}


def available_predictors() -> list[str]:
    """Registered predictor names, sorted."""
    return sorted(PREDICTORS)


def predictor_class(name: str):
    """The class registered under ``name`` (imported on first use)."""
    if name not in PREDICTORS:
        raise ConfigError(f"unknown predictor {name!r}; available: {', '.join(available_predictors())}")
    return import_class("predictor", name, PREDICTORS[name])

def make_predictor(name: str, **params):
    """Build predictor ``name`` with keyword ``params`` (e.g. ``seed=0``).

    Raises :class:`ConfigError` naming an unknown predictor or an unknown/invalid parameter.
    """
    cls = predictor_class(name)
    sig = inspect.signature(cls.__init__)
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    if not accepts_any:
        allowed = [p for p in sig.parameters if p != "self"]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ConfigError(f"predictor {name!r} has no parameter {unknown[0]!r}; "
                            f"parameters: {', '.join(allowed) or 'none'}")
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"predictor {name!r}: bad parameters ({exc})") from None


__all__ = ["PREDICTORS", "available_predictors", "make_predictor", "predictor_class"]
