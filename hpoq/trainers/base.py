"""The trainer seam: train one configuration for a range of epochs.

Trainers are plugins: a name in the registry (:mod:`hpoq.trainers`) or ``package.module:Class``.
The MPI runtime calls :meth:`Trainer.train` on every rank of a trial group (``comm`` is the
group's communicator, or None outside MPI); only the group's rank 0 result is reported.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class TrainerError(Exception):
    """A trial failed in a way the study survives (bad hyperparameters, divergence, OOM).

    The runtime marks the trial FAILED with ``str(exc)`` as the reason and goes on; ``kind``
    (``oom`` for out of memory) goes into the journal's failure record.
    """

    def __init__(self, message: str = "", kind: str | None = None):
        super().__init__(message)
        self.kind = kind


class Trainer(ABC):
    """Built from the study file's ``trainer`` section (``params``) once per rank."""

    name: str = ""

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def train(self, config: dict, start_epoch: int, end_epoch: int, checkpoint_dir: str, comm=None) -> list[float]:
        """Train ``config`` from the checkpoint at ``start_epoch`` (0 = fresh) through ``end_epoch``.

        Returns one metric value per epoch ``start_epoch + 1 .. end_epoch`` in the metric's own
        direction (see :attr:`mode`). Writes its checkpoint under ``checkpoint_dir`` so that a
        later unit can resume from ``end_epoch``; the same curve must result as training straight
        through.

        Replace checkpoint files atomically (write a temporary file, then ``os.replace``), never
        rewrite them in place: the MPI runtime keeps the checkpoint a unit starts from as hard
        links until the unit's result is journaled, and restores it when the unit is retried or
        re-run after a crash. ``checkpoint_dir`` must be on a filesystem rank 0 can see.
        """

    def wants_gpu(self) -> bool:
        """True when :meth:`train` will put its work on a CUDA device of this rank.

        The MPI runtime then gives every such worker rank of a node its own GPU before the first unit
        and makes it the current CUDA device (:mod:`hpoq.runtime.gpus`); the rank's index is
        :func:`hpoq.runtime.gpus.assigned_gpu`.
        """
        return False

    #: "min" or "max": direction of the returned metric
    mode: str = "min"
    #: name of the returned metric
    metric: str = "val_loss"
    #: constructor parameters that are file paths: a study file's relative paths for them are
    #: resolved against the study file's directory (:func:`hpoq.study.spec.check_study`)
    path_params: tuple[str, ...] = ()
