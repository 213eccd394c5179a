"""Scheduler registry: name -> ``"module:Class"``, imported lazily (names used by study files and
``simulate --algorithm``).

Every scheduler class takes keyword arguments ``R`` (maximum epochs per configuration), ``eta``
(discard rate), ``sampler`` (a :class:`~hpoq.schedulers.base.ConfigSampler`) and ``seed``
(master seed), plus its own parameters. Predictor-driven schedulers also take ``predictor`` (a
name in :data:`hpoq.predict.PREDICTORS`), ``predictor_params`` and ``warm_curves`` (a
:class:`~hpoq.curves.table.CurveTable` of an earlier study, or None); schedulers that use no
predictor ignore those three.
"""
from __future__ import annotations

import inspect

from hpoq.errors import HpoqError
from hpoq.registry import import_class

#: registry name -> "module:Class"
SCHEDULERS: dict[str, str] = {
    "hyperband": "hpoq.schedulers.hyperband:Hyperband",
    "swift": "hpoq.schedulers.swift:SwiftHyperband",
    "asha": "hpoq.schedulers.asha:ASHA",
    "random": "hpoq.schedulers.random_search:RandomSearch",
    "topk-1epoch": "hpoq.schedulers.topk:TopK1Epoch",
    "default": "hpoq.schedulers.default:DefaultScheduler",
}

#: keyword arguments every scheduler gets from :func:`make_scheduler` (not "parameters")
COMMON_ARGS = ("R", "eta", "sampler", "seed")
PREDICTOR_ARGS = ("predictor", "predictor_params", "warm_curves")


def available_schedulers() -> list[str]:
    """Registered algorithm names, sorted."""
    return sorted(SCHEDULERS)


def scheduler_class(name: str):
    """The class registered under ``name`` (imported on first use)."""
    if name not in SCHEDULERS:
        raise HpoqError(f"unknown algorithm {name!r}; available: {', '.join(available_schedulers())}")
    return import_class("algorithm", name, SCHEDULERS[name])

def scheduler_parameters(name: str) -> list[str]:
    """The algorithm's own parameter names (those ``--param key=value`` may set)."""
    sig = inspect.signature(scheduler_class(name).__init__)
    return [p for p in sig.parameters if p not in ("self",) + COMMON_ARGS + PREDICTOR_ARGS
            and sig.parameters[p].kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]


def make_scheduler(name: str, *, R: int, eta: int, sampler, seed: int, predictor: str | None = None,
                   predictor_params: dict | None = None, warm_curves=None, **params):
    """Build algorithm ``name``.

    Raises :class:`HpoqError` for an unknown algorithm or parameter, R < 1 or eta < 2.
    ``predictor``/``predictor_params``/``warm_curves`` go to schedulers that accept them.
    """
    from hpoq.schedulers.brackets import check_r_eta

    R, eta = check_r_eta(R, eta)
    cls = scheduler_class(name)
    sig = inspect.signature(cls.__init__)
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    if not accepts_any:
        allowed = scheduler_parameters(name)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise HpoqError(f"algorithm {name!r} has no parameter {unknown[0]!r}; parameters: {', '.join(allowed) or 'none'}")
    from hpoq.schedulers.sampling import dedupes

    if dedupes(sampler) and not getattr(cls, "supports_dedupe", False):
        raise HpoqError(f"algorithm {name!r} does not support dedupe (skipping repeated configurations)")
    kwargs = dict(params, R=R, eta=eta, sampler=sampler, seed=int(seed))
    for key, value in (("predictor", predictor), ("predictor_params", predictor_params), ("warm_curves", warm_curves)):
        if key in sig.parameters or accepts_any:
            if value is not None:
                kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise HpoqError(f"algorithm {name!r}: bad parameters ({exc})") from None


__all__ = ["SCHEDULERS", "available_schedulers", "make_scheduler", "scheduler_class", "scheduler_parameters"]
