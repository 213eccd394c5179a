"""A user-style trainer plugin whose configurations above a threshold fail hard, for the fault tests.

It replays a curve table like the ``table`` trainer, except for configurations with
``config[param] > above``, which, by ``fault``:

* ``hang``: never return (a hung collective, a deadlocked data loader, a stuck file system);
* ``exit``: end the rank's process at once with ``os._exit(7)`` (a segfault, an OOM kill);
* ``fill``: train normally, then fill the disk of the checkpoint directory with a ballast file
  (another job's output, say) -- the *next* write on that disk (the master's journal) fails with ENOSPC.

``ballast_kb`` > 0 makes every unit also write that much checkpoint data (so a small disk fills).
"""

from __future__ import annotations

import os
import time

from hpoq.trainers.table import TableTrainer

FAULTS = ("hang", "exit", "fill")


class FaultyTableTrainer(TableTrainer):
    name = "faulty-table"

    def __init__(
        self,
        table: str,
        metric: str = "loss",
        mode: str = "min",
        sleep: float = 0.0,
        fault: str = "hang",
        param: str = "dropout",
        above: float = 1e300,
        ballast_kb: int = 0,
    ):
        super().__init__(table=table, metric=metric, mode=mode, sleep=sleep)
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
        self.fault, self.param, self.above, self.ballast_kb = fault, param, float(above), int(ballast_kb)

    def train(self, config, start_epoch, end_epoch, checkpoint_dir, comm=None):
        hit = float(config.get(self.param, float("-inf"))) > self.above
        if hit and self.fault == "hang":
            while True:  # a worker ignores SIGTERM (the master decides); only the job's end stops this
                time.sleep(3600)
        if hit and self.fault == "exit":
            os._exit(7)
        values = super().train(config, start_epoch, end_epoch, checkpoint_dir, comm)
        if hit:  # fill: this unit's checkpoint is saved, the journal record of its result is the next write
            _fill_disk(os.path.dirname(checkpoint_dir.rstrip("/")))
        if self.ballast_kb:
            with open(os.path.join(checkpoint_dir, "ballast.bin"), "wb") as fh:
                fh.write(b"\0" * (self.ballast_kb * 1024))
        return values


def _fill_disk(directory: str) -> None:
    """Write ``directory/../filler.bin`` until the file system is full (the error is swallowed)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(os.path.dirname(os.path.abspath(directory)), "filler.bin")
    block = b"\0" * 65536
    try:
        with open(path, "ab") as fh:
            while True:
                fh.write(block)
                fh.flush()
    except OSError:
        pass
    try:  # the last partial block too
        with open(path, "ab") as fh:
            while True:
                fh.write(b"\0" * 512)
                fh.flush()
    except OSError:
        pass
