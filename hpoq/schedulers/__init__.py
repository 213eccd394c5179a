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

from hpoq.errors import ConfigError
from hpoq.registry import build, import_class, parameter_names

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
        raise ConfigError(f"unknown algorithm {name!r}; available: {', '.join(available_schedulers())}")
    return import_class("algorithm", name, SCHEDULERS[name])


def scheduler_parameters(name: str) -> list[str]:
    """The algorithm's own parameter names (those ``--param key=value`` may set)."""
    return [p for p in parameter_names(scheduler_class(name)) or [] if p not in COMMON_ARGS + PREDICTOR_ARGS]


def with_worker_defaults(name: str, params: dict | None, workers: int) -> dict:
    """``params`` plus the algorithm's :meth:`~hpoq.schedulers.base.Scheduler.worker_defaults` for
    ``workers`` parallel workers, where ``params`` does not set them."""
    return {**scheduler_class(name).worker_defaults(int(workers)), **(params or {})}


def with_runtime_defaults(name: str, params: dict | None, workers: int) -> dict:
    """:func:`with_worker_defaults` plus the algorithm's :meth:`~hpoq.schedulers.base.Scheduler.runtime_defaults`
    (what the MPI runtime sets where ``params`` does not)."""
    return {**scheduler_class(name).runtime_defaults(), **with_worker_defaults(name, params, workers)}


def make_scheduler(
    name: str,
    *,
    R: int,
    eta: int,
    sampler,
    seed: int,
    predictor: str | None = None,
    predictor_params: dict | None = None,
    warm_curves=None,
    **params,
):
    """Build algorithm ``name``, its ``params`` checked against its ``parameter_constraints``.

    Raises :class:`ConfigError` for an unknown algorithm or parameter (named ``algorithm.params.KEY``),
    R < 1 or eta < 2 (``algorithm.R``, ``algorithm.eta``). ``predictor``/``predictor_params``/
    ``warm_curves`` go to schedulers that take them.
    """
    from hpoq.schedulers.sampling import dedupes

    if dedupes(sampler) and not getattr(scheduler_class(name), "supports_dedupe", False):
        raise ConfigError(f"algorithm {name!r} does not support dedupe (skipping repeated configurations)")
    context = {"R": R, "eta": eta, "sampler": sampler, "seed": seed}
    context.update(
        {
            k: v
            for k, v in (("predictor", predictor), ("predictor_params", predictor_params), ("warm_curves", warm_curves))
            if v is not None
        }
    )
    return build("scheduler", name, params, path="algorithm.params", context=context, what=f"algorithm {name!r}")


__all__ = [
    "SCHEDULERS",
    "available_schedulers",
    "make_scheduler",
    "scheduler_class",
    "scheduler_parameters",
    "with_runtime_defaults",
    "with_worker_defaults",
]
