"""Trainer registry: name -> ``"module:Class"`` (imported lazily), or a ``package.module:Class`` path.

Built in:

* ``table`` -- :class:`hpoq.trainers.table.TableTrainer` replays a curve table (tests, demos,
  scheduler benchmarks);
* ``mlpf`` -- ``hpoq.trainers.mlpf:MLPFTrainer`` trains the MLPF model data-parallel over the
  trial group's communicator (imports torch only when built).

A user plugin is named by its import path, e.g. ``trainer: {name: "mypkg.train:MyTrainer"}``; the
class must subclass :class:`hpoq.trainers.base.Trainer`.
"""
from __future__ import annotations

import inspect

from hpoq.errors import HpoqError
from hpoq.registry import import_class
from hpoq.trainers.base import Trainer, TrainerError

#: registry name -> "module:Class"
TRAINERS: dict[str, str] = {
    "table": "hpoq.trainers.table:TableTrainer",
    "mlpf": "hpoq.trainers.mlpf:MLPFTrainer",
}


def available_trainers() -> list[str]:
    """Registered trainer names, sorted."""
    return sorted(TRAINERS)


def trainer_class(name: str) -> type[Trainer]:
    """The class registered under ``name``, or imported from ``package.module:Class``."""
    if not isinstance(name, str) or not name:
        raise HpoqError(f"trainer name must be a non-empty string, got {name!r}")
    if name in TRAINERS:
        target = TRAINERS[name]
    elif ":" in name:
        target = name
    else:
        raise HpoqError(f"unknown trainer {name!r}; available: {', '.join(available_trainers())}, or package.module:Class")
    cls = import_class("trainer", name, target)
    if not (inspect.isclass(cls) and issubclass(cls, Trainer)):
        raise HpoqError(f"trainer {name!r}: {target} is not a subclass of hpoq.trainers.base.Trainer")
    return cls


def trainer_parameters(name: str) -> list[str] | None:
    """Parameter names the trainer's constructor accepts, or None when it takes ``**params``."""
    cls = trainer_class(name)
    sig = inspect.signature(cls.__init__)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return [p for p in sig.parameters if p != "self"]


def check_trainer_params(name: str, params: dict, path: str = "trainer.params") -> None:
    """Raise HpoqError naming ``path.key`` for a parameter the trainer does not take."""
    allowed = trainer_parameters(name)
    if allowed is None:
        return
    for key in params:
        if key not in allowed:
            raise HpoqError(f"{path}.{key}: trainer {name!r} has no such parameter (parameters: {', '.join(allowed) or 'none'})")


def make_trainer(name: str, params: dict | None = None) -> Trainer:
    """Build trainer ``name`` from its ``params`` (the study file's ``trainer.params``)."""
    params = dict(params or {})
    check_trainer_params(name, params)
    cls = trainer_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise HpoqError(f"trainer {name!r}: bad parameters ({exc})") from None


__all__ = ["TRAINERS", "Trainer", "TrainerError", "available_trainers", "check_trainer_params", "make_trainer",
           "trainer_class", "trainer_parameters"]
