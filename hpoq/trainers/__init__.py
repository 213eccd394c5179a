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

from hpoq.errors import ConfigError
from hpoq.registry import build, check, import_class, parameter_names
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
        raise ConfigError(f"trainer name must be a non-empty string, got {name!r}")
    if name in TRAINERS:
        target = TRAINERS[name]
    elif ":" in name:
        target = name
    else:
        raise ConfigError(
            f"unknown trainer {name!r}; available: {', '.join(available_trainers())}, or package.module:Class"
        )
    cls = import_class("trainer", name, target)
    if not (isinstance(cls, type) and issubclass(cls, Trainer)):
        raise ConfigError(f"trainer {name!r}: {target} is not a subclass of hpoq.trainers.base.Trainer")
    return cls


def trainer_parameters(name: str) -> list[str] | None:
    """Parameter names the trainer takes, or None when it takes ``**params``."""
    return parameter_names(trainer_class(name))


def check_trainer_params(name: str, params: dict, path: str = "trainer.params") -> None:
    """Raise ConfigError naming ``path.key`` for a parameter the trainer does not take or a bad value."""
    check(trainer_class(name), params, path, f"trainer {name!r}")


def make_trainer(name: str, params: dict | None = None) -> Trainer:
    """Build trainer ``name`` from its ``params`` (the study file's ``trainer.params``), checked first."""
    return build("trainer", name, params, path="trainer.params", what=f"trainer {name!r}")


__all__ = [
    "TRAINERS",
    "Trainer",
    "TrainerError",
    "available_trainers",
    "check_trainer_params",
    "make_trainer",
    "trainer_class",
    "trainer_parameters",
]
